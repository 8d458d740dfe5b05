#include "session/session.h"

#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <mutex>
#include <unordered_set>

#include "record/suite.h"
#include "session/audit.h"
#include "session/background.h"
#include "session/log.h"
#include "session/open.h"
#include "session/registry.h"
#include "sys/confined.h"
#include "sys/real.h"

namespace sealsock {
namespace {

// What the background thread and the shutdown/close paths pass: never block, never SIGPIPE.
constexpr int kQuiet = MSG_DONTWAIT | MSG_NOSIGNAL;

class SeamIo final : public Io {
  public:
    sys::Ret<ssize_t> recv(int fd, void* buf, std::size_t len, int flags) override {
        return sys::recv(fd, buf, len, flags);
    }
    sys::Ret<ssize_t> send(int fd, const void* buf, std::size_t len, int flags) override {
        return sys::send(fd, buf, len, flags);
    }
    sys::Ret<int> set_rcvlowat(int fd, int value) override {
        return sys::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &value, sizeof value);
    }
    sys::Ret<int> queued(int fd) override {
        int n = 0;
        sys::Ret<int> r = sys::ioctl(fd, FIONREAD, &n);
        return r.value < 0 ? r : sys::Ret<int>{n, 0};
    }
};

// The same operations in a sandboxed process (sys/confined.h): read and write on the socket,
// poll with a zero timeout where the session asks not to wait. On a blocking socket a write may
// still wait for room; the program's own write would have.
class ConfinedIo final : public Io {
  public:
    sys::Ret<ssize_t> recv(int fd, void* buf, std::size_t len, int flags) override {
        if ((flags & (MSG_PEEK | MSG_OOB)) != 0) return sys::fail<ssize_t>(EOPNOTSUPP);
        if ((flags & MSG_DONTWAIT) != 0 && !ready(fd, POLLIN)) return sys::fail<ssize_t>(EAGAIN);
        if (buf != nullptr) return sys::read(fd, buf, len);
        // MSG_TRUNC with no buffer: bytes to discard.
        std::uint8_t scratch[512];
        return sys::read(fd, scratch, std::min(len, sizeof scratch));
    }
    sys::Ret<ssize_t> send(int fd, const void* buf, std::size_t len, int flags) override {
        if ((flags & MSG_DONTWAIT) != 0 && !ready(fd, POLLOUT)) return sys::fail<ssize_t>(EAGAIN);
        return sys::write(fd, buf, len);
    }
    sys::Ret<int> set_rcvlowat(int, int) override { return {0, 0}; }
    sys::Ret<int> queued(int fd) override { return {ready(fd, POLLIN) ? 1 : 0, 0}; }
    [[nodiscard]] bool can_peek() const override { return false; }

  private:
    static bool ready(int fd, short events) {
        pollfd p{fd, events, 0};
        sys::Ret<int> r{};
        do {
            r = sys::poll(&p, 1, 0);
        } while (r.value < 0 && r.err == EINTR);
        // An error or hangup is "ready": the read or write that follows reports it.
        return r.value != 0;
    }
};

// Copies `text` into a fixed slot field, cut to fit, NUL-terminated.
template <std::size_t N>
void copy_text(char (&out)[N], const std::string& text) {
    const std::size_t n = std::min(text.size(), N - 1);
    std::memcpy(out, text.data(), n);
    out[n] = '\0';
}

// Every live view, so each stays reachable from a global (the registry's tables are mmap'd, and
// a forked child's inherited views live until it exits: leak checkers would call them lost).
struct Views {
    std::mutex mu;
    std::unordered_set<const Session*> set;
};

Views& views() {
    static auto* v = new Views;
    return *v;
}

void track(const Session* s, bool live) {
    try {
        Views& v = views();
        std::lock_guard lock(v.mu);
        if (live)
            v.set.insert(s);
        else
            v.set.erase(s);
    } catch (...) {  // out of memory: only a leak checker's view is affected
    }
}

}  // namespace

Io& seam_io() {
    static SeamIo io;
    static ConfinedIo confined_io;
    if (confined::active()) [[unlikely]]
        return confined_io;
    return io;
}

