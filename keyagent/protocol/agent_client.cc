#include "protocol/agent_client.h"

#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace sealsock::agent {
namespace {

// Bytes of a reply frame; wiped after use because replies carry traffic secrets.
struct FrameBuffer {
    SecureBuffer bytes{length_size + max_frame};
};

}  // namespace

std::string default_socket_path() {
    if (const char* p = std::getenv("SEALSOCK_AGENT_SOCK"); p != nullptr && *p != '\0') return p;
    if (const char* r = std::getenv("XDG_RUNTIME_DIR"); r != nullptr && *r != '\0')
        return std::string(r) + "/sealsock/agent.sock";
    return "/tmp/sealsock-" + std::to_string(::getuid()) + "/agent.sock";
}

Result<AgentClient> AgentClient::connect(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return make_error("agent socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error(std::string("cannot create a socket: ") + std::strerror(errno));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        const int err = errno;
        ::close(fd);
        return make_error("no sealsock agent at " + path + " (" + std::strerror(err) +
                          "): start one with `eval \"$(sealsock agent)\"`");
    }
    return AgentClient(fd);
}

AgentClient::AgentClient(AgentClient&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

AgentClient& AgentClient::operator=(AgentClient&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

AgentClient::~AgentClient() {
    if (fd_ >= 0) ::close(fd_);
}

Status AgentClient::send_frame(const Message& request, int fd) {
    FrameBuffer frame;
    if (!frame.bytes.valid()) return make_error("out of secure memory");
    const std::size_t n = encode(request, frame.bytes.span());
    if (n == 0) return make_error("request too large to encode");
    std::size_t sent = 0;
    while (sent < n) {
        iovec iov{frame.bytes.data() + sent, n - sent};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
        if (sent == 0 && fd >= 0) {  // the descriptor rides on the frame's first byte
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
        }
        const ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return make_error(std::string("lost the agent: ") + std::strerror(errno));
        sent += static_cast<std::size_t>(w);
    }
    return {};
}

Result<Message> AgentClient::receive_frame(int timeout_ms) {
    FrameBuffer frame;
    if (!frame.bytes.valid()) return make_error("out of secure memory");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::size_t got = 0, want = length_size;
    while (got < want) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        pollfd p{fd_, POLLIN, 0};
        if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) == 0)
            return make_error("the agent did not answer in time");
        const ssize_t r = ::recv(fd_, frame.bytes.data() + got, want - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return make_error("the agent closed the connection");
        got += static_cast<std::size_t>(r);
        if (got == length_size && want == length_size) {
            auto len = frame_length(frame.bytes.view().first(length_size));
            if (!len) return make_error("bad frame from the agent: " + len.error().message);
            want = length_size + len.value();
        }
    }
    return decode(frame.bytes.view().subspan(length_size, want - length_size));
}

Result<Message> AgentClient::call(const Message& request, int fd, int timeout_ms) {
    if (Status s = send_frame(request, fd); !s) return s.error();
    auto reply = receive_frame(timeout_ms);
    if (reply && reply.value().request_id != request.request_id)
        return make_error("the agent answered another request");
    return reply;
}

}  // namespace sealsock::agent
