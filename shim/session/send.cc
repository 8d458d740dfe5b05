#include "session/send.h"

#include <sodium.h>
// For the MSG_* flag values only: every socket call goes through Io.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace sealsock {

namespace {

// The program's flags that keep their meaning on the records' send().
constexpr int kPassedFlags = MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE;
// Sends made for the flusher, close(2) and shutdown(2): never block, never raise SIGPIPE.
constexpr int kQuietFlags = MSG_DONTWAIT | MSG_NOSIGNAL;

// Errors after which the socket may still take the bytes later.
bool transient(int err) {
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ENOBUFS || err == ENOMEM;
}

// The fields before the buffer; the buffer itself is left untouched.
void reset_fields(SendState& state) {
    state.head = state.end = 0;
    state.broken = 0;
    state.closed = false;
}

}  // namespace

Status SendSide::init(SendState& state, const record::SuiteParams& suite, ByteView secret,
                      std::uint64_t seq, record::RotationPolicy policy, std::uint64_t now) {
    reset_fields(state);
    return record::RecordSealer::init(state.seal, suite, secret, seq, policy, now);
}

void SendSide::wipe(SendState& state) {
    record::RecordSealer::wipe(state.seal);
    const std::size_t end = std::min<std::size_t>(state.end, sizeof state.buffer);
    const std::size_t head = std::min<std::size_t>(state.head, end);
    sodium_memzero(state.buffer + head, end - head);  // the tail: what the buffer holds
    reset_fields(state);
}

void SendSide::Wipe::operator()(SendState* state) const {
    wipe(*state);
    delete state;
}

std::size_t SendSide::small_base() {
    return SendState::kCapacity - SendState::kSmallRoom;
}

SendSide::SendSide(int fd, SendState& state) : state_(&state), fd_(fd), sealer_(state.seal) {}

SendSide::SendSide(int fd, record::RecordSealer sealer)
    : owned_(new SendState), state_(owned_.get()), fd_(fd), sealer_(std::move(sealer)) {
    reset_fields(*state_);
    sealer_.move_to(state_->seal);
}

int SendSide::drain(Io& io, int flags, std::size_t& sent) {
    SendState& s = *state_;
    while (s.head < s.end) {
        const std::size_t left = s.end - s.head;
        const sys::Ret<ssize_t> r = io.send(fd_, s.buffer + s.head, left, flags);
        if (r.value < 0) return r.err != 0 ? r.err : EIO;
        // TCP never takes 0 of a non-empty buffer; treat it as "full" rather than spin.
        if (r.value == 0) return EAGAIN;
        const std::size_t n = std::min(static_cast<std::size_t>(r.value), left);
        s.head += static_cast<std::uint32_t>(n);
        sent += n;
    }
    s.head = s.end = 0;
    return 0;
}

int SendSide::send_chunk(Io& io, int flags) {
    std::size_t sent = 0;
    const int err = drain(io, flags, sent);
    if (err == 0 || sent > 0 || transient(err)) return 0;
    // Nothing of the chunk left and the socket is failing: drop the chunk unsent and unreported.
    // Its sequence numbers are spent, so nothing may be sent after it ever again.
    state_->head = state_->end = 0;
    state_->broken = err;
    return err;
}

int SendSide::refuse(Io& io, int flags, int err) {
    const sys::Ret<ssize_t> r = io.send(fd_, nullptr, 0, flags);
    return r.value < 0 && r.err != 0 ? r.err : err;
}

sys::Ret<ssize_t> SendSide::write(Io& io, ByteView data, int flags, std::uint64_t now) {
    // write(2) of nothing on a socket returns 0 and sends nothing.
    if (data.empty()) return {0, 0};
    if ((flags & MSG_OOB) != 0) return sys::fail<ssize_t>(EOPNOTSUPP);
    flags &= kPassedFlags;
    SendState& s = *state_;
    if (s.broken != 0) return sys::fail<ssize_t>(refuse(io, flags, s.broken));
    if (s.closed) return sys::fail<ssize_t>(refuse(io, flags, EPIPE));
    if (sealer_.failed()) return sys::fail<ssize_t>(EIO);

    // The tail goes first; while the kernel refuses it, nothing new is accepted.
    std::size_t ignored = 0;
    if (const int err = drain(io, flags, ignored); err != 0) return sys::fail<ssize_t>(err);

    std::size_t total = 0;
    while (total < data.size()) {
        const ByteView chunk = data.subspan(total, std::min(data.size() - total, kChunk));
        const std::size_t base = chunk.size() <= SendState::kSmallWrite ? small_base() : 0;
        const std::size_t room =
            base != 0 ? SendState::kSmallRoom - SendState::kAlertRecord : SendState::kSealRoom;
        const record::SealOutcome sealed =
            sealer_.seal_data(chunk, MutableByteView(s.buffer + base, room), now);
        s.head = static_cast<std::uint32_t>(base);
        s.end = static_cast<std::uint32_t>(base + sealed.written);  // may be only a KeyUpdate
        if (const int err = send_chunk(io, flags); err != 0)
            return total > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(total), 0}
                             : sys::fail<ssize_t>(err);
        total += sealed.consumed;
        if (has_tail() || sealed.consumed == 0) break;
    }
    if (total == 0) return sys::fail<ssize_t>(EIO);  // the sealer failed before any record
    return {static_cast<ssize_t>(total), 0};
}

sys::Ret<int> SendSide::flush(Io& io) {
    if (state_->broken != 0) return sys::fail<int>(refuse(io, kQuietFlags, state_->broken));
    std::size_t ignored = 0;
    const int err = has_tail() ? drain(io, kQuietFlags, ignored) : 0;
    if (err != 0 && !transient(err)) return sys::fail<int>(err);
    return {has_tail() ? 1 : 0, 0};
}

bool SendSide::append_alert(record::Alert alert) {
    SendState& s = *state_;
    if (s.head == s.end) s.head = s.end = static_cast<std::uint32_t>(small_base());
    if (s.end + SendState::kAlertRecord > SendState::kCapacity) {
        std::memmove(s.buffer, s.buffer + s.head, s.end - s.head);
        s.end -= s.head;
        s.head = 0;
    }
    const std::size_t n =
        sealer_.seal_alert(alert, MutableByteView(s.buffer + s.end, SendState::kCapacity - s.end));
    s.end += static_cast<std::uint32_t>(n);
    return n != 0;
}

sys::Ret<int> SendSide::close_notify(Io& io) {
    if (state_->broken != 0) return sys::fail<int>(refuse(io, kQuietFlags, state_->broken));
    if (!state_->closed) {
        if (!append_alert(record::Alert::close_notify)) return sys::fail<int>(EIO);
        state_->closed = true;
    }
    return flush(io);
}

void SendSide::send_alert(Io& io, record::Alert alert) {
    if (state_->broken != 0 || state_->closed) return;
    state_->closed = true;
    if (append_alert(alert)) (void)flush(io);
}

}  // namespace sealsock