std::uint64_t monotonic_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec);
}

Session::Session(SharedSession& slot, int anchor, SessionSetup setup, SessionState initial)
    : sh_(slot), anchor_(anchor), names_(1), setup_(std::move(setup)) {
    sh_.role = setup_.role;
    sh_.state.store(initial, std::memory_order_release);
    sh_.handshake_owner.store(getpid(), std::memory_order_release);
    copy_text(sh_.rule, setup_.rule);
    copy_text(sh_.peer, setup_.peer);
    copy_text(sh_.local, setup_.local);
    sh_.names.store(1, std::memory_order_release);
    if (initial == SessionState::connecting || initial == SessionState::handshaking) {
        in_handshake_count_.store(true, std::memory_order_release);
        registry::handshake_started();
    }
    track(this, true);
}

Session::Session(SharedSession& slot, int anchor) : sh_(slot), anchor_(anchor) {
    setup_.role = sh_.role;
    setup_.rule.assign(sh_.rule, strnlen(sh_.rule, sizeof sh_.rule));
    setup_.peer.assign(sh_.peer, strnlen(sh_.peer, sizeof sh_.peer));
    track(this, true);
}

Session::~Session() {
    handshake_settled();
    track(this, false);
    receive_.reset();
    send_.reset();
    shared::detach(sh_);
}

// This process's views of the two halves, made on first use (here, or after fork or exec, in the
// first call that needs them). rx() under recv_mu, tx() under send_mu, once sides_ready.
ReceiveSide& Session::rx() {
    if (!receive_) receive_ = std::make_unique<ReceiveSide>(anchor_, sh_.receive);
    return *receive_;
}

SendSide& Session::tx() {
    if (!send_) send_ = std::make_unique<SendSide>(anchor_, sh_.send);
    return *send_;
}

// --- names -------------------------------------------------------------------------------------

void Session::add_name() {
    names_.fetch_add(1, std::memory_order_acq_rel);
    sh_.names.fetch_add(1, std::memory_order_acq_rel);
}

void Session::before_fork() {
    sh_.names.fetch_add(names_.load(std::memory_order_acquire), std::memory_order_acq_rel);
}

void Session::fork_failed() {
    sh_.names.fetch_sub(names_.load(std::memory_order_acquire), std::memory_order_acq_rel);
}

void Session::forked_child() {
    sh_.attached.fetch_add(1, std::memory_order_acq_rel);
}

// --- transitions -------------------------------------------------------------------------------

void Session::connected() {
    std::lock_guard lock(sh_.state_mu);
    if (state() == SessionState::connecting)
        sh_.state.store(SessionState::handshaking, std::memory_order_release);
}

void Session::notify_settled() {
    handshake_settled();
    pthread_cond_broadcast(&sh_.settled);
}

void Session::handshake_settled() noexcept {
    if (in_handshake_count_.exchange(false, std::memory_order_acq_rel)) registry::handshake_ended();
}

bool Session::establish(agent::HandshakeReply& reply) {
    const record::SuiteParams* suite = record::find_suite(reply.suite);
    if (suite == nullptr) {
        fail(ECONNRESET, "the agent chose a cipher suite the shim does not know");
        return false;
    }
    bool ready = false;
    {
        // Also after close(): bytes held before it are sealed and sent, then close_notify.
        std::scoped_lock lock(sh_.recv_mu, sh_.send_mu);
        const Status rx_ok =
            ReceiveSide::init(sh_.receive, *suite, reply.read_secret.view(), reply.read_seq);
        const Status tx_ok = SendSide::init(sh_.send, *suite, reply.write_secret.view(),
                                            reply.write_seq, setup_.rotation, monotonic_seconds());
        ready = rx_ok.ok() && tx_ok.ok();
        if (!ready) {
            ReceiveSide::wipe(sh_.receive);
            SendSide::wipe(sh_.send);
        } else {
            sh_.sides_ready = true;
            std::lock_guard state_lock(sh_.state_mu);
            if (state() == SessionState::failed) return false;
            record_peer(reply);
            sh_.state.store(SessionState::established, std::memory_order_release);
        }
    }
    if (!ready) {
        fail(ECONNRESET, "the agent's traffic secrets could not be installed");
        return false;
    }
    audit_open(suite->name);  // before the program can go on (and exit)
    notify_settled();
    // DESIGN I2, catch 1: an edge-triggered program may have read during the handshake, got
    // EAGAIN and be waiting for an edge that already happened. Records queued now get a fresh
    // one: any SO_RCVLOWAT at or below the queued amount fires it.
    if (seam_io().queued(anchor_).value > 0) (void)seam_io().set_rcvlowat(anchor_, 1);
    return true;
}

