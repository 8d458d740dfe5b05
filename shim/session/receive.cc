#include "session/receive.h"

#include <sodium.h>
// For the MSG_* flag values only: every socket call goes through Io.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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
// held and queued are 32-bit in the state.
static_assert(ReceiveSide::staging_capacity < (std::size_t{1} << 31));

constexpr int kQuiet = MSG_DONTWAIT;
// Direct reads of at most this many bytes, with nothing held, go through the stack.
constexpr std::size_t kScratch = 1024;

// The fields before the buffers; the buffers themselves are left untouched.
void reset_fields(ReceiveState& state, int rcvlowat) {
    state.failure = StoredFailure();
    state.held = 0;
    state.queued = 0;
    state.rcvlowat = rcvlowat;
    state.last_err = 0;
    state.alert_taken = false;
    state.eof = false;
    state.truncated = false;
    state.cache.filled(0);
}

}  // namespace

Status ReceiveSide::init(ReceiveState& state, const record::SuiteParams& suite, ByteView secret,
                         std::uint64_t seq, record::OpenLimits limits, int rcvlowat) {
    reset_fields(state, rcvlowat);
    return RecordOpener::init(state.open, suite, secret, seq, limits);
}

void ReceiveSide::wipe(ReceiveState& state) {
    RecordOpener::wipe(state.open);
    state.cache.clear();
    sodium_memzero(state.staging, std::min<std::size_t>(state.held, sizeof state.staging));
    reset_fields(state, state.rcvlowat);
}

void ReceiveSide::Wipe::operator()(ReceiveState* state) const {
    wipe(*state);
    delete state;
}

ReceiveSide::ReceiveSide(int fd, ReceiveState& state)
    : state_(&state), fd_(fd), opener_(state.open) {}

ReceiveSide::ReceiveSide(int fd, RecordOpener opener, int rcvlowat)
    : owned_(new ReceiveState), state_(owned_.get()), fd_(fd), opener_(std::move(opener)) {
    reset_fields(*state_, rcvlowat);
    opener_.move_to(state_->open);
}

ReceiveSide::~ReceiveSide() = default;

const ReceiveFailure* ReceiveSide::last_failure() const {
    if (state_->failure.err == 0) return nullptr;
    static_cast<StoredFailure&>(failure_copy_) = state_->failure;
    failure_copy_.reason = record::reason_text(state_->failure.code);
    return &failure_copy_;
}

Alert ReceiveSide::take_alert() {
    if (state_->failure.err == 0 || state_->alert_taken) return Alert::none;
    state_->alert_taken = true;
    return state_->failure.alert;
}

sys::Ret<ssize_t> ReceiveSide::read(Io& io, MutableByteView out, int flags) {
    if ((flags & MSG_OOB) != 0) return sys::fail<ssize_t>(EINVAL);
    if (state_->failure.err != 0) return sys::fail<ssize_t>(state_->failure.err);
    if (state_->eof || out.empty()) return {0, 0};
    if (buffered() == 0 && (flags & (MSG_PEEK | MSG_TRUNC)) != 0) {
        const Step step = load_head(io);
        if (step != Step::ok) return finish(io, step, 0);
    }
    if (buffered() > 0) return serve_cache(io, out, flags);
    return direct(io, out);
}

std::size_t ReceiveSide::ready(Io& io) {
    if (state_->failure.err != 0 || state_->eof) return 0;
    if (buffered() == 0) (void)load_head(io);  // blocked or failed: nothing ready; read reports it
    sync_rcvlowat(io);
    return buffered();
}

