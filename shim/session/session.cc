#include "session/session.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "record/suite.h"
#include "session/background.h"
#include "session/log.h"
#include "session/registry.h"
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

void wipe(std::vector<std::uint8_t>& bytes) {
    sodium_memzero(bytes.data(), bytes.size());
    bytes.clear();
    bytes.shrink_to_fit();
}

}  // namespace

Io& seam_io() {
    static SeamIo io;
    return io;
}

std::uint64_t monotonic_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec);
}

Session::Session(int fd, int anchor, SessionSetup setup, SessionState initial)
    : fd_(fd), anchor_(anchor), setup_(std::move(setup)), state_(initial) {}

Session::~Session() {
    wipe(held_);
}

// --- transitions -------------------------------------------------------------------------------

void Session::connected() {
    std::lock_guard lock(state_mu_);
    if (state_.load() == SessionState::connecting) state_.store(SessionState::handshaking);
}

bool Session::establish(agent::HandshakeReply& reply) {
    const record::SuiteParams* suite = record::find_suite(reply.suite);
    if (suite == nullptr) {
        fail(ECONNRESET, "the agent chose a cipher suite the shim does not know");
        return false;
    }
    auto sealer = record::RecordSealer::create(*suite, reply.write_secret.view(), reply.write_seq,
                                               setup_.rotation, monotonic_seconds());
    auto opener = record::RecordOpener::create(*suite, reply.read_secret.view(), reply.read_seq);
    if (!sealer || !opener) {
        fail(ECONNRESET, "the agent's traffic secrets could not be installed");
        return false;
    }
    {
        // Also after close(): bytes held before it are sealed and sent, then close_notify.
        std::scoped_lock lock(recv_mu_, send_mu_);
        receive_ = std::make_unique<ReceiveSide>(anchor_, std::move(opener.value()));
        send_ = std::make_unique<SendSide>(anchor_, std::move(sealer.value()));
        std::lock_guard state_lock(state_mu_);
        if (state_.load() == SessionState::failed) return false;
        state_.store(SessionState::established, std::memory_order_release);
    }
    settled_.notify_all();
    // DESIGN I2, catch 1: an edge-triggered program may have read during the handshake, got
    // EAGAIN and be waiting for an edge that already happened. Records queued now get a fresh
    // one: any SO_RCVLOWAT at or below the queued amount fires it.
    if (seam_io().queued(anchor_).value > 0) (void)seam_io().set_rcvlowat(anchor_, 1);
    return true;
}

void Session::fail(int err, const std::string& reason) {
    {
        std::lock_guard lock(state_mu_);
        if (state_.load() == SessionState::failed) return;
        error_ = err;
        state_.store(SessionState::failed, std::memory_order_release);
    }
    log_failure(reason.c_str());
    {
        std::lock_guard lock(send_mu_);
        wipe(held_);
    }
    // Both directions shut: the peer gets a FIN after whatever alert the agent sent it (an RST
    // would let its kernel drop that alert unread), and every poller of the program wakes
    // (POLLIN|POLLHUP); the fd stays valid and reads and writes now report `err`.
    (void)sys::shutdown(anchor_, SHUT_RDWR);
    settled_.notify_all();
}

SessionState Session::wait_settled() {
    std::unique_lock lock(state_mu_);
    settled_.wait(lock, [&] {
        const SessionState s = state_.load();
        return closed() || (s != SessionState::connecting && s != SessionState::handshaking);
    });
    return state_.load();
}

void Session::log_failure(const char* reason) {
    if (failure_logged_.exchange(true)) return;
    report("{} connection {} {} (rule \"{}\"): {}",
           setup_.role == SessionRole::client ? "outbound" : "inbound",
           setup_.role == SessionRole::client ? "to" : "from", setup_.peer, setup_.rule, reason);
}

bool Session::nonblocking(int flags) const {
    if ((flags & MSG_DONTWAIT) != 0) return true;
    const sys::Ret<int> fl = sys::fcntl(anchor_, F_GETFL, nullptr);
    return fl.value >= 0 && (fl.value & O_NONBLOCK) != 0;
}

// --- receiving ---------------------------------------------------------------------------------

