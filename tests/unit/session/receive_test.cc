// ReceiveSide on real TCP loopback connections (RCVLOWAT, MSG_PEEK and MSG_TRUNC are TCP
// semantics that socketpair(AF_UNIX) does not have), plus a fake Io for EINTR, EAGAIN and short
// reads.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sealsock/unique_fd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "record/open.h"
#include "record/seal.h"
#include "session/io.h"
#include "session/receive.h"
#include "support/channel.h"
#include "support/sockets.h"

using namespace sealsock;
using namespace sealsock::record;
using sealsock::test::Bytes;

namespace {

// Io over plain syscalls, as the shim's seam will do it.
using test::SystemIo;
using test::tcp_pair;

Bytes pattern(std::size_t n, std::uint8_t seed = 0) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = static_cast<std::uint8_t>(i * 131 + seed + (i >> 8));
    return b;
}

const SuiteParams& aes128() {
    return *find_suite(std::uint16_t{0x1301});
}

using test::queued;
using test::readable;
using test::send_all;
using test::wait_queued;

// What a blocking hook does: read, and on EAGAIN poll for POLLIN. A poll that times out means
// the kernel never became readable although data is coming: an I2 failure.
Bytes read_exactly(ReceiveSide& rs, Io& io, int fd, std::size_t total, std::size_t bufsize,
                   int flags = 0) {
    Bytes got;
    Bytes buf(bufsize);
    int spins = 0;
    while (got.size() < total) {
        const auto r = rs.read(io, buf, flags);
        if (r.value < 0) {
            REQUIRE(r.err == EAGAIN);
            if (++spins > 100) {
                int lw = 0;
                socklen_t l = sizeof lw;
                ::getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lw, &l);
                int rb = 0;
                l = sizeof rb;
                ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, &l);
                FAIL("spinning: queued " << queued(fd) << " held " << rs.held() << " lowat "
                                         << rs.rcvlowat() << " kernel lowat " << lw << " rcvbuf "
                                         << rb << " got " << got.size());
            }
            REQUIRE(readable(fd, 2000));
            continue;
        }
        spins = 0;
        REQUIRE(r.value > 0);
        REQUIRE(static_cast<std::size_t>(r.value) <= bufsize);
        got.insert(got.end(), buf.begin(), buf.begin() + r.value);
    }
    return got;
}

// The MSG_WAITALL loop a hook runs: fill the whole buffer, polling between reads.
sys::Ret<ssize_t> read_waitall(ReceiveSide& rs, Io& io, int fd, MutableByteView out) {
    std::size_t got = 0;
    while (got < out.size()) {
        const auto r = rs.read(io, out.subspan(got), MSG_WAITALL);
        if (r.value == 0) break;
        if (r.value < 0) {
            if (r.err != EAGAIN) return got > 0 ? sys::Ret<ssize_t>{ssize_t(got), 0} : r;
            if (!readable(fd, 2000)) break;
            continue;
        }
        got += static_cast<std::size_t>(r.value);
    }
    return {static_cast<ssize_t>(got), 0};
}

struct Setup {
    test::TcpPair pair = tcp_pair();
    test::Channel ch = test::make_channel(aes128());
    SystemIo io;
    ReceiveSide rs{pair.reader.get(), std::move(ch.opener)};

    Bytes seal(ByteView data) { return test::seal_all(ch.sealer, data); }
    void send(ByteView data) { send_all(pair.writer.get(), seal(data)); }
    int rfd() const { return pair.reader.get(); }
};

Bytes ticket_message() {
    Bytes m = {4, 0, 0, 0};                        // NewSessionTicket, u24 length (set below)
    const Bytes body = {0, 0,    0x1c, 0x20,       // ticket_lifetime
                        1, 2,    3,    4,          // ticket_age_add
                        2, 0xaa, 0xbb,             // ticket_nonce
                        0, 3,    't',  'k',  't',  // ticket
                        0, 0};                     // extensions
    m[3] = static_cast<std::uint8_t>(body.size());
    m.insert(m.end(), body.begin(), body.end());
    return m;
}

