#include "keyagent/socket_bio.h"

#include <openssl/bio.h>
#include <sys/socket.h>

#include <cerrno>
#include <new>

namespace sealsock::keyagent {
namespace {

struct SocketBioData {
    int fd = -1;
    SocketBioStatus status;
};

SocketBioData* data_of(BIO* bio) {
    return static_cast<SocketBioData*>(BIO_get_data(bio));
}

bool would_block(int err) {
    return err == EAGAIN || err == EWOULDBLOCK;
}

// Reads what the kernel has, never waiting: a socket the program made blocking stays blocking
// for the program, yet the agent never blocks on it. EAGAIN becomes "retry read"; 0 is the
// peer's end of file.
int socket_read(BIO* bio, char* buf, size_t len, size_t* done) {
    BIO_clear_retry_flags(bio);
    SocketBioData* data = data_of(bio);
    if (data == nullptr || len == 0) return 0;
    ssize_t n;
    do {
        n = recv(data->fd, buf, len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        *done = static_cast<size_t>(n);
        return 1;
    }
    if (n == 0)
        data->status.eof = true;
    else if (would_block(errno))
        BIO_set_retry_read(bio);
    else
        data->status.last_errno = errno;
    return 0;
}

// Writes what the kernel takes, never waiting and never raising SIGPIPE (the program's signal
// disposition is its own). EAGAIN becomes "retry write".
int socket_write(BIO* bio, const char* buf, size_t len, size_t* done) {
    BIO_clear_retry_flags(bio);
    SocketBioData* data = data_of(bio);
    if (data == nullptr) return 0;
    ssize_t n;
    do {
        n = send(data->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        *done = static_cast<size_t>(n);
        return 1;
    }
    if (would_block(errno))
        BIO_set_retry_write(bio);
    else
        data->status.last_errno = errno;
    return 0;
}

long socket_ctrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
    const SocketBioData* data = data_of(bio);
    switch (cmd) {
        case BIO_CTRL_FLUSH:  // every write goes straight to the kernel
            return 1;
        case BIO_CTRL_EOF:
            return data != nullptr && data->status.eof ? 1 : 0;
        case BIO_CTRL_GET_CLOSE:  // the descriptor is borrowed: never closed here
            return BIO_NOCLOSE;
        case BIO_CTRL_PENDING:  // nothing is buffered in the BIO itself
        case BIO_CTRL_WPENDING:
            return 0;
        default:  // everything else (set_close, ktls, dup, ...) is refused
            return 0;
    }
}

int socket_create(BIO* bio) {
    BIO_set_data(bio, nullptr);
    BIO_set_init(bio, 0);
    return 1;
}

int socket_destroy(BIO* bio) {
    if (bio == nullptr) return 0;
    delete data_of(bio);
    BIO_set_data(bio, nullptr);
    BIO_set_init(bio, 0);
    return 1;
}

struct Method {
    int type = 0;
    BIO_METHOD* method = nullptr;
};

Method make_method() {
    const int index = BIO_get_new_index();
    if (index < 0) return {};
    const int type = index | BIO_TYPE_SOURCE_SINK;
    BIO_METHOD* method = BIO_meth_new(type, "sealsock socket (borrowed fd)");
    if (method == nullptr) return {};
    if (BIO_meth_set_read_ex(method, socket_read) != 1 ||
        BIO_meth_set_write_ex(method, socket_write) != 1 ||
        BIO_meth_set_ctrl(method, socket_ctrl) != 1 ||
        BIO_meth_set_create(method, socket_create) != 1 ||
        BIO_meth_set_destroy(method, socket_destroy) != 1) {
        BIO_meth_free(method);
        return {};
    }
    return {type, method};
}

// Created on first use, thread-safely, and kept for the whole process (every BIO made from it
// points to it).
const Method& method() {
    static const Method once = make_method();
    return once;
}

}  // namespace

BIO* socket_bio_new(int fd) {
    const Method& m = method();
    if (m.method == nullptr) return nullptr;
    BIO* bio = BIO_new(m.method);
    auto* data = new (std::nothrow) SocketBioData{fd, {}};
    if (bio == nullptr || data == nullptr) {
        BIO_free(bio);
        delete data;
        return nullptr;
    }
    BIO_set_data(bio, data);
    BIO_set_init(bio, 1);
    return bio;
}

SocketBioStatus socket_bio_status(BIO* bio) {
    if (bio == nullptr || method().method == nullptr || BIO_method_type(bio) != method().type)
        return {};
    const SocketBioData* data = data_of(bio);
    return data != nullptr ? data->status : SocketBioStatus{};
}

}  // namespace sealsock::keyagent