void Session::fail(int err, const std::string& reason) {
    {
        std::lock_guard lock(sh_.state_mu);
        if (state() == SessionState::failed) return;
        sh_.error = err;
        sh_.state.store(SessionState::failed, std::memory_order_release);
    }
    log_failure(reason.c_str());
    {
        std::lock_guard lock(sh_.send_mu);
        shared::drop_held(sh_);
    }
    // Both directions shut: the peer gets a FIN after whatever alert the agent sent it (an RST
    // would let its kernel drop that alert unread), and every poller of the program wakes
    // (POLLIN|POLLHUP); the fd stays valid and reads and writes now report `err`.
    if (!anchor_closed()) (void)sys::shutdown(anchor_, SHUT_RDWR);
    notify_settled();
}

SessionState Session::wait_settled() {
    auto settled = [&] {
        const SessionState s = state();
        return closed() || (s != SessionState::connecting && s != SessionState::handshaking);
    };
    for (;;) {
        {
            std::unique_lock lock(sh_.state_mu);
            if (settled()) return state();
            timespec until{};
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&sh_.settled, sh_.state_mu.native(), &until);
            if (settled()) return state();
        }
        // The handshake runs in another process's background thread (this view came by fork or
        // exec): if that process is gone, nobody will ever settle it.
        const pid_t owner = sh_.handshake_owner.load(std::memory_order_acquire);
        if (confined::active()) continue;  // kill() may be outside the filter
        if (owner != getpid() && kill(owner, 0) != 0 && errno == ESRCH)
            fail(ECONNRESET, "the process that ran the handshake exited before it finished");
    }
}

sys::Ret<int> Session::peer(struct sealsock_peer_info& out, int timeout_ms) {
    const auto busy = [&] {
        const SessionState st = state();
        return st == SessionState::connecting || st == SessionState::handshaking;
    };
    if (timeout_ms < 0) {
        (void)wait_settled();
    } else if (timeout_ms > 0 && busy()) {
        timespec until{};
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += static_cast<long>(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec += 1;
            until.tv_nsec -= 1000000000L;
        }
        std::unique_lock lock(sh_.state_mu);
        while (busy() && !closed())
            if (pthread_cond_timedwait(&sh_.settled, sh_.state_mu.native(), &until) == ETIMEDOUT)
                break;
    }
    std::lock_guard lock(sh_.state_mu);
    switch (state()) {
        case SessionState::connecting:
        case SessionState::handshaking:
            return sys::fail<int>(EAGAIN);
        case SessionState::failed:
            return sys::fail<int>(sh_.error != 0 ? sh_.error : ECONNRESET);
        case SessionState::established:
            break;
    }
    out = {};
    static_assert(sizeof out.subject == sizeof sh_.peer_subject);
    static_assert(sizeof out.fingerprint == sizeof sh_.peer_fingerprint);
    static_assert(sizeof out.identity == sizeof sh_.identity && sizeof out.rule == sizeof sh_.rule);
    std::memcpy(out.subject, sh_.peer_subject, sizeof out.subject);
    std::memcpy(out.fingerprint, sh_.peer_fingerprint, sizeof out.fingerprint);
    std::memcpy(out.identity, sh_.identity, sizeof out.identity);
    std::memcpy(out.rule, sh_.rule, sizeof out.rule);
    out.subject[sizeof out.subject - 1] = '\0';
    out.fingerprint[sizeof out.fingerprint - 1] = '\0';
    out.identity[sizeof out.identity - 1] = '\0';
    out.rule[sizeof out.rule - 1] = '\0';
    out.suite = sh_.suite;
    out.server = role() == SessionRole::server ? 1 : 0;
    return {0, 0};
}

