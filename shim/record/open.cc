#include "record/open.h"

#include <sodium.h>

#include <algorithm>
#include <utility>

namespace sealsock::record {

Status RecordOpener::init(OpenState& state, const SuiteParams& suite, ByteView secret,
                          std::uint64_t seq, OpenLimits limits) {
    Status traffic = Traffic::init(state.traffic, suite, secret, seq);
    state.limits = limits;
    state.handshake = PostHandshakeParser();
    state.nondata_run = 0;
    state.update_requested = false;
    state.failed = !traffic.ok();
    state.closed = false;
    return traffic;
}

void RecordOpener::wipe(OpenState& state) {
    Traffic::wipe(state.traffic);
    state.handshake = PostHandshakeParser();
    state.failed = true;
}

void RecordOpener::Wipe::operator()(OpenState* state) const {
    wipe(*state);
    delete state;
}

RecordOpener::RecordOpener(OpenState& state)
    : state_(&state), traffic_(state.traffic, Aead::Mode::open) {}

Result<RecordOpener> RecordOpener::create(const SuiteParams& suite, ByteView secret,
                                          std::uint64_t seq, OpenLimits limits) {
    std::unique_ptr<OpenState, Wipe> owned(new OpenState);
    if (Status s = init(*owned, suite, secret, seq, limits); !s) return s.error();
    RecordOpener opener(*owned);
    opener.owned_ = std::move(owned);
    // Build the cipher context now, so that a suite OpenSSL cannot run fails here.
    if (!opener.traffic_.aead().valid()) return make_error("could not derive traffic keys");
    return opener;
}

void RecordOpener::move_to(OpenState& target) {
    if (&target == state_) return;
    target = *state_;
    owned_.reset();
    state_ = &target;
    traffic_.rebind(target.traffic);
}

RecordHead RecordOpener::inspect(ByteView in) {
    RecordHead head;
    Reader r(in);
    std::uint8_t type = 0;
    std::uint16_t version = 0;
    std::uint16_t length = 0;
    if (!r.read_u8(type) || !r.read_u16(version) || !r.read_u16(length)) {
        head.record_size = header_size;  // need_more: the header is not complete yet
        return head;
    }
    auto reject = [&head](Alert alert, Reason reason) {
        head.status = OpenStatus::fatal;
        head.alert = alert;
        head.code = reason;
        head.reason = reason_text(reason);
        return head;
    };
    // RFC 8446 5.1: "An implementation may receive an unencrypted record of type
    // change_cipher_spec consisting of the single byte value 0x01 at any time after the first
    // ClientHello message has been sent or received and before the peer's Finished message has
    // been received ... If an implementation detects a change_cipher_spec record received before
    // the first ClientHello message or after the peer's Finished message, it MUST be treated as
    // an unexpected record type".
    if (type == static_cast<std::uint8_t>(ContentType::change_cipher_spec))
        return reject(Alert::unexpected_message, Reason::change_cipher_spec);
    // RFC 8446 5: "If a TLS implementation receives an unexpected record type, it MUST terminate
    // the connection with an "unexpected_message" alert." After the handshake every record is
    // protected, so its outer type is application_data (5.2).
    if (type != static_cast<std::uint8_t>(ContentType::application_data))
        return reject(Alert::unexpected_message,
                      type == static_cast<std::uint8_t>(ContentType::alert)
                          ? Reason::unprotected_alert
                          : Reason::not_application_data);
    // RFC 8446 5.2: "legacy_record_version: The legacy_record_version field is always 0x0303."
    // (decode_error, as OpenSSL 3 answers the same record.)
    if (version != legacy_record_version)
        return reject(Alert::decode_error, Reason::bad_legacy_version);
    // RFC 8446 5.2: "The length MUST NOT exceed 2^14 + 256 bytes. An endpoint that receives a
    // record that exceeds this length MUST terminate the connection with a "record_overflow"
    // alert."
    if (length > max_ciphertext) return reject(Alert::record_overflow, Reason::record_too_long);
    head.status = OpenStatus::data;
    head.record_size = header_size + length;
    head.plaintext_bound = length > tag_size ? length - tag_size - 1 : 0;
    return head;
}

OpenOutcome RecordOpener::fatal(Alert alert, Reason reason) {
    state_->failed = true;
    OpenOutcome o;
    o.status = OpenStatus::fatal;
    o.alert = alert;
    o.code = reason;
    o.reason = reason_text(reason);
    return o;
}

OpenOutcome RecordOpener::non_data(std::size_t consumed) {
    if (++state_->nondata_run > state_->limits.max_nondata_run)
        return fatal(Alert::unexpected_message, Reason::nondata_flood);
    OpenOutcome o;
    o.status = OpenStatus::discarded;
    o.consumed = consumed;
    return o;
}

bool RecordOpener::take_update_request() {
    return std::exchange(state_->update_requested, false);
}

OpenOutcome RecordOpener::open(ByteView in, MutableByteView out) {
    if (state_->failed) return fatal(Alert::none, Reason::already_failed);
    if (state_->closed) {
        OpenOutcome o;
        o.status = OpenStatus::close_notify;
        return o;
    }
    const RecordHead head = inspect(in);
    if (head.status == OpenStatus::fatal) return fatal(head.alert, head.code);
    if (head.status == OpenStatus::need_more || in.size() < head.record_size) {
        OpenOutcome o;
        o.status = OpenStatus::need_more;
        o.needed = head.record_size - std::min(in.size(), head.record_size);
        return o;
    }
    if (out.size() < head.plaintext_bound) {
        OpenOutcome o;
        o.status = OpenStatus::need_buffer;
        o.needed = head.plaintext_bound;
        return o;
    }

    const ByteView body = in.subspan(header_size, head.record_size - header_size);
    // RFC 8446 5.2: "If the decryption fails, the receiver MUST terminate the connection with a
    // "bad_record_mac" alert." A body shorter than the tag cannot be authentic.
    if (body.size() < tag_size) return fatal(Alert::bad_record_mac, Reason::bad_record_mac);
    const ByteView ciphertext = body.first(body.size() - tag_size);
    const ByteView tag = body.last(tag_size);
    // `out` holds the bound (inner plaintext minus its type byte); the type byte may spill over.
    std::uint8_t spill = 0;
    const MutableByteView head_out = out.first(std::min(out.size(), ciphertext.size()));
    const MutableByteView spill_out(&spill, ciphertext.size() - head_out.size());
    const auto nonce = traffic_.nonce();
    if (!traffic_.aead().open(nonce, in.first(header_size), ciphertext, tag, head_out, spill_out))
        return fatal(Alert::bad_record_mac, Reason::bad_record_mac);
    if (!traffic_.advance()) return fatal(Alert::internal_error, Reason::sequence_wrap);

    // RFC 8446 5.4: "the receiving implementation scans the field from the end toward the
    // beginning until it finds a non-zero octet. This non-zero octet is the content type of the
    // message. ... If a receiving implementation does not find a non-zero octet in the
    // cleartext, it MUST terminate the connection with an "unexpected_message" alert."
    std::size_t end = ciphertext.size();
    auto at = [&](std::size_t i) { return i < head_out.size() ? head_out[i] : spill; };
    while (end > 0 && at(end - 1) == 0)
        --end;
    if (end == 0) {
        sodium_memzero(head_out.data(), head_out.size());
        return fatal(Alert::unexpected_message, Reason::no_content_type);
    }
    // RFC 8446 5.4: "The presence of padding does not change the overall record size
    // limitations: the full encoded TLSInnerPlaintext MUST NOT exceed 2^14 + 1 octets."
    if (ciphertext.size() > max_plaintext + 1) {
        sodium_memzero(head_out.data(), head_out.size());
        return fatal(Alert::record_overflow, Reason::plaintext_too_long);
    }
    const auto type = static_cast<ContentType>(at(end - 1));
    const std::size_t size = end - 1;
    const ByteView content = ByteView(head_out.data(), size);

    // RFC 8446 5.1: "Handshake messages MUST NOT be interleaved with other record types. That
    // is, if a handshake message is split over two or more records, there MUST NOT be any other
    // records between them."
    if (type != ContentType::handshake && state_->handshake.mid_message()) {
        sodium_memzero(head_out.data(), head_out.size());
        return fatal(Alert::unexpected_message, Reason::split_handshake_interrupted);
    }
    OpenOutcome result;
    switch (type) {
        case ContentType::application_data:
            return on_application_data(head.record_size, size);
        case ContentType::alert:
            result = on_alert(head.record_size, content);
            break;
        case ContentType::handshake:
            result = on_handshake(head.record_size, content);
            break;
        case ContentType::change_cipher_spec:
        case ContentType::invalid:
        default:
            result = fatal(Alert::unexpected_message, Reason::bad_inner_type);
            break;
    }
    sodium_memzero(head_out.data(), head_out.size());
    return result;
}

OpenOutcome RecordOpener::on_application_data(std::size_t consumed, std::size_t size) {
    // RFC 8446 5.1: "Zero-length fragments of Application Data MAY be sent, as they are
    // potentially useful as a traffic analysis countermeasure."
    if (size == 0) return non_data(consumed);
    state_->nondata_run = 0;
    OpenOutcome o;
    o.status = OpenStatus::data;
    o.consumed = consumed;
    o.plaintext = size;
    return o;
}

OpenOutcome RecordOpener::on_alert(std::size_t consumed, ByteView message) {
    // RFC 8446 5.1: "Alert messages (Section 6) MUST NOT be fragmented across records, and
    // multiple alert messages MUST NOT be coalesced into a single TLSPlaintext record. In other
    // words, a record with an Alert type MUST contain exactly one message."
    if (message.size() != 2) return fatal(Alert::decode_error, Reason::bad_alert_length);
    const std::uint8_t description = message[1];
    // RFC 8446 6.1: "close_notify: This alert notifies the recipient that the sender will not
    // send any more messages on this connection."
    if (description == static_cast<std::uint8_t>(Alert::close_notify)) {
        state_->closed = true;
        OpenOutcome o;
        o.status = OpenStatus::close_notify;
        o.consumed = consumed;
        return o;
    }
    // RFC 8446 6.1, user_canceled: "This alert generally has AlertLevel=warning." It ends nothing
    // by itself (a close_notify follows), so it is ignored, within the non-data cap.
    if (description == static_cast<std::uint8_t>(Alert::user_canceled)) return non_data(consumed);
    // RFC 8446 6.2: "Upon transmission or receipt of a fatal alert message, both parties MUST
    // immediately close the connection." In TLS 1.3 every other alert is fatal, whatever its
    // level says ("Unknown Alert types MUST be treated as error alerts", 6).
    OpenOutcome o = fatal(Alert::none, Reason::peer_alert);
    o.peer_alert = description;
    o.peer_ended = true;
    o.consumed = consumed;
    return o;
}

OpenOutcome RecordOpener::on_handshake(std::size_t consumed, ByteView message) {
    // RFC 8446 5.1: "Implementations MUST NOT send zero-length fragments of Handshake types,
    // even if those fragments contain padding."
    if (message.empty()) return fatal(Alert::unexpected_message, Reason::empty_handshake);
    ByteView rest = message;
    while (!rest.empty()) {
        const PostHandshakeParser::Step step = state_->handshake.feed(rest);
        if (step.alert != Alert::none) return fatal(step.alert, step.reason);
        rest = rest.subspan(step.consumed);
        if (!step.key_update) continue;
        // RFC 8446 5.1: "Handshake messages MUST NOT span key changes. Implementations MUST
        // verify that all messages immediately preceding a key change align with a record
        // boundary; if not, then they MUST terminate the connection with an
        // "unexpected_message" alert."
        if (!rest.empty()) return fatal(Alert::unexpected_message, Reason::key_update_not_at_end);
        if (!traffic_.update()) return fatal(Alert::internal_error, Reason::key_update_failed);
        state_->update_requested = state_->update_requested || step.update_requested;
    }
    return non_data(consumed);
}

}  // namespace sealsock::record
