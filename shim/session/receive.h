// The receiving half of one sealed connection: protected records in the kernel, plaintext out.
//
// DESIGN I2 is the contract: every record whose plaintext the program has not fully received
// keeps at least its last byte in the kernel, so poll/select/epoll on the program's own fd stay
// truthful without interposition. What this class holds besides the kernel queue:
//   - `staging`: a prefix of the head record (never a complete record between calls), and
//     scratch for the ciphertext of complete records while they are opened;
//   - `cache`: the opened plaintext of the head record while it is handed out in parts (its last
//     byte still queued in the kernel until the cache drains).
//
// Paths through read():
//   - direct: for a buffer of len, at most len + 22 - held bytes are taken from the kernel. The
//     complete records among them can hold at most len bytes of plaintext (each costs at least
//     22 bytes of header, type byte and tag), so every one is opened straight into the caller's
//     buffer and fully delivered; a partial record at the end is a prefix kept in `staging`,
//     whose last byte is still queued.
//   - cached: when the head record may carry more plaintext than the buffer holds (inspect()),
//     or for MSG_PEEK, MSG_TRUNC and ready(): all of the record but its last byte is read into
//     `staging`, the last byte is peeked (MSG_PEEK), the record is opened into the cache and
//     handed out; the last byte is discarded (MSG_TRUNC, no copy) only when the cache drains.
// Whenever a read answers EAGAIN the kernel queue is empty (everything queued was a prefix of the
// head record and was taken into `staging`), so TCP's readable-below-the-mark cases (receive
// memory pressure, a window under one MSS) cannot make a caller spin on spurious wakes.
// SO_RCVLOWAT is kept at the number of queued bytes that completes the head record (1 while
// cached plaintext remains; header_size minus held bytes while the next header is unknown). The
// last value set is remembered and set again only when it changes: any setsockopt at or below the
// queued amount fires a new edge.
//
// Never blocks: every recv is MSG_DONTWAIT. Blocking, timeouts (SO_RCVTIMEO), signals and the
// MSG_WAITALL loop are the caller's job (see read()).
//
// State and view. Everything that changes (the opener's keys and counters, staging with the held
// prefix, the cache, the bytes of the cached record still queued, the SO_RCVLOWAT value last set,
// the failure, end of file) lives in a ReceiveState: standard-layout, trivially copyable, no
// pointers (a failure's reason is a record::Reason code), fixed size (about 50 KiB, nearly all of
// it the two buffers), so it can live in MAP_SHARED memory shared by a forked child and mapped
// again, at another address, by a new program image after exec (DESIGN I5). A ReceiveSide built
// over a ReceiveState is a view: it keeps the fd (the socket's number in this process), the
// opener's per-process cipher context and a copy of the failure with its sentence. Views over one
// state, used one at a time under the session's receive lock, behave as one ReceiveSide: a prefix
// held or a record cached by one is continued by the next. The constructor from a RecordOpener
// makes an owning ReceiveSide (its state on the heap, wiped when it goes).
//
// Pages. init() writes only the fields before the buffers; a buffer page is touched only when
// bytes are received or opened into it. A small direct read (at most 1 KiB of records, nothing
// held) goes through the stack, and only a partial record's prefix is copied into staging, so
// small records leave staging's pages untouched. When idle() (no prefix held, nothing cached) the
// buffers hold nothing, and zero-filled buffer memory is a valid idle state, so the owner may give
// back the pages from `cache` to the end of the state (MADV_REMOVE).
//
// Thread-safety: none; used under the session's receive lock. Neither allocates nor locks.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "record/open.h"
#include "record/plaintext_cache.h"
#include "record/reason.h"
#include "record/wire.h"
#include "session/io.h"
#include "sys/ret.h"