// Ends the connection's audit record and says why on stderr, once per connection and, in this
// process, once per kind (the text before the first ':', e.g. the agent's error code).
void Session::log_failure(const char* reason) {
    audit_end("failed", reason);
    if (sh_.failure_logged.exchange(true)) return;
    const std::string_view text(reason);
    const bool outbound = role() == SessionRole::client;
    const std::string kind =
        fmt::format("{} {} {}", outbound ? 'o' : 'i', setup_.rule, text.substr(0, text.find(':')));
    if (!first_of_kind(kind)) return;
    report("{} connection {} {} (rule \"{}\"): {}", outbound ? "outbound" : "inbound",
           outbound ? "to" : "from", setup_.peer, setup_.rule, reason);
}

// What every audit event of this connection says.
audit::Record Session::audit_record() const {
    audit::Record record;
    record.outbound = role() == SessionRole::client;
    record.rule = setup_.rule;
    record.local = sh_.local;
    record.peer = setup_.peer;
    record.identity = sh_.identity;
    record.peer_subject = sh_.peer_subject;
    record.peer_fingerprint = sh_.peer_fingerprint;
    return record;
}

// What the handshake established, for the audit log and sealsock_peer(): written before the
// state turns established, so whoever sees that state sees these too.
void Session::record_peer(const agent::HandshakeReply& reply) {
    copy_text(sh_.identity, reply.identity);
    copy_text(sh_.peer_subject, reply.peer.subject);
    static constexpr char kHex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < reply.peer.fingerprint.size(); ++i) {
        sh_.peer_fingerprint[2 * i] = kHex[reply.peer.fingerprint[i] >> 4];
        sh_.peer_fingerprint[2 * i + 1] = kHex[reply.peer.fingerprint[i] & 0xf];
    }
    sh_.suite = reply.suite;
}

void Session::audit_open(std::string_view suite) {
    if (confined::active()) return;  // see audit_end
    std::uint8_t none = 0;
    if (!sh_.audit_state.compare_exchange_strong(none, 1)) return;
    (void)rules_in_force();  // reads the config, which names the destination
    audit::Record record = audit_record();
    record.event = audit::Event::open;
    record.suite = suite;
    record.outcome = "sealed";
    audit::write(record);
}

// The connection's last event: a close after an open; before one, a failure is a refusal.
void Session::audit_end(std::string_view outcome, std::string_view reason) {
    // A sandboxed process may be killed for opening the log: the record stays owed, and an
    // unconfined process that shares the connection writes it when its names end.
    if (confined::active()) return;
    std::uint8_t was = 1;
    const bool opened = sh_.audit_state.compare_exchange_strong(was, 2);
    if (!opened) {
        // `was` now holds the state found: 0 (nothing written) or 2 (the end is written).
        if (was != 0 || outcome != "failed" || !sh_.audit_state.compare_exchange_strong(was, 2))
            return;
    }
    (void)rules_in_force();
    audit::Record record = audit_record();
    record.event = opened ? audit::Event::close : audit::Event::refuse;
    if (const record::SuiteParams* suite = record::find_suite(sh_.suite); opened && suite)
        record.suite = suite->name;
    record.bytes_sent = sh_.bytes_sent.load(std::memory_order_relaxed);
    record.bytes_received = sh_.bytes_received.load(std::memory_order_relaxed);
    record.outcome = opened ? outcome : "refused";
    record.reason = reason;
    audit::write(record);
}

bool Session::nonblocking(int flags) const {
    if ((flags & MSG_DONTWAIT) != 0) return true;
    if (confined::active()) [[unlikely]] {  // fcntl may be outside the filter
        const int known = status_flags_.load(std::memory_order_acquire);
        return known >= 0 && (known & O_NONBLOCK) != 0;
    }
    const sys::Ret<int> fl = sys::fcntl(anchor_, F_GETFL, nullptr);
    return fl.value >= 0 && (fl.value & O_NONBLOCK) != 0;
}

