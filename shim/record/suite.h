// The three TLS 1.3 cipher suites sealsock speaks and their parameters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sealsock::record {

enum class Suite : std::uint16_t {
    aes_128_gcm_sha256 = 0x1301,
    aes_256_gcm_sha384 = 0x1302,
    chacha20_poly1305_sha256 = 0x1303,
};

struct SuiteParams {
    Suite id;
    std::string_view name;  // IANA name, e.g. "TLS_AES_128_GCM_SHA256"
    const char* cipher;     // OpenSSL algorithm name for EVP_CIPHER_fetch
    const char* digest;     // OpenSSL algorithm name for the HKDF hash
    std::size_t key_size;   // AEAD key length in bytes
    std::size_t hash_size;  // Hash.length, also the traffic secret length
    // Records one key may protect before a KeyUpdate is required (RFC 8446 5.5).
    std::uint64_t record_limit;
};

// Parameters of the suite with IANA code `code`, or nullptr when sealsock does not support it.
// Thread-safe, no allocation.
const SuiteParams* find_suite(std::uint16_t code);
// Parameters by IANA name ("TLS_CHACHA20_POLY1305_SHA256"), or nullptr.
const SuiteParams* find_suite(std::string_view name);

}  // namespace sealsock::record
