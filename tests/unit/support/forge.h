// Builds protected records that RecordSealer would never produce (padding, other inner types,
// odd headers) with real keys, so the opener's checks can be exercised one by one. Used by the
// unit tests and the fuzz targets; throws std::runtime_error if OpenSSL fails.
#pragma once

#include "support/common.h"

#include <sealsock/bytes.h>

#include <cstdint>
#include <vector>

#include "record/traffic.h"

namespace sealsock::test {

struct ForgeOptions {
    std::size_t padding = 0;         // zero bytes after the inner content type
    std::uint8_t outer_type = 23;    // TLSCiphertext.opaque_type
    std::uint16_t version = 0x0303;  // legacy_record_version
    bool omit_inner_type = false;    // all-zero inner plaintext (with padding)
};

class Forge {
  public:
    Forge(const record::SuiteParams& suite, ByteView secret, std::uint64_t seq = 0);

    // A record with inner plaintext content || inner_type || padding, sealed under the current
    // key at the current sequence number, which then advances.
    std::vector<std::uint8_t> record(std::uint8_t inner_type, ByteView content,
                                     ForgeOptions options = {});
    // Switches to the next traffic secret, as after sending a KeyUpdate.
    void update();

  private:
    record::Traffic traffic_;
};

// A deterministic secret of `size` bytes for tests.
std::vector<std::uint8_t> test_secret(std::size_t size, std::uint8_t salt);

}  // namespace sealsock::test
