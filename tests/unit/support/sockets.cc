#include "support/sockets.h"

#include <doctest/doctest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <thread>

namespace sealsock::test {

sys::Ret<ssize_t> SystemIo::recv(int fd, void* buf, std::size_t len, int flags) {
    ++recvs;
    const ssize_t r = ::recv(fd, buf, len, flags);
    return {r, r < 0 ? errno : 0};
}

sys::Ret<ssize_t> SystemIo::send(int fd, const void* buf, std::size_t len, int flags) {
    const ssize_t r = ::send(fd, buf, len, flags);
    return {r, r < 0 ? errno : 0};
}

sys::Ret<int> SystemIo::set_rcvlowat(int fd, int value) {
    ++lowat_sets;
    const int r = ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &value, sizeof value);
    return {r, r < 0 ? errno : 0};
}

sys::Ret<int> SystemIo::queued(int fd) {
    int n = 0;
    const int r = ::ioctl(fd, SIOCINQ, &n);
    return {r < 0 ? -1 : n, r < 0 ? errno : 0};
}

TcpPair tcp_pair() {
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener.valid());
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener.get(), 1) == 0);
    REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    TcpPair p;
    p.writer.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(::connect(p.writer.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    p.reader.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    REQUIRE(p.reader.valid());
    const int one = 1;
    REQUIRE(::setsockopt(p.writer.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    return p;
}

void send_all(int fd, ByteView bytes) {
    while (!bytes.empty()) {
        const ssize_t r = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        REQUIRE(r > 0);
        bytes = bytes.subspan(static_cast<std::size_t>(r));
    }
}

int queued(int fd) {
    int n = 0;
    REQUIRE(::ioctl(fd, SIOCINQ, &n) == 0);
    return n;
}

void wait_queued(int fd, int n) {
    for (int i = 0; i < 2000 && queued(fd) < n; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE(queued(fd) >= n);
}

bool readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    REQUIRE(r >= 0);
    return r == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace sealsock::test
