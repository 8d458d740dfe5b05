// The session layer's table (SessionOps, shim/session/registry.h): what each hooked call means
// on a sealed fd, translated to Session calls. Installed once, at load.
//
#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <vector>

#include "record/libcrypto.h"
#include "session/background.h"
#include "session/exec_target.h"
#include "session/log.h"
#include "session/open.h"
#include "session/registry.h"
#include "session/session.h"
#include "session/shared.h"
#include "sys/real.h"

extern "C" [[noreturn]] void __chk_fail(void);  // glibc: the fortify abort

namespace sealsock {
namespace {

// Keeps a session alive while a call runs inside it (the background thread frees retired
// sessions only when no call is inside).
class Use {
  public:
    explicit Use(Session& s) : s_(s) { s_.users.fetch_add(1, std::memory_order_acq_rel); }
    ~Use() { s_.users.fetch_sub(1, std::memory_order_acq_rel); }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

  private:
    Session& s_;
};

MutableByteView bytes(void* buf, std::size_t n) {
    return {static_cast<std::uint8_t*>(buf), buf == nullptr ? 0 : n};
}

// Flags a read call passes to the receive side: what recv(2) knows for TCP.
constexpr int kRecvFlags = MSG_PEEK | MSG_WAITALL | MSG_DONTWAIT | MSG_TRUNC | MSG_OOB;

std::size_t iov_total(const iovec* iov, std::size_t count) {
    std::size_t total = 0;
    for (std::size_t i = 0; i < count; ++i)
        total += iov[i].iov_len;
    return total;
}

// readv/recvmsg: the first buffer with the program's blocking rules, the rest only with what is
// ready (a short read is fine). A peek across several buffers goes through one contiguous copy,
// because peeking each buffer in turn would return the same bytes again.
sys::Ret<ssize_t> receive_iov(Session& s, const iovec* iov, std::size_t count, int flags) {
    if ((flags & MSG_PEEK) != 0 && count > 1) {
        std::vector<std::uint8_t> tmp(iov_total(iov, count));
        const sys::Ret<ssize_t> r = s.receive(tmp, flags);
        if (r.value <= 0) return r;
        std::size_t off = 0;
        for (std::size_t i = 0; i < count && off < static_cast<std::size_t>(r.value); ++i) {
            const std::size_t n = std::min(iov[i].iov_len, static_cast<std::size_t>(r.value) - off);
            std::memcpy(iov[i].iov_base, tmp.data() + off, n);
            off += n;
        }
        return r;
    }
    std::size_t got = 0;
    for (std::size_t i = 0; i < count; ++i) {
        if (iov[i].iov_len == 0) continue;
        const int f = got == 0 || (flags & MSG_WAITALL) != 0 ? flags : flags | MSG_DONTWAIT;
        const sys::Ret<ssize_t> r = s.receive(bytes(iov[i].iov_base, iov[i].iov_len), f);
        if (r.value < 0) return got > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(got), 0} : r;
        got += static_cast<std::size_t>(r.value);
        if (static_cast<std::size_t>(r.value) < iov[i].iov_len) break;
    }
    return {static_cast<ssize_t>(got), 0};
}

// writev/sendmsg: gathered into one buffer so each call seals once (records stay full); the
// buffer is per thread and reused, so a steady writer allocates nothing.
sys::Ret<ssize_t> send_iov(Session& s, const iovec* iov, std::size_t count, int flags) {
    if (count == 1)
        return s.send(ByteView(static_cast<const std::uint8_t*>(iov[0].iov_base), iov[0].iov_len),
                      flags);
    constexpr std::size_t kGather = 256 * 1024;
    thread_local std::vector<std::uint8_t> gather;
    const std::size_t total = std::min(iov_total(iov, count), kGather);
    if (gather.size() < total) gather.resize(total);
    std::size_t off = 0;
    for (std::size_t i = 0; i < count && off < total; ++i) {
        const std::size_t n = std::min(iov[i].iov_len, total - off);
        if (n > 0) std::memcpy(gather.data() + off, iov[i].iov_base, n);
        off += n;
    }
    return s.send(ByteView(gather.data(), total), flags);
}

// --- the table's functions -----------------------------------------------------------------------

sys::Ret<int> op_connect(Session& s, int fd, const sockaddr* addr, socklen_t len) {
    Use use(s);
    // A repeated connect() asks about the TCP connection, and the kernel answers as on a plain
    // socket: EALREADY while it is being made, 0 once made (hiredis checks this way), then
    // EISCONN. The handshake is not the program's business here (DESIGN I4): data written
    // meanwhile is held, and a failed handshake is reported by the next call.
    if (s.state() == SessionState::failed)
        if (const int err = s.take_socket_error()) return sys::fail<int>(err);
    return sys::connect(fd, addr, len);
}

sys::Ret<int> op_accept(Session&, int fd, sockaddr* addr, socklen_t* len) {
    return sys::accept(fd, addr, len);  // not a listening socket: the kernel's EINVAL
}

sys::Ret<int> op_accept4(Session&, int fd, sockaddr* addr, socklen_t* len, int flags) {
    return sys::accept4(fd, addr, len, flags);
}

sys::Ret<ssize_t> op_read(Session& s, int, void* buf, size_t n) {
    Use use(s);
    return s.receive(bytes(buf, n), 0);
}

sys::Ret<ssize_t> op_readv(Session& s, int, const iovec* iov, int count) {
    if (count < 0 || count > IOV_MAX) return sys::fail<ssize_t>(EINVAL);
    Use use(s);
    return receive_iov(s, iov, static_cast<std::size_t>(count), 0);
}

sys::Ret<ssize_t> op_recv(Session& s, int, void* buf, size_t n, int flags) {
    Use use(s);
    return s.receive(bytes(buf, n), flags & kRecvFlags);
}

sys::Ret<ssize_t> op_recvfrom(Session& s, int fd, void* buf, size_t n, int flags, sockaddr*,
                              socklen_t* len) {
    sys::Ret<ssize_t> r = op_recv(s, fd, buf, n, flags);
    // TCP names no sender: the kernel reports an address length of 0.
    if (r.value >= 0 && len != nullptr) *len = 0;
    return r;
}

sys::Ret<ssize_t> op_recvmsg(Session& s, int, msghdr* msg, int flags) {
    if (msg->msg_iovlen > IOV_MAX) return sys::fail<ssize_t>(EMSGSIZE);
    Use use(s);
    sys::Ret<ssize_t> r = receive_iov(s, msg->msg_iov, msg->msg_iovlen, flags & kRecvFlags);
    if (r.value >= 0) {
        msg->msg_namelen = 0;
        msg->msg_controllen = 0;
        msg->msg_flags = 0;
    }
    return r;
}

sys::Ret<int> op_recvmmsg(Session& s, int fd, mmsghdr* vec, unsigned int vlen, int flags,
                          timespec*) {
    unsigned int done = 0;
    for (; done < vlen; ++done) {
        const int f = done == 0 ? flags : flags | MSG_DONTWAIT;
        const sys::Ret<ssize_t> r = op_recvmsg(s, fd, &vec[done].msg_hdr, f);
        if (r.value < 0) {
            if (done == 0) return sys::fail<int>(r.err);
            break;
        }
        vec[done].msg_len = static_cast<unsigned int>(r.value);
        if (r.value == 0) {
            ++done;
            break;
        }
    }
    return {static_cast<int>(done), 0};
}

sys::Ret<ssize_t> op_write(Session& s, int, const void* buf, size_t n) {
    Use use(s);
    return s.send(ByteView(static_cast<const std::uint8_t*>(buf), buf == nullptr ? 0 : n), 0);
}

sys::Ret<ssize_t> op_writev(Session& s, int, const iovec* iov, int count) {
    if (count < 0 || count > IOV_MAX) return sys::fail<ssize_t>(EINVAL);
    Use use(s);
    return send_iov(s, iov, static_cast<std::size_t>(count), 0);
}

sys::Ret<ssize_t> op_send(Session& s, int, const void* buf, size_t n, int flags) {
    Use use(s);
    return s.send(ByteView(static_cast<const std::uint8_t*>(buf), buf == nullptr ? 0 : n), flags);
}

sys::Ret<ssize_t> op_sendto(Session& s, int fd, const void* buf, size_t n, int flags,
                            const sockaddr*, socklen_t) {
    return op_send(s, fd, buf, n, flags);  // TCP ignores a destination on a connected socket
}

sys::Ret<ssize_t> op_sendmsg(Session& s, int, const msghdr* msg, int flags) {
    if (msg->msg_iovlen > IOV_MAX) return sys::fail<ssize_t>(EMSGSIZE);
    Use use(s);
    return send_iov(s, msg->msg_iov, msg->msg_iovlen, flags);
}

sys::Ret<int> op_sendmmsg(Session& s, int fd, mmsghdr* vec, unsigned int vlen, int flags) {
    unsigned int done = 0;
    for (; done < vlen; ++done) {
        const sys::Ret<ssize_t> r = op_sendmsg(s, fd, &vec[done].msg_hdr, flags);
        if (r.value < 0) {
            if (done == 0) return sys::fail<int>(r.err);
            break;
        }
        vec[done].msg_len = static_cast<unsigned int>(r.value);
    }
    return {static_cast<int>(done), 0};
}

// sendfile to a sealed socket: read the file and seal it. The offset rules are sendfile(2)'s:
// with `offset` the file position is untouched and *offset advances; without, the position does.
template <typename Off>
sys::Ret<ssize_t> sendfile_sealed(Session& s, int out_fd, int in_fd, Off* offset, size_t count) {
    if (registry::find(out_fd) != &s) return sys::fail<ssize_t>(EINVAL);  // from a socket
    Use use(s);
    std::uint8_t buf[SendSide::kChunk];  // four full records per seal
    std::size_t done = 0;
    while (done < count) {
        const std::size_t want = std::min(sizeof buf, count - done);
        const ssize_t got = offset != nullptr ? ::pread(in_fd, buf, want, *offset)
                                              : sys::read(in_fd, buf, want).value;
        if (got < 0)
            return done > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(done), 0}
                            : sys::fail<ssize_t>(errno);
        if (got == 0) break;
        std::size_t sent = 0;
        while (sent < static_cast<std::size_t>(got)) {
            const sys::Ret<ssize_t> w =
                s.send(ByteView(buf + sent, static_cast<std::size_t>(got) - sent), 0);
            if (w.value < 0) {
                // Bytes read but not sealed go back to the file position (or are not counted
                // in *offset), so nothing is skipped.
                if (offset == nullptr)
                    (void)::lseek(in_fd, -static_cast<off_t>(static_cast<std::size_t>(got) - sent),
                                  SEEK_CUR);
                if (offset != nullptr) *offset += static_cast<Off>(sent);
                done += sent;
                return done > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(done), 0}
                                : sys::fail<ssize_t>(w.err);
            }
            sent += static_cast<std::size_t>(w.value);
        }
        if (offset != nullptr) *offset += static_cast<Off>(got);
        done += static_cast<std::size_t>(got);
    }
    return {static_cast<ssize_t>(done), 0};
}