sys::Ret<ssize_t> Session::receive(MutableByteView out, int flags) {
    for (;;) {
        switch (state()) {
            case SessionState::connecting:
            case SessionState::handshaking:
                if (nonblocking(flags)) return sys::fail<ssize_t>(EAGAIN);
                (void)wait_settled();
                if (closed()) return sys::fail<ssize_t>(EBADF);
                continue;
            case SessionState::failed:
                return sys::fail<ssize_t>(error_);
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
            std::lock_guard lock(recv_mu_);
            r = receive_->read(seam_io(), out.subspan(got), pass);
            after_receive();
        }
        if (r.value > 0) {
            got += static_cast<std::size_t>(r.value);
            if (!wait_all || got == out.size()) return {static_cast<ssize_t>(got), 0};
            continue;
        }
        if (r.value == 0) return {static_cast<ssize_t>(got), 0};
        if (r.err != EAGAIN || (flags & MSG_DONTWAIT) != 0)
            return got > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(got), 0} : r;
        // Nothing to give yet: wait the kernel's way (see the header). On an O_NONBLOCK socket
        // this answers EAGAIN at once; SO_RCVTIMEO answers EAGAIN, a signal EINTR.
        std::uint8_t byte = 0;
        const sys::Ret<ssize_t> w = sys::recv(anchor_, &byte, 1, MSG_PEEK);
        if (w.value < 0) return got > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(got), 0} : w;
    }
}

void Session::after_receive() {
    if (receive_->take_update_request()) update_owed_.store(true, std::memory_order_release);
    if (const ReceiveFailure* f = receive_->last_failure()) {
        const record::Alert alert = receive_->take_alert();
        if (alert != record::Alert::none) {
            std::lock_guard lock(send_mu_);
            send_->send_alert(seam_io(), alert);
        }
        if (f->peer_ended)
            log_failure(fmt::format("{} (the peer sent the alert {})", f->reason,
                                    record::alert_name(f->peer_alert))
                            .c_str());
        else
            log_failure(f->reason);
    } else if (receive_->at_eof() && receive_->truncated()) {
        log_failure("the peer closed TCP without close_notify (end of file; data may be cut)");
    }
}

int Session::readable_bytes() {
    if (state() != SessionState::established) return 0;
    std::lock_guard lock(recv_mu_);
    const std::size_t n = receive_->ready(seam_io());
    after_receive();
    return static_cast<int>(std::min<std::size_t>(n, INT32_MAX));
}

// --- sending -----------------------------------------------------------------------------------