void Session::before_confinement() {
    const sys::Ret<int> fl = sys::fcntl(anchor_, F_GETFL, nullptr);
    status_flags_.store(fl.value, std::memory_order_release);
}

bool Session::plaintext_ready() {
    if (state() != SessionState::established) return false;
    std::lock_guard lock(sh_.recv_mu);
    return sh_.sides_ready &&
           (rx().buffered() > 0 || rx().at_eof() || rx().last_failure() != nullptr);
}

void Session::check_locks() {
    if (sh_.recv_mu.owner_died() || sh_.send_mu.owner_died() || sh_.state_mu.owner_died())
        fail(ECONNRESET, "a process died in the middle of a call on this connection");
}

// --- receiving ---------------------------------------------------------------------------------

sys::Ret<ssize_t> Session::receive(MutableByteView out, int flags) {
    check_locks();
    for (;;) {
        switch (state()) {
            case SessionState::connecting:
            case SessionState::handshaking:
                if (nonblocking(flags)) return sys::fail<ssize_t>(EAGAIN);
                (void)wait_settled();
                if (closed()) return sys::fail<ssize_t>(EBADF);
                continue;
            case SessionState::failed:
                return sys::fail<ssize_t>(sh_.error);
            case SessionState::established:
                return receive_established(out, flags);
        }
    }
}

sys::Ret<ssize_t> Session::receive_established(MutableByteView out, int flags) {
    const bool wait_all = (flags & MSG_WAITALL) != 0 && (flags & MSG_PEEK) == 0;
    const int pass = flags & ~MSG_WAITALL;
    std::size_t got = 0;
    for (;;) {
        sys::Ret<ssize_t> r{};
        {
            std::lock_guard lock(sh_.recv_mu);
            r = rx().read(seam_io(), out.subspan(got), pass);
            after_receive();
        }
        // The kernel's own end of the connection: a reset or a timeout ends it as failed.
        if (r.value < 0 && (r.err == ECONNRESET || r.err == ETIMEDOUT))
            log_failure(r.err == ECONNRESET ? "the peer reset the connection (TCP RST)"
                                            : "the connection timed out (TCP)");
        if (r.value > 0) {
            if ((flags & MSG_PEEK) == 0)
                sh_.bytes_received.fetch_add(static_cast<std::uint64_t>(r.value),
                                             std::memory_order_relaxed);
            got += static_cast<std::size_t>(r.value);
            if (!wait_all || got == out.size()) return {static_cast<ssize_t>(got), 0};
            continue;
        }
        if (r.value == 0) return {static_cast<ssize_t>(got), 0};
        if (r.err != EAGAIN || (flags & MSG_DONTWAIT) != 0)
            return got > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(got), 0} : r;
        // Nothing to give yet: wait the kernel's way (see the header). On an O_NONBLOCK socket
        // this answers EAGAIN at once; SO_RCVTIMEO answers EAGAIN, a signal EINTR.
        if (confined::active()) [[unlikely]] {
            if (nonblocking(flags))
                return got > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(got), 0} : r;
            pollfd p{anchor_, POLLIN, 0};
            const sys::Ret<int> w = sys::poll(&p, 1, -1);
            if (w.value < 0)
                return got > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(got), 0}
                               : sys::fail<ssize_t>(w.err);
            continue;
        }
        std::uint8_t byte = 0;
        const sys::Ret<ssize_t> w = sys::recv(anchor_, &byte, 1, MSG_PEEK);
        if (w.value < 0) return got > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(got), 0} : w;
    }
}

void Session::after_receive() {
    if (rx().take_update_request()) sh_.update_owed.store(true, std::memory_order_release);
    if (const ReceiveFailure* f = rx().last_failure()) {
        const record::Alert alert = rx().take_alert();
        if (alert != record::Alert::none) {
            std::lock_guard lock(sh_.send_mu);
            tx().send_alert(seam_io(), alert);
        } else if (!tx().closed()) {
            std::lock_guard lock(sh_.send_mu);
            tx().end_without_close_notify();
        }
        if (f->peer_ended)
            log_failure(fmt::format("{} (the peer sent the alert {})", f->reason,
                                    record::alert_name(f->peer_alert))
                            .c_str());
        else
            log_failure(f->reason);
    } else if (rx().at_eof() && rx().truncated()) {
        log_failure("the peer closed TCP without close_notify (end of file; data may be cut)");
    }
}

