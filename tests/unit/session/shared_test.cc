// The session halves as views over SendState and ReceiveState (DESIGN I5): views over one state,
// in one process, in a forked parent and child, or over a copy at another address (a new program
// image after exec), behave as one SendSide or ReceiveSide. Each view has its own fd (dup'd: the
// socket's number differs per process) and its own cipher context; the peer checks every record
// (a reused nonce would fail authentication) and every byte.
#include <doctest/doctest.h>
#include <poll.h>
#include <sealsock/unique_fd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "record/open.h"
#include "record/seal.h"
#include "session/io.h"
#include "session/receive.h"
#include "session/send.h"
#include "support/channel.h"
#include "support/forge.h"
#include "support/sockets.h"

using namespace sealsock;
using namespace sealsock::record;
using sealsock::test::Bytes;
using sealsock::test::send_all;
using sealsock::test::SystemIo;
using sealsock::test::tcp_pair;
using sealsock::test::test_secret;
using sealsock::test::wait_queued;

namespace {

const SuiteParams& aes128() {
    return *find_suite(std::uint16_t{0x1301});
}

Bytes pattern(std::size_t n, std::uint32_t seed) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = static_cast<std::uint8_t>(i * 29 + seed * 101 + (i >> 10));
    return b;
}

// The part written in turn `turn`: sizes from one byte to several records.
Bytes part_for(std::size_t turn) {
    static const std::size_t sizes[] = {1, 700, 16384, 16385, 40000, 3};
    return pattern(sizes[turn % std::size(sizes)], static_cast<std::uint32_t>(turn));
}

// A state of `State` in fresh MAP_SHARED anonymous memory: pages zero, committed on first touch.
// Nothing constructs it: the state types are implicit-lifetime aggregates, and init() fills them.
template <typename State>
class SharedMapping {
  public:
    SharedMapping() {
        void* p = ::mmap(nullptr, sizeof(State), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                         -1, 0);
        REQUIRE(p != MAP_FAILED);
        state_ = static_cast<State*>(p);
    }
    ~SharedMapping() { ::munmap(state_, sizeof(State)); }
    SharedMapping(const SharedMapping&) = delete;
    SharedMapping& operator=(const SharedMapping&) = delete;
    State& operator*() const { return *state_; }

  private:
    State* state_;
};

// A copy of `state` in memory of its own, as a new program image maps it after exec: bytes only.
template <typename State>
std::unique_ptr<State> copied(const State& state) {
    std::unique_ptr<State> copy(new State);
    std::memcpy(static_cast<void*>(copy.get()), &state, sizeof state);
    return copy;
}

// Writes all of `data` through `side` (blocking socket), returning false on any error.
bool write_all(SendSide& side, Io& io, ByteView data) {
    while (!data.empty()) {
        const auto r = side.write(io, data, MSG_NOSIGNAL, 0);
        if (r.value <= 0) return false;
        data = data.subspan(static_cast<std::size_t>(r.value));
    }
    return true;
}

// Reads `total` plaintext bytes from `fd` with a ReceiveSide of its own on a thread, polling on
// EAGAIN, so writers may block; check bytes() after join().
class PeerReader {
  public:
    PeerReader(int fd, ByteView secret, std::size_t total)
        : rs_(fd, RecordOpener::create(aes128(), secret, 0).value()), fd_(fd), total_(total) {}
    ~PeerReader() { join(); }
    void start() {
        thread_ = std::thread([this] {
            Bytes buf(10000);
            while (got_.size() < total_) {
                const auto r = rs_.read(io_, buf, 0);
                if (r.value > 0) {
                    got_.insert(got_.end(), buf.begin(), buf.begin() + r.value);
                    continue;
                }
                pollfd p{fd_, POLLIN, 0};
                if (r.value == 0 || r.err != EAGAIN || ::poll(&p, 1, 10000) != 1) return;
            }
        });
    }
    void join() {
        if (thread_.joinable()) thread_.join();
    }
    [[nodiscard]] const Bytes& bytes() const { return got_; }
    [[nodiscard]] const ReceiveSide& side() const { return rs_; }

  private:
    SystemIo io_;
    ReceiveSide rs_;
    int fd_;
    std::size_t total_;
    Bytes got_;
    std::thread thread_;
};

