#include "session/receive.h"

// For the MSG_* flag values only: every socket call goes through Io.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace sealsock {

using record::Alert;
using record::OpenOutcome;
using record::OpenStatus;
using record::RecordHead;
using record::RecordOpener;

namespace {

// What a record adds to its plaintext bound: header, inner type byte, tag. A buffer of len can
// therefore take len + 22 bytes of complete records (DESIGN I2, the direct path).
constexpr std::size_t kOverhead = record::record_overhead;
static_assert(kOverhead == 22);
static_assert(ReceiveSide::staging_capacity > record::max_record_size);

constexpr int kQuiet = MSG_DONTWAIT;

}  // namespace

struct ReceiveSide::Staging {
    std::uint8_t bytes[staging_capacity];  // ciphertext only: nothing to wipe
};

ReceiveSide::ReceiveSide(int fd, RecordOpener opener, int rcvlowat)
    : fd_(fd), opener_(std::move(opener)), rcvlowat_(rcvlowat) {}

ReceiveSide::~ReceiveSide() = default;

Alert ReceiveSide::take_alert() {
    if (failure_.err == 0 || alert_taken_) return Alert::none;
    alert_taken_ = true;
    return failure_.alert;
}

void ReceiveSide::trim() {
    if (held_ == 0) staging_.reset();
    if (cache_ && cache_->empty()) cache_.reset();
}

sys::Ret<ssize_t> ReceiveSide::read(Io& io, MutableByteView out, int flags) {
    if ((flags & MSG_OOB) != 0) return sys::fail<ssize_t>(EINVAL);
    if (failure_.err != 0) return sys::fail<ssize_t>(failure_.err);
    if (eof_ || out.empty()) return {0, 0};
    if (buffered() == 0 && (flags & (MSG_PEEK | MSG_TRUNC)) != 0) {
        const Step step = load_head(io);
        if (step != Step::ok) return finish(io, step, 0);
    }
    if (buffered() > 0) return serve_cache(io, out, flags);
    return direct(io, out);
}

std::size_t ReceiveSide::ready(Io& io) {
    if (failure_.err != 0 || eof_) return 0;
    if (buffered() == 0) (void)load_head(io);  // blocked or failed: nothing ready; read reports it
    sync_rcvlowat(io);
    return buffered();
}

// The direct path: complete records are opened straight into `out`; a head record whose
// plaintext may not fit goes through the cache when nothing was delivered yet.
sys::Ret<ssize_t> ReceiveSide::direct(Io& io, MutableByteView out) {
    if (!ensure_staging()) return sys::fail<ssize_t>(ENOMEM);
    std::size_t filled = 0;
    Step step = fill_direct(io, out, filled);
    if (step == Step::too_big && filled == 0) {
        step = load_head(io);
        if (step == Step::ok) return serve_cache(io, out, 0);
    }
    return finish(io, step == Step::too_big ? Step::ok : step, filled);
}

ReceiveSide::Step ReceiveSide::fill_direct(Io& io, MutableByteView out, std::size_t& filled) {
    while (filled < out.size()) {
        const std::size_t space = out.size() - filled;
        if (held_ >= record::header_size) {
            const RecordHead head = RecordOpener::inspect(staged());
            if (head.status == OpenStatus::fatal) return fail(ECONNRESET, head.alert, head.reason);
            if (head.plaintext_bound > space) return Step::too_big;
        }
        // held_ <= space + 22 here: a held header announces a record that fits, so its prefix is
        // shorter than space + 22; a prefix without a header is shorter than 5.
        const std::size_t want = std::min(space + kOverhead - held_, staging_capacity - held_);
        const auto r = recv_some(io, staging_->bytes + held_, want, kQuiet);
        if (r.value <= 0) return r.value == 0 ? on_fin() : stopped(r);
        held_ += static_cast<std::size_t>(r.value);
        const Step step = open_staged(out, filled);
        if (step != Step::ok) return step;
        if (static_cast<std::size_t>(r.value) < want) return Step::blocked;  // queue drained
    }
    return Step::ok;
}