sys::Ret<ssize_t> op_sendfile(Session& s, int out_fd, int in_fd, off_t* offset, size_t count) {
    return sendfile_sealed(s, out_fd, in_fd, offset, count);
}

sys::Ret<ssize_t> op_sendfile64(Session& s, int out_fd, int in_fd, off64_t* offset, size_t count) {
    return sendfile_sealed(s, out_fd, in_fd, offset, count);
}

// splice between a pipe and a sealed socket: through a buffer, sealing or opening on the way.
sys::Ret<ssize_t> op_splice(Session& s, int fd_in, off64_t* off_in, int fd_out, off64_t* off_out,
                            size_t len, unsigned int flags) {
    Use use(s);
    std::uint8_t buf[SendSide::kChunk];  // four full records per seal
    const std::size_t want = std::min(sizeof buf, len);
    const int dontwait = (flags & SPLICE_F_NONBLOCK) != 0 ? MSG_DONTWAIT : 0;
    if (registry::find(fd_out) == &s) {
        if (off_out != nullptr) return sys::fail<ssize_t>(ESPIPE);
        const ssize_t got = off_in != nullptr ? ::pread(fd_in, buf, want, *off_in)
                                              : sys::read(fd_in, buf, want).value;
        if (got <= 0) return got == 0 ? sys::Ret<ssize_t>{0, 0} : sys::fail<ssize_t>(errno);
        std::size_t sent = 0;
        while (sent < static_cast<std::size_t>(got)) {  // bytes taken from the pipe must go out
            const sys::Ret<ssize_t> w =
                s.send(ByteView(buf + sent, static_cast<std::size_t>(got) - sent), 0);
            if (w.value < 0)
                return sent > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(sent), 0}
                                : sys::fail<ssize_t>(w.err);
            sent += static_cast<std::size_t>(w.value);
        }
        if (off_in != nullptr) *off_in += got;
        return {got, 0};
    }
    if (off_in != nullptr) return sys::fail<ssize_t>(ESPIPE);
    const sys::Ret<ssize_t> r = s.receive(MutableByteView(buf, want), dontwait);
    if (r.value <= 0) return r;
    std::size_t put = 0;
    while (put < static_cast<std::size_t>(r.value)) {  // opened bytes must reach the pipe
        const ssize_t w =
            off_out != nullptr
                ? ::pwrite(fd_out, buf + put, static_cast<std::size_t>(r.value) - put,
                           *off_out + static_cast<off64_t>(put))
                : sys::write(fd_out, buf + put, static_cast<std::size_t>(r.value) - put).value;
        if (w < 0 && errno == EINTR) continue;
        if (w < 0)
            return put > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(put), 0}
                           : sys::fail<ssize_t>(errno);
        put += static_cast<std::size_t>(w);
    }
    if (off_out != nullptr) *off_out += r.value;
    return r;
}

