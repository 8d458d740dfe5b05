// The PROXY protocol version 2 header an inbound listener sends its backend first: the client's
// address and what the sealed handshake proved (haproxy's "The PROXY protocol", section 2.2).
//
//   signature (12 bytes) | 0x21 (v2, PROXY) | 0x11 TCP/IPv4 or 0x21 TCP/IPv6 | length (2, BE)
//   source address, destination address, source port, destination port
//   TLV PP2_TYPE_SSL (0x20): client flags (PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN |
//       PP2_CLIENT_CERT_SESS), verify (4 bytes, 0: the certificate was verified), then the
//       sub-TLVs PP2_SUBTYPE_SSL_VERSION (0x21) "TLSv1.3", PP2_SUBTYPE_SSL_CN (0x22) the
//       subject's first commonName, PP2_SUBTYPE_SSL_CIPHER (0x23) the suite's IANA name
//   TLV 0xE0 (first custom type): the full subject, RFC 2253 ("CN=alice,O=eng")
//   TLV 0xE1: the SHA-256 fingerprint of the client's DER certificate, lower-case hex
//   TLV 0xE2: the name of the gateway listener (the sealsock rule) that accepted it
//
// Pure: builds bytes from values. Thread-safety: reentrant.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sealsock::gateway::proxy_v2 {

inline constexpr std::uint8_t tlv_ssl = 0x20;
inline constexpr std::uint8_t subtype_version = 0x21;
inline constexpr std::uint8_t subtype_cn = 0x22;
inline constexpr std::uint8_t subtype_cipher = 0x23;
inline constexpr std::uint8_t tlv_subject = 0xE0;
inline constexpr std::uint8_t tlv_fingerprint = 0xE1;
inline constexpr std::uint8_t tlv_rule = 0xE2;

struct Identity {
    std::string_view subject;      // RFC 2253
    std::string_view fingerprint;  // hex
    std::string_view rule;
    std::uint16_t suite = 0;  // IANA number
};

// The header for a connection from `client` to `local` (both AF_INET or both AF_INET6; an
// IPv4-mapped IPv6 pair is sent as IPv4). Empty if the families cannot be sent.
std::vector<std::uint8_t> header(const sockaddr_storage& client, const sockaddr_storage& local,
                                 const Identity& id);

// The value of the first CN= in an RFC 2253 subject, unescaped; empty if there is none.
std::string common_name(std::string_view subject);

// "TLS_AES_128_GCM_SHA256" and the two others; empty for an unknown number.
std::string_view suite_name(std::uint16_t suite);

}  // namespace sealsock::gateway::proxy_v2