// Opens every complete record in staging into out[filled..]; keeps the partial one.
ReceiveSide::Step ReceiveSide::open_staged(MutableByteView out, std::size_t& filled) {
    std::size_t used = 0;
    Step step = Step::ok;
    while (step == Step::ok) {
        const ByteView in(staging_->bytes + used, held_ - used);
        const OpenOutcome o = opener_.open(in, out.subspan(filled));
        switch (o.status) {
            case OpenStatus::data:
                filled += o.plaintext;
                used += o.consumed;
                continue;
            case OpenStatus::discarded:
                used += o.consumed;
                continue;
            case OpenStatus::need_more:
                break;
            case OpenStatus::close_notify:
                used += o.consumed;
                eof_ = true;
                step = Step::eof;
                break;
            case OpenStatus::need_buffer:  // not for complete records within len + 22
                step = Step::too_big;
                break;
            case OpenStatus::fatal:
                step = fail(o);
                break;
        }
        break;
    }
    std::memmove(staging_->bytes, staging_->bytes + used, held_ - used);
    held_ -= used;
    return step;
}

// Opens the head record into the cache, consuming the non-data records before it. Everything of
// the record but its last byte is read into staging (the kernel queue is then empty whenever the
// record is incomplete, so receive-memory pressure, which makes TCP report readable below the
// low-water mark, cannot make a caller spin); the last byte is peeked and stays queued until
// the cache drains.
ReceiveSide::Step ReceiveSide::load_head(Io& io) {
    if (!ensure_staging()) {
        last_err_ = ENOMEM;
        return Step::error;
    }
    if (!cache_) {
        cache_.reset(new (std::nothrow) record::PlaintextCache);
        if (!cache_) {
            last_err_ = ENOMEM;
            return Step::error;
        }
    }
    while (true) {
        if (const Step step = read_header(io); step != Step::ok) return step;
        const RecordHead head = RecordOpener::inspect(staged());
        if (head.status == OpenStatus::fatal) return fail(ECONNRESET, head.alert, head.reason);
        if (held_ >= head.record_size)
            return fail(ECONNRESET, Alert::internal_error, "receive state holds a whole record");
        const std::size_t last = head.record_size - 1;
        if (held_ < last) {
            const auto r = recv_some(io, staging_->bytes + held_, last - held_, kQuiet);
            if (r.value <= 0) return r.value == 0 ? on_fin() : stopped(r);
            held_ += static_cast<std::size_t>(r.value);
            if (held_ < last) return Step::blocked;
        }
        const auto r = recv_some(io, staging_->bytes + last, 1, MSG_PEEK | kQuiet);
        if (r.value <= 0) return r.value == 0 ? on_fin() : stopped(r);
        const std::size_t rest = 1;  // the last byte, still queued

        const OpenOutcome o =
            opener_.open(ByteView(staging_->bytes, head.record_size), cache_->space());
        held_ = 0;
        switch (o.status) {
            case OpenStatus::data:
                cache_->filled(o.plaintext);
                queued_ = rest;
                return Step::ok;
            case OpenStatus::discarded:
                if (const Step step = drop_queued(io, rest); step != Step::ok) return step;
                continue;
            case OpenStatus::close_notify:
                eof_ = true;
                (void)drop_queued(io, rest);
                return Step::eof;
            case OpenStatus::fatal:  // left queued: the fd stays readable for the error
                return fail(o);
            case OpenStatus::need_more:
            case OpenStatus::need_buffer:
                break;
        }
        return fail(ECONNRESET, Alert::internal_error, "record did not open into the cache");
    }
}

// Takes the 5-byte header of the head record into staging (consumed: the shim may hold a
// prefix).
ReceiveSide::Step ReceiveSide::read_header(Io& io) {
    if (held_ >= record::header_size) return Step::ok;
    const auto r = recv_some(io, staging_->bytes + held_, record::header_size - held_, kQuiet);
    if (r.value <= 0) return r.value == 0 ? on_fin() : stopped(r);
    held_ += static_cast<std::size_t>(r.value);
    return held_ >= record::header_size ? Step::ok : Step::blocked;
}

// Discards n queued bytes (the rest of a record already opened) without copying them.
ReceiveSide::Step ReceiveSide::drop_queued(Io& io, std::size_t n) {
    while (n > 0) {
        const auto r = recv_some(io, nullptr, n, MSG_TRUNC | kQuiet);
        if (r.value < 0 && r.err != EAGAIN)
            return fail(r.err, Alert::none, "connection failed while discarding a record");
        if (r.value <= 0)
            return fail(ECONNRESET, Alert::internal_error,
                        "a record's queued bytes vanished (another reader on the socket?)");
        n -= std::min(n, static_cast<std::size_t>(r.value));
    }
    return Step::ok;
}