sys::Ret<int> op_shutdown(Session& s, int fd, int how) {
    Use use(s);
    return s.shutdown(fd, how);
}

sys::Ret<int> op_getsockopt(Session& s, int fd, int level, int name, void* value, socklen_t* len) {
    if (level == SOL_SOCKET && value != nullptr && len != nullptr && *len >= sizeof(int)) {
        int v = -1;
        if (name == SO_ERROR) {
            Use use(s);
            v = s.take_socket_error();
            if (v == 0) return sys::getsockopt(fd, level, name, value, len);
        } else if (name == SO_RCVLOWAT) {
            v = s.program_rcvlowat();
        } else if (name == SO_RCVBUF && s.program_rcvbuf() > 0) {
            v = s.program_rcvbuf();
        }
        if (v >= 0) {
            std::memcpy(value, &v, sizeof v);
            *len = sizeof v;
            return {0, 0};
        }
    }
    return sys::getsockopt(fd, level, name, value, len);
}

sys::Ret<int> op_setsockopt(Session& s, int fd, int level, int name, const void* value,
                            socklen_t len) {
    if (level == SOL_SOCKET && (name == SO_RCVLOWAT || name == SO_RCVBUF)) {
        if (value == nullptr || len < sizeof(int)) return sys::fail<int>(EINVAL);
        int v = 0;
        std::memcpy(&v, value, sizeof v);
        // SO_RCVLOWAT belongs to the shim (DESIGN I2): remember the program's value, report it
        // back. SO_RCVBUF is kept at two records at least; the program sees what it set, doubled
        // as the kernel reports it.
        if (name == SO_RCVLOWAT) {
            s.set_program_rcvlowat(std::max(v, 1));
            return {0, 0};
        }
        constexpr int kMinimum = 64 * 1024;
        const int applied = std::max(v, kMinimum);
        const sys::Ret<int> r = sys::setsockopt(fd, level, name, &applied, sizeof applied);
        if (r.value == 0) s.set_program_rcvbuf(v > INT32_MAX / 2 ? INT32_MAX : std::max(v, 1) * 2);
        return r;
    }
    return sys::setsockopt(fd, level, name, value, len);
}

sys::Ret<ssize_t> op_read_chk(Session& s, int fd, void* buf, size_t n, size_t buflen) {
    if (n > buflen) __chk_fail();
    return op_read(s, fd, buf, n);
}

sys::Ret<ssize_t> op_recv_chk(Session& s, int fd, void* buf, size_t n, size_t buflen, int flags) {
    if (n > buflen) __chk_fail();
    return op_recv(s, fd, buf, n, flags);
}

sys::Ret<ssize_t> op_recvfrom_chk(Session& s, int fd, void* buf, size_t n, size_t buflen, int flags,
                                  sockaddr* addr, socklen_t* len) {
    if (n > buflen) __chk_fail();
    return op_recvfrom(s, fd, buf, n, flags, addr, len);
}

sys::Ret<int> op_close(Session& s, int fd) {
    Use use(s);
    std::shared_lock names(shared::names_lock());
    return s.close(fd);
}

// A new fd `r` names the same socket as a name of `s` (dup, F_DUPFD*): register it.
sys::Ret<int> add_name(Session& s, sys::Ret<int> r) {
    if (r.value < 0) return r;
    const sys::Ret<int> in = registry::insert(r.value, &s);
    if (in.value != 0) {
        (void)sys::close(r.value);  // never hand out an untracked name of a sealed socket
        report("cannot track a copy of a sealed socket: {}", std::strerror(in.err));
        return sys::fail<int>(in.err == EEXIST ? EIO : in.err);
    }
    s.add_name();
    return r;
}

sys::Ret<int> op_dup(Session& s, int fd) {
    Use use(s);
    std::shared_lock names(shared::names_lock());
    return add_name(s, sys::dup(fd));
}

