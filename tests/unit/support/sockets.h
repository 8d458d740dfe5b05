// Real sockets for tests of the session halves: the Io seam over plain syscalls, and a connected
// TCP loopback pair (TCP, not a Unix socketpair: SO_RCVLOWAT, MSG_TRUNC and readiness are TCP's).
#pragma once

#include <sealsock/unique_fd.h>

#include "session/io.h"

namespace sealsock::test {

class SystemIo final : public Io {
  public:
    sys::Ret<ssize_t> recv(int fd, void* buf, std::size_t len, int flags) override;
    sys::Ret<ssize_t> send(int fd, const void* buf, std::size_t len, int flags) override;
    sys::Ret<int> set_rcvlowat(int fd, int value) override;
    sys::Ret<int> queued(int fd) override;

    int recvs = 0;       // recv calls made
    int lowat_sets = 0;  // SO_RCVLOWAT changes made
};

struct TcpPair {
    UniqueFd writer;  // connected, TCP_NODELAY
    UniqueFd reader;  // the accepted end
};

// A connected pair on 127.0.0.1; fails the current test if the kernel refuses.
TcpPair tcp_pair();

}  // namespace sealsock::test
