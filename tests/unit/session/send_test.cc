// SendSide over real TCP loopback pairs (the peer opens the records and compares bytes) and over
// a fake Io that injects short sends, EINTR, EAGAIN and EPIPE. The property checked throughout:
// the peer's opened plaintext is exactly the bytes write() reported as accepted, in order, once.
#include <doctest/doctest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sealsock/unique_fd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "record/open.h"
#include "record/seal.h"
#include "session/io.h"
#include "session/send.h"
#include "support/channel.h"
#include "support/sockets.h"

using namespace sealsock;
using namespace sealsock::record;
using sealsock::test::Bytes;
using sealsock::test::make_channel;

namespace {

const std::uint16_t all_suites[] = {0x1301, 0x1302, 0x1303};
constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

Bytes pattern(std::size_t n, std::uint8_t seed = 0) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = static_cast<std::uint8_t>(i * 131 + seed + (i >> 8) + (i >> 20) * 7);
    return b;
}

const SuiteParams& suite(std::uint16_t code = 0x1301) {
    return *find_suite(code);
}

using test::SystemIo;

// An in-memory socket: appends what it takes to `wire`. `budget` bytes are taken before it
// reports EAGAIN, at most `per_call` per send; `inject` fails chosen calls once; after `dead_at`
// bytes every call, zero-length ones included, fails with `dead_errno`.
class FakeIo final : public Io {
  public:
    Bytes wire;
    std::size_t budget = unlimited;
    std::size_t per_call = unlimited;
    std::size_t dead_at = unlimited;
    int dead_errno = EPIPE;
    std::map<std::size_t, int> inject;  // call number -> errno
    std::vector<int> flags_seen;
    std::size_t calls = 0;

    sys::Ret<ssize_t> recv(int, void*, std::size_t, int) override {
        return sys::fail<ssize_t>(ENOTSUP);
    }
    sys::Ret<ssize_t> send(int, const void* buf, std::size_t len, int flags) override {
        flags_seen.push_back(flags);
        if (const auto it = inject.find(calls++); it != inject.end())
            return sys::fail<ssize_t>(it->second);
        if (wire.size() >= dead_at) return sys::fail<ssize_t>(dead_errno);
        if (len == 0) return {0, 0};
        const std::size_t n = std::min({len, per_call, budget, dead_at - wire.size()});
        if (n == 0) return sys::fail<ssize_t>(EAGAIN);
        if (budget != unlimited) budget -= n;
        const auto* p = static_cast<const std::uint8_t*>(buf);
        wire.insert(wire.end(), p, p + n);
        return {static_cast<ssize_t>(n), 0};
    }
    sys::Ret<int> set_rcvlowat(int, int) override { return sys::fail<int>(ENOTSUP); }
    sys::Ret<int> queued(int) override { return sys::fail<int>(ENOTSUP); }
};

// The receiving end: opens records as bytes arrive and logs what each one was.
struct Event {
    OpenStatus status;
    std::uint64_t generation;  // the opener's key generation after the record
};

class Peer {
  public:
    explicit Peer(RecordOpener opener) : opener_(std::move(opener)), out_(1u << 15) {}

    void feed(ByteView wire) {
        pending_.insert(pending_.end(), wire.begin(), wire.end());
        while (!closed && !fatal) {
            const ByteView in = ByteView(pending_).subspan(start_);
            const OpenOutcome o = opener_.open(in, out_);
            if (o.status == OpenStatus::need_more) break;
            if (o.status == OpenStatus::fatal || o.status == OpenStatus::need_buffer) {
                fatal = true;
                break;
            }
            if (o.status == OpenStatus::data)
                plaintext.insert(plaintext.end(), out_.begin(), out_.begin() + o.plaintext);
            if (o.status == OpenStatus::close_notify) closed = true;
            if (o.status != OpenStatus::data || events.empty() ||
                events.back().status != OpenStatus::data ||
                events.back().generation != opener_.generation())
                events.push_back({o.status, opener_.generation()});
            start_ += o.consumed;
        }
        if (start_ > (1u << 20)) {
            pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(start_));
            start_ = 0;
        }
    }
    // Bytes received that no complete record accounts for (a partial record, or bytes after
    // close_notify).
    [[nodiscard]] std::size_t leftover() const { return pending_.size() - start_; }
    RecordOpener& opener() { return opener_; }

    Bytes plaintext;
    std::vector<Event> events;  // runs of data records under one key are logged once
    bool closed = false;
    bool fatal = false;

  private:
    RecordOpener opener_;
    Bytes pending_;
    std::size_t start_ = 0;
    Bytes out_;
};