// The direct path: complete records are opened straight into `out`; a head record whose
// plaintext may not fit goes through the cache when nothing was delivered yet.
sys::Ret<ssize_t> ReceiveSide::direct(Io& io, MutableByteView out) {
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
        if (state_->held >= record::header_size) {
            const RecordHead head = RecordOpener::inspect(staged());
            if (head.status == OpenStatus::fatal) return fail(ECONNRESET, head.alert, head.code);
            if (head.plaintext_bound > space) return Step::too_big;
        }
        // state_->held <= space + 22 here: a held header announces a record that fits, so its
        // prefix is shorter than space + 22; a prefix without a header is shorter than 5.
        const std::size_t want =
            std::min(space + kOverhead - state_->held, staging_capacity - state_->held);
        if (state_->held == 0 && want <= kScratch) {
            // A small read goes through the stack, so staging's pages are touched only when a
            // prefix stays held.
            std::uint8_t scratch[kScratch];
            const auto r = recv_some(io, scratch, want, kQuiet);
            if (r.value <= 0) return r.value == 0 ? on_fin() : stopped(r);
            const std::size_t got = static_cast<std::size_t>(r.value);
            std::size_t used = 0;
            const Step step = open_records(ByteView(scratch, got), out, filled, used);
            std::memcpy(state_->staging, scratch + used, got - used);
            state_->held = static_cast<std::uint32_t>(got - used);
            if (step != Step::ok) return step;
            if (got < want) return Step::blocked;  // queue drained
            continue;
        }
        const auto r = recv_some(io, state_->staging + state_->held, want, kQuiet);
        if (r.value <= 0) return r.value == 0 ? on_fin() : stopped(r);
        state_->held += static_cast<std::uint32_t>(r.value);
        const Step step = open_staged(out, filled);
        if (step != Step::ok) return step;
        if (static_cast<std::size_t>(r.value) < want) return Step::blocked;  // queue drained
    }
    return Step::ok;
}

// Opens every complete record in staging into out[filled..]; keeps the partial one.
ReceiveSide::Step ReceiveSide::open_staged(MutableByteView out, std::size_t& filled) {
    std::size_t used = 0;
    const Step step = open_records(staged(), out, filled, used);
    std::memmove(state_->staging, state_->staging + used, state_->held - used);
    state_->held -= static_cast<std::uint32_t>(used);
    return step;
}