// dup2/dup3 with a sealed fd on either side. From a sealed fd: newfd becomes a name of the same
// session (registered before the call, so no thread ever writes to it unsealed). Onto a sealed
// fd: the program replaces that socket (Java's async close dup2()s a marker over it), so the
// session loses a name, exactly as if it had been closed, but the kernel does the replacing.
sys::Ret<int> replace(Session& s, int oldfd, int newfd, int flags, bool dup3) {
    if (oldfd == newfd) {
        if (dup3) return sys::fail<int>(EINVAL);
        return sys::fcntl(oldfd, F_GETFD, nullptr).value < 0 ? sys::fail<int>(EBADF)
                                                             : sys::Ret<int>{newfd, 0};
    }
    Session* from = registry::find(oldfd);
    Session* onto = registry::find(newfd);
    if (onto != nullptr && newfd == onto->anchor()) {
        report("dup2/dup3 onto the shim's own copy of a sealed socket (fd {}): refused", newfd);
        return sys::fail<int>(EBUSY);
    }
    Use use(s);
    std::shared_lock names(shared::names_lock());
    const bool same = from != nullptr && from == onto;
    const bool pre = from != nullptr && onto == nullptr;
    if (pre && registry::insert(newfd, from).value != 0) return sys::fail<int>(EIO);
    const sys::Ret<int> r = dup3 ? sys::dup3(oldfd, newfd, flags) : sys::dup2(oldfd, newfd);
    if (r.value < 0) {
        if (pre) (void)registry::erase(newfd);
        return r;
    }
    if (same) return r;  // still a name of the same socket
    if (onto != nullptr) {
        (void)registry::erase(newfd);
        onto->drop_name();
        if (from != nullptr) (void)registry::insert(newfd, from);
    }
    if (from != nullptr) from->add_name();
    return r;
}

sys::Ret<int> op_dup2(Session& s, int oldfd, int newfd) {
    return replace(s, oldfd, newfd, 0, false);
}

sys::Ret<int> op_dup3(Session& s, int oldfd, int newfd, int flags) {
    return replace(s, oldfd, newfd, flags, true);
}

sys::Ret<int> op_fcntl(Session& s, int fd, int cmd, void* arg) {
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
        Use use(s);
        std::shared_lock names(shared::names_lock());
        return add_name(s, sys::fcntl(fd, cmd, arg));
    }
    const sys::Ret<int> r = sys::fcntl(fd, cmd, arg);
    if (cmd == F_SETFL && r.value == 0) s.note_status_flags(sys::fcntl(fd, F_GETFL, nullptr).value);
    return r;
}

sys::Ret<int> op_ioctl(Session& s, int fd, unsigned long request, void* arg) {
    if (request == FIONREAD && arg != nullptr) {  // SIOCINQ: plaintext bytes ready
        Use use(s);
        const int n = s.readable_bytes();
        std::memcpy(arg, &n, sizeof n);
        return {0, 0};
    }
    return sys::ioctl(fd, request, arg);
}

sys::Ret<long> op_syscall(Session& s, long number, const long (&a)[6]) {
    const int fd = static_cast<int>(a[0]);
    auto widen = [](auto r) { return sys::Ret<long>{static_cast<long>(r.value), r.err}; };
    switch (number) {
        case SYS_close:
            return widen(op_close(s, fd));
        case SYS_read:
            return widen(op_read(s, fd, reinterpret_cast<void*>(a[1]), static_cast<size_t>(a[2])));
        case SYS_write:
            return widen(
                op_write(s, fd, reinterpret_cast<const void*>(a[1]), static_cast<size_t>(a[2])));
        case SYS_recvfrom:
            return widen(op_recvfrom(s, fd, reinterpret_cast<void*>(a[1]),
                                     static_cast<size_t>(a[2]), static_cast<int>(a[3]),
                                     reinterpret_cast<sockaddr*>(a[4]),
                                     reinterpret_cast<socklen_t*>(a[5])));
        case SYS_sendto:
            return widen(op_send(s, fd, reinterpret_cast<const void*>(a[1]),
                                 static_cast<size_t>(a[2]), static_cast<int>(a[3])));
        case SYS_shutdown:
            return widen(op_shutdown(s, fd, static_cast<int>(a[1])));
        case SYS_readv:
            return widen(
                op_readv(s, fd, reinterpret_cast<const iovec*>(a[1]), static_cast<int>(a[2])));
        case SYS_writev:
            return widen(
                op_writev(s, fd, reinterpret_cast<const iovec*>(a[1]), static_cast<int>(a[2])));
        case SYS_recvmsg:
            return widen(
                op_recvmsg(s, fd, reinterpret_cast<msghdr*>(a[1]), static_cast<int>(a[2])));
        case SYS_sendmsg:
            return widen(
                op_sendmsg(s, fd, reinterpret_cast<const msghdr*>(a[1]), static_cast<int>(a[2])));
        case SYS_recvmmsg:
            return widen(op_recvmmsg(s, fd, reinterpret_cast<mmsghdr*>(a[1]),
                                     static_cast<unsigned>(a[2]), static_cast<int>(a[3]),
                                     reinterpret_cast<timespec*>(a[4])));
        case SYS_sendmmsg:
            return widen(op_sendmmsg(s, fd, reinterpret_cast<mmsghdr*>(a[1]),
                                     static_cast<unsigned>(a[2]), static_cast<int>(a[3])));
        case SYS_getsockopt:
            return widen(op_getsockopt(s, fd, static_cast<int>(a[1]), static_cast<int>(a[2]),
                                       reinterpret_cast<void*>(a[3]),
                                       reinterpret_cast<socklen_t*>(a[4])));
        case SYS_setsockopt:
            return widen(op_setsockopt(s, fd, static_cast<int>(a[1]), static_cast<int>(a[2]),
                                       reinterpret_cast<const void*>(a[3]),
                                       static_cast<socklen_t>(a[4])));
        case SYS_ioctl:
            return widen(
                op_ioctl(s, fd, static_cast<unsigned long>(a[1]), reinterpret_cast<void*>(a[2])));
        case SYS_fcntl:
            return widen(op_fcntl(s, fd, static_cast<int>(a[1]), reinterpret_cast<void*>(a[2])));
        case SYS_dup:
            return widen(op_dup(s, fd));
#ifdef SYS_dup2
        case SYS_dup2:
            return widen(op_dup2(s, fd, static_cast<int>(a[1])));
#endif
        case SYS_dup3:
            return widen(op_dup3(s, fd, static_cast<int>(a[1]), static_cast<int>(a[2])));
        case SYS_sendfile:
            return widen(op_sendfile(s, fd, static_cast<int>(a[1]), reinterpret_cast<off_t*>(a[2]),
                                     static_cast<size_t>(a[3])));
        case SYS_splice:
            return widen(op_splice(s, fd, reinterpret_cast<off64_t*>(a[1]), static_cast<int>(a[2]),
                                   reinterpret_cast<off64_t*>(a[3]), static_cast<size_t>(a[4]),
                                   static_cast<unsigned>(a[5])));
        case SYS_connect:
            return widen(op_connect(s, fd, reinterpret_cast<const sockaddr*>(a[1]),
                                    static_cast<socklen_t>(a[2])));
        default:
            report("syscall({}) on a sealed socket is not supported: failing it (fail closed)",
                   number);
            return sys::fail<long>(EIO);
    }
}

