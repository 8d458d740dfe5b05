// Real sockets for tests of the session halves: the Io seam over plain syscalls, and a connected
// TCP loopback pair (TCP, not a Unix socketpair: SO_RCVLOWAT, MSG_TRUNC and readiness are TCP's).
#pragma once

#include <sealsock/bytes.h>
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

// Sends all of `bytes` (blocking), failing the current test on an error.
void send_all(int fd, ByteView bytes);
// Bytes queued for reading on fd (SIOCINQ).
int queued(int fd);
// Waits (up to 2 s) until at least n bytes are queued on fd: loopback delivery is fast but not
// synchronous with send().
void wait_queued(int fd, int n);
// True when poll reports POLLIN within timeout_ms.
bool readable(int fd, int timeout_ms = 0);

}  // namespace sealsock::test