// Opens every complete record at the start of `records` into out[filled..]; `used` is what they
// took (the partial record after them is the caller's to keep).
ReceiveSide::Step ReceiveSide::open_records(ByteView records, MutableByteView out,
                                            std::size_t& filled, std::size_t& used) {
    Step step = Step::ok;
    while (step == Step::ok) {
        const ByteView in = records.subspan(used);
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
                state_->eof = true;
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
    return step;
}

// Opens the head record into the cache, consuming the non-data records before it. Everything of
// the record but its last byte is read into staging (the kernel queue is then empty whenever the
// record is incomplete, so receive-memory pressure, which makes TCP report readable below the
// low-water mark, cannot make a caller spin); the last byte is peeked and stays queued until
// the cache drains.
ReceiveSide::Step ReceiveSide::load_head(Io& io) {
    while (true) {
        if (const Step step = read_header(io); step != Step::ok) return step;
        const RecordHead head = RecordOpener::inspect(staged());
        if (head.status == OpenStatus::fatal) return fail(ECONNRESET, head.alert, head.code);
        if (state_->held >= head.record_size)
            return fail(ECONNRESET, Alert::internal_error, record::Reason::whole_record_held);
        const std::size_t last = head.record_size - 1;
        if (state_->held < last) {
            const auto r =
                recv_some(io, state_->staging + state_->held, last - state_->held, kQuiet);
            if (r.value <= 0) return r.value == 0 ? on_fin() : stopped(r);
            state_->held += static_cast<std::uint32_t>(r.value);
            if (state_->held < last) return Step::blocked;
        }
        // Without peeking (a sandboxed process) the last byte is read too: poll then learns of
        // the cached plaintext from the shim, not from the kernel (shim/hooks/readiness.cc).
        const bool peek = io.can_peek();
        const auto r = recv_some(io, state_->staging + last, 1, (peek ? MSG_PEEK : 0) | kQuiet);
        if (r.value <= 0) return r.value == 0 ? on_fin() : stopped(r);
        const std::size_t rest = peek ? 1 : 0;  // the last byte, still queued

        const OpenOutcome o =
            opener_.open(ByteView(state_->staging, head.record_size), state_->cache.space());
        state_->held = 0;
        switch (o.status) {
            case OpenStatus::data:
                state_->cache.filled(o.plaintext);
                state_->queued = static_cast<std::uint32_t>(rest);
                return Step::ok;
            case OpenStatus::discarded:
                if (const Step step = drop_queued(io, rest); step != Step::ok) return step;
                continue;
            case OpenStatus::close_notify:
                state_->eof = true;
                (void)drop_queued(io, rest);
                return Step::eof;
            case OpenStatus::fatal:  // left queued: the fd stays readable for the error
                return fail(o);
            case OpenStatus::need_more:
            case OpenStatus::need_buffer:
                break;
        }
        return fail(ECONNRESET, Alert::internal_error, record::Reason::cache_open_failed);
    }
}

// Takes the 5-byte header of the head record into staging (consumed: the shim may hold a
// prefix).
ReceiveSide::Step ReceiveSide::read_header(Io& io) {
    if (state_->held >= record::header_size) return Step::ok;
    const auto r =
        recv_some(io, state_->staging + state_->held, record::header_size - state_->held, kQuiet);
    if (r.value <= 0) return r.value == 0 ? on_fin() : stopped(r);
    state_->held += static_cast<std::uint32_t>(r.value);
    return state_->held >= record::header_size ? Step::ok : Step::blocked;
}

// Discards n queued bytes (the rest of a record already opened) without copying them.
ReceiveSide::Step ReceiveSide::drop_queued(Io& io, std::size_t n) {
    while (n > 0) {
        const auto r = recv_some(io, nullptr, n, MSG_TRUNC | kQuiet);
        if (r.value < 0 && r.err != EAGAIN)
            return fail(r.err, Alert::none, record::Reason::discard_failed);
        if (r.value <= 0)
            return fail(ECONNRESET, Alert::internal_error, record::Reason::queued_bytes_vanished);
        n -= std::min(n, static_cast<std::size_t>(r.value));
    }
    return Step::ok;
}

sys::Ret<ssize_t> ReceiveSide::serve_cache(Io& io, MutableByteView out, int flags) {
    const bool peek = (flags & MSG_PEEK) != 0;
    std::size_t n = 0;
    if ((flags & MSG_TRUNC) != 0) {
        n = std::min(out.size(), state_->cache.available());  // out's storage is not touched
        if (!peek) state_->cache.consume(n);
    } else {
        n = state_->cache.take(out, peek);
    }
    Step step = Step::ok;
    if (state_->cache.empty()) {
        step = drop_queued(io, state_->queued);
        state_->queued = 0;
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
            return sys::fail<ssize_t>(state_->failure.err);
        case Step::error:
            return sys::fail<ssize_t>(state_->last_err);
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
    state_->last_err = r.err;
    return Step::error;
}

ReceiveSide::Step ReceiveSide::on_fin() {
    if (state_->held > 0) return fail(ECONNRESET, Alert::none, record::Reason::fin_inside_record);
    state_->eof = true;
    state_->truncated = true;
    return Step::eof;
}

ReceiveSide::Step ReceiveSide::fail(int err, Alert alert, record::Reason reason) {
    if (state_->failure.err == 0) {
        state_->failure.err = err;
        state_->failure.alert = alert;
        state_->failure.code = reason;
    }
    return Step::failed;
}

ReceiveSide::Step ReceiveSide::fail(const OpenOutcome& o) {
    if (state_->failure.err == 0) {
        state_->failure.err = ECONNRESET;
        state_->failure.alert = o.alert;
        state_->failure.peer_alert = o.peer_alert;
        state_->failure.peer_ended = o.peer_ended;
        state_->failure.code = o.code;
    }
    return Step::failed;
}

ByteView ReceiveSide::staged() const {
    return ByteView(state_->staging, state_->held);
}

// The queued bytes that make the next read able to deliver something (DESIGN I2).
int ReceiveSide::wanted_rcvlowat() const {
    if (state_->failure.err != 0 || state_->eof || buffered() > 0) return 1;
    if (state_->held < record::header_size)
        return static_cast<int>(record::header_size - state_->held);
    const RecordHead head = RecordOpener::inspect(staged());
    if (head.status != OpenStatus::data || state_->held >= head.record_size) return 1;
    return static_cast<int>(head.record_size - state_->held);
}

void ReceiveSide::sync_rcvlowat(Io& io) {
    const int want = wanted_rcvlowat();
    if (want == state_->rcvlowat) return;
    while (true) {
        const auto r = io.set_rcvlowat(fd_, want);
        if (r.value < 0 && r.err == EINTR) continue;
        state_->rcvlowat = r.value < 0 ? 0 : want;  // unknown after a failure: set again next time
        return;
    }
}

}  // namespace sealsock