// fdopen on a sealed socket: stdio's own reads and writes go through glibc's internal calls, past
// every hook, so the stream is a cookie stream whose functions are the session's. Buffering,
// fprintf and fgets then work as on a plain socket, sealed.
ssize_t stream_read(void* cookie, char* buf, size_t n) {
    const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(cookie));
    Session* s = registry::find(fd);
    const sys::Ret<ssize_t> r = s != nullptr ? op_read(*s, fd, buf, n) : sys::read(fd, buf, n);
    errno = r.err;
    return r.value;
}

ssize_t stream_write(void* cookie, const char* buf, size_t n) {
    const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(cookie));
    Session* s = registry::find(fd);
    const sys::Ret<ssize_t> r = s != nullptr ? op_write(*s, fd, buf, n) : sys::write(fd, buf, n);
    errno = r.err;
    return r.value < 0 ? 0 : r.value;  // fopencookie(3): 0 on error, errno set
}

int stream_close(void* cookie) {
    const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(cookie));
    Session* s = registry::find(fd);
    const sys::Ret<int> r = s != nullptr ? op_close(*s, fd) : sys::close(fd);
    errno = r.err;
    return r.value;
}

sys::Ret<FILE*> op_fdopen(Session&, int fd, const char* mode) {
    if (mode == nullptr || sys::fcntl(fd, F_GETFL, nullptr).value < 0)
        return {nullptr, mode == nullptr ? EINVAL : EBADF};
    const cookie_io_functions_t io{stream_read, stream_write, nullptr, stream_close};
    FILE* f = fopencookie(reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)), mode, io);
    return {f, f == nullptr ? errno : 0};
}

// io_uring submits socket I/O from the kernel side, past every hook (DESIGN I8): said once, so a
// person knows why a sealed rule has no effect there. (liburing 2.2 and later make the system
// call itself and cannot be noticed at all.)
void on_io_uring_setup() {
    static std::atomic<bool> said{false};
    if (rules_in_force() && !said.exchange(true))
        report(
            "this program set up io_uring: I/O it submits there bypasses the shim, so sealed "
            "rules cannot hold for it (use a gateway for this program)");
}

void on_name_resolved(const char* node, const addrinfo* result) {
    remember_names(node, result);
}

// Until the two halves keep their state in the slot (shared.h), a forked child or a new image
// would hold a private copy of the keys and sequence numbers: a repeated nonce. Until then the
// child fails closed and exec does not pass sealed fds on.
constexpr bool kHalvesShared = true;

// Calls f(view) for each of this process's views (one per sealed socket: the fd that is its
// anchor).
template <typename F>
void for_each_view(F f) {
    for (long fd = registry::next_owned(0, registry::kFdLimit - 1); fd >= 0;
         fd = registry::next_owned(fd + 1, registry::kFdLimit - 1)) {
        Session* s = registry::find(static_cast<int>(fd));
        if (s != nullptr && s->anchor() == fd) f(*s);
    }
}

// Calls f(fd, view) for each program fd that names a sealed socket (anchors excluded).
template <typename F>
void for_each_name(F f) {
    for (long fd = registry::next_owned(0, registry::kFdLimit - 1); fd >= 0;
         fd = registry::next_owned(fd + 1, registry::kFdLimit - 1)) {
        Session* s = registry::find(static_cast<int>(fd));
        if (s != nullptr && s->anchor() != fd) f(static_cast<int>(fd), *s);
    }
}

// The program is about to put itself under seccomp (sys/confined.h): each view keeps its file
// status flags (the filter may refuse fcntl). The config is not read here: the process may
// already be chrooted with no file descriptor to spare (OpenSSH's child). libcrypto is loaded
// now if it is not yet (a program that links it, as OpenSSH does, has it already): the filter
// may forbid the files and mappings a load needs. If this fails, the next seal reports why.
void on_before_confinement() {
    (void)record::libcrypto();
    for_each_view([](Session& s) { s.before_confinement(); });
}

extern const SessionOps kForkedOps;

// fork: the child's names are counted before fork() copies them, under the names lock, so no
// close in any thread can see a count that misses them.
void on_before_fork() {
    background::before_fork();  // first: the thread may take the names lock while it works
    shared::names_lock().lock();
    for_each_view([](Session& s) {
        if (!s.closed()) s.before_fork();
    });
}

