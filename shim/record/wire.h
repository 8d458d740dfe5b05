// TLS 1.3 record-layer constants and enumerations (RFC 8446 sections 5, 6 and B).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sealsock::record {

enum class ContentType : std::uint8_t {
    invalid = 0,
    change_cipher_spec = 20,
    alert = 21,
    handshake = 22,
    application_data = 23,
};

enum class HandshakeType : std::uint8_t {
    new_session_ticket = 4,
    key_update = 24,
};

// RFC 8446 section 6: AlertDescription. `none` is ours: no alert to send.
enum class Alert : std::uint8_t {
    close_notify = 0,
    unexpected_message = 10,
    bad_record_mac = 20,
    record_overflow = 22,
    handshake_failure = 40,
    bad_certificate = 42,
    unsupported_certificate = 43,
    certificate_revoked = 44,
    certificate_expired = 45,
    certificate_unknown = 46,
    illegal_parameter = 47,
    unknown_ca = 48,
    access_denied = 49,
    decode_error = 50,
    decrypt_error = 51,
    protocol_version = 70,
    insufficient_security = 71,
    internal_error = 80,
    inappropriate_fallback = 86,
    user_canceled = 90,
    missing_extension = 109,
    unsupported_extension = 110,
    unrecognized_name = 112,
    bad_certificate_status_response = 113,
    unknown_psk_identity = 115,
    certificate_required = 116,
    no_application_protocol = 120,
    none = 255,
};

// A name for any alert code, including ones this enum does not list ("unknown").
const char* alert_name(std::uint8_t code);

inline constexpr std::size_t header_size = 5;
inline constexpr std::size_t tag_size = 16;
inline constexpr std::size_t nonce_size = 12;
inline constexpr std::uint16_t legacy_record_version = 0x0303;
// RFC 8446 5.1: "The length MUST NOT exceed 2^14 bytes."
inline constexpr std::size_t max_plaintext = 1u << 14;
// RFC 8446 5.2: "The length MUST NOT exceed 2^14 + 256 bytes."
inline constexpr std::size_t max_ciphertext = max_plaintext + 256;
// The most plaintext a record of acceptable length can announce before it is opened (the 5.4
// limit of 2^14 + 1 inner bytes is only known to hold after decryption).
inline constexpr std::size_t max_plaintext_bound = max_ciphertext - tag_size - 1;
// Largest record accepted from a peer, header included.
inline constexpr std::size_t max_record_size = header_size + max_ciphertext;
// Bytes a sealed unpadded record adds to its plaintext: header, inner content type, tag.
inline constexpr std::size_t record_overhead = header_size + 1 + tag_size;
// Largest record this implementation produces.
inline constexpr std::size_t max_sealed_record = max_plaintext + record_overhead;

}  // namespace sealsock::record