sys::Ret<ssize_t> Session::send(ByteView data, int flags) {
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
                return sys::fail<ssize_t>(error_);
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
    std::lock_guard lock(send_mu_);
    const SessionState s = state();
    if (s != SessionState::connecting && s != SessionState::handshaking)
        return sys::fail<ssize_t>(EINPROGRESS);  // settled meanwhile: the caller loops
    if (shut_wr_wanted_) return sys::fail<ssize_t>(EPIPE);
    const std::size_t room = kHeldLimit - std::min(kHeldLimit, held_.size());
    if (room == 0) {
        write_edge_owed_ = true;
        return sys::fail<ssize_t>(EAGAIN);
    }
    const std::size_t n = std::min(room, data.size());
    held_.insert(held_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
    return {static_cast<ssize_t>(n), 0};
}

sys::Ret<ssize_t> Session::send_established(ByteView data, int flags) {
    std::lock_guard lock(send_mu_);
    if (shut_wr_wanted_) return sys::fail<ssize_t>(EPIPE);
    if (update_owed_.exchange(false, std::memory_order_acq_rel)) send_->answer_key_update();
    if (!held_.empty() && pump_locked()) {
        // The held bytes go first; while they cannot, nothing new is accepted.
        if (!flush_armed_.exchange(true)) background::await_writable(*this);
        return sys::fail<ssize_t>(EAGAIN);
    }
    sys::Ret<ssize_t> r = send_->write(seam_io(), data, flags, monotonic_seconds());
    if (send_->has_tail() && !flush_armed_.exchange(true)) background::await_writable(*this);
    return r;
}

sys::Ret<ssize_t> Session::send_checked(ByteView data, int flags) {
    const sys::Ret<ssize_t> r = send_established(data, flags);
    // The peer ended the connection: the reason (its alert) is queued on the receive side.
    // Reading it now names it in the log, as a read would.
    if (r.value < 0 && (r.err == EPIPE || r.err == ECONNRESET)) (void)readable_bytes();
    return r;
}

bool Session::pump() {
    flush_armed_.store(false, std::memory_order_release);
    std::unique_lock lock(send_mu_, std::try_to_lock);
    // A program thread holds the send side: its write sends the tail first and asks for the
    // flusher again if it leaves one (flush_armed_ was cleared above, before the try).
    if (!lock.owns_lock()) return false;
    const bool more = pump_locked();
    if (more) flush_armed_.store(true, std::memory_order_release);
    return more;
}

bool Session::pump_locked() {
    if (!send_) return false;
    const sys::Ret<int> f = send_->flush(seam_io());
    if (f.value == 1) return true;
    if (f.value < 0) {
        wipe(held_);
        return false;
    }
    while (!held_.empty() && !send_->closed()) {
        const sys::Ret<ssize_t> r = send_->write(seam_io(), held_, kQuiet, monotonic_seconds());
        if (r.value < 0) {
            if (r.err == EAGAIN || r.err == EINTR) return true;
            wipe(held_);
            return false;
        }
        sodium_memzero(held_.data(), static_cast<std::size_t>(r.value));
        held_.erase(held_.begin(), held_.begin() + r.value);
        if (send_->has_tail()) return true;
    }
    if (held_.capacity() != 0) wipe(held_);
    if (write_edge_owed_) fire_write_edge();
    if ((shut_wr_wanted_ || closed()) && !shut_wr_done_) {
        const sys::Ret<int> c = send_->close_notify(seam_io());
        if (c.value == 1) return true;
        if (shut_wr_wanted_) (void)sys::shutdown(anchor_, SHUT_WR);
        shut_wr_done_ = true;
    }
    return false;
}

// A program that got EAGAIN from the held buffer waits for the socket to turn writable, but the
// kernel's socket may never have been full, so no EPOLLOUT edge would ever come (an
// edge-triggered program would stall). Setting SO_SNDBUF calls the socket's write-space
// callback, which wakes every writer waiting on it (sock_setsockopt -> sk_write_space). The value
// set is the one in force (getsockopt reports it doubled), so the buffer size does not change;
// this pins it (no more autotuning), a price paid only on this rare path.
void Session::fire_write_edge() {
    write_edge_owed_ = false;
    int doubled = 0;
    socklen_t len = sizeof doubled;
    if (sys::getsockopt(anchor_, SOL_SOCKET, SO_SNDBUF, &doubled, &len).value != 0) return;
    const int value = std::max(doubled / 2, 4096);
    (void)sys::setsockopt(anchor_, SOL_SOCKET, SO_SNDBUF, &value, sizeof value);
}

// --- shutdown, close, options --------------------------------------------------------------

sys::Ret<int> Session::shutdown(int how) {
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) return sys::shutdown(fd_, how);
    if (how != SHUT_WR) {
        // The kernel's end of file is the receive side's too (a FIN at a record boundary).
        const sys::Ret<int> r = sys::shutdown(anchor_, SHUT_RD);
        if (r.value < 0 || how == SHUT_RD) return r;
    }
    if (state() == SessionState::failed) return sys::shutdown(anchor_, SHUT_WR);
    std::lock_guard lock(send_mu_);
    shut_wr_wanted_ = true;
    // Connecting or handshaking: close_notify and the FIN follow the held bytes once the keys
    // arrive (pump_locked). Established: now, or by the flusher after the tail.
    if (send_ && pump_locked() && !flush_armed_.exchange(true)) background::await_writable(*this);
    return {0, 0};
}

sys::Ret<int> Session::close(int fd) {
    if (fd == anchor_) return sys::fail<int>(EBADF);  // the shim's own: never the program's
    bool done = false;
    {
        std::scoped_lock lock(recv_mu_, send_mu_);
        closed_.store(true, std::memory_order_release);
        // The common case finishes here, in the program's thread: close_notify goes out and the
        // anchor closes (the FIN) before close() returns, so a program that exits right after
        // close() still ends its connection cleanly. A tail, held bytes or a handshake in flight
        // are left to the background thread.
        if (state() == SessionState::established && held_.empty() && !send_->has_tail() &&
            !flush_armed_.load(std::memory_order_acquire)) {
            const sys::Ret<int> c = send_->close_notify(seam_io());
            done = c.value <= 0;
        } else if (state() == SessionState::failed) {
            done = true;
        }
        if (done) close_anchor();
    }
    settled_.notify_all();
    (void)registry::erase(fd);
    const sys::Ret<int> r = sys::close(fd);
    background::retire(*this);  // what is left, and the free, come from there
    return r;
}

void Session::close_anchor() {
    if (anchor_closed_.exchange(true, std::memory_order_acq_rel)) return;
    background::forget(anchor_);  // out of the epoll set before the number can be reused
    (void)registry::erase(anchor_);
    (void)sys::close(anchor_);
}

int Session::take_socket_error() {
    std::lock_guard lock(state_mu_);
    if (state_.load() != SessionState::failed || error_reported_) return 0;
    error_reported_ = true;
    return error_;
}

}  // namespace sealsock