// A sender and its peer, sharing one direction's secret.
struct Link {
    SendSide send;
    Peer peer;
};

Link make_link(int fd, const SuiteParams& s = suite(), RotationPolicy policy = {}) {
    auto ch = make_channel(s, policy);
    return Link{SendSide(fd, std::move(ch.sealer)), Peer(std::move(ch.opener))};
}

using test::tcp_pair;

// Reads the reader end until end of file on a thread and feeds the peer. No asserts on the
// thread: the test checks the peer after join().
class ReaderThread {
  public:
    ReaderThread(int fd, Peer& peer) : fd_(fd), peer_(peer) {}
    ~ReaderThread() { join(); }
    void start() {
        thread_ = std::thread([this] {
            Bytes buf(1u << 18);
            while (true) {
                const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) {
                    error_ = n < 0 ? errno : 0;
                    return;
                }
                peer_.feed(ByteView(buf).first(static_cast<std::size_t>(n)));
            }
        });
    }
    int join() {
        if (thread_.joinable()) thread_.join();
        return error_;
    }

  private:
    int fd_;
    Peer& peer_;
    std::thread thread_;
    int error_ = 0;
};

void wait_writable(int fd) {
    pollfd p{fd, POLLOUT, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
}

// What a caller does before SHUT_WR: close_notify, flush the rest, then the FIN.
void finish(SendSide& s, Io& io, int fd) {
    auto r = s.close_notify(io);
    while (r.value == 1) {
        wait_writable(fd);
        r = s.flush(io);
    }
    REQUIRE(r.value == 0);
    REQUIRE(::shutdown(fd, SHUT_WR) == 0);
}

// Writes all of `data` in pieces of `piece` on a nonblocking path (MSG_DONTWAIT), waiting for
// POLLOUT and flushing on EAGAIN. Returns the bytes accepted, in order.
Bytes pump_nonblocking(SendSide& s, Io& io, int fd, ByteView data, std::size_t piece) {
    Bytes accepted;
    std::size_t off = 0;
    while (off < data.size()) {
        const auto r = s.write(io, data.subspan(off, std::min(piece, data.size() - off)),
                               MSG_DONTWAIT | MSG_NOSIGNAL, 0);
        if (r.value < 0) {
            REQUIRE(r.err == EAGAIN);
            REQUIRE(s.has_tail());
            wait_writable(fd);
            REQUIRE(s.flush(io).value >= 0);
            continue;
        }
        const auto n = static_cast<std::size_t>(r.value);
        REQUIRE(n > 0);
        accepted.insert(accepted.end(), data.begin() + off, data.begin() + off + n);
        off += n;
    }
    return accepted;
}

// Drives a FakeIo: writes `data` in pieces, retrying EINTR and refilling the budget on EAGAIN,
// then sends close_notify. Returns the bytes accepted; checks that a failed write took nothing.
Bytes pump_fake(SendSide& s, FakeIo& io, ByteView data, std::size_t piece) {
    Bytes accepted;
    std::size_t off = 0;
    while (off < data.size()) {
        const bool tail_before = s.has_tail();
        const auto r = s.write(io, data.subspan(off, std::min(piece, data.size() - off)), 0, 0);
        if (r.value < 0) {
            REQUIRE((r.err == EAGAIN || r.err == EINTR));
            if (r.err == EAGAIN) {
                // EAGAIN only while a tail is pending and the kernel takes no more.
                CHECK(tail_before);
                CHECK(s.has_tail());
                CHECK(io.budget == 0);
                io.budget = unlimited;
                REQUIRE(s.flush(io).value == 0);
            }
            continue;
        }
        const auto n = static_cast<std::size_t>(r.value);
        REQUIRE(n > 0);
        accepted.insert(accepted.end(), data.begin() + off, data.begin() + off + n);
        off += n;
    }
    io.budget = unlimited;
    io.inject.clear();
    REQUIRE(s.close_notify(io).value == 0);
    return accepted;
}

// The peer got exactly `accepted` and then close_notify, with nothing after it.
void check_delivered(Peer& peer, ByteView wire, const Bytes& accepted) {
    peer.feed(wire);
    CHECK_FALSE(peer.fatal);
    CHECK(peer.closed);
    CHECK(peer.leftover() == 0);
    CHECK(peer.plaintext == accepted);
}

bool is_prefix(const Bytes& a, const Bytes& b) {
    return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

TEST_SUITE("session.send") {
    TEST_CASE("every size arrives whole over TCP loopback (blocking writes)") {
        const std::size_t sizes[] = {1, max_plaintext, max_plaintext + 1, 1u << 20, 64u << 20};
        std::size_t round = 0;
        for (const std::size_t size : sizes) {
            CAPTURE(size);
            auto pair = tcp_pair();
            SystemIo io;
            auto link = make_link(pair.writer.get(), suite(all_suites[round++ % 3]));
            ReaderThread reader(pair.reader.get(), link.peer);
            reader.start();
            const Bytes data = pattern(size, static_cast<std::uint8_t>(size));
            // Large inputs are written in a loop of 1 MiB writes; each may return short.
            const std::size_t piece = std::min<std::size_t>(size, 1u << 20);
            std::size_t off = 0;
            while (off < size) {
                const auto r = link.send.write(
                    io, ByteView(data).subspan(off, std::min(piece, size - off)), 0, 0);
                REQUIRE(r.value > 0);
                off += static_cast<std::size_t>(r.value);
            }
            finish(link.send, io, pair.writer.get());
            CHECK(reader.join() == 0);
            CHECK_FALSE(link.peer.fatal);
            CHECK(link.peer.closed);
            CHECK(link.peer.leftover() == 0);
            CHECK(link.peer.plaintext.size() == size);
            CHECK(link.peer.plaintext == data);
            CHECK(link.peer.opener().sequence() == link.send.sealer().sequence());
        }
    }

    TEST_CASE("a stalled reader: EAGAIN exactly when the kernel is full, flush() sends the tail") {
        auto pair = tcp_pair();
        SystemIo io;
        auto link = make_link(pair.writer.get(), suite(0x1303));
        const Bytes data = pattern(48u << 20, 7);
        Bytes accepted;
        std::size_t off = 0;
        // 10,000-byte writes do not line up with records, so the kernel cuts records.
        while (true) {
            const auto r = link.send.write(io, ByteView(data).subspan(off, 10000),
                                           MSG_DONTWAIT | MSG_NOSIGNAL, 0);
            if (r.value < 0) {
                REQUIRE(r.err == EAGAIN);
                break;
            }
            REQUIRE(r.value > 0);
            accepted.insert(accepted.end(), data.begin() + static_cast<long>(off),
                            data.begin() + static_cast<long>(off) + r.value);
            off += static_cast<std::size_t>(r.value);
            REQUIRE(off + 10000 < data.size());
        }
        // EAGAIN came from the kernel refusing the tail; it stays refused while nobody reads,
        // even for one byte, and nothing of the refused writes was accepted.
        CHECK(link.send.has_tail());
        CHECK(link.send.write(io, ByteView(data).subspan(off, 1), MSG_DONTWAIT, 0).err == EAGAIN);
        const auto f = link.send.flush(io);
        CHECK(f.value == 1);
        CHECK(link.send.has_tail());

        ReaderThread reader(pair.reader.get(), link.peer);
        reader.start();
        // The tail goes out by flush() alone, without another write.
        auto r = link.send.flush(io);
        while (r.value == 1) {
            wait_writable(pair.writer.get());
            r = link.send.flush(io);
        }
        REQUIRE(r.value == 0);
        CHECK_FALSE(link.send.has_tail());
        // And the stream goes on, with EAGAIN whenever the reader falls behind.
        const Bytes more =
            pump_nonblocking(link.send, io, pair.writer.get(), ByteView(data).subspan(off), 10000);
        accepted.insert(accepted.end(), more.begin(), more.end());
        finish(link.send, io, pair.writer.get());
        CHECK(reader.join() == 0);
        CHECK_FALSE(link.peer.fatal);
        CHECK(link.peer.closed);
        CHECK(accepted.size() == data.size());
        CHECK(link.peer.plaintext == accepted);
    }

    TEST_CASE("one byte per send: every call still makes whole records") {
        FakeIo io;
        io.per_call = 1;
        auto link = make_link(-1);
        const Bytes data = pattern(3 * max_plaintext + 5);
        const auto r = link.send.write(io, data, 0, 0);
        REQUIRE(r.value == static_cast<ssize_t>(data.size()));
        CHECK_FALSE(link.send.has_tail());
        CHECK(io.wire.size() == sealed_size(data.size()));
        CHECK(io.calls == io.wire.size());
        REQUIRE(link.send.close_notify(io).value == 0);
        check_delivered(link.peer, io.wire, data);
    }

    TEST_CASE("EAGAIN at every position of a record never loses or duplicates a byte") {
        const std::size_t record = 300 + record_overhead;
        for (std::size_t budget = 0; budget <= 3 * record + 1; ++budget) {
            CAPTURE(budget);
            FakeIo io;
            io.budget = budget;
            auto link = make_link(-1);
            const Bytes data = pattern(1200, static_cast<std::uint8_t>(budget));
            // The first write is always accepted: it seals and owns what the kernel refused.
            const auto first = link.send.write(io, ByteView(data).first(300), 0, 0);
            REQUIRE(first.value == 300);
            CHECK(link.send.has_tail() == (budget < record));
            Bytes accepted(data.begin(), data.begin() + 300);
            const Bytes rest = pump_fake(link.send, io, ByteView(data).subspan(300), 300);
            accepted.insert(accepted.end(), rest.begin(), rest.end());
            CHECK(accepted == data);
            check_delivered(link.peer, io.wire, accepted);
        }
    }

    TEST_CASE("EINTR at any send: nothing is accepted twice or lost") {
        for (std::size_t at = 0; at < 40; ++at) {
            CAPTURE(at);
            FakeIo io;
            io.per_call = 1000;
            io.inject[at] = EINTR;
            auto link = make_link(-1);
            const Bytes data = pattern(2 * SendSide::kChunk + 777, static_cast<std::uint8_t>(at));
            const Bytes accepted = pump_fake(link.send, io, data, 20000);
            CHECK(accepted == data);
            check_delivered(link.peer, io.wire, accepted);
        }
    }

    TEST_CASE("EPIPE at every position: the peer gets a prefix of what was accepted") {
        const std::size_t record = 300 + record_overhead;
        for (std::size_t dead_at = 0; dead_at <= 3 * record + 1; ++dead_at) {
            CAPTURE(dead_at);
            FakeIo io;
            io.dead_at = dead_at;
            auto link = make_link(-1);
            const Bytes data = pattern(3000, static_cast<std::uint8_t>(dead_at));
            Bytes accepted;
            std::size_t off = 0;
            sys::Ret<ssize_t> r{0, 0};
            while (off < data.size()) {
                r = link.send.write(io, ByteView(data).subspan(off, 300), 0, 0);
                if (r.value < 0) break;
                accepted.insert(accepted.end(), data.begin() + static_cast<long>(off),
                                data.begin() + static_cast<long>(off) + r.value);
                off += static_cast<std::size_t>(r.value);
            }
            REQUIRE(r.value == -1);
            CHECK(r.err == EPIPE);
            // Later calls keep failing with the kernel's errno.
            CHECK(link.send.write(io, ByteView(data).first(1), 0, 0).err == EPIPE);
            CHECK(link.send.flush(io).err == EPIPE);
            CHECK(link.send.close_notify(io).err == EPIPE);
            link.peer.feed(io.wire);
            CHECK_FALSE(link.peer.fatal);
            CHECK(is_prefix(link.peer.plaintext, accepted));
            // The connection died between records: then not one accepted byte is missing.
            if (dead_at % record == 0) CHECK(link.peer.plaintext == accepted);
            CHECK(accepted.size() <= (dead_at / record + 1) * 300);
        }
    }

    TEST_CASE("EPIPE in the middle of a chunk after the tail went: the chunk counts as accepted") {
        FakeIo io;
        io.dead_at = 100000;  // inside the second 64 KiB chunk
        auto link = make_link(-1);
        const Bytes data = pattern(3 * SendSide::kChunk);
        const auto r = link.send.write(io, data, 0, 0);
        // Two chunks sealed: the first whole on the wire, the second cut: both accepted.
        REQUIRE(r.value == static_cast<ssize_t>(2 * SendSide::kChunk));
        CHECK(link.send.has_tail());
        CHECK(link.send.write(io, ByteView(data).subspan(2 * SendSide::kChunk), 0, 0).err == EPIPE);
        link.peer.feed(io.wire);
        CHECK(is_prefix(link.peer.plaintext,
                        Bytes(data.begin(), data.begin() + 2 * SendSide::kChunk)));
    }

    TEST_CASE("flags: the program's pass through, MSG_NOSIGNAL is never added, MSG_OOB refused") {
        FakeIo io;
        auto link = make_link(-1);
        const Bytes data = pattern(10);
        REQUIRE(link.send.write(io, data, 0, 0).value == 10);
        REQUIRE(link.send.write(io, data, MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE | MSG_CONFIRM, 0)
                    .value == 10);
        CHECK(link.send.write(io, data, MSG_OOB, 0).err == EOPNOTSUPP);
        REQUIRE(io.flags_seen.size() == 2);
        CHECK(io.flags_seen[0] == 0);
        CHECK(io.flags_seen[1] == (MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE));
        // The flusher and close_notify never block and never raise SIGPIPE.
        io.per_call = 5;
        REQUIRE(link.send.close_notify(io).value == 0);
        for (std::size_t i = 2; i < io.flags_seen.size(); ++i)
            CHECK(io.flags_seen[i] == (MSG_DONTWAIT | MSG_NOSIGNAL));
        Bytes twice = data;
        twice.insert(twice.end(), data.begin(), data.end());
        check_delivered(link.peer, io.wire, twice);
    }

    TEST_CASE("a zero-length write returns 0 and sends nothing, tail or not") {
        FakeIo io;
        io.budget = 7;
        auto link = make_link(-1);
        REQUIRE(link.send.write(io, pattern(100), 0, 0).value == 100);
        REQUIRE(link.send.has_tail());
        const std::size_t calls = io.calls;
        const auto r = link.send.write(io, ByteView(), 0, 0);
        CHECK(r.value == 0);
        CHECK(io.calls == calls);
        CHECK(io.wire.size() == 7);
    }

    TEST_CASE("EINTR or EAGAIN before anything of the tail left: -1 and nothing accepted") {
        FakeIo io;
        io.budget = 10;
        auto link = make_link(-1);
        const Bytes data = pattern(200);
        REQUIRE(link.send.write(io, ByteView(data).first(100), 0, 0).value == 100);
        io.inject[io.calls] = EINTR;
        auto r = link.send.write(io, ByteView(data).subspan(100), 0, 0);
        CHECK(r.value == -1);
        CHECK(r.err == EINTR);
        r = link.send.write(io, ByteView(data).subspan(100), 0, 0);
        CHECK(r.value == -1);
        CHECK(r.err == EAGAIN);
        io.budget = unlimited;
        r = link.send.write(io, ByteView(data).subspan(100), 0, 0);
        CHECK(r.value == 100);
        REQUIRE(link.send.close_notify(io).value == 0);
        check_delivered(link.peer, io.wire, data);
    }

    TEST_CASE("a KeyUpdate owed to the peer goes after the tail and before the next data") {
        FakeIo io;
        io.budget = 50;  // the first record stays partly in the tail
        auto link = make_link(-1);
        const Bytes data = pattern(600);
        REQUIRE(link.send.write(io, ByteView(data).first(300), 0, 0).value == 300);
        REQUIRE(link.send.has_tail());
        link.send.answer_key_update();
        io.budget = unlimited;
        REQUIRE(link.send.write(io, ByteView(data).subspan(300), 0, 0).value == 300);
        REQUIRE(link.send.close_notify(io).value == 0);
        check_delivered(link.peer, io.wire, data);
        REQUIRE(link.peer.events.size() == 4);
        CHECK(link.peer.events[0].status == OpenStatus::data);
        CHECK(link.peer.events[0].generation == 0);
        CHECK(link.peer.events[1].status == OpenStatus::discarded);  // the KeyUpdate
        CHECK(link.peer.events[1].generation == 1);
        CHECK(link.peer.events[2].status == OpenStatus::data);
        CHECK(link.peer.events[2].generation == 1);
        CHECK(link.peer.events[3].status == OpenStatus::close_notify);
        CHECK_FALSE(link.peer.opener().take_update_request());  // the answer asks for nothing
    }

    TEST_CASE("a KeyUpdate answer reaches a real peer before the next data") {
        auto pair = tcp_pair();
        SystemIo io;
        auto link = make_link(pair.writer.get(), suite(0x1302));
        ReaderThread reader(pair.reader.get(), link.peer);
        reader.start();
        REQUIRE(link.send.write(io, as_bytes("hello "), 0, 0).value == 6);
        link.send.answer_key_update();
        REQUIRE(link.send.write(io, as_bytes("world"), 0, 0).value == 5);
        finish(link.send, io, pair.writer.get());
        CHECK(reader.join() == 0);
        const Bytes want(as_bytes("hello world").begin(), as_bytes("hello world").end());
        CHECK(link.peer.plaintext == want);
        REQUIRE(link.peer.events.size() == 4);
        CHECK(link.peer.events[1].status == OpenStatus::discarded);
        CHECK(link.peer.events[2].generation == 1);
    }

    TEST_CASE("rotation by a tiny policy happens inside write()") {
        for (const RotationPolicy policy : {RotationPolicy{3, 0, 0}, RotationPolicy{0, 1000, 0}}) {
            auto pair = tcp_pair();
            SystemIo io;
            auto link = make_link(pair.writer.get(), suite(0x1301), policy);
            ReaderThread reader(pair.reader.get(), link.peer);
            reader.start();
            const Bytes data = pattern(1u << 20, 3);
            const Bytes accepted = pump_nonblocking(link.send, io, pair.writer.get(), data, 100000);
            finish(link.send, io, pair.writer.get());
            CHECK(reader.join() == 0);
            CHECK_FALSE(link.peer.fatal);
            CHECK(link.peer.plaintext == data);
            CHECK(link.send.sealer().generation() > 10);
            CHECK(link.peer.opener().generation() == link.send.sealer().generation());
        }
    }

    TEST_CASE("rotation by time: a write after max_seconds starts with a KeyUpdate") {
        FakeIo io;
        auto link = make_link(-1, suite(), RotationPolicy{0, 0, 60});
        const Bytes data = pattern(20);
        REQUIRE(link.send.write(io, ByteView(data).first(10), 0, 59).value == 10);
        REQUIRE(link.send.write(io, ByteView(data).subspan(10), 0, 60).value == 10);
        REQUIRE(link.send.close_notify(io).value == 0);
        check_delivered(link.peer, io.wire, data);
        CHECK(link.peer.opener().generation() == 1);
    }

    TEST_CASE("close_notify after a pending tail arrives after the tail") {
        auto pair = tcp_pair();
        SystemIo io;
        auto link = make_link(pair.writer.get());
        const Bytes data = pattern(32u << 20, 9);
        Bytes accepted;
        std::size_t off = 0;
        while (true) {
            const auto r = link.send.write(io, ByteView(data).subspan(off, 12345),
                                           MSG_DONTWAIT | MSG_NOSIGNAL, 0);
            if (r.value < 0) break;
            accepted.insert(accepted.end(), data.begin() + static_cast<long>(off),
                            data.begin() + static_cast<long>(off) + r.value);
            off += static_cast<std::size_t>(r.value);
            REQUIRE(off + 12345 < data.size());
        }
        REQUIRE(link.send.has_tail());
        CHECK(link.send.close_notify(io).value == 1);  // the tail (and the alert) still pending
        CHECK(link.send.closed());
        // After close_notify nothing more is accepted; the real FIN has not gone yet, so the
        // kernel still takes a zero-length send and the send side answers EPIPE itself.
        const auto w = link.send.write(io, ByteView(data).first(1), MSG_DONTWAIT | MSG_NOSIGNAL, 0);
        CHECK(w.value == -1);
        CHECK(w.err == EPIPE);
        ReaderThread reader(pair.reader.get(), link.peer);
        reader.start();
        finish(link.send, io, pair.writer.get());
        CHECK(reader.join() == 0);
        CHECK_FALSE(link.peer.fatal);
        CHECK(link.peer.closed);
        CHECK(link.peer.leftover() == 0);
        CHECK(link.peer.plaintext == accepted);
        REQUIRE_FALSE(link.peer.events.empty());
        CHECK(link.peer.events.back().status == OpenStatus::close_notify);
    }

    TEST_CASE("a fatal alert goes after the tail, then writes fail with EPIPE") {
        FakeIo io;
        io.budget = 3;
        auto link = make_link(-1);
        const Bytes data = pattern(50);
        REQUIRE(link.send.write(io, data, 0, 0).value == 50);
        io.budget = unlimited;
        link.send.send_alert(io, Alert::bad_record_mac);
        CHECK_FALSE(link.send.has_tail());
        CHECK(link.send.write(io, data, 0, 0).err == EPIPE);
        link.peer.feed(io.wire);
        CHECK(link.peer.plaintext == data);
        CHECK(link.peer.fatal);                              // the peer opened our alert
        CHECK(link.peer.leftover() == 2 + record_overhead);  // the alert record, unconsumed
    }

    TEST_CASE("a failed sealer fails closed with EIO and sends nothing") {
        const auto max = std::numeric_limits<std::uint64_t>::max();
        auto ch = make_channel(suite(0x1303), {}, max);
        SendSide send(-1, std::move(ch.sealer));
        FakeIo io;
        const auto r = send.write(io, pattern(5), 0, 0);
        CHECK(r.value == -1);
        CHECK(r.err == EIO);
        CHECK(io.wire.empty());
        CHECK(send.write(io, pattern(5), 0, 0).err == EIO);
        CHECK(send.close_notify(io).err == EIO);
    }

    TEST_CASE("a reset peer: EPIPE and SIGPIPE come from the kernel, per the program's flags") {
        for (const bool nosignal : {false, true}) {
            CAPTURE(nosignal);
            auto pair = tcp_pair();
            SystemIo io;
            auto link = make_link(pair.writer.get());
            pair.reader.reset();  // the peer closes; our next data draws a reset
            sigset_t pipe_set;
            sigset_t old;
            sigemptyset(&pipe_set);
            sigaddset(&pipe_set, SIGPIPE);
            REQUIRE(::pthread_sigmask(SIG_BLOCK, &pipe_set, &old) == 0);
            const int flags = nosignal ? MSG_NOSIGNAL : 0;
            const Bytes data = pattern(1000);
            sys::Ret<ssize_t> r{0, 0};
            for (int i = 0; i < 1000 && r.value >= 0; ++i) {
                r = link.send.write(io, data, flags, 0);
                if (r.value >= 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            CHECK(r.value == -1);
            CHECK((r.err == EPIPE || r.err == ECONNRESET));
            // Later writes ask the kernel again: EPIPE, with SIGPIPE unless MSG_NOSIGNAL.
            CHECK(link.send.write(io, data, flags, 0).err == EPIPE);
            sigset_t pending;
            sigemptyset(&pending);
            REQUIRE(::sigpending(&pending) == 0);
            CHECK(sigismember(&pending, SIGPIPE) == (nosignal ? 0 : 1));
            const timespec zero{0, 0};
            while (::sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
            }
            REQUIRE(::pthread_sigmask(SIG_SETMASK, &old, nullptr) == 0);
        }
    }
}