Bytes seal_ticket(RecordSealer& sealer) {
    Bytes out(512);
    const std::size_t n = sealer.seal_record(ContentType::handshake, ticket_message(), out);
    REQUIRE(n > 0);
    out.resize(n);
    return out;
}

Bytes seal_alert(RecordSealer& sealer, Alert alert) {
    Bytes out(64);
    const std::size_t n = sealer.seal_alert(alert, out);
    REQUIRE(n > 0);
    out.resize(n);
    return out;
}

// ---- a fake Io: an in-memory receive queue with injected EINTR, EAGAIN and short reads ----

class FakeIo : public Io {
  public:
    sys::Ret<ssize_t> recv(int, void* buf, std::size_t len, int flags) override {
        ++calls;
        if (interrupt_next) {
            interrupt_next = false;
            return sys::fail<ssize_t>(EINTR);
        }
        interrupt_next = interrupt_every;
        if (error != 0) return sys::fail<ssize_t>(error);
        if (queue.empty()) return fin ? sys::Ret<ssize_t>{0, 0} : sys::fail<ssize_t>(EAGAIN);
        std::size_t n = std::min(len, queue.size());
        if ((flags & (MSG_PEEK | MSG_TRUNC)) == 0) n = std::min(n, max_chunk);
        if ((flags & MSG_TRUNC) == 0)
            std::copy_n(queue.begin(), n, static_cast<std::uint8_t*>(buf));
        if ((flags & MSG_PEEK) == 0) queue.erase(queue.begin(), queue.begin() + n);
        return {static_cast<ssize_t>(n), 0};
    }
    sys::Ret<ssize_t> send(int, const void*, std::size_t, int) override {
        return sys::fail<ssize_t>(EPIPE);
    }
    sys::Ret<int> set_rcvlowat(int, int value) override {
        lowats.push_back(value);
        return {0, 0};
    }
    sys::Ret<int> queued(int) override { return {static_cast<int>(queue.size()), 0}; }

    void push(ByteView b) { queue.insert(queue.end(), b.begin(), b.end()); }

    std::deque<std::uint8_t> queue;
    std::vector<int> lowats;
    std::size_t max_chunk = SIZE_MAX;
    int error = 0;
    int calls = 0;
    bool interrupt_every = false;
    bool interrupt_next = false;
    bool fin = false;
};

}  // namespace

