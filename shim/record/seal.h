// The sending half of the TLS 1.3 record layer: plaintext in, protected records out.
//
// Pure: no syscalls, no clock (callers pass the time), no allocation. A RecordSealer writes whole
// records only; the caller owns the output buffer and whatever of it the kernel did not take.
// Once a call fails (crypto failure, sequence exhausted) the sealer refuses every later call.
//
// Thread-safety: none; one RecordSealer per session, used under the session's send lock.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>

#include <cstddef>
#include <cstdint>

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

class RecordSealer {
  public:
    // `secret` is this side's application traffic secret, `seq` the next sequence number,
    // `now` the current time in seconds (any monotonic origin).
    static Result<RecordSealer> create(const SuiteParams& suite, ByteView secret, std::uint64_t seq,
                                       RotationPolicy policy, std::uint64_t now);

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
    [[nodiscard]] bool failed() const { return failed_; }
    [[nodiscard]] std::uint64_t sequence() const { return traffic_.sequence(); }
    [[nodiscard]] std::uint64_t generation() const { return traffic_.generation(); }
    [[nodiscard]] const SuiteParams& suite() const { return traffic_.suite(); }

  private:
    RecordSealer(Traffic traffic, RotationPolicy policy, std::uint64_t now);
    [[nodiscard]] std::size_t send_key_update(MutableByteView out, std::uint64_t now);

    Traffic traffic_;
    RotationPolicy policy_;
    std::uint64_t record_limit_;
    std::uint64_t key_bytes_ = 0;  // plaintext bytes sealed under the current key
    std::uint64_t key_since_ = 0;  // when the current key was installed
    bool update_scheduled_ = false;
    bool ask_peer_ = false;
    bool failed_ = false;
};

}  // namespace sealsock::record