void on_fork(pid_t pid) {
    if (pid < 0) {
        for_each_view([](Session& s) {
            if (!s.closed()) s.fork_failed();
        });
    }
    if (pid != 0) {
        shared::names_lock().unlock();
        background::after_fork_in_parent();
        return;
    }
    shared::reset_in_child();  // the names lock copied here belongs to a parent thread
    background::reset_in_child();
    bool any = false;
    for_each_view([&](Session& s) {
        any = any || !s.closed();
        if (s.closed() || !kHalvesShared) {
            // A view the parent was finishing (its tail, its close) is the parent's business:
            // the child's copy of the anchor would only keep the socket open.
            if (!s.closed()) s.fork_failed();  // the child gives its names back (below)
            (void)registry::erase(s.anchor());
            (void)sys::close(s.anchor());
            return;
        }
        s.forked_child();
    });
    if (!kHalvesShared) {
        if (any)
            report(
                "sealed connections are not shared with forked children yet: the child's copies "
                "fail closed");
        registry::set_ops(&kForkedOps);
    }
}

// --- exec ------------------------------------------------------------------------------------
//
// A new image that carries the shim gets the sessions: the chunks' memfds stay open across exec
// and an environment entry names them, with the cookie and the number of names of each session
// this image holds ("SEALSOCK_SESSIONS=e;5,6;c0ffee:2,..."; 'e' for exec, 's' for a spawned
// child). The new image's shim finds every inherited socket by its SO_COOKIE and makes it a name
// of its session again (restore_sessions below). A new image that cannot carry the shim (see
// exec_target.h) must never get a sealed fd: they are made close-on-exec for it, and the
// connection ends for this process (its peer sees the FIN once no other process holds it).

struct ExecUndo {
    bool handed_off = false;
    int cloexec[256];
    int count = 0;
    // A spawn's child takes over names and an attachment the parent counts for it in advance
    // (else the parent, closing its copies as soon as posix_spawn returns, could drop the
    // socket's last name before the child's shim has counted its own).
    struct Lent {
        SharedSession* slot;
        int names;
    };
    Lent lent[1024];
    int lent_count = 0;
};
ExecUndo g_exec;

// Writes the hand-off entry; false if it does not fit.
bool write_handoff(char* entry, std::size_t size, bool replaces) {
    // handoff() writes "NAME=fd,fd"; the mode goes in front of the fds, the sessions after.
    constexpr std::size_t kMode = 2;
    if (size <= kMode || !shared::handoff(entry, size - kMode)) return false;
    char* value = std::strchr(entry, '=') + 1;
    std::memmove(value + kMode, value, std::strlen(value) + 1);
    value[0] = replaces ? 'e' : 's';
    value[1] = ';';
    std::size_t used = std::strlen(entry);
    bool first = true;
    for_each_view([&](Session& s) {
        if (s.closed() || used >= size) return;
        const int n =
            std::snprintf(entry + used, size - used, "%s%llx:%d", first ? ";" : ",",
                          static_cast<unsigned long long>(s.slot().cookie), s.local_names());
        used = n < 0 ? size : used + static_cast<std::size_t>(n);
        first = false;
    });
    if (used >= size) {
        shared::undo_handoff();
        return false;
    }
    return true;
}

// Gives back what lend_to_child counted.
void give_back_lent() {
    for (int i = 0; i < g_exec.lent_count; ++i) {
        SharedSession& slot = *g_exec.lent[i].slot;
        slot.names.fetch_sub(g_exec.lent[i].names, std::memory_order_acq_rel);
        shared::detach(slot);
    }
    g_exec.lent_count = 0;
}

// Counts, for a spawned child, the names and the attachment it will take over (the numbers the
// hand-off entry gives it); on_after_exec gives them back if no child started. False (nothing
// lent) if there are more sessions than it can keep track of.
bool lend_to_child() {
    bool fits = true;
    for_each_view([&](Session& s) {
        if (s.closed() || !fits) return;
        if (g_exec.lent_count == static_cast<int>(std::size(g_exec.lent))) {
            fits = false;
            return;
        }
        SharedSession& slot = s.slot();
        const int n = s.local_names();
        slot.names.fetch_add(n, std::memory_order_acq_rel);
        slot.attached.fetch_add(1, std::memory_order_acq_rel);
        g_exec.lent[g_exec.lent_count++] = {&slot, n};
    });
    if (!fits) give_back_lent();
    return fits;
}

sys::Ret<int> on_exec(const ExecTarget& target, char* const envp[], char* entry, std::size_t size) {
    const int saved = errno;
    g_exec = {};
    if (registry::live_count() == 0) return {0, saved};
    const char* why = target.in_libc ? "system() and popen() start /bin/sh inside the C library, "
                                       "where a sealed connection cannot be handed on"
                                     : shim_missing(target, envp);
    if (why == nullptr && !kHalvesShared)
        why = "passing sealed connections to a new program is not built yet";
    if (why == nullptr) {
        // This image's background thread ends with it: a handshake it runs must finish first,
        // or the new image would hold a session nobody completes (socat accepts and execs at
        // once). The new image gets the keys, or the failure.
        if (target.replaces)
            for_each_view([](Session& s) {
                if (!s.closed()) s.finish_own_handshake();
            });
        if (write_handoff(entry, size, target.replaces)) {
            if (target.replaces || lend_to_child()) {
                g_exec.handed_off = true;
                return {1, saved};
            }
            shared::undo_handoff();
        }
        why = "there are too many sealed connections to describe to it";
    }
    // glibc runs a spawn's dup2 actions in the child, past every hook: a sealed fd named there
    // would reach the new program as a plain socket. Refuse the spawn instead.
    int sources[64];
    const int n = spawn_dup2_sources(target.actions, sources, 64);
    for (int i = 0; i < n || n < 0; ++i) {
        const int fd = n < 0 ? -1 : sources[i];
        if (n >= 0 && (i >= 64 || registry::find(fd) == nullptr)) continue;
        report(
            "posix_spawn refused: its file actions would give {} to a program without the "
            "shim ({})",
            n < 0 ? std::string("the sealed connections")
                  : fmt::format("the sealed connection on fd {}", fd),
            why);
        return sys::fail<int>(EACCES);
    }
    bool logged = false;
    for_each_name([&](int fd, Session&) {
        const int flags = sys::fcntl(fd, F_GETFD, nullptr).value;
        if (flags < 0 || (flags & FD_CLOEXEC) != 0) return;
        (void)sys::fcntl(fd, F_SETFD,
                         reinterpret_cast<void*>(static_cast<long>(flags | FD_CLOEXEC)));
        if (g_exec.count < static_cast<int>(std::size(g_exec.cloexec)))
            g_exec.cloexec[g_exec.count++] = fd;
        if (!logged) {
            report(
                "the new program does not get the sealed connection on fd {} (nor any other): {}",
                fd, why);
            logged = true;
        }
    });
    return {0, saved};
}