namespace sealsock {

// Why the receive side stopped for good, as stored in the state. Kept for the audit log and for
// the send side.
struct StoredFailure {
    int err = 0;                                 // errno every read now reports (ECONNRESET)
    record::Alert alert = record::Alert::none;   // alert owed to the peer (none: send nothing)
    std::uint8_t peer_alert = 0;                 // the peer's alert when it ended the connection
    bool peer_ended = false;                     // the peer sent a fatal alert
    record::Reason code = record::Reason::none;  // why; record::reason_text() has the sentence
};

// The same with its sentence, as last_failure() hands it out.
struct ReceiveFailure : StoredFailure {
    const char* reason = "";  // reason_text(code): one human sentence, static storage
};

// The receive side in shared-memory form: 50,096 bytes (see the header comment). The fields are
// the ReceiveSide's; an owner only calls init(), wipe() and idle() and may release the pages from
// `cache` to the end when idle.
struct ReceiveState {
    // Staging holds two full records, so a large read takes two records per recv.
    static constexpr std::size_t staging_capacity = 2 * record::max_record_size;

    // True when neither buffer holds anything (no prefix held, nothing cached).
    [[nodiscard]] bool idle() const { return held == 0 && cache.empty(); }

    record::OpenState open;
    StoredFailure failure;  // err == 0 while the side works
    std::uint32_t held;     // bytes of the head record in staging (a prefix, consumed)
    std::uint32_t queued;   // bytes of the cached record still queued in the kernel
    int rcvlowat;           // the SO_RCVLOWAT value last set (0: unknown)
    int last_err;           // errno of the last recv that stopped a step
    bool alert_taken;
    bool eof;
    bool truncated;
    // The buffers, last, so that their pages are the state's tail.
    record::PlaintextCacheState cache;
    std::uint8_t staging[staging_capacity];  // ciphertext only
};
static_assert(std::is_standard_layout_v<ReceiveState> &&
              std::is_trivially_copyable_v<ReceiveState>);
static_assert(sizeof(ReceiveState) <= 50096);

class ReceiveSide {
  public:
    static constexpr std::size_t staging_capacity = ReceiveState::staging_capacity;

    // Fills `state` (any contents before, zeroed memory included) for a connection whose read
    // key is `secret` at sequence number `seq`; `rcvlowat` is the socket's SO_RCVLOWAT now (1 by
    // default). Writes only the fields before the buffers. On failure the state is wiped.
    static Status init(ReceiveState& state, const record::SuiteParams& suite, ByteView secret,
                       std::uint64_t seq, record::OpenLimits limits = {}, int rcvlowat = 1);
    // Wipes the keys and whatever the buffers hold (sodium_memzero); every later read() fails
    // (ECONNRESET). The state may then be freed or initialised again.
    static void wipe(ReceiveState& state);

    // A view over `state` (which must outlive it) for the socket `fd` of this process.
    ReceiveSide(int fd, ReceiveState& state);

    // An owning ReceiveSide: `fd` is the program's socket; `rcvlowat` the SO_RCVLOWAT value it
    // has now (1 by default); the opener's state is moved into a ReceiveState of this side's own.
    ReceiveSide(int fd, record::RecordOpener opener, int rcvlowat = 1);
    ~ReceiveSide();
    ReceiveSide(const ReceiveSide&) = delete;
    ReceiveSide& operator=(const ReceiveSide&) = delete;

    // recv(2) semantics for up to out.size() plaintext bytes. Returns the count, 0 at end of file,
    // or {-1, errno}:
    //   EAGAIN      nothing can be delivered now (also the answer to a spurious wake: the kernel
    //               was readable but the head record is not complete). A blocking caller polls
    //               for POLLIN and calls again; SO_RCVLOWAT makes that poll wake when a record
    //               completes, at FIN or at RST.
    //   ECONNRESET  a fatal record outcome (bad record, peer's fatal alert, FIN in the middle of
    //               a record): sticky, details in last_failure(). If plaintext was already
    //               delivered in the same call, the count is returned and the error comes next.
    //   ENOMEM      a buffer could not be allocated (nothing consumed).
    //   EINVAL      MSG_OOB (TLS carries no urgent data).
    //   any other   a real errno from recv(2), passed through unchanged (not sticky).
    // End of file (0) is the peer's close_notify, and also a FIN at a record boundary without one
    // (what Go's crypto/tls does; truncated() tells the log). A zero-length `out` returns 0.
    // Flags: MSG_PEEK returns at most the rest of the head record (opened into the cache, so the
    // next read returns the same bytes). MSG_TRUNC discards up to out.size() bytes without copying
    // (out may be empty of storage). MSG_DONTWAIT changes nothing here (never blocks).
    // MSG_WAITALL is the caller's loop: call again on out.subspan(got) after each poll until full,
    // 0 or an error; with MSG_PEEK it cannot be met beyond the head record (a short peek).
    // Bytes of `out` past the returned count may be overwritten: records are opened straight into
    // it before their inner content type is known, and a non-data or failed record's bytes are
    // then wiped to zero, so no plaintext of theirs is left behind.
    sys::Ret<ssize_t> read(Io& io, MutableByteView out, int flags);

