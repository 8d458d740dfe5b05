// The socket operations a session needs, behind one interface (STYLE 4): the shim implements it
// with the syscall seam (shim/sys), tests with plain syscalls or with a fake that injects
// EAGAIN, EINTR and short transfers. Every call returns {value, errno} and never throws.
//
// Thread-safety: implementations are stateless forwarders; callers hold the session's locks.
#pragma once

#include <sys/types.h>

#include <cstddef>

#include "sys/ret.h"

namespace sealsock {

class Io {
  public:
    virtual ~Io() = default;
    // recv(2) on the session's socket; flags are MSG_* (MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT, ...).
    virtual sys::Ret<ssize_t> recv(int fd, void* buf, std::size_t len, int flags) = 0;
    // send(2); the session always adds MSG_NOSIGNAL unless the program asked for SIGPIPE.
    virtual sys::Ret<ssize_t> send(int fd, const void* buf, std::size_t len, int flags) = 0;
    // setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, value).
    virtual sys::Ret<int> set_rcvlowat(int fd, int value) = 0;
    // Bytes queued for reading in the kernel (ioctl SIOCINQ).
    virtual sys::Ret<int> queued(int fd) = 0;
    // Whether recv() takes MSG_PEEK and MSG_TRUNC. Without them (a sandboxed process,
    // sys/confined.h) the receive side reads each record whole instead of leaving its last
    // byte queued.
    [[nodiscard]] virtual bool can_peek() const { return true; }
};

}  // namespace sealsock