// An Io that takes at most `budget` bytes, then answers EAGAIN; what it takes goes to `wire`.
class BudgetIo final : public Io {
  public:
    sys::Ret<ssize_t> send(int, const void* buf, std::size_t len, int) override {
        const std::size_t n = std::min(len, budget);
        if (len > 0 && n == 0) return sys::fail<ssize_t>(EAGAIN);
        budget -= n;
        const auto* p = static_cast<const std::uint8_t*>(buf);
        wire.insert(wire.end(), p, p + n);
        return {static_cast<ssize_t>(n), 0};
    }
    sys::Ret<ssize_t> recv(int, void*, std::size_t, int) override {
        return sys::fail<ssize_t>(ENOTSUP);
    }
    sys::Ret<int> set_rcvlowat(int, int) override { return sys::fail<int>(ENOTSUP); }
    sys::Ret<int> queued(int) override { return sys::fail<int>(ENOTSUP); }

    Bytes wire;
    std::size_t budget = std::numeric_limits<std::size_t>::max();
};

// Seals `data` with `sealer` into records ready to send.
Bytes records(RecordSealer& sealer, ByteView data) {
    return test::seal_all(sealer, data);
}

// A parent and a forked child taking turns through two pipes.
class Turns {
  public:
    Turns() {
        REQUIRE(::pipe(to_child_) == 0);
        REQUIRE(::pipe(to_parent_) == 0);
    }
    ~Turns() {
        for (int fd : {to_child_[0], to_child_[1], to_parent_[0], to_parent_[1]})
            ::close(fd);
    }
    Turns(const Turns&) = delete;
    Turns& operator=(const Turns&) = delete;

    // In the parent: lets the child take one turn and waits until it has.
    bool child_turn() {
        char token = 0;
        return ::write(to_child_[1], &token, 1) == 1 && ::read(to_parent_[0], &token, 1) == 1;
    }
    // In the child: waits for its turn; hands it back.
    bool await_turn() {
        char token = 0;
        return ::read(to_child_[0], &token, 1) == 1;
    }
    bool end_turn() {
        const char token = 0;
        return ::write(to_parent_[1], &token, 1) == 1;
    }
    // In the parent: the child's _exit code, or -1 if it did not exit normally.
    static int exit_code(pid_t pid) {
        int status = 0;
        if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
        return WEXITSTATUS(status);
    }

  private:
    int to_child_[2] = {-1, -1};
    int to_parent_[2] = {-1, -1};
};

}  // namespace

