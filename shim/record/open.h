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
// Thread-safety: none; one RecordOpener per session, used under the session's receive lock.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>

#include <cstddef>
#include <cstdint>

#include "record/post_handshake.h"
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
    const char* reason = "";      // fatal: one human sentence, static storage
};

// What the header at the start of `in` announces.
struct RecordHead {
    OpenStatus status = OpenStatus::need_more;  // need_more, fatal, or data (header valid)
    std::size_t record_size = 0;                // header plus body
    std::size_t plaintext_bound = 0;            // the most plaintext the record can carry
    Alert alert = Alert::none;
    const char* reason = "";
};

struct OpenLimits {
    // Consecutive records that carry no application data (tickets, KeyUpdates, ignored alerts,
    // empty data) accepted before the peer is treated as hostile: a KeyUpdate flood costs a
    // key derivation per record.
    std::uint32_t max_nondata_run = 32;
};

class RecordOpener {
  public:
    // `secret` is the peer's application traffic secret, `seq` its next sequence number.
    static Result<RecordOpener> create(const SuiteParams& suite, ByteView secret, std::uint64_t seq,
                                       OpenLimits limits = {});

    // Checks the 5-byte header at the start of `in`. Static: needs no keys.
    [[nodiscard]] static RecordHead inspect(ByteView in);

    // Handles the first record in `in`. `out` receives application data; for other records its
    // first bytes are used as scratch and wiped again.
    OpenOutcome open(ByteView in, MutableByteView out);

    // True once after the peer sent KeyUpdate with update_requested: the sender owes a KeyUpdate
    // before its next application data (RFC 8446 4.6.3).
    [[nodiscard]] bool take_update_request();

    [[nodiscard]] bool failed() const { return failed_; }
    [[nodiscard]] bool closed() const { return closed_; }
    [[nodiscard]] std::uint64_t sequence() const { return traffic_.sequence(); }
    [[nodiscard]] std::uint64_t generation() const { return traffic_.generation(); }
    [[nodiscard]] const SuiteParams& suite() const { return traffic_.suite(); }

  private:
    RecordOpener(Traffic traffic, OpenLimits limits)
        : traffic_(std::move(traffic)), limits_(limits) {}

    OpenOutcome fatal(Alert alert, const char* reason);
    OpenOutcome non_data(std::size_t consumed);
    OpenOutcome on_application_data(std::size_t consumed, std::size_t size);
    OpenOutcome on_alert(std::size_t consumed, ByteView message);
    OpenOutcome on_handshake(std::size_t consumed, ByteView message);

    Traffic traffic_;
    OpenLimits limits_;
    PostHandshakeParser handshake_;
    std::uint32_t nondata_run_ = 0;
    bool update_requested_ = false;
    bool failed_ = false;
    bool closed_ = false;
};

}  // namespace sealsock::record