TEST_SUITE("session.receive") {
    TEST_CASE("one-byte reads of 16 KiB records") {
        Setup s;
        const Bytes data = pattern(3 * max_plaintext + 100);
        s.send(data);
        CHECK(read_exactly(s.rs, s.io, s.rfd(), data.size(), 1) == data);
        CHECK(s.rs.buffered() == 0);
        CHECK(s.rs.held() == 0);
        CHECK(queued(s.rfd()) == 0);
        CHECK_FALSE(readable(s.rfd()));
    }

    TEST_CASE("reads of exactly the record size take one record each, straight") {
        Setup s;
        const Bytes data = pattern(4 * max_plaintext, 3);
        s.send(data);
        wait_queued(s.rfd(), static_cast<int>(sealed_size(data.size())));
        Bytes got;
        Bytes buf(max_plaintext);
        for (int i = 0; i < 4; ++i) {
            const auto r = s.rs.read(s.io, buf, 0);
            REQUIRE(r.value == static_cast<ssize_t>(max_plaintext));
            CHECK(s.rs.buffered() == 0);  // direct path: nothing cached
            got.insert(got.end(), buf.begin(), buf.end());
        }
        CHECK(got == data);
        const auto r = s.rs.read(s.io, buf, 0);
        CHECK(r.value == -1);
        CHECK(r.err == EAGAIN);
    }

    TEST_CASE("large and odd-sized reads spanning many records") {
        for (std::size_t bufsize : {std::size_t{1000}, max_plaintext - 1, max_plaintext + 1,
                                    std::size_t{50000}, std::size_t{1} << 18}) {
            CAPTURE(bufsize);
            Setup s;
            const Bytes data = pattern(std::size_t{1} << 20, 7);
            const Bytes wire = s.seal(data);
            std::thread writer([&] { send_all(s.pair.writer.get(), wire); });
            const Bytes got = read_exactly(s.rs, s.io, s.rfd(), data.size(), bufsize);
            writer.join();
            CHECK(got == data);
            CHECK_FALSE(readable(s.rfd()));
        }
    }

    TEST_CASE("records of mixed sizes read with mixed buffer sizes") {
        Setup s;
        Bytes data;
        Bytes wire;
        for (std::size_t n : {1, 5, 17, 300, 4096, 16384, 2, 9000, 16383, 1}) {
            const Bytes part = pattern(n, static_cast<std::uint8_t>(n));
            data.insert(data.end(), part.begin(), part.end());
            const Bytes rec = s.seal(part);
            wire.insert(wire.end(), rec.begin(), rec.end());
        }
        send_all(s.pair.writer.get(), wire);
        Bytes got;
        const std::size_t sizes[] = {3, 100, 20000, 1, 7000, 64};
        for (std::size_t i = 0; got.size() < data.size(); ++i) {
            const Bytes part = read_exactly(s.rs, s.io, s.rfd(), 1, sizes[i % std::size(sizes)]);
            got.insert(got.end(), part.begin(), part.end());
        }
        CHECK(got == data);
    }

    TEST_CASE("MSG_PEEK returns the bytes the next read returns") {
        Setup s;
        const Bytes a = pattern(5000, 1);
        const Bytes b = pattern(700, 2);
        s.send(a);
        s.send(b);
        wait_queued(s.rfd(), static_cast<int>(sealed_size(a.size()) + sealed_size(b.size())));
        Bytes peeked(100);
        auto r = s.rs.read(s.io, peeked, MSG_PEEK);
        REQUIRE(r.value == 100);
        CHECK(Bytes(a.begin(), a.begin() + 100) == peeked);
        // A second peek with a big buffer: at most the head record.
        Bytes big(1 << 16);
        r = s.rs.read(s.io, big, MSG_PEEK);
        REQUIRE(r.value == 5000);
        CHECK(Bytes(big.begin(), big.begin() + 5000) == a);
        Bytes got(100);
        r = s.rs.read(s.io, got, 0);
        REQUIRE(r.value == 100);
        CHECK(got == peeked);
        // Peek and read across the record boundary.
        r = s.rs.read(s.io, big, 0);
        REQUIRE(r.value == 4900);
        CHECK(std::equal(big.begin(), big.begin() + 4900, a.begin() + 100));
        r = s.rs.read(s.io, big, MSG_PEEK);
        REQUIRE(r.value == 700);
        r = s.rs.read(s.io, got, MSG_PEEK | MSG_DONTWAIT);
        REQUIRE(r.value == 100);
        CHECK(std::equal(got.begin(), got.end(), b.begin()));
        r = s.rs.read(s.io, big, 0);
        REQUIRE(r.value == 700);
        CHECK(Bytes(big.begin(), big.begin() + 700) == b);
        r = s.rs.read(s.io, big, MSG_PEEK);
        CHECK(r.value == -1);
        CHECK(r.err == EAGAIN);
    }

    TEST_CASE("MSG_TRUNC discards plaintext without copying") {
        Setup s;
        const Bytes a = pattern(3000, 4);
        s.send(a);
        wait_queued(s.rfd(), static_cast<int>(sealed_size(a.size())));
        Bytes untouched(1000, 0x5a);
        auto r = s.rs.read(s.io, untouched, MSG_TRUNC);
        CHECK(r.value == 1000);
        CHECK(untouched == Bytes(1000, 0x5a));
        Bytes rest(5000);
        r = s.rs.read(s.io, rest, 0);
        REQUIRE(r.value == 2000);
        CHECK(std::equal(rest.begin(), rest.begin() + 2000, a.begin() + 1000));
    }

    TEST_CASE("MSG_WAITALL: the caller's loop fills the buffer across records and arrivals") {
        Setup s;
        const Bytes data = pattern(40000, 9);
        const Bytes wire = s.seal(data);
        std::thread writer([&] {
            for (std::size_t off = 0; off < wire.size(); off += 3001) {
                const std::size_t n = std::min<std::size_t>(3001, wire.size() - off);
                send_all(s.pair.writer.get(), ByteView(wire).subspan(off, n));
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        });
        Bytes buf(35000);
        const auto r = read_waitall(s.rs, s.io, s.rfd(), buf);
        CHECK(r.value == 35000);
        CHECK(std::equal(buf.begin(), buf.end(), data.begin()));
        Bytes rest(5000);
        const auto r2 = read_waitall(s.rs, s.io, s.rfd(), rest);
        writer.join();
        CHECK(r2.value == 5000);
        CHECK(std::equal(rest.begin(), rest.end(), data.begin() + 35000));
    }

    TEST_CASE("poll: not readable while the head record is partial, readable while cached") {
        Setup s;
        const int fd = s.rfd();
        Bytes buf(100);
        auto r = s.rs.read(s.io, buf, 0);  // nothing yet: EAGAIN, low-water mark to a header
        CHECK(r.err == EAGAIN);
        CHECK(s.rs.rcvlowat() == static_cast<int>(header_size));

        const Bytes data = pattern(max_plaintext, 5);
        const Bytes wire = s.seal(data);
        REQUIRE(wire.size() == max_sealed_record);
        send_all(s.pair.writer.get(), ByteView(wire).first(3));  // part of a header: quiet
        wait_queued(fd, 3);
        CHECK_FALSE(readable(fd, 20));
        send_all(s.pair.writer.get(), ByteView(wire).subspan(3, 97));
        wait_queued(fd, 100);
        CHECK(readable(fd));  // the one spurious wake: the header was unknown
        r = s.rs.read(s.io, buf, 0);
        CHECK(r.value == -1);
        CHECK(r.err == EAGAIN);
        CHECK(queued(fd) == 0);  // the prefix was taken into the shim
        // The mark is exactly what completes the head record.
        CHECK(s.rs.rcvlowat() == static_cast<int>(wire.size() - s.rs.held()));
        std::size_t sent = 100;
        while (sent + 1000 < wire.size()) {
            send_all(s.pair.writer.get(), ByteView(wire).subspan(sent, 1000));
            sent += 1000;
            wait_queued(fd, 1);
            CHECK_FALSE(readable(fd, 1));
        }
        r = s.rs.read(s.io, buf, 0);  // takes the new prefix: EAGAIN, queue empty, new mark
        CHECK(r.err == EAGAIN);
        CHECK(queued(fd) == 0);
        CHECK(s.rs.rcvlowat() == static_cast<int>(wire.size() - s.rs.held()));
        const int sets_before = s.io.lowat_sets;
        r = s.rs.read(s.io, buf, 0);  // nothing new: EAGAIN and no setsockopt (unchanged)
        CHECK(r.err == EAGAIN);
        CHECK(s.io.lowat_sets == sets_before);
        CHECK_FALSE(readable(fd, 1));
        send_all(s.pair.writer.get(), ByteView(wire).subspan(sent, wire.size() - 1 - sent));
        CHECK_FALSE(readable(fd, 20));  // all but the last byte
        send_all(s.pair.writer.get(), ByteView(wire).last(1));
        CHECK(readable(fd, 2000));

        Bytes got;
        Bytes one(1);
        r = s.rs.read(s.io, one, 0);
        REQUIRE(r.value == 1);
        got.push_back(one[0]);
        CHECK(s.rs.buffered() == max_plaintext - 1);
        CHECK(s.rs.rcvlowat() == 1);
        while (s.rs.buffered() > 0) {
            CHECK(readable(fd));  // cached plaintext remains: the kernel still holds its tail
            r = s.rs.read(s.io, buf, 0);
            REQUIRE(r.value > 0);
            got.insert(got.end(), buf.begin(), buf.begin() + r.value);
        }
        CHECK(got == data);
        CHECK(queued(fd) == 0);
        CHECK_FALSE(readable(fd));
        r = s.rs.read(s.io, buf, 0);
        CHECK(r.err == EAGAIN);
    }

    TEST_CASE("epoll edge-triggered: a new record after draining gives a new edge") {
        Setup s;
        const int fd = s.rfd();
        UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
        REQUIRE(ep.valid());
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLET;
        ev.data.fd = fd;
        REQUIRE(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) == 0);
        auto wait = [&](int ms) {
            epoll_event out{};
            return ::epoll_wait(ep.get(), &out, 1, ms);
        };
        auto drain = [&](std::size_t bufsize) {
            Bytes got;
            Bytes buf(bufsize);
            while (true) {
                const auto r = s.rs.read(s.io, buf, 0);
                if (r.value < 0) {
                    REQUIRE(r.err == EAGAIN);
                    return got;
                }
                got.insert(got.end(), buf.begin(), buf.begin() + r.value);
            }
        };
        for (std::size_t bufsize : {std::size_t{100}, std::size_t{1} << 16}) {
            CAPTURE(bufsize);
            const Bytes a = pattern(20000, 1);
            s.send(a);
            REQUIRE(wait(2000) == 1);
            CHECK(drain(bufsize) == a);
            CHECK(wait(20) == 0);
            const Bytes b = pattern(9000, 2);
            const Bytes wire = s.seal(b);
            send_all(s.pair.writer.get(), ByteView(wire).first(4000));
            if (wait(2000) == 1) CHECK(drain(bufsize).empty());  // spurious: header was unknown
            CHECK(wait(20) == 0);
            send_all(s.pair.writer.get(), ByteView(wire).subspan(4000));
            REQUIRE(wait(2000) == 1);
            CHECK(drain(bufsize) == b);
            CHECK(wait(20) == 0);
        }
    }

    TEST_CASE("tickets and KeyUpdates never surface as data") {
        for (std::size_t bufsize : {std::size_t{1}, std::size_t{333}, std::size_t{1} << 16}) {
            CAPTURE(bufsize);
            Setup s;
            Bytes data;
            Bytes wire;
            auto add = [&](const Bytes& b) { wire.insert(wire.end(), b.begin(), b.end()); };
            add(seal_ticket(s.ch.sealer));
            add(seal_ticket(s.ch.sealer));
            for (int i = 0; i < 4; ++i) {
                const Bytes part = pattern(1000 + 7000 * static_cast<std::size_t>(i),
                                           static_cast<std::uint8_t>(i));
                data.insert(data.end(), part.begin(), part.end());
                if (i == 2) s.ch.sealer.schedule_key_update(true);  // KeyUpdate before the data
                add(s.seal(part));
                add(seal_ticket(s.ch.sealer));
            }
            send_all(s.pair.writer.get(), wire);
            CHECK(read_exactly(s.rs, s.io, s.rfd(), data.size(), bufsize) == data);
            CHECK(s.rs.take_update_request());
            CHECK_FALSE(s.rs.take_update_request());
            Bytes buf(100);
            const auto r = s.rs.read(s.io, buf, 0);  // the trailing ticket, then nothing
            CHECK(r.err == EAGAIN);
            CHECK(queued(s.rfd()) == 0);
        }
    }

    TEST_CASE("close_notify is end of file, after the data before it") {
        for (std::size_t bufsize : {std::size_t{10}, std::size_t{1} << 16}) {
            CAPTURE(bufsize);
            Setup s;
            const Bytes data = pattern(30000);
            Bytes wire = s.seal(data);
            const Bytes close = seal_alert(s.ch.sealer, Alert::close_notify);
            wire.insert(wire.end(), close.begin(), close.end());
            send_all(s.pair.writer.get(), wire);
            CHECK(read_exactly(s.rs, s.io, s.rfd(), data.size(), bufsize) == data);
            Bytes buf(bufsize);
            auto r = s.rs.read(s.io, buf, 0);
            if (r.value < 0 && r.err == EAGAIN) {
                REQUIRE(readable(s.rfd(), 2000));
                r = s.rs.read(s.io, buf, 0);
            }
            CHECK(r.value == 0);
            CHECK(s.rs.at_eof());
            CHECK_FALSE(s.rs.truncated());
            r = s.rs.read(s.io, buf, MSG_PEEK);
            CHECK(r.value == 0);
        }
    }

    TEST_CASE("TCP FIN: end of file at a record boundary, a reset inside a record") {
        {
            Setup s;
            const Bytes data = pattern(100);
            s.send(data);
            REQUIRE(::shutdown(s.pair.writer.get(), SHUT_WR) == 0);
            CHECK(read_exactly(s.rs, s.io, s.rfd(), 100, 1000) == data);
            Bytes buf(10);
            REQUIRE(readable(s.rfd(), 2000));
            CHECK(s.rs.read(s.io, buf, 0).value == 0);
            CHECK(s.rs.truncated());
        }
        {
            Setup s;
            const Bytes wire = s.seal(pattern(100));
            send_all(s.pair.writer.get(), ByteView(wire).first(50));
            REQUIRE(::shutdown(s.pair.writer.get(), SHUT_WR) == 0);
            REQUIRE(readable(s.rfd(), 2000));
            Bytes buf(1000);
            auto r = s.rs.read(s.io, buf, 0);
            if (r.err == EAGAIN) r = s.rs.read(s.io, buf, 0);
            CHECK(r.value == -1);
            CHECK(r.err == ECONNRESET);
            REQUIRE(s.rs.last_failure() != nullptr);
            CHECK(std::string(s.rs.last_failure()->reason).find("inside a record") !=
                  std::string::npos);
        }
    }

    TEST_CASE("a tampered record is fatal and leaves no plaintext in the buffer") {
        for (std::size_t bufsize : {std::size_t{1}, std::size_t{4000}, std::size_t{1} << 16}) {
            CAPTURE(bufsize);
            Setup s;
            const Bytes good = pattern(2000, 1);
            const Bytes bad = pattern(3000, 2);
            Bytes wire = s.seal(good);
            Bytes tampered = s.seal(bad);
            tampered[100] ^= 1;
            wire.insert(wire.end(), tampered.begin(), tampered.end());
            send_all(s.pair.writer.get(), wire);
            wait_queued(s.rfd(), static_cast<int>(wire.size()));
            CHECK(read_exactly(s.rs, s.io, s.rfd(), good.size(), bufsize) == good);
            Bytes buf(bufsize, 0xee);
            const auto r = s.rs.read(s.io, buf, 0);
            CHECK(r.value == -1);
            CHECK(r.err == ECONNRESET);
            // No byte of the bad record's plaintext: the buffer is as given or wiped.
            CHECK(std::all_of(buf.begin(), buf.end(), [](auto b) { return b == 0xee || b == 0; }));
            REQUIRE(s.rs.last_failure() != nullptr);
            CHECK(s.rs.last_failure()->alert == Alert::bad_record_mac);
            CHECK(s.rs.take_alert() == Alert::bad_record_mac);
            CHECK(s.rs.take_alert() == Alert::none);
            CHECK(s.rs.read(s.io, buf, 0).err == ECONNRESET);  // sticky
            CHECK(s.rs.ready(s.io) == 0);
        }
    }

    TEST_CASE("data then a tampered record in one read: data first, the error next") {
        Setup s;
        const Bytes good = pattern(2000, 1);
        Bytes wire = s.seal(good);
        Bytes tampered = s.seal(pattern(3000, 2));
        tampered.back() ^= 0x80;  // the tag
        wire.insert(wire.end(), tampered.begin(), tampered.end());
        send_all(s.pair.writer.get(), wire);
        wait_queued(s.rfd(), static_cast<int>(wire.size()));
        Bytes buf(1 << 16, 0xee);
        auto r = s.rs.read(s.io, buf, 0);
        REQUIRE(r.value == 2000);
        CHECK(std::equal(good.begin(), good.end(), buf.begin()));
        CHECK(
            std::all_of(buf.begin() + 2000, buf.end(), [](auto b) { return b == 0xee || b == 0; }));
        r = s.rs.read(s.io, buf, 0);
        CHECK(r.err == ECONNRESET);
    }

    TEST_CASE("a peer's fatal alert is a reset with the peer's reason, no alert owed") {
        Setup s;
        send_all(s.pair.writer.get(), seal_alert(s.ch.sealer, Alert::access_denied));
        wait_queued(s.rfd(), 1);
        Bytes buf(100, 0xee);
        auto r = s.rs.read(s.io, buf, 0);
        CHECK(r.err == ECONNRESET);
        REQUIRE(s.rs.last_failure() != nullptr);
        CHECK(s.rs.last_failure()->peer_ended);
        CHECK(s.rs.last_failure()->peer_alert == static_cast<std::uint8_t>(Alert::access_denied));
        CHECK(s.rs.take_alert() == Alert::none);
        CHECK(std::all_of(buf.begin(), buf.end(), [](auto b) { return b == 0xee || b == 0; }));
    }

    TEST_CASE("ready() is what the next read returns") {
        Setup s;
        CHECK(s.rs.ready(s.io) == 0);
        const Bytes a = pattern(1000, 1);
        const Bytes b = pattern(16384, 2);
        s.send(a);
        send_all(s.pair.writer.get(), seal_ticket(s.ch.sealer));
        const Bytes wire_b = s.seal(b);
        send_all(s.pair.writer.get(), wire_b);
        wait_queued(s.rfd(), 1);
        CHECK(s.rs.ready(s.io) == 1000);
        CHECK(s.rs.ready(s.io) == 1000);
        Bytes buf(1 << 16);
        CHECK(s.rs.read(s.io, buf, 0).value == 1000);
        wait_queued(s.rfd(), static_cast<int>(wire_b.size()));
        CHECK(s.rs.ready(s.io) == 16384);  // the ticket was consumed on the way
        Bytes part(100);
        CHECK(s.rs.read(s.io, part, 0).value == 100);
        CHECK(s.rs.ready(s.io) == 16284);
        const auto r = s.rs.read(s.io, buf, 0);
        REQUIRE(r.value == 16284);
        CHECK(std::equal(buf.begin(), buf.begin() + 16284, b.begin() + 100));
        CHECK(s.rs.ready(s.io) == 0);
        // A partial record: nothing ready.
        const Bytes wire_c = s.seal(pattern(500));
        send_all(s.pair.writer.get(), ByteView(wire_c).first(200));
        wait_queued(s.rfd(), 200);
        CHECK(s.rs.ready(s.io) == 0);
        send_all(s.pair.writer.get(), ByteView(wire_c).subspan(200));
        wait_queued(s.rfd(), static_cast<int>(wire_c.size()) - 205);
        CHECK(s.rs.ready(s.io) == 500);
    }

    TEST_CASE("an idle side's buffers hold nothing: zero-filled (released) pages are idle too") {
        Setup s;
        CHECK(sizeof(ReceiveSide) < 1024);
        CHECK(s.rs.idle());
        const Bytes a = pattern(100);
        s.send(a);
        CHECK(read_exactly(s.rs, s.io, s.rfd(), 100, 10) == a);
        REQUIRE(s.rs.idle());
        // What MADV_REMOVE leaves of the buffers' pages: zeros.
        ReceiveState& st = s.rs.state();
        auto* from = reinterpret_cast<std::uint8_t*>(&st.cache);
        std::memset(from, 0,
                    static_cast<std::size_t>(reinterpret_cast<std::uint8_t*>(&st + 1) - from));
        CHECK(s.rs.idle());
        s.send(a);
        CHECK(read_exactly(s.rs, s.io, s.rfd(), 100, 1000) == a);
    }
}