TEST_SUITE("session.shared") {
    TEST_CASE("two send views alternate writes; the peer opens every byte in order") {
        for (const RotationPolicy policy : {RotationPolicy{}, RotationPolicy{3, 0, 0}}) {
            CAPTURE(policy.max_records);
            auto pair = tcp_pair();
            const UniqueFd other_fd(::dup(pair.writer.get()));
            const Bytes secret = test_secret(aes128().hash_size, 1);
            std::unique_ptr<SendState> state(new SendState);
            REQUIRE(SendSide::init(*state, aes128(), secret, 0, policy, 0).ok());
            SendSide a(pair.writer.get(), *state);
            SendSide b(other_fd.get(), *state);
            SystemIo io;

            Bytes data;
            for (std::size_t turn = 0; turn < 24; ++turn) {
                const Bytes part = part_for(turn);
                data.insert(data.end(), part.begin(), part.end());
            }
            PeerReader reader(pair.reader.get(), secret, data.size());
            reader.start();
            std::size_t off = 0;
            for (std::size_t turn = 0; turn < 24; ++turn) {
                const std::size_t n = part_for(turn).size();
                REQUIRE(write_all(turn % 2 == 0 ? a : b, io, ByteView(data).subspan(off, n)));
                off += n;
                CHECK(a.sealer().sequence() == b.sealer().sequence());
            }
            reader.join();
            CHECK(reader.bytes() == data);
            CHECK(reader.side().last_failure() == nullptr);
            CHECK(a.idle());
            if (policy.max_records != 0) CHECK(b.sealer().generation() > 10);
        }
    }

    TEST_CASE("a tail left by one send view goes out first through the other") {
        const Bytes secret = test_secret(aes128().hash_size, 2);
        std::unique_ptr<SendState> state(new SendState);
        REQUIRE(SendSide::init(*state, aes128(), secret, 0, RotationPolicy{2, 0, 0}, 0).ok());
        SendSide a(3, *state);
        SendSide b(4, *state);
        BudgetIo io;
        io.budget = 1000;
        const Bytes first = pattern(5000, 1);
        const auto r = a.write(io, first, 0, 0);
        REQUIRE(r.value == 5000);  // sealed: part in the "kernel", the rest the tail
        CHECK(b.has_tail());
        CHECK_FALSE(b.idle());
        CHECK(b.write(io, pattern(10, 2), 0, 0).err == EAGAIN);  // the tail first
        io.budget = std::numeric_limits<std::size_t>::max();
        const Bytes second = pattern(3000, 3);
        CHECK(b.write(io, second, 0, 0).value == 3000);
        CHECK(a.idle());
        REQUIRE(a.close_notify(io).value == 0);

        auto opener = RecordOpener::create(aes128(), secret, 0).value();
        const auto d = test::open_all(opener, io.wire);
        CHECK(d.last.status == OpenStatus::close_notify);
        Bytes expected = first;
        expected.insert(expected.end(), second.begin(), second.end());
        CHECK(d.data == expected);
        CHECK(b.closed());
    }

    TEST_CASE("two receive views alternate: a split record, a peek, a cached record, a KeyUpdate") {
        auto pair = tcp_pair();
        const UniqueFd other_fd(::dup(pair.reader.get()));
        const Bytes secret = test_secret(aes128().hash_size, 3);
        auto sealer = RecordSealer::create(aes128(), secret, 0, {}, 0).value();
        std::unique_ptr<ReceiveState> state(new ReceiveState);
        REQUIRE(ReceiveSide::init(*state, aes128(), secret, 0).ok());
        ReceiveSide a(pair.reader.get(), *state);
        ReceiveSide b(other_fd.get(), *state);
        SystemIo io;
        Bytes buf(20000);
        const int wfd = pair.writer.get();

        // A record split across the switch: its prefix taken by one view, finished by the other.
        const Bytes d1 = pattern(1000, 1);
        const Bytes w1 = records(sealer, d1);
        send_all(wfd, ByteView(w1).first(300));
        wait_queued(pair.reader.get(), 300);
        CHECK(a.read(io, buf, 0).err == EAGAIN);
        CHECK(b.held() == 300);
        CHECK(b.rcvlowat() == static_cast<int>(w1.size()) - 300);
        send_all(wfd, ByteView(w1).subspan(300));
        wait_queued(pair.reader.get(), static_cast<int>(w1.size()) - 300);
        REQUIRE(b.read(io, buf, 0).value == 1000);
        CHECK(Bytes(buf.begin(), buf.begin() + 1000) == d1);
        CHECK(a.idle());

        // A peek through one view; the read through the other returns the same bytes.
        const Bytes d2 = pattern(500, 2);
        const Bytes w2 = records(sealer, d2);
        send_all(wfd, w2);
        wait_queued(pair.reader.get(), static_cast<int>(w2.size()));
        REQUIRE(a.read(io, MutableByteView(buf).first(100), MSG_PEEK).value == 100);
        CHECK(Bytes(buf.begin(), buf.begin() + 100) == Bytes(d2.begin(), d2.begin() + 100));
        CHECK(b.buffered() == 500);
        REQUIRE(b.read(io, buf, 0).value == 500);
        CHECK(Bytes(buf.begin(), buf.begin() + 500) == d2);

        // A record larger than the buffers, served from the cache in parts by both views.
        const Bytes d3 = pattern(max_plaintext, 3);
        const Bytes w3 = records(sealer, d3);
        send_all(wfd, w3);
        wait_queued(pair.reader.get(), static_cast<int>(w3.size()));
        Bytes got;
        for (int turn = 0; got.size() < d3.size(); ++turn) {
            ReceiveSide& side = turn % 2 == 0 ? a : b;
            const auto r = side.read(io, MutableByteView(buf).first(3000), 0);
            REQUIRE(r.value > 0);
            got.insert(got.end(), buf.begin(), buf.begin() + r.value);
            if (got.size() < d3.size()) CHECK(a.rcvlowat() == 1);  // last byte still queued
        }
        CHECK(got == d3);
        CHECK(b.idle());
        CHECK(test::queued(pair.reader.get()) == 0);

        // A KeyUpdate opened by one view; the next record, under the new key, by the other.
        sealer.schedule_key_update(true);
        const Bytes w4 = records(sealer, pattern(10, 4));
        send_all(wfd, w4);
        wait_queued(pair.reader.get(), static_cast<int>(w4.size()));
        REQUIRE(a.read(io, buf, 0).value == 10);
        CHECK(b.take_update_request());
        const Bytes w5 = records(sealer, pattern(20, 5));
        send_all(wfd, w5);
        wait_queued(pair.reader.get(), static_cast<int>(w5.size()));
        REQUIRE(b.read(io, buf, 0).value == 20);
        CHECK(Bytes(buf.begin(), buf.begin() + 20) == pattern(20, 5));
        CHECK(a.last_failure() == nullptr);
    }

    TEST_CASE("a failure seen through one receive view is reported by the other with its reason") {
        auto pair = tcp_pair();
        const Bytes secret = test_secret(aes128().hash_size, 4);
        auto sealer = RecordSealer::create(aes128(), secret, 0, {}, 0).value();
        std::unique_ptr<ReceiveState> state(new ReceiveState);
        REQUIRE(ReceiveSide::init(*state, aes128(), secret, 0).ok());
        ReceiveSide a(pair.reader.get(), *state);
        ReceiveSide b(pair.reader.get(), *state);
        SystemIo io;
        Bytes wire = records(sealer, pattern(100, 1));
        wire.back() ^= 0x40;
        send_all(pair.writer.get(), wire);
        wait_queued(pair.reader.get(), static_cast<int>(wire.size()));
        Bytes buf(1000);
        CHECK(a.read(io, buf, 0).err == ECONNRESET);
        CHECK(b.read(io, buf, 0).err == ECONNRESET);
        const ReceiveFailure* f = b.last_failure();
        REQUIRE(f != nullptr);
        CHECK(f->code == Reason::bad_record_mac);
        CHECK(std::string(f->reason) == reason_text(Reason::bad_record_mac));
        CHECK(b.take_alert() == Alert::bad_record_mac);
        CHECK(a.take_alert() == Alert::none);  // owed once, whichever view takes it
    }

    TEST_CASE("a send state in MAP_SHARED memory: parent and child seal in turn after fork") {
        auto pair = tcp_pair();
        const Bytes secret = test_secret(aes128().hash_size, 5);
        SharedMapping<SendState> state;
        // A KeyUpdate every 3 records, so both processes cross generations.
        REQUIRE(SendSide::init(*state, aes128(), secret, 0, RotationPolicy{3, 0, 0}, 0).ok());
        constexpr std::size_t kTurns = 30;
        Turns turns;
        // The parent seals once before the fork, so its view holds a cipher context that the
        // child's KeyUpdates make stale.
        SystemIo io;
        SendSide parent(pair.writer.get(), *state);
        REQUIRE(write_all(parent, io, part_for(0)));

        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            // The child: its own view, its own number for the socket. No doctest here: the exit
            // status tells the parent which turn failed.
            const int fd = ::dup(pair.writer.get());
            SendSide child(fd, *state);
            SystemIo child_io;
            for (std::size_t turn = 2; turn < kTurns; turn += 2) {
                if (!turns.await_turn()) ::_exit(100);
                if (!write_all(child, child_io, part_for(turn))) ::_exit(static_cast<int>(turn));
                if (!turns.end_turn()) ::_exit(101);
            }
            ::_exit(0);
        }
        // The parent reads on a thread started after the fork (the child inherits no thread).
        Bytes data;
        for (std::size_t turn = 0; turn < kTurns; ++turn) {
            const Bytes part = part_for(turn);
            data.insert(data.end(), part.begin(), part.end());
        }
        PeerReader reader(pair.reader.get(), secret, data.size());
        reader.start();
        for (std::size_t turn = 1; turn < kTurns; turn += 2) {
            REQUIRE(write_all(parent, io, part_for(turn)));
            if (turn + 1 < kTurns) REQUIRE(turns.child_turn());
        }
        CHECK(Turns::exit_code(pid) == 0);
        reader.join();
        CHECK(reader.side().last_failure() == nullptr);
        CHECK(reader.bytes() == data);
        CHECK(parent.sealer().generation() > 10);
    }

    TEST_CASE("a receive state in MAP_SHARED memory: parent and child read in turn after fork") {
        auto pair = tcp_pair();
        const Bytes secret = test_secret(aes128().hash_size, 6);
        auto sealer = RecordSealer::create(aes128(), secret, 0, RotationPolicy{2, 0, 0}, 0).value();
        SharedMapping<ReceiveState> state;
        REQUIRE(ReceiveSide::init(*state, aes128(), secret, 0).ok());
        constexpr std::size_t kTurns = 12;
        // Each turn: one record for the reader of the turn, the next record's first bytes too.
        Bytes wire;
        for (std::size_t turn = 0; turn < kTurns; ++turn) {
            const Bytes w = records(sealer, pattern(2000, static_cast<std::uint32_t>(turn)));
            wire.insert(wire.end(), w.begin(), w.end());
        }
        send_all(pair.writer.get(), wire);
        wait_queued(pair.reader.get(), static_cast<int>(wire.size()));
        Turns turns;
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ReceiveSide child(pair.reader.get(), *state);
            SystemIo child_io;
            Bytes buf(1500);  // smaller than a record: served in part from the shared cache
            for (std::size_t turn = 1; turn < kTurns; turn += 2) {
                if (!turns.await_turn()) ::_exit(100);
                const auto r = child.read(child_io, buf, 0);
                if (r.value <= 0) ::_exit(static_cast<int>(turn));
                const Bytes want = pattern(2000, static_cast<std::uint32_t>(turn / 2));
                if (!std::equal(buf.begin(), buf.begin() + r.value, want.begin() + 500))
                    ::_exit(102);
                if (!turns.end_turn()) ::_exit(101);
            }
            ::_exit(0);
        }
        // Each record is read in two turns: 500 bytes by the parent, the other 1500 by the child.
        ReceiveSide parent(pair.reader.get(), *state);
        SystemIo io;
        Bytes buf(500);
        for (std::size_t turn = 0; turn < kTurns; turn += 2) {
            const auto r = parent.read(io, buf, 0);
            REQUIRE(r.value == 500);
            const Bytes want = pattern(2000, static_cast<std::uint32_t>(turn / 2));
            CHECK(Bytes(buf.begin(), buf.end()) == Bytes(want.begin(), want.begin() + 500));
            REQUIRE(turns.child_turn());
        }
        CHECK(Turns::exit_code(pid) == 0);
        CHECK(parent.last_failure() == nullptr);
        CHECK(parent.idle());
    }

    TEST_CASE("states copied to another address continue through new views (exec)") {
        auto pair = tcp_pair();
        const Bytes secret = test_secret(aes128().hash_size, 7);
        std::unique_ptr<SendState> send(new SendState);
        REQUIRE(SendSide::init(*send, aes128(), secret, 0, RotationPolicy{2, 0, 0}, 0).ok());
        std::unique_ptr<ReceiveState> receive(new ReceiveState);
        REQUIRE(ReceiveSide::init(*receive, aes128(), secret, 0).ok());
        BudgetIo wire_io;
        SystemIo io;
        Bytes buf(20000);

        // Before "exec": a send tail pending, and a record half handed out from the cache (its
        // last byte still queued, the next record's first bytes behind it).
        SendSide old_send(3, *send);
        wire_io.budget = 700;
        const Bytes s1 = pattern(9000, 1);
        REQUIRE(old_send.write(wire_io, s1, 0, 0).value == 9000);
        REQUIRE(old_send.has_tail());
        ReceiveSide old_receive(pair.reader.get(), *receive);
        auto peer = RecordSealer::create(aes128(), secret, 0, {}, 0).value();
        const Bytes r1 = pattern(10000, 2);
        const Bytes r2 = pattern(100, 3);
        const Bytes w1 = records(peer, r1);
        const Bytes w2 = records(peer, r2);
        send_all(pair.writer.get(), w1);
        send_all(pair.writer.get(), ByteView(w2).first(50));
        wait_queued(pair.reader.get(), static_cast<int>(w1.size() + 50));
        REQUIRE(old_receive.read(io, MutableByteView(buf).first(4000), 0).value == 4000);
        CHECK(old_receive.buffered() == 6000);

        // "exec": the new image maps the same bytes at another address and makes new views with
        // other fd numbers; the old memory is wiped.
        const auto new_send_state = copied(*send);
        const auto new_receive_state = copied(*receive);
        SendSide::wipe(*send);
        ReceiveSide::wipe(*receive);
        const UniqueFd new_fd(::dup(pair.reader.get()));
        SendSide new_send(5, *new_send_state);
        ReceiveSide new_receive(new_fd.get(), *new_receive_state);

        wire_io.budget = std::numeric_limits<std::size_t>::max();
        const Bytes s2 = pattern(20000, 4);
        REQUIRE(new_send.write(wire_io, s2, 0, 0).value == 20000);
        auto opener = RecordOpener::create(aes128(), secret, 0).value();
        const auto d = test::open_all(opener, wire_io.wire);
        Bytes sent = s1;
        sent.insert(sent.end(), s2.begin(), s2.end());
        CHECK(d.data == sent);

        Bytes got(buf.begin(), buf.begin() + 4000);
        const auto r = new_receive.read(io, buf, 0);
        REQUIRE(r.value == 6000);
        got.insert(got.end(), buf.begin(), buf.begin() + r.value);
        CHECK(got == r1);
        send_all(pair.writer.get(), ByteView(w2).subspan(50));
        wait_queued(new_fd.get(), static_cast<int>(w2.size()) - 50);
        REQUIRE(new_receive.read(io, buf, 0).value == 100);
        CHECK(Bytes(buf.begin(), buf.begin() + 100) == r2);
        CHECK(new_receive.idle());
    }
}
