// The keys of one direction of a connection: traffic secret, AEAD, static IV, sequence number.
//
// Thread-safety: none; owned by one direction of one session and used under that direction's lock.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>
#include <sealsock/secret.h>

#include <array>
#include <cstdint>

#include "record/aead.h"
#include "record/suite.h"
#include "record/wire.h"

namespace sealsock::record {

class Traffic {
  public:
    // Installs `secret` (suite.hash_size bytes) with sequence number `seq`.
    static Result<Traffic> create(const SuiteParams& suite, ByteView secret, std::uint64_t seq,
                                  Aead::Mode mode);

    // KeyUpdate (RFC 8446 7.2): the next application traffic secret, its key and IV, and
    // sequence number 0 (5.3: "Each sequence number is set to zero at the beginning of a
    // connection and whenever the key is changed"). False on failure; the old key is then gone
    // too, so a failed update can never lead to reuse.
    [[nodiscard]] bool update();

    // RFC 8446 5.3: "The 64-bit record sequence number is encoded in network byte order and
    // padded to the left with zeros to iv_length. The padded sequence number is XORed with either
    // the static client_write_iv or server_write_iv (depending on the role)."
    [[nodiscard]] std::array<std::uint8_t, nonce_size> nonce() const;

    // Moves to the next sequence number. RFC 8446 5.3: "If a TLS implementation would need to
    // wrap a sequence number, it MUST either rekey (Section 4.6.3) or terminate the connection."
    // False when the sequence number would wrap; the caller must then stop.
    [[nodiscard]] bool advance();

    [[nodiscard]] const SuiteParams& suite() const { return *suite_; }
    [[nodiscard]] std::uint64_t sequence() const { return seq_; }
    // How many KeyUpdates this direction has gone through.
    [[nodiscard]] std::uint64_t generation() const { return generation_; }
    [[nodiscard]] Aead& aead() { return aead_; }

  private:
    Traffic(const SuiteParams& suite, Aead::Mode mode) : suite_(&suite), mode_(mode) {}
    [[nodiscard]] bool install(ByteView secret);

    const SuiteParams* suite_;
    Aead::Mode mode_;
    Secret secret_;
    Secret iv_;
    Aead aead_;
    std::uint64_t seq_ = 0;
    std::uint64_t generation_ = 0;
};

}  // namespace sealsock::record