sys::Ret<ssize_t> ReceiveSide::serve_cache(Io& io, MutableByteView out, int flags) {
    const bool peek = (flags & MSG_PEEK) != 0;
    std::size_t n = 0;
    if ((flags & MSG_TRUNC) != 0) {
        n = std::min(out.size(), cache_->available());  // out's storage is not touched
        if (!peek) cache_->consume(n);
    } else {
        n = cache_->take(out, peek);
    }
    Step step = Step::ok;
    if (cache_->empty()) {
        step = drop_queued(io, queued_);
        queued_ = 0;
    }
    return finish(io, step, n);
}

// Every call ends here: SO_RCVLOWAT follows the new state, then the result. Delivered bytes win
// over an error, which stays for the next call (as a plain socket reports data before a reset).
sys::Ret<ssize_t> ReceiveSide::finish(Io& io, Step step, std::size_t delivered) {
    sync_rcvlowat(io);
    if (delivered > 0) return {static_cast<ssize_t>(delivered), 0};
    switch (step) {
        case Step::ok:
        case Step::eof:
            return {0, 0};
        case Step::failed:
            return sys::fail<ssize_t>(failure_.err);
        case Step::error:
            return sys::fail<ssize_t>(last_err_);
        case Step::blocked:
        case Step::too_big:
            break;
    }
    return sys::fail<ssize_t>(EAGAIN);
}

sys::Ret<ssize_t> ReceiveSide::recv_some(Io& io, void* buf, std::size_t len, int flags) {
    while (true) {
        const auto r = io.recv(fd_, buf, len, flags);
        if (r.value >= 0 || r.err != EINTR) return r;
    }
}

ReceiveSide::Step ReceiveSide::stopped(const sys::Ret<ssize_t>& r) {
    if (r.err == EAGAIN || r.err == EWOULDBLOCK) return Step::blocked;
    last_err_ = r.err;
    return Step::error;
}

ReceiveSide::Step ReceiveSide::on_fin() {
    if (held_ > 0)
        return fail(ECONNRESET, Alert::none, "peer closed the TCP connection inside a record");
    eof_ = true;
    truncated_ = true;
    return Step::eof;
}

ReceiveSide::Step ReceiveSide::fail(int err, Alert alert, const char* reason) {
    if (failure_.err == 0) {
        failure_.err = err;
        failure_.alert = alert;
        failure_.reason = reason;
    }
    return Step::failed;
}

ReceiveSide::Step ReceiveSide::fail(const OpenOutcome& o) {
    if (failure_.err == 0) {
        failure_.err = ECONNRESET;
        failure_.alert = o.alert;
        failure_.peer_alert = o.peer_alert;
        failure_.peer_ended = o.peer_ended;
        failure_.reason = o.reason;
    }
    return Step::failed;
}

ByteView ReceiveSide::staged() const {
    return staging_ ? ByteView(staging_->bytes, held_) : ByteView();
}

bool ReceiveSide::ensure_staging() {
    if (!staging_) staging_.reset(new (std::nothrow) Staging);
    return staging_ != nullptr;
}

// The queued bytes that make the next read able to deliver something (DESIGN I2).
int ReceiveSide::wanted_rcvlowat() const {
    if (failure_.err != 0 || eof_ || buffered() > 0) return 1;
    if (held_ < record::header_size) return static_cast<int>(record::header_size - held_);
    const RecordHead head = RecordOpener::inspect(staged());
    if (head.status != OpenStatus::data || held_ >= head.record_size) return 1;
    return static_cast<int>(head.record_size - held_);
}

void ReceiveSide::sync_rcvlowat(Io& io) {
    const int want = wanted_rcvlowat();
    if (want == rcvlowat_) return;
    while (true) {
        const auto r = io.set_rcvlowat(fd_, want);
        if (r.value < 0 && r.err == EINTR) continue;
        rcvlowat_ = r.value < 0 ? 0 : want;  // unknown after a failure: set again next time
        return;
    }
}

}  // namespace sealsock