int Session::readable_bytes() {
    if (state() != SessionState::established) return 0;
    std::lock_guard lock(sh_.recv_mu);
    const std::size_t n = rx().ready(seam_io());
    after_receive();
    return static_cast<int>(std::min<std::size_t>(n, INT32_MAX));
}

// --- sending -----------------------------------------------------------------------------------

sys::Ret<ssize_t> Session::send(ByteView data, int flags) {
    check_locks();
    for (;;) {
        switch (state()) {
            case SessionState::connecting:
            case SessionState::handshaking: {
                sys::Ret<ssize_t> r = hold(data, flags);
                if (r.value >= 0 || r.err != EINPROGRESS) return r;
                (void)wait_settled();  // a blocking write waits for the keys
                if (closed()) return sys::fail<ssize_t>(EBADF);
                continue;
            }
            case SessionState::failed:
                return sys::fail<ssize_t>(sh_.error);
            case SessionState::established:
                return send_checked(data, flags);
        }
    }
}

// Holds `data` for a nonblocking program until the keys arrive; EINPROGRESS tells a blocking one
// to wait instead.
sys::Ret<ssize_t> Session::hold(ByteView data, int flags) {
    if ((flags & MSG_OOB) != 0) return sys::fail<ssize_t>(EOPNOTSUPP);
    if (!nonblocking(flags)) return sys::fail<ssize_t>(EINPROGRESS);
    std::lock_guard lock(sh_.send_mu);
    const SessionState s = state();
    if (s != SessionState::connecting && s != SessionState::handshaking)
        return sys::fail<ssize_t>(EINPROGRESS);  // settled meanwhile: the caller loops
    if (sh_.shut_wr_wanted) return sys::fail<ssize_t>(EPIPE);
    const std::size_t room = kHeldLimit - std::min(kHeldLimit, sh_.held_size);
    if (room == 0) {
        sh_.write_edge_owed = true;
        return sys::fail<ssize_t>(EAGAIN);
    }
    const std::size_t n = std::min(room, data.size());
    std::memcpy(sh_.held + sh_.held_size, data.data(), n);
    sh_.held_size += n;
    return {static_cast<ssize_t>(n), 0};
}

sys::Ret<ssize_t> Session::send_established(ByteView data, int flags) {
    std::lock_guard lock(sh_.send_mu);
    if (sh_.shut_wr_wanted) return sys::fail<ssize_t>(EPIPE);
    if (sh_.update_owed.exchange(false, std::memory_order_acq_rel)) tx().answer_key_update();
    if (sh_.held_size != 0 && pump_locked()) {
        // The held bytes go first; while they cannot, nothing new is accepted.
        if (confined::active()) [[unlikely]]
            return drain_confined_locked() ? sys::fail<ssize_t>(EAGAIN)
                                           : send_established_locked(data, flags);
        if (!sh_.flush_armed.exchange(true)) background::await_writable(*this);
        return sys::fail<ssize_t>(EAGAIN);
    }
    return send_established_locked(data, flags);
}

sys::Ret<ssize_t> Session::send_established_locked(ByteView data, int flags) {
    sys::Ret<ssize_t> r = tx().write(seam_io(), data, flags, monotonic_seconds());
    if (r.value > 0)
        sh_.bytes_sent.fetch_add(static_cast<std::uint64_t>(r.value), std::memory_order_relaxed);
    if (tx().has_tail()) {
        if (confined::active()) [[unlikely]]
            (void)drain_confined_locked();
        else if (!sh_.flush_armed.exchange(true))
            background::await_writable(*this);
    }
    return r;
}

// A sandboxed process has no background thread to send a tail later: it goes out now, waiting
// for room with poll. Returns true if it could not (the socket failed; the next call says so).
bool Session::drain_confined_locked() {
    while (pump_locked()) {
        pollfd p{anchor_, POLLOUT, 0};
        const sys::Ret<int> w = sys::poll(&p, 1, -1);
        if (w.value < 0 && w.err != EINTR) return true;
        if (w.value > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0 &&
            (p.revents & POLLOUT) == 0)
            return true;
    }
    return false;
}

