// The sending half of one sealed connection: the program's plaintext in, whole TLS 1.3 records
// out to the kernel, and the tail of a record the kernel took only in part (DESIGN I3).
//
// Buffer ownership. Each send state has one output buffer (inline, reused: no allocation per
// record). Records are sealed straight from the caller's bytes into it and sent from it. A sealed
// record is committed: its nonce is spent, so it is sent exactly once, whole. Whatever the kernel
// did not take (the tail) stays in the buffer and goes out first, before anything else: by the next
// write(), by flush() (the background flusher, when the socket turns writable), or ahead of
// close_notify() and send_alert(). The buffer holds ciphertext only.
//
// What write() reports. The number of plaintext bytes accepted: sealed, and either in the kernel
// or in the tail. Bytes are never reported that were not sealed, and bytes that were sealed are
// never reported as not written (the program would write them again and the peer would receive
// them twice under two nonces). Hence:
//   - a pending tail is sent first; if the kernel refuses it (EAGAIN, EINTR, EPIPE, ...) nothing
//     of `data` is accepted and write() fails with that errno. {-1, EAGAIN} therefore means the
//     kernel really is full (the tail is still pending);
//   - then up to kChunk plaintext bytes are sealed per seal_data() call and sent, chunk after
//     chunk, until `data` is used up or a send does not complete. A chunk whose send fails with a
//     transient error (EAGAIN, EINTR, ENOBUFS, ENOMEM) after sealing is still accepted: it is the
//     tail now. So a nonblocking write may accept up to one chunk more than the kernel holds;
//   - a chunk whose send fails with any other errno (EPIPE, ECONNRESET, ...) before a byte of it
//     left is dropped, never to be sent, and write() reports the bytes of the earlier chunks, or
//     the errno when there were none. The send side is then broken: it never sends again (the
//     peer would see a gap in the sequence numbers), and every later call asks the kernel with a
//     zero-length send so the errno (and SIGPIPE) are the kernel's own, falling back to the
//     recorded errno when the kernel sees no error.
// errno mapping: the kernel's errno passes through unchanged; EIO when the sealer has failed
// (crypto failure, sequence numbers exhausted: DESIGN I7, fail closed); EPIPE after
// close_notify() or send_alert() (the kernel's own, with SIGPIPE per the flags, once the socket is
// shut down); EOPNOTSUPP for MSG_OOB (out-of-band bytes cannot be sealed).
//
// Flags. The program's MSG_DONTWAIT, MSG_NOSIGNAL and MSG_MORE are passed to every send() of the
// call (the tail included); other flags are dropped (MSG_ZEROCOPY would let the kernel read a
// buffer this class reuses). MSG_NOSIGNAL is never added by write(): a program that uses write(2)
// or send(2) without it gets SIGPIPE from the kernel exactly as on a plain socket; the hook for
// write(2) passes 0. flush(), close_notify() and send_alert() always use
// MSG_DONTWAIT | MSG_NOSIGNAL: they run for the background flusher, close(2) and shutdown(2),
// none of which may block or raise SIGPIPE.
//
// Blocking sockets. Blocking versus nonblocking is the caller's business (O_NONBLOCK on the open
// file, or MSG_DONTWAIT): a blocking socket makes the kernel's send() block, and write() keeps
// sending until `data` is used up, so a blocking write leaves a tail only when a signal or
// SO_SNDTIMEO cut a send short. The background flusher sends such a tail when the socket turns
// writable; a caller that must see the tail gone before it returns (close(2) with SO_LINGER,
// shutdown(SHUT_WR) before its FIN) polls POLLOUT and calls flush() until it returns 0.
//
// State and view. Everything that changes (the sealer's keys and counters, the buffer with its
// tail, whether the side is broken or closed) lives in a SendState: standard-layout, trivially
// copyable, no pointers, fixed size (about 64 KiB, nearly all of it the buffer), so it can live in
// MAP_SHARED memory shared by a forked child and mapped again, at another address, by a new
// program image after exec (DESIGN I5). A SendSide constructed over a SendState is a view: it
// keeps the fd (the socket's number in this process) and the sealer's per-process cipher context.
// Views over one state, used one at a time under the session's send lock, behave as one SendSide:
// their writes form one record stream with consecutive sequence numbers, a tail left by one is
// sent first by the next, a KeyUpdate sealed by one is followed by all. The constructor from a
// RecordSealer makes an owning SendSide (its state on the heap, wiped when it goes).
//
// Pages. The buffer comes first and the fields last; init() writes only the fields. A write of
// at most kSmallWrite bytes (and an alert into an empty buffer) is sealed at the end of the
// buffer, next to the fields, so interactive traffic touches only the pages the fields share;
// larger writes fill the buffer from its start. When idle() (no tail) the buffer holds nothing,
// and zero-filled buffer memory is a valid idle state, so the owner may give the whole pages of
// `buffer` back (MADV_REMOVE).
//
// Thread-safety: none. The session calls every method under its send lock. write() takes no lock
// and allocates nothing.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "record/seal.h"
#include "record/wire.h"
#include "session/io.h"
#include "sys/ret.h"

namespace sealsock {

// The send side in shared-memory form: 65,856 bytes (see the header comment). The fields are the
// SendSide's; an owner only calls init(), wipe() and idle() and may release the whole pages of
// `buffer` when idle.
struct SendState {
    // Plaintext sealed per seal_data() call: four full records.
    static constexpr std::size_t kChunk = 4 * record::max_plaintext;
    // A KeyUpdate record carries a 5-byte handshake message, an alert 2 bytes.
    static constexpr std::size_t kKeyUpdateRecord = 5 + record::record_overhead;
    static constexpr std::size_t kAlertRecord = 2 + record::record_overhead;
    // seal_data() writes at most this much: kChunk in full records and a KeyUpdate.
    static constexpr std::size_t kSealRoom =
        kChunk / record::max_plaintext * record::max_sealed_record + kKeyUpdateRecord;
    // A whole tail can always be followed by one alert.
    static constexpr std::size_t kCapacity = kSealRoom + kAlertRecord;

