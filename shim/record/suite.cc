#include "record/suite.h"

#include <cstdint>

namespace sealsock::record {
namespace {

// RFC 8446 5.5: "For AES-GCM, up to 2^24.5 full-size records (about 24 million) may be encrypted
// on a given connection while keeping a safety margin of approximately 2^-57 for Authenticated
// Encryption (AE) security. For ChaCha20/Poly1305, the record sequence number would wrap before
// the safety limit is reached." sealsock rotates AES-GCM keys at 2^24 records by default.
constexpr std::uint64_t aes_gcm_record_limit = std::uint64_t{1} << 24;
// ChaCha20-Poly1305 has no practical limit; rotate well before the sequence number could wrap.
constexpr std::uint64_t chacha_record_limit = std::uint64_t{1} << 62;

constexpr SuiteParams suites[] = {
    {Suite::aes_128_gcm_sha256, "TLS_AES_128_GCM_SHA256", "AES-128-GCM", "SHA256", 16, 32,
     aes_gcm_record_limit},
    {Suite::aes_256_gcm_sha384, "TLS_AES_256_GCM_SHA384", "AES-256-GCM", "SHA384", 32, 48,
     aes_gcm_record_limit},
    {Suite::chacha20_poly1305_sha256, "TLS_CHACHA20_POLY1305_SHA256", "ChaCha20-Poly1305", "SHA256",
     32, 32, chacha_record_limit},
};

}  // namespace

const SuiteParams* find_suite(std::uint16_t code) {
    for (const auto& s : suites)
        if (static_cast<std::uint16_t>(s.id) == code) return &s;
    return nullptr;
}

const SuiteParams* find_suite(std::string_view name) {
    for (const auto& s : suites)
        if (s.name == name) return &s;
    return nullptr;
}

}  // namespace sealsock::record