    // FIONREAD/SIOCINQ: plaintext bytes a read can deliver now without blocking. This is the rest
    // of the head record (opened into the cache if needed), a lower bound when more records are
    // queued; 0 when none is complete, at end of file or after a failure. Non-data records at the
    // head are consumed on the way. Updates SO_RCVLOWAT like read().
    std::size_t ready(Io& io);
    // Opened plaintext held now; no syscall.
    [[nodiscard]] std::size_t buffered() const { return state_->cache.available(); }

    // True once after the peer asked for a KeyUpdate (the send side owes one).
    [[nodiscard]] bool take_update_request() { return opener_.take_update_request(); }
    // The alert the send side should send once (fatal outcomes), then Alert::none.
    [[nodiscard]] record::Alert take_alert();

    // The failure with its sentence, or nullptr while the side works. The pointer is this view's
    // copy, valid until the next call on this view.
    [[nodiscard]] const ReceiveFailure* last_failure() const;
    [[nodiscard]] bool at_eof() const { return state_->eof; }
    // End of file came as a TCP FIN without close_notify (possible truncation: log it).
    [[nodiscard]] bool truncated() const { return state_->truncated; }
    // Bytes of the head record held here (a prefix; its remainder is still queued).
    [[nodiscard]] std::size_t held() const { return state_->held; }
    // The SO_RCVLOWAT value last set (0: unknown after a failed setsockopt).
    [[nodiscard]] int rcvlowat() const { return state_->rcvlowat; }
    // Neither buffer holds anything: the owner may release their pages.
    [[nodiscard]] bool idle() const { return state_->idle(); }
    [[nodiscard]] ReceiveState& state() { return *state_; }

  private:
    // How a step ended: ok, blocked (EAGAIN), eof, failed (failure set), error (a real errno in
    // last_err), too_big (the head record needs the cache).
    enum class Step : std::uint8_t { ok, blocked, eof, failed, error, too_big };
    struct Wipe {
        void operator()(ReceiveState* state) const;
    };

    sys::Ret<ssize_t> direct(Io& io, MutableByteView out);
    Step fill_direct(Io& io, MutableByteView out, std::size_t& filled);
    Step open_staged(MutableByteView out, std::size_t& filled);
    Step open_records(ByteView records, MutableByteView out, std::size_t& filled,
                      std::size_t& used);
    Step stopped(const sys::Ret<ssize_t>& r);
    Step load_head(Io& io);
    Step read_header(Io& io);
    Step drop_queued(Io& io, std::size_t n);
    sys::Ret<ssize_t> serve_cache(Io& io, MutableByteView out, int flags);
    sys::Ret<ssize_t> finish(Io& io, Step step, std::size_t delivered);
    sys::Ret<ssize_t> recv_some(Io& io, void* buf, std::size_t len, int flags);
    Step fail(int err, record::Alert alert, record::Reason reason);
    Step fail(const record::OpenOutcome& outcome);
    Step on_fin();
    [[nodiscard]] ByteView staged() const;
    [[nodiscard]] int wanted_rcvlowat() const;
    void sync_rcvlowat(Io& io);

    std::unique_ptr<ReceiveState, Wipe> owned_;  // set for an owning ReceiveSide only
    ReceiveState* state_;
    int fd_;
    record::RecordOpener opener_;          // a view over state_->open
    mutable ReceiveFailure failure_copy_;  // what last_failure() points to
};

}  // namespace sealsock
