#include "session/send.h"

// For the MSG_* flag values only: every socket call goes through Io.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
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

}  // namespace

SendSide::SendSide(int fd, record::RecordSealer sealer) : fd_(fd), sealer_(std::move(sealer)) {}

bool SendSide::allocate() {
    if (!buffer_) buffer_.reset(new (std::nothrow) std::uint8_t[kCapacity]);
    return buffer_ != nullptr;
}

int SendSide::drain(Io& io, int flags, std::size_t& sent) {
    while (head_ < end_) {
        const std::size_t left = end_ - head_;
        const sys::Ret<ssize_t> r = io.send(fd_, buffer_.get() + head_, left, flags);
        if (r.value < 0) return r.err != 0 ? r.err : EIO;
        // TCP never takes 0 of a non-empty buffer; treat it as "full" rather than spin.
        if (r.value == 0) return EAGAIN;
        const std::size_t n = std::min(static_cast<std::size_t>(r.value), left);
        head_ += n;
        sent += n;
    }
    head_ = end_ = 0;
    return 0;
}

int SendSide::send_chunk(Io& io, int flags) {
    std::size_t sent = 0;
    const int err = drain(io, flags, sent);
    if (err == 0 || sent > 0 || transient(err)) return 0;
    // Nothing of the chunk left and the socket is failing: drop the chunk unsent and unreported.
    // Its sequence numbers are spent, so nothing may be sent after it ever again.
    head_ = end_ = 0;
    broken_ = err;
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
    if (broken_ != 0) return sys::fail<ssize_t>(refuse(io, flags, broken_));
    if (closed_) return sys::fail<ssize_t>(refuse(io, flags, EPIPE));
    if (sealer_.failed()) return sys::fail<ssize_t>(EIO);
    if (!allocate()) return sys::fail<ssize_t>(ENOBUFS);

    // The tail goes first; while the kernel refuses it, nothing new is accepted.
    std::size_t ignored = 0;
    if (const int err = drain(io, flags, ignored); err != 0) return sys::fail<ssize_t>(err);

    std::size_t total = 0;
    while (total < data.size()) {
        const ByteView chunk = data.subspan(total, std::min(data.size() - total, kChunk));
        const record::SealOutcome s =
            sealer_.seal_data(chunk, MutableByteView(buffer_.get(), kSealRoom), now);
        head_ = 0;
        end_ = s.written;  // may hold a KeyUpdate even when no data was sealed
        if (const int err = send_chunk(io, flags); err != 0)
            return total > 0 ? sys::Ret<ssize_t>{static_cast<ssize_t>(total), 0}
                             : sys::fail<ssize_t>(err);
        total += s.consumed;
        if (has_tail() || s.consumed == 0) break;
    }
    if (total == 0) return sys::fail<ssize_t>(EIO);  // the sealer failed before any record
    return {static_cast<ssize_t>(total), 0};
}

sys::Ret<int> SendSide::flush(Io& io) {
    if (broken_ != 0) return sys::fail<int>(refuse(io, kQuietFlags, broken_));
    std::size_t ignored = 0;
    const int err = has_tail() ? drain(io, kQuietFlags, ignored) : 0;
    if (err != 0 && !transient(err)) return sys::fail<int>(err);
    return {has_tail() ? 1 : 0, 0};
}

bool SendSide::append_alert(record::Alert alert) {
    if (!allocate()) return false;
    if (end_ + kAlertRecord > kCapacity) {
        std::memmove(buffer_.get(), buffer_.get() + head_, end_ - head_);
        end_ -= head_;
        head_ = 0;
    }
    const std::size_t n =
        sealer_.seal_alert(alert, MutableByteView(buffer_.get() + end_, kCapacity - end_));
    end_ += n;
    return n != 0;
}

sys::Ret<int> SendSide::close_notify(Io& io) {
    if (broken_ != 0) return sys::fail<int>(refuse(io, kQuietFlags, broken_));
    if (!closed_) {
        if (!append_alert(record::Alert::close_notify))
            return sys::fail<int>(buffer_ ? EIO : ENOBUFS);
        closed_ = true;
    }
    return flush(io);
}

void SendSide::send_alert(Io& io, record::Alert alert) {
    if (broken_ != 0 || closed_) return;
    closed_ = true;
    if (append_alert(alert)) (void)flush(io);
}

}  // namespace sealsock
