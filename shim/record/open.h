// The receiving half of the TLS 1.3 record layer: protected records in, an outcome out.
//
// Pure: no syscalls, no allocation. open() takes the bytes received so far (any amount) and
// handles at most the first record in them. Application data is decrypted straight into the
// caller's buffer when it is large enough for the record's plaintext (inspect() tells how large
// that may be); otherwise open() answers need_buffer and the caller opens the record into a
// PlaintextCache and hands it out in parts. Post-handshake messages, KeyUpdate included, are
// handled here. After a fatal outcome every later call is fatal too; after close_notify every
// later call reports close_notify ("Any data received after a closure alert has been received
// MUST be ignored", RFC 8446 6.1).
//
// State and view (see traffic.h). All that changes as records are opened (the keys, the sequence
// number, a post-handshake message split across records, the run of non-data records, a KeyUpdate
// request not yet taken, failed and closed) lives in an OpenState: standard-layout, trivially
// copyable, no pointers, 144 bytes, for shared memory (DESIGN I5). A RecordOpener over an
// OpenState is a view whose only private part is the cipher context for the key in force; views
// over one state, in any process and at any address, open one record stream. create() makes an
// owning opener.
//
// Thread-safety: none; one OpenState per session, used under the session's receive lock whichever
// view opens.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "record/post_handshake.h"
#include "record/reason.h"
#include "record/suite.h"
#include "record/traffic.h"
#include "record/wire.h"

namespace sealsock::record {

enum class OpenStatus : std::uint8_t {
    data,          // `plaintext` bytes of application data are in `out`; `consumed` input used
    need_more,     // less than one record in the input; at least `needed` more bytes are required
    need_buffer,   // the record may carry up to `needed` bytes of plaintext: more than `out` holds
    discarded,     // a record handled here (ticket, KeyUpdate, user_canceled, empty data)
    close_notify,  // the peer closed its side of the connection: end of file
    fatal,         // the connection is over: send `alert` (unless none) and close
};

struct OpenOutcome {
    OpenStatus status = OpenStatus::fatal;
    std::size_t consumed = 0;     // input bytes used: one whole record, or 0
    std::size_t plaintext = 0;    // data: application bytes written to `out`
    std::size_t needed = 0;       // need_more: more input bytes; need_buffer: size of `out`
    Alert alert = Alert::none;    // fatal: the alert to send to the peer
    std::uint8_t peer_alert = 0;  // fatal because the peer sent an alert: its description
    bool peer_ended = false;      // fatal because the peer sent a fatal alert
    Reason code = Reason::none;   // fatal: why, as a code to store
    const char* reason = "";      // fatal: reason_text(code), static storage
};

// What the header at the start of `in` announces.
struct RecordHead {
    OpenStatus status = OpenStatus::need_more;  // need_more, fatal, or data (header valid)
    std::size_t record_size = 0;                // header plus body
    std::size_t plaintext_bound = 0;            // the most plaintext the record can carry
    Alert alert = Alert::none;
    Reason code = Reason::none;
    const char* reason = "";  // reason_text(code)
};

struct OpenLimits {
    // Consecutive records that carry no application data (tickets, KeyUpdates, ignored alerts,
    // empty data) accepted before the peer is treated as hostile: a KeyUpdate flood costs a
    // key derivation per record.
    std::uint32_t max_nondata_run = 32;
};

// An opener's state in shared-memory form (see the header comment).
struct OpenState {
    TrafficState traffic;
    OpenLimits limits;
    PostHandshakeParser handshake;  // a handshake message split across records
    std::uint32_t nondata_run;      // records in a row without application data
    bool update_requested;          // the peer asked for a KeyUpdate; not yet taken
    bool failed;
    bool closed;
};
static_assert(std::is_standard_layout_v<OpenState> && std::is_trivially_copyable_v<OpenState>);
static_assert(sizeof(OpenState) <= 144);

class RecordOpener {
  public:
    // Fills `state` (any contents before, zeroed memory included): `secret` is the peer's
    // application traffic secret, `seq` its next sequence number. On failure the state is wiped
    // and every open() is fatal.
    static Status init(OpenState& state, const SuiteParams& suite, ByteView secret,
                       std::uint64_t seq, OpenLimits limits = {});
    // Wipes the keys (sodium_memzero); every later open() is fatal.
    static void wipe(OpenState& state);

    // A view over `state`, which must outlive it.
    explicit RecordOpener(OpenState& state);

    // An owning opener: init() into a state of its own, wiped when the opener goes.
    static Result<RecordOpener> create(const SuiteParams& suite, ByteView secret, std::uint64_t seq,
                                       OpenLimits limits = {});

    // Copies the state into `target` and makes this opener a view over it, keeping its cipher
    // context. An owned state is wiped and freed.
    void move_to(OpenState& target);

    // Checks the 5-byte header at the start of `in`. Static: needs no keys.
    [[nodiscard]] static RecordHead inspect(ByteView in);

    // Handles the first record in `in`. `out` receives application data; for other records its
    // first bytes are used as scratch and wiped again.
    OpenOutcome open(ByteView in, MutableByteView out);

    // True once after the peer sent KeyUpdate with update_requested: the sender owes a KeyUpdate
    // before its next application data (RFC 8446 4.6.3).
    [[nodiscard]] bool take_update_request();

    [[nodiscard]] bool failed() const { return state_->failed; }
    [[nodiscard]] bool closed() const { return state_->closed; }
    [[nodiscard]] std::uint64_t sequence() const { return traffic_.sequence(); }
    [[nodiscard]] std::uint64_t generation() const { return traffic_.generation(); }
    // nullptr once the keys are wiped.
    [[nodiscard]] const SuiteParams* suite() const { return traffic_.suite(); }
    [[nodiscard]] const OpenState& state() const { return *state_; }

  private:
    struct Wipe {
        void operator()(OpenState* state) const;
    };

    OpenOutcome fatal(Alert alert, Reason reason);
    OpenOutcome non_data(std::size_t consumed);
    OpenOutcome on_application_data(std::size_t consumed, std::size_t size);
    OpenOutcome on_alert(std::size_t consumed, ByteView message);
    OpenOutcome on_handshake(std::size_t consumed, ByteView message);

    std::unique_ptr<OpenState, Wipe> owned_;  // set for an owning opener only
    OpenState* state_;
    Traffic traffic_;  // a view over state_->traffic
};

}  // namespace sealsock::record
