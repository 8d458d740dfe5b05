#include "record/post_handshake.h"

#include <algorithm>

namespace sealsock::record {
namespace {

// RFC 8446 4.6.1:
//   struct {
//       uint32 ticket_lifetime;
//       uint32 ticket_age_add;
//       opaque ticket_nonce<0..255>;
//       opaque ticket<1..2^16-1>;
//       Extension extensions<0..2^16-2>;
//   } NewSessionTicket;
struct TicketField {
    std::uint8_t prefix;  // length-prefix width in bytes; 0 for a fixed-size field
    std::uint32_t size;   // fixed size, or the minimum length of a prefixed field
};
constexpr TicketField ticket_fields[] = {{0, 4}, {0, 4}, {1, 0}, {2, 1}, {2, 0}};
constexpr std::uint8_t ticket_field_count = sizeof ticket_fields / sizeof ticket_fields[0];
constexpr std::uint32_t ticket_min = 4 + 4 + 1 + 2 + 1 + 2;
constexpr std::uint32_t ticket_max = 4 + 4 + 1 + 255 + 2 + 0xffff + 2 + 0xfffe;

Alert fail(PostHandshakeParser::Step& step, Alert alert, Reason reason) {
    step.alert = alert;
    step.reason = reason;
    return alert;
}

}  // namespace

bool PostHandshakeParser::start_message(Step& step) {
    type_ = header_[0];
    body_left_ = (std::uint32_t{header_[1]} << 16) | (std::uint32_t{header_[2]} << 8) | header_[3];
    header_got_ = 0;
    switch (static_cast<HandshakeType>(type_)) {
        case HandshakeType::new_session_ticket:
            if (body_left_ < ticket_min || body_left_ > ticket_max)
                return fail(step, Alert::decode_error, Reason::ticket_length), false;
            field_ = 0;
            in_prefix_ = false;
            field_left_ = ticket_fields[0].size;
            return true;
        case HandshakeType::key_update:
            if (body_left_ != 1)
                return fail(step, Alert::decode_error, Reason::key_update_length), false;
            return true;
    }
    return fail(step, Alert::unexpected_message, Reason::handshake_type), false;
}

bool PostHandshakeParser::next_field(Step& step) {
    if (in_prefix_) {
        // The prefix is complete: the field's contents follow.
        if (prefix_value_ < ticket_fields[field_].size)
            return fail(step, Alert::decode_error, Reason::ticket_field_short), false;
        in_prefix_ = false;
        field_left_ = prefix_value_;
        if (field_left_ != 0) return true;
    }
    if (++field_ == ticket_field_count) return true;
    const TicketField& f = ticket_fields[field_];
    in_prefix_ = f.prefix != 0;
    field_left_ = in_prefix_ ? f.prefix : f.size;
    prefix_value_ = 0;
    return true;
}

std::size_t PostHandshakeParser::parse_ticket(ByteView bytes, Step& step) {
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        if (field_ == ticket_field_count)
            return fail(step, Alert::decode_error, Reason::ticket_trailing_bytes), pos;
        const std::size_t n = std::min<std::size_t>(field_left_, bytes.size() - pos);
        if (in_prefix_)
            for (std::size_t i = 0; i < n; ++i)
                prefix_value_ = (prefix_value_ << 8) | bytes[pos + i];
        pos += n;
        field_left_ -= static_cast<std::uint32_t>(n);
        while (field_left_ == 0 && field_ < ticket_field_count)
            if (!next_field(step)) return pos;
    }
    return pos;
}

PostHandshakeParser::Step PostHandshakeParser::feed(ByteView bytes) {
    Step step;
    std::size_t& pos = step.consumed;
    while (pos < bytes.size() && step.alert == Alert::none) {
        if (body_left_ == 0) {
            header_[header_got_++] = bytes[pos++];
            if (header_got_ == sizeof header_ && !start_message(step)) break;
            continue;
        }
        const ByteView body =
            bytes.subspan(pos, std::min<std::size_t>(body_left_, bytes.size() - pos));
        if (static_cast<HandshakeType>(type_) == HandshakeType::key_update) {
            // RFC 8446 4.6.3: "If an implementation receives any other value [than 0 or 1], it
            // MUST terminate the connection with an "illegal_parameter" alert."
            if (body[0] > 1) {
                fail(step, Alert::illegal_parameter, Reason::key_update_value);
                break;
            }
            step.key_update = true;
            step.update_requested = body[0] == 1;
            body_left_ = 0;
            ++pos;
            break;
        }
        const std::size_t used = parse_ticket(body, step);
        pos += used;
        body_left_ -= static_cast<std::uint32_t>(used);
        if (step.alert == Alert::none && body_left_ == 0 && field_ != ticket_field_count)
            fail(step, Alert::decode_error, Reason::ticket_truncated_field);
    }
    return step;
}

}  // namespace sealsock::record
