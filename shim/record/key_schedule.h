// The pieces of the TLS 1.3 key schedule the record layer needs (RFC 8446 section 7).
//
// Everything here is pure: secrets in, secrets out. Thread-safe; allocates nothing of its own
// (OpenSSL's KDF may allocate), so call it from the data path but never from a signal handler.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/secret.h>

#include <string_view>

#include "record/suite.h"

namespace sealsock::record {

// HKDF-Expand-Label(secret, label, context, out.size()) with the suite's hash (RFC 8446 7.1).
// `label` is given without the "tls13 " prefix. False on failure (out is then wiped).
[[nodiscard]] bool hkdf_expand_label(const SuiteParams& suite, ByteView secret,
                                     std::string_view label, ByteView context, MutableByteView out);

struct TrafficKeys {
    Secret key;  // suite.key_size bytes
    Secret iv;   // 12 bytes
};

// RFC 8446 7.3: [sender]_write_key = HKDF-Expand-Label(Secret, "key", "", key_length),
//               [sender]_write_iv  = HKDF-Expand-Label(Secret, "iv", "", iv_length).
[[nodiscard]] bool derive_traffic_keys(const SuiteParams& suite, ByteView secret, TrafficKeys& out);

// RFC 8446 7.2: application_traffic_secret_N+1 =
//     HKDF-Expand-Label(application_traffic_secret_N, "traffic upd", "", Hash.length)
[[nodiscard]] bool next_traffic_secret(const SuiteParams& suite, ByteView secret, Secret& out);

}  // namespace sealsock::record