TEST_SUITE("session.receive") {
    TEST_CASE("fake Io: EINTR, EAGAIN and short reads at every step") {
        for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, SIZE_MAX}) {
            for (std::size_t bufsize : {std::size_t{1}, std::size_t{500}, std::size_t{1} << 15}) {
                CAPTURE(chunk);
                CAPTURE(bufsize);
                auto ch = test::make_channel(aes128());
                FakeIo io;
                io.max_chunk = chunk;
                io.interrupt_every = true;
                ReceiveSide rs(3, std::move(ch.opener));
                Bytes data;
                for (std::size_t n : {50, 16384, 3, 9000}) {
                    const Bytes part = pattern(n, static_cast<std::uint8_t>(n));
                    data.insert(data.end(), part.begin(), part.end());
                    io.push(test::seal_all(ch.sealer, part));
                    io.push(seal_ticket(ch.sealer));
                }
                Bytes got;
                Bytes buf(bufsize);
                while (got.size() < data.size()) {
                    const std::size_t before = io.queue.size();
                    const auto r = rs.read(io, buf, 0);
                    if (r.value < 0) {
                        // A short recv counts as "drained" (as on a real socket), so a fake
                        // that returns short reads sees EAGAIN, but never without progress.
                        REQUIRE(r.err == EAGAIN);
                        REQUIRE(io.queue.size() < before);
                        continue;
                    }
                    got.insert(got.end(), buf.begin(), buf.begin() + r.value);
                }
                CHECK(got == data);
                while (!io.queue.empty()) {  // the trailing ticket, consumed in short reads
                    const std::size_t before = io.queue.size();
                    CHECK(rs.read(io, buf, 0).err == EAGAIN);
                    REQUIRE(io.queue.size() < before);
                }
                CHECK(rs.read(io, buf, 0).err == EAGAIN);
                // The low-water mark is only set when it changes.
                for (std::size_t i = 1; i < io.lowats.size(); ++i)
                    CHECK(io.lowats[i] != io.lowats[i - 1]);
            }
        }
    }

    TEST_CASE("fake Io: a partial record answers EAGAIN and sets the mark that completes it") {
        auto ch = test::make_channel(aes128());
        FakeIo io;
        ReceiveSide rs(3, std::move(ch.opener));
        const Bytes wire = test::seal_all(ch.sealer, pattern(1000));
        io.push(ByteView(wire).first(2));
        Bytes buf(4096);
        CHECK(rs.read(io, buf, 0).err == EAGAIN);
        CHECK(rs.rcvlowat() == 3);  // the rest of the header
        io.push(ByteView(wire).subspan(2, 98));
        CHECK(rs.read(io, buf, 0).err == EAGAIN);
        CHECK(rs.rcvlowat() == static_cast<int>(wire.size()) - 100);
        const std::size_t before = io.lowats.size();
        CHECK(rs.read(io, buf, 0).err == EAGAIN);  // spurious wake: no new setsockopt
        CHECK(io.lowats.size() == before);
        io.push(ByteView(wire).subspan(100));
        CHECK(rs.read(io, buf, 0).value == 1000);
        CHECK(rs.rcvlowat() == static_cast<int>(header_size));
    }

    TEST_CASE("fake Io: real errnos pass through and are not sticky") {
        auto ch = test::make_channel(aes128());
        FakeIo io;
        ReceiveSide rs(3, std::move(ch.opener));
        io.push(test::seal_all(ch.sealer, pattern(10)));
        io.error = ETIMEDOUT;
        Bytes buf(100);
        auto r = rs.read(io, buf, 0);
        CHECK(r.value == -1);
        CHECK(r.err == ETIMEDOUT);
        CHECK(rs.last_failure() == nullptr);
        io.error = 0;
        CHECK(rs.read(io, buf, 0).value == 10);
        CHECK(rs.read(io, buf, MSG_OOB).err == EINVAL);
        CHECK(rs.read(io, MutableByteView(), 0).value == 0);
    }

    TEST_CASE("fake Io: queued bytes that vanish before the discard are a reset") {
        auto ch = test::make_channel(aes128());
        FakeIo io;
        ReceiveSide rs(3, std::move(ch.opener));
        io.push(test::seal_all(ch.sealer, pattern(1000)));
        Bytes one(1);
        CHECK(rs.read(io, one, 0).value == 1);
        io.queue.clear();  // another reader took the record's tail
        Bytes buf(2000);
        const auto r = rs.read(io, buf, 0);
        CHECK(r.value == 999);  // the plaintext was authentic: delivered
        CHECK(rs.read(io, buf, 0).err == ECONNRESET);
        REQUIRE(rs.last_failure() != nullptr);
        CHECK(rs.take_alert() == Alert::internal_error);
    }
}
