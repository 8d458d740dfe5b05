// Streaming parser for the handshake messages a TLS 1.3 peer may send after the handshake.
//
// sealsock accepts exactly two: NewSessionTicket (parsed, then discarded: resumption is the
// agent's business and it never asks for it) and KeyUpdate. Messages may be split across records
// or several may share one record, so the parser keeps a few bytes of state and never buffers a
// message. Anything else is unexpected_message (RFC 8446 4.6: post-handshake CertificateRequest
// is only legal if the client offered post_handshake_auth, which the agent never does).
//
// The parser is its own state: standard-layout, trivially copyable, no pointers, and all zero is
// "between messages", so it sits inside a RecordOpener's OpenState in shared memory as it is.
//
// Thread-safety: none; part of one session's receive state. No allocation.
#pragma once

#include <sealsock/bytes.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "record/reason.h"
#include "record/wire.h"

namespace sealsock::record {

class PostHandshakeParser {
  public:
    struct Step {
        std::size_t consumed = 0;  // bytes of the input used
        bool key_update = false;   // a complete KeyUpdate ended at `consumed`
        bool update_requested = false;
        Alert alert = Alert::none;  // not none: the input is invalid; stop
        Reason reason = Reason::none;
    };

    // Feeds handshake bytes. Stops early right after a complete KeyUpdate, so the caller can
    // check that it ended its record and switch keys; otherwise consumes everything or fails.
    [[nodiscard]] Step feed(ByteView bytes);

    // True while a message has started but not ended.
    [[nodiscard]] bool mid_message() const { return header_got_ != 0 || body_left_ != 0; }

  private:
    [[nodiscard]] bool start_message(Step& step);
    [[nodiscard]] std::size_t parse_ticket(ByteView bytes, Step& step);
    [[nodiscard]] bool next_field(Step& step);

    std::uint8_t header_[4] = {};
    std::uint8_t header_got_ = 0;
    std::uint8_t type_ = 0;
    std::uint32_t body_left_ = 0;
    // NewSessionTicket field walk: index of the field, bytes of it still to come, and whether
    // those bytes are its length prefix (accumulated in prefix_value_) or its contents.
    std::uint8_t field_ = 0;
    std::uint32_t field_left_ = 0;
    bool in_prefix_ = false;
    std::uint32_t prefix_value_ = 0;
};
static_assert(std::is_standard_layout_v<PostHandshakeParser> &&
              std::is_trivially_copyable_v<PostHandshakeParser>);

}  // namespace sealsock::record