sys::Ret<ssize_t> Session::send_checked(ByteView data, int flags) {
    const sys::Ret<ssize_t> r = send_established(data, flags);
    // The peer ended the connection: the reason (its alert) is queued on the receive side.
    // Reading it now names it in the log, as a read would.
    if (r.value < 0 && (r.err == EPIPE || r.err == ECONNRESET)) (void)readable_bytes();
    return r;
}

bool Session::pump() {
    sh_.flush_armed.store(false, std::memory_order_release);
    if (anchor_closed()) return false;  // another view (process) sends what is left
    std::unique_lock lock(sh_.send_mu, std::try_to_lock);
    // A program thread holds the send side: its write sends the tail first and asks for the
    // flusher again if it leaves one (flush_armed was cleared above, before the try).
    if (!lock.owns_lock()) return false;
    const bool more = pump_locked();
    if (more) sh_.flush_armed.store(true, std::memory_order_release);
    return more;
}

bool Session::pump_locked() {
    if (!sh_.sides_ready) return false;
    const sys::Ret<int> f = tx().flush(seam_io());
    if (f.value == 1) return true;
    if (f.value < 0) {
        shared::drop_held(sh_);
        return false;
    }
    std::size_t sent = 0;
    while (sent < sh_.held_size && !tx().closed()) {
        const ByteView rest(sh_.held + sent, sh_.held_size - sent);
        const sys::Ret<ssize_t> r = tx().write(seam_io(), rest, kQuiet, monotonic_seconds());
        if (r.value < 0) {
            if (r.err != EAGAIN && r.err != EINTR) {
                shared::drop_held(sh_);
                return false;
            }
            break;
        }
        sent += static_cast<std::size_t>(r.value);
        if (tx().has_tail()) break;
    }
    sh_.bytes_sent.fetch_add(sent, std::memory_order_relaxed);
    if (sent == sh_.held_size) {
        shared::drop_held(sh_);  // wiped, pages given back
    } else if (sent != 0) {      // what was sealed leaves the held buffer, wiped
        const std::size_t left = sh_.held_size - sent;
        std::memmove(sh_.held, sh_.held + sent, left);
        sodium_memzero(sh_.held + left, sent);
        sh_.held_size = left;
    }
    if (sh_.held_size != 0 || tx().has_tail()) return true;
    if (sh_.write_edge_owed) fire_write_edge();
    if ((sh_.shut_wr_wanted || last_name()) && !sh_.shut_wr_done) {
        const sys::Ret<int> c = tx().close_notify(seam_io());
        if (c.value == 1) return true;
        if (sh_.shut_wr_wanted) (void)sys::shutdown(anchor_, SHUT_WR);
        sh_.shut_wr_done = true;
    }
    if (last_name()) audit_end("closed", "");
    return false;
}

// A program that got EAGAIN from the held buffer waits for the socket to turn writable, but the
// kernel's socket may never have been full, so no EPOLLOUT edge would ever come (an
// edge-triggered program would stall). Setting SO_SNDBUF calls the socket's write-space
// callback, which wakes every writer waiting on it (sock_setsockopt -> sk_write_space). The value
// set is the one in force (getsockopt reports it doubled), so the buffer size does not change;
// this pins it (no more autotuning), a price paid only on this rare path.
void Session::fire_write_edge() {
    sh_.write_edge_owed = false;
    if (confined::active()) return;  // socket options may be outside the filter
    int doubled = 0;
    socklen_t len = sizeof doubled;
    if (sys::getsockopt(anchor_, SOL_SOCKET, SO_SNDBUF, &doubled, &len).value != 0) return;
    const int value = std::max(doubled / 2, 4096);
    (void)sys::setsockopt(anchor_, SOL_SOCKET, SO_SNDBUF, &value, sizeof value);
}

// --- shutdown, close, options --------------------------------------------------------------

