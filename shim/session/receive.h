// The receiving half of one sealed connection: protected records in the kernel, plaintext out.
//
// DESIGN I2 is the contract: every record whose plaintext the program has not fully received
// keeps at least its last byte in the kernel, so poll/select/epoll on the program's own fd stay
// truthful without interposition. What this class holds besides the kernel queue:
//   - `staging`: a prefix of the head record (never a complete record between calls), and
//     scratch for the ciphertext of complete records while they are opened;
//   - `cache`: the opened plaintext of the head record while it is handed out in parts (its last
//     byte still queued in the kernel until the cache drains).
// Both are allocated on first need, so a connection that never received costs a few words.
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
// Thread-safety: none; used under the session's receive lock. Not for signal handlers on first use
// (allocates); afterwards it neither allocates nor locks.
#pragma once

#include <sealsock/bytes.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "record/open.h"
#include "record/plaintext_cache.h"
#include "record/wire.h"
#include "session/io.h"
#include "sys/ret.h"

namespace sealsock {

// Why the receive side stopped for good. Kept for the audit log and for the send side.
struct ReceiveFailure {
    int err = 0;                                // errno every read now reports (ECONNRESET)
    record::Alert alert = record::Alert::none;  // alert owed to the peer (none: send nothing)
    std::uint8_t peer_alert = 0;                // the peer's alert when it ended the connection
    bool peer_ended = false;                    // the peer sent a fatal alert
    const char* reason = "";                    // one human sentence, static storage
};

class ReceiveSide {
  public:
    // Staging holds two full records, so a large read takes two records per recv.
    static constexpr std::size_t staging_capacity = 2 * record::max_record_size;

    // `fd` is the program's socket; `rcvlowat` the SO_RCVLOWAT value it has now (1 by default).
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
    [[nodiscard]] std::size_t buffered() const { return cache_ ? cache_->available() : 0; }

    // True once after the peer asked for a KeyUpdate (the send side owes one).
    [[nodiscard]] bool take_update_request() { return opener_.take_update_request(); }
    // The alert the send side should send once (fatal outcomes), then Alert::none.
    [[nodiscard]] record::Alert take_alert();

    [[nodiscard]] const ReceiveFailure* last_failure() const {
        return failure_.err != 0 ? &failure_ : nullptr;
    }
    [[nodiscard]] bool at_eof() const { return eof_; }
    // End of file came as a TCP FIN without close_notify (possible truncation: log it).
    [[nodiscard]] bool truncated() const { return truncated_; }
    // Bytes of the head record held here (a prefix; its remainder is still queued).
    [[nodiscard]] std::size_t held() const { return held_; }
    // The SO_RCVLOWAT value last set (0: unknown after a failed setsockopt).
    [[nodiscard]] int rcvlowat() const { return rcvlowat_; }

    // Frees the buffers when they hold nothing (an idle connection then costs a few words).
    void trim();

  private:
    // How a step ended: ok, blocked (EAGAIN), eof, failed (failure_ set), error (a real errno in
    // last_err_), too_big (the head record needs the cache).
    enum class Step : std::uint8_t { ok, blocked, eof, failed, error, too_big };
    struct Staging;

    sys::Ret<ssize_t> direct(Io& io, MutableByteView out);
    Step fill_direct(Io& io, MutableByteView out, std::size_t& filled);
    Step open_staged(MutableByteView out, std::size_t& filled);
    Step stopped(const sys::Ret<ssize_t>& r);
    Step load_head(Io& io);
    Step read_header(Io& io);
    Step drop_queued(Io& io, std::size_t n);
    sys::Ret<ssize_t> serve_cache(Io& io, MutableByteView out, int flags);
    sys::Ret<ssize_t> finish(Io& io, Step step, std::size_t delivered);
    sys::Ret<ssize_t> recv_some(Io& io, void* buf, std::size_t len, int flags);
    Step fail(int err, record::Alert alert, const char* reason);
    Step fail(const record::OpenOutcome& outcome);
    Step on_fin();
    [[nodiscard]] ByteView staged() const;
    bool ensure_staging();
    [[nodiscard]] int wanted_rcvlowat() const;
    void sync_rcvlowat(Io& io);

    int fd_;
    record::RecordOpener opener_;
    std::unique_ptr<Staging> staging_;
    std::unique_ptr<record::PlaintextCache> cache_;
    std::size_t held_ = 0;    // bytes of the head record in staging (a prefix, consumed)
    std::size_t queued_ = 0;  // bytes of the cached record still queued in the kernel
    int rcvlowat_;
    int last_err_ = 0;  // errno of the last recv that stopped a step
    ReceiveFailure failure_;
    bool alert_taken_ = false;
    bool eof_ = false;
    bool truncated_ = false;
};

}  // namespace sealsock