void on_after_exec(bool started) {
    const int saved = errno;
    if (g_exec.handed_off) shared::undo_handoff();
    if (!started) give_back_lent();  // no child takes what was lent to it
    for (int i = 0; i < g_exec.count; ++i) {
        const int fd = g_exec.cloexec[i];
        const int flags = sys::fcntl(fd, F_GETFD, nullptr).value;
        if (flags >= 0)
            (void)sys::fcntl(fd, F_SETFD,
                             reinterpret_cast<void*>(static_cast<long>(flags & ~FD_CLOEXEC)));
    }
    g_exec = {};
    errno = saved;
}

// While the agent runs the handshake on the socket, the bytes that make it readable are the
// handshake's: a read would answer EAGAIN. Some programs take EAGAIN after a readiness event for
// a dead connection (wrk), so poll and epoll do not report them (shim/hooks/readiness.cc).
bool hides_readable(Session& s) {
    const SessionState st = s.state();
    return st == SessionState::connecting || st == SessionState::handshaking;
}

bool plaintext_ready(Session& s) {
    const Use use(s);
    return s.plaintext_ready();
}

sys::Ret<int> peer(Session& s, struct sealsock_peer_info* out, int timeout_ms) {
    const Use use(s);
    return s.peer(*out, timeout_ms);
}

constexpr SessionOps kOps = [] {
    SessionOps ops{};
    ops.connect = op_connect;
    ops.accept = op_accept;
    ops.accept4 = op_accept4;
    ops.read = op_read;
    ops.readv = op_readv;
    ops.recv = op_recv;
    ops.recvfrom = op_recvfrom;
    ops.recvmsg = op_recvmsg;
    ops.recvmmsg = op_recvmmsg;
    ops.write = op_write;
    ops.writev = op_writev;
    ops.send = op_send;
    ops.sendto = op_sendto;
    ops.sendmsg = op_sendmsg;
    ops.sendmmsg = op_sendmmsg;
    ops.sendfile = op_sendfile;
    ops.sendfile64 = op_sendfile64;
    ops.splice = op_splice;
    ops.shutdown = op_shutdown;
    ops.getsockopt = op_getsockopt;
    ops.setsockopt = op_setsockopt;
    ops.__read_chk = op_read_chk;
    ops.__recv_chk = op_recv_chk;
    ops.__recvfrom_chk = op_recvfrom_chk;
    ops.close = op_close;
    ops.dup2 = op_dup2;
    ops.dup3 = op_dup3;
    ops.fcntl = op_fcntl;
    ops.ioctl = op_ioctl;
    ops.syscall = op_syscall;
    ops.name_resolved = on_name_resolved;
    ops.dup = op_dup;
    ops.fdopen = op_fdopen;
    ops.io_uring_setup = on_io_uring_setup;
    ops.hides_readable = hides_readable;
    ops.peer = peer;
    ops.before_confinement = on_before_confinement;
    ops.plaintext_ready = plaintext_ready;
    ops.before_fork = on_before_fork;
    ops.after_fork = on_fork;
    ops.before_exec = on_exec;
    ops.after_exec = on_after_exec;
    ops.open_connect = open_connect;
    ops.open_accept = open_accept;
    return ops;
}();

constexpr SessionOps kForkedOps = [] {
    SessionOps ops{};
    ops.name_resolved = on_name_resolved;
    ops.before_exec = on_exec;
    ops.after_exec = on_after_exec;
    ops.open_connect = open_connect;
    ops.open_accept = open_accept;
    return ops;
}();

__attribute__((constructor(103))) void install_ops() noexcept {
    registry::set_ops(&kOps);
}

// --- a new image: taking the sessions over (see "exec" above) ------------------------------------

struct Handed {
    std::uint64_t cookie = 0;
    int names = 0;            // names the old image held
    Session* view = nullptr;  // this image's view, once a socket of it is found
    SharedSession* slot = nullptr;
};

// Parses "e;5,6;c0ffee:2,..." into the mode, the chunk list (NUL-terminated in place) and the
// sessions. False on malformed text.
bool parse_handoff(char* value, char& mode, char*& chunks, Handed* out, int& count, int max) {
    if ((value[0] != 'e' && value[0] != 's') || value[1] != ';') return false;
    mode = value[0];
    chunks = value + 2;
    char* sessions = std::strchr(chunks, ';');
    count = 0;
    if (sessions == nullptr) return true;
    *sessions++ = '\0';
    for (char* p = sessions; *p != '\0' && count < max;) {
        char* end = nullptr;
        const unsigned long long cookie = std::strtoull(p, &end, 16);
        if (end == p || *end != ':') return false;
        const long names = std::strtol(end + 1, &end, 10);
        if (names < 0 || (*end != ',' && *end != '\0')) return false;
        out[count++] = {cookie, static_cast<int>(names), nullptr, nullptr};
        p = *end == ',' ? end + 1 : end;
    }
    return true;
}

// The running image itself may be unable to keep the shim's promises (a dynamically linked Go
// program makes its own system calls).
const char* this_image_cannot_carry() {
    const int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    const char* why = file_cannot_carry_shim(fd);
    (void)sys::close(fd);
    // Statically linked cannot be true here (the shim is loaded); set-ID is the loader's affair.
    return why != nullptr && std::strstr(why, "Go") != nullptr ? why : nullptr;
}