    // A write of at most kSmallWrite bytes, and an alert into an empty buffer, are sealed at the
    // end of the buffer (room for the record, a KeyUpdate before it and an alert after it), next
    // to the fields: with the fields after the buffer, interactive traffic touches no page but
    // the fields' own (shared.h places that page).
    static constexpr std::size_t kSmallWrite = 2048;
    static constexpr std::size_t kSmallRoom =
        kKeyUpdateRecord + kSmallWrite + record::record_overhead + kAlertRecord;
    // True when the buffer holds nothing (no tail): its pages may be released.
    [[nodiscard]] bool idle() const { return head == end; }

    // The buffer first, so that its last page is the fields' page and the others are touched
    // only by writes larger than kSmallWrite.
    std::uint8_t buffer[kCapacity];  // ciphertext only
    record::SealState seal;
    std::uint32_t head;  // the tail is buffer[head, end)
    std::uint32_t end;
    int broken;  // errno that made the send side drop a sealed chunk; 0 while whole
    bool closed;
};
static_assert(std::is_standard_layout_v<SendState> && std::is_trivially_copyable_v<SendState>);
static_assert(sizeof(SendState) <= 65856);
static_assert(SendState::kSmallRoom < SendState::kCapacity);

class SendSide {
  public:
    static constexpr std::size_t kChunk = SendState::kChunk;

    // Fills `state` (any contents before, zeroed memory included) for a connection whose write
    // key is `secret` at sequence number `seq`, rotating by `policy`; `now` as for write(). Writes
    // only the fields, never the buffer. On failure the state is wiped (writes fail with EIO).
    static Status init(SendState& state, const record::SuiteParams& suite, ByteView secret,
                       std::uint64_t seq, record::RotationPolicy policy, std::uint64_t now);
    // Wipes the keys and whatever the buffer holds (sodium_memzero); every later write() fails
    // with EIO. The state may then be freed or initialised again.
    static void wipe(SendState& state);

    // A view over `state` (which must outlive it) for the socket `fd` of this process.
    SendSide(int fd, SendState& state);

    // An owning SendSide: `sealer` carries this side's write key, sequence number and rotation
    // policy (RotationPolicy lives in the sealer, which rotates inside seal_data()); its state is
    // moved into a SendState of this side's own.
    SendSide(int fd, record::RecordSealer sealer);

    // write(2) / send(2) of `data` with the program's `flags`; `now` is the time in seconds for
    // time-based rotation. See the header comment for what is returned when.
    sys::Ret<ssize_t> write(Io& io, ByteView data, int flags, std::uint64_t now);

    // Sends the pending tail without blocking. Returns 1 while a tail remains (also when the
    // kernel is full: EAGAIN is not an error here), 0 when none does, or the send's errno.
    sys::Ret<int> flush(Io& io);

    [[nodiscard]] bool has_tail() const { return state_->head < state_->end; }
    // No tail: the state's buffer holds nothing.
    [[nodiscard]] bool idle() const { return state_->idle(); }

    // Seals close_notify after the tail (once; later calls only flush) and sends what it can.
    // Returns like flush(): at 0 the caller may shutdown(SHUT_WR) the socket; at 1 the flusher
    // must send the rest first and then shut down. Later write() calls fail with EPIPE.
    sys::Ret<int> close_notify(Io& io);

    // Seals a fatal `alert` after the tail and sends what it can, best effort (when the receive
    // side failed). Nothing is sent after it: later write() calls fail with EPIPE.
    void send_alert(Io& io, record::Alert alert);
    // The connection failed without an alert to send (the peer's FIN inside a record, its own
    // fatal alert): nothing more goes out, close_notify included, so the peer cannot take the
    // end for a clean one.
    void end_without_close_notify() { state_->closed = true; }

    // The peer sent KeyUpdate with update_requested: our KeyUpdate goes before the next data
    // record (RFC 8446 4.6.3).
    void answer_key_update() { sealer_.schedule_key_update(false); }

    // True after close_notify() or send_alert(): no more data will be sealed.
    [[nodiscard]] bool closed() const { return state_->closed; }
    [[nodiscard]] const record::RecordSealer& sealer() const { return sealer_; }
    [[nodiscard]] SendState& state() { return *state_; }

  private:
    struct Wipe {
        void operator()(SendState* state) const;
    };

    // Sends buffer[head, end) until it is empty (returns 0) or a send fails (returns its errno).
    // Adds the bytes the kernel took to `sent`.
    [[nodiscard]] int drain(Io& io, int flags, std::size_t& sent);
    // Sends whatever of a chunk just sealed the kernel takes; returns 0 when the chunk counts as
    // accepted, else the errno it was dropped for.
    [[nodiscard]] int send_chunk(Io& io, int flags);
    // Fails a call that cannot send: the kernel's errno for a zero-length send, else `err`.
    [[nodiscard]] int refuse(Io& io, int flags, int err);
    [[nodiscard]] bool append_alert(record::Alert alert);
    // Where a small write (or an alert into an empty buffer) is sealed: the buffer's end.
    [[nodiscard]] static std::size_t small_base();

    std::unique_ptr<SendState, Wipe> owned_;  // set for an owning SendSide only
    SendState* state_;
    int fd_;
    record::RecordSealer sealer_;  // a view over state_->seal
};

}  // namespace sealsock