sys::Ret<int> Session::shutdown(int fd, int how) {
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) return sys::shutdown(fd, how);
    if (how != SHUT_WR) {
        // The kernel's end of file is the receive side's too (a FIN at a record boundary).
        const sys::Ret<int> r = sys::shutdown(anchor_, SHUT_RD);
        if (r.value < 0 || how == SHUT_RD) return r;
    }
    if (state() == SessionState::failed) return sys::shutdown(anchor_, SHUT_WR);
    std::lock_guard lock(sh_.send_mu);
    sh_.shut_wr_wanted = true;
    // Connecting or handshaking: close_notify and the FIN follow the held bytes once the keys
    // arrive (pump_locked). Established: now, or by the flusher after the tail.
    if (sh_.sides_ready && pump_locked()) {
        if (confined::active()) [[unlikely]]
            (void)drain_confined_locked();
        else if (!sh_.flush_armed.exchange(true))
            background::await_writable(*this);
    }
    return {0, 0};
}

sys::Ret<int> Session::close(int fd) {
    if (fd == anchor_) return sys::fail<int>(EBADF);  // the shim's own: never the program's
    (void)registry::erase(fd);
    const sys::Ret<int> r = sys::close(fd);
    drop_name();
    return r;
}

void Session::drop_name() {
    const bool last = sh_.names.fetch_sub(1, std::memory_order_acq_rel) == 1;
    if (names_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;  // more names here
    bool done = false;
    {
        std::scoped_lock lock(sh_.recv_mu, sh_.send_mu);
        closed_.store(true, std::memory_order_release);
        // The common case finishes here, in the program's thread: close_notify goes out (when no
        // other fd in any process names the socket) and the anchor closes before close()
        // returns, so a program that exits right after close() still ends its connection
        // cleanly. A tail, held bytes or a handshake in flight are left to the background
        // thread.
        const bool idle = sh_.held_size == 0 && !(sh_.sides_ready && tx().has_tail()) &&
                          !sh_.flush_armed.load(std::memory_order_acquire);
        if (state() == SessionState::established && idle) {
            done = !last || tx().close_notify(seam_io()).value <= 0;
        } else if (state() == SessionState::failed) {
            done = true;
        } else if (!last && idle && sh_.handshake_owner.load() != getpid()) {
            done = true;  // another process runs the handshake and holds the socket
        }
        if (done) close_anchor();
    }
    if (last && done) audit_end("closed", "");
    notify_settled();
    background::retire(*this);  // what is left, and the free, come from there
}

void Session::finish_own_handshake() {
    const auto busy = [&] {
        const SessionState st = state();
        return st == SessionState::connecting || st == SessionState::handshaking;
    };
    if (!busy() || sh_.handshake_owner.load() != getpid() || sh_.names.load() <= 0) return;
    // Another process holds the socket and waits for these keys (the PostgreSQL postmaster
    // forks and may exit before its background thread got the agent's reply).
    timespec until{};
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 15;
    std::unique_lock lock(sh_.state_mu);
    while (busy())
        if (pthread_cond_timedwait(&sh_.settled, sh_.state_mu.native(), &until) == ETIMEDOUT) break;
}

void Session::at_exit() {
    const int mine = names_.exchange(0, std::memory_order_acq_rel);
    if (mine == 0 || sh_.names.fetch_sub(mine, std::memory_order_acq_rel) != mine) return;
    closed_.store(true, std::memory_order_release);
    {
        std::unique_lock lock(sh_.send_mu, std::try_to_lock);  // never wait at exit
        if (lock.owns_lock() && sh_.sides_ready && state() == SessionState::established &&
            sh_.held_size == 0 && !tx().has_tail())
            (void)tx().close_notify(seam_io());
    }
    audit_end("closed", "the process exited without closing the connection");
}

void Session::close_anchor() {
    if (anchor_closed_.exchange(true, std::memory_order_acq_rel)) return;
    background::forget(anchor_);  // out of the epoll set before the number can be reused
    (void)registry::erase(anchor_);
    (void)sys::close(anchor_);
}

int Session::take_socket_error() {
    std::lock_guard lock(sh_.state_mu);
    if (state() != SessionState::failed || sh_.error_reported) return 0;
    sh_.error_reported = true;
    return sh_.error;
}

}  // namespace sealsock
