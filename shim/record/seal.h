// The sending half of the TLS 1.3 record layer: plaintext in, protected records out.
//
// Pure: no syscalls, no clock (callers pass the time), no allocation. A RecordSealer writes whole
// records only; the caller owns the output buffer and whatever of it the kernel did not take.
// Once a call fails (crypto failure, sequence exhausted) the sealer refuses every later call.
//
// State and view (see traffic.h). All that changes as records are sealed (the keys, the sequence
// number, the rotation counters, a scheduled KeyUpdate, the failed flag) lives in a SealState:
// standard-layout, trivially copyable, no pointers, 160 bytes, for shared memory (DESIGN I5). A
// RecordSealer built over a SealState is a view with one per-process cache, the cipher context
// for the key in force; several views over one state (in this process or in processes that map
// it, at any address) seal one record stream with consecutive sequence numbers, and a KeyUpdate
// sealed through one view is followed by the others. create() makes an owning sealer.
//
// Thread-safety: none; one SealState per session, used under the session's send lock whichever
// view seals.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "record/suite.h"
#include "record/traffic.h"
#include "record/wire.h"

namespace sealsock::record {

// When the sending key is rotated with a KeyUpdate. Zero means "no limit of this kind"; the
// suite's record limit (RFC 8446 5.5) always applies.
struct RotationPolicy {
    std::uint64_t max_records = 0;
    std::uint64_t max_bytes = 0;
    std::uint64_t max_seconds = 0;
};

struct SealOutcome {
    std::size_t consumed = 0;  // plaintext bytes taken from the input
    std::size_t written = 0;   // record bytes written to the output
    bool ok = true;            // false: the sealer failed and is unusable
};

// Bytes of records needed to seal `plaintext` bytes of application data (no KeyUpdate included).
std::size_t sealed_size(std::size_t plaintext);

// A sealer's state in shared-memory form (see the header comment).
struct SealState {
    TrafficState traffic;
    RotationPolicy policy;
    std::uint64_t record_limit;  // records per key, the suite's and the policy's
    std::uint64_t key_bytes;     // plaintext bytes sealed under the current key
    std::uint64_t key_since;     // when the current key was installed
    bool update_scheduled;
    bool ask_peer;
    bool failed;
};
static_assert(std::is_standard_layout_v<SealState> && std::is_trivially_copyable_v<SealState>);
static_assert(sizeof(SealState) <= 160);

class RecordSealer {
  public:
    // Fills `state` (any contents before, zeroed memory included): `secret` is this side's
    // application traffic secret, `seq` the next sequence number, `now` the current time in
    // seconds (any monotonic origin). On failure the state is wiped and seals nothing.
    static Status init(SealState& state, const SuiteParams& suite, ByteView secret,
                       std::uint64_t seq, RotationPolicy policy, std::uint64_t now);
    // Wipes the keys (sodium_memzero); the state then refuses to seal, as after a failure.
    static void wipe(SealState& state);

    // A view over `state`, which must outlive it.
    explicit RecordSealer(SealState& state);

    // An owning sealer: init() into a state of its own, wiped when the sealer goes.
    static Result<RecordSealer> create(const SuiteParams& suite, ByteView secret, std::uint64_t seq,
                                       RotationPolicy policy, std::uint64_t now);

    // Copies the state into `target` and makes this sealer a view over it, keeping its cipher
    // context (no key derivation). An owned state is wiped and freed.
    void move_to(SealState& target);

    // Seals as much of `data` as fits into `out` as application-data records of at most 2^14
    // plaintext bytes each, first sending a KeyUpdate if one is due. Writes whole records only.
    SealOutcome seal_data(ByteView data, MutableByteView out, std::uint64_t now);

    // Sends a due KeyUpdate (scheduled, owed to the peer, or demanded by the policy) now, without
    // data. Returns the record's size, or 0 when none is due or it does not fit.
    SealOutcome flush_key_update(MutableByteView out, std::uint64_t now);

    // Seals one record of `type` carrying `content` (at most 2^14 bytes). Returns its size, or 0
    // when it does not fit in `out` (nothing consumed) or sealing failed (see failed()).
    std::size_t seal_record(ContentType type, ByteView content, MutableByteView out);

    // An alert record (close_notify, or a fatal alert before closing).
    std::size_t seal_alert(Alert alert, MutableByteView out);

    // Schedules a KeyUpdate before the next record of data. `ask_peer` sets update_requested so
    // the peer rotates its key too. Answering the peer's request uses ask_peer = false.
    void schedule_key_update(bool ask_peer);

    [[nodiscard]] bool key_update_due(std::uint64_t now) const;
    [[nodiscard]] bool failed() const { return state_->failed; }
    [[nodiscard]] std::uint64_t sequence() const { return traffic_.sequence(); }
    [[nodiscard]] std::uint64_t generation() const { return traffic_.generation(); }
    // nullptr once the keys are wiped.
    [[nodiscard]] const SuiteParams* suite() const { return traffic_.suite(); }
    [[nodiscard]] const SealState& state() const { return *state_; }

  private:
    struct Wipe {
        void operator()(SealState* state) const;
    };

    [[nodiscard]] std::size_t send_key_update(MutableByteView out, std::uint64_t now);

    std::unique_ptr<SealState, Wipe> owned_;  // set for an owning sealer only
    SealState* state_;
    Traffic traffic_;  // a view over state_->traffic
};

}  // namespace sealsock::record
