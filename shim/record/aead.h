// One AEAD key for one direction, through OpenSSL EVP.
//
// The cipher context is created and keyed once, when the key is installed; each record then only
// sets its nonce (EVP_CipherInit_ex with the key left unchanged), so no context is built per
// record. The key itself is not kept here: OpenSSL holds its schedule and wipes it on free.
//
// Thread-safety: none; one Aead belongs to one direction of one session, used under its lock.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>

#include <cstdint>

#include "record/suite.h"

using EVP_CIPHER_CTX = struct evp_cipher_ctx_st;

namespace sealsock::record {

class Aead {
  public:
    enum class Mode { seal, open };

    Aead() = default;
    ~Aead();
    Aead(Aead&& other) noexcept;
    Aead& operator=(Aead&& other) noexcept;
    Aead(const Aead&) = delete;
    Aead& operator=(const Aead&) = delete;

    // Installs `key` (suite.key_size bytes) for sealing or opening.
    static Result<Aead> create(const SuiteParams& suite, ByteView key, Mode mode);

    [[nodiscard]] bool valid() const { return ctx_ != nullptr; }

    // Encrypts the concatenation first || second into `out` (exactly their total size) and writes
    // the 16-byte tag into `tag`. `nonce` is 12 bytes. False on any failure.
    [[nodiscard]] bool seal(ByteView nonce, ByteView aad, ByteView first, ByteView second,
                            MutableByteView out, MutableByteView tag);

    // Decrypts `ciphertext` and checks `tag`. The plaintext goes to `out` and, once `out` is full,
    // continues in `overflow`; together they must hold ciphertext.size() bytes. On failure both
    // are wiped, so no unauthenticated byte survives the call.
    [[nodiscard]] bool open(ByteView nonce, ByteView aad, ByteView ciphertext, ByteView tag,
                            MutableByteView out, MutableByteView overflow);

  private:
    EVP_CIPHER_CTX* ctx_ = nullptr;
};

}  // namespace sealsock::record