// A Go program makes its system calls itself, past every hook: preloaded (by hand, or through
// /etc/ld.so.preload) under a rule that seals its connections, it would talk plaintext where
// the rule promises TLS. It is stopped before main instead (`sealsock run` refuses it the same
// way); with no such rule it runs as it would without sealsock.
__attribute__((constructor(105))) void refuse_unsealable_image() noexcept {
    const char* why = this_image_cannot_carry();
    if (why == nullptr) return;
    const char* rule = rule_sealing_this_program();
    if (rule == nullptr) return;
    report(
        "this program cannot be sealed: {}; the config seals its connections (rule \"{}\"), "
        "so it is stopped rather than run in plaintext: exempt it with a rule of mode \"off\" "
        "or put a sealed gateway in front of it",
        why, rule);
    _exit(126);
}

// Makes fd a name of its handed-off session (a new view on first sight). False: fail it closed.
bool take_over(int fd, Handed& h) {
    if (h.view == nullptr) {
        const sys::Ret<int> anchor = sys::dup_cloexec_high(fd);
        if (anchor.value < 0) return false;
        h.view = new (std::nothrow) Session(*h.slot, anchor.value);
        if (h.view == nullptr || registry::insert(anchor.value, h.view).value != 0) {
            delete h.view;  // detaches
            h.view = nullptr;
            (void)sys::close(anchor.value);
            return false;
        }
    }
    if (registry::insert(fd, h.view).value != 0) return false;
    h.view->add_name();
    return true;
}

__attribute__((constructor(104))) void restore_sessions() noexcept {
    const char* text = getenv(shared::kHandoffVariable);
    if (text == nullptr) return;
    static char value[16384];
    std::snprintf(value, sizeof value, "%s", text);
    unsetenv(shared::kHandoffVariable);  // never passed on by accident: each exec writes its own
    static Handed handed[1024];
    char mode = 0;
    char* chunks = nullptr;
    int count = 0;
    const bool parsed = parse_handoff(value, mode, chunks, handed, count, 1024);
    const int mapped = parsed ? shared::adopt(chunks) : 0;
    const char* refuse = this_image_cannot_carry();
    if (!parsed) refuse = "the hand-off from the previous program is malformed";
    if (refuse == nullptr && mapped == 0 && count > 0)
        refuse = "the sessions of the previous program cannot be mapped";
    for (int i = 0; i < count; ++i)
        handed[i].slot = refuse == nullptr ? shared::find(handed[i].cookie) : nullptr;

    // Every inherited socket whose cookie was handed off becomes a name of its session again; one
    // that cannot is shut down both ways (never exposed as a plain socket: DESIGN I7).
    DIR* dir = opendir("/proc/self/fd");
    const int dir_fd = dir != nullptr ? dirfd(dir) : -1;
    for (dirent* e = dir != nullptr ? readdir(dir) : nullptr; e != nullptr; e = readdir(dir)) {
        const int fd = std::atoi(e->d_name);
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dir_fd) continue;
        struct stat st {};
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) || registry::is_protected(fd)) continue;
        const std::uint64_t cookie = shared::cookie_of(fd);
        for (int i = 0; i < count; ++i) {
            if (handed[i].cookie != cookie) continue;
            if (handed[i].slot == nullptr || !take_over(fd, handed[i])) {
                (void)sys::shutdown(fd, SHUT_RDWR);
                report("a sealed connection inherited on fd {} is closed: {}", fd,
                       refuse != nullptr ? refuse : "its session cannot be restored");
            }
            break;
        }
    }
    if (dir != nullptr) closedir(dir);
    // The names the old image held (exec), or the parent lent this child (spawn), are replaced by
    // the names found here, and so is that process's attachment. A session this image holds no
    // name of is left to the processes that do.
    if (count > 0) arm_exit_handler();
    for (int i = 0; i < count; ++i) {
        // A handshake the old image ran and did not finish (it waits for it before exec, up to a
        // limit) has nobody left to finish it.
        Session* v = handed[i].view;
        if (v == nullptr || handed[i].slot->handshake_owner.load() != getpid()) continue;
        const SessionState st = v->state();
        if (st == SessionState::connecting || st == SessionState::handshaking)
            v->fail(ECONNRESET, "the handshake was cut off by exec (it did not finish in time)");
    }
    for (int i = 0; i < count; ++i) {
        Handed& h = handed[i];
        if (h.slot == nullptr) continue;
        h.slot->names.fetch_sub(h.names, std::memory_order_acq_rel);
        if (h.view == nullptr) shared::detach(*h.slot);
    }
}

// At exit() the program's remaining names end: the last name in all processes sends
// close_notify, as close() would have (a program that exits without closing its sockets is
// common; _exit() and a crash skip this, and the peer then sees only the FIN). It runs from an
// atexit handler registered after OpenSSL's own (arm_exit_handler), because OpenSSL frees its
// state in that handler and sealing afterwards would crash; the destructor is for a dlclose.
void end_sessions() noexcept {
    for_each_view([](Session& s) {
        s.finish_own_handshake();
        if (!s.closed()) s.at_exit();
    });
}

__attribute__((destructor)) void end_sessions_at_unload() noexcept {
    end_sessions();
}

}  // namespace

void arm_exit_handler() noexcept {
    static std::once_flag armed;
    try {
        std::call_once(armed, [] {
            // OpenSSL registers its cleanup when it initialises: make that happen first, so
            // that this handler, registered later, runs earlier. (Options 0 would return at
            // once; the config is what OpenSSL loads at its first use anyway.)
            if (const record::Libcrypto* c = record::libcrypto())
                (void)c->OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
            (void)std::atexit([] {
                end_sessions();
                background::park_for_exit();
            });
        });
    } catch (...) {  // call_once could not run: the destructor still ends the sessions
    }
}

}  // namespace sealsock
