#include "record/wire.h"

namespace sealsock::record {

const char* alert_name(std::uint8_t code) {
    switch (static_cast<Alert>(code)) {
        case Alert::close_notify:
            return "close_notify";
        case Alert::unexpected_message:
            return "unexpected_message";
        case Alert::bad_record_mac:
            return "bad_record_mac";
        case Alert::record_overflow:
            return "record_overflow";
        case Alert::handshake_failure:
            return "handshake_failure";
        case Alert::bad_certificate:
            return "bad_certificate";
        case Alert::unsupported_certificate:
            return "unsupported_certificate";
        case Alert::certificate_revoked:
            return "certificate_revoked";
        case Alert::certificate_expired:
            return "certificate_expired";
        case Alert::certificate_unknown:
            return "certificate_unknown";
        case Alert::illegal_parameter:
            return "illegal_parameter";
        case Alert::unknown_ca:
            return "unknown_ca";
        case Alert::access_denied:
            return "access_denied";
        case Alert::decode_error:
            return "decode_error";
        case Alert::decrypt_error:
            return "decrypt_error";
        case Alert::protocol_version:
            return "protocol_version";
        case Alert::insufficient_security:
            return "insufficient_security";
        case Alert::internal_error:
            return "internal_error";
        case Alert::inappropriate_fallback:
            return "inappropriate_fallback";
        case Alert::user_canceled:
            return "user_canceled";
        case Alert::missing_extension:
            return "missing_extension";
        case Alert::unsupported_extension:
            return "unsupported_extension";
        case Alert::unrecognized_name:
            return "unrecognized_name";
        case Alert::bad_certificate_status_response:
            return "bad_certificate_status_response";
        case Alert::unknown_psk_identity:
            return "unknown_psk_identity";
        case Alert::certificate_required:
            return "certificate_required";
        case Alert::no_application_protocol:
            return "no_application_protocol";
        case Alert::none:
            break;
    }
    return "unknown";
}

}  // namespace sealsock::record
