#include "record/aead.h"

#include <sodium.h>

#include <algorithm>
#include <utility>

#include "record/libcrypto.h"
#include "record/wire.h"

namespace sealsock::record {
namespace {

// Each update of an AEAD cipher in OpenSSL emits exactly its input length (GCM and
// ChaCha20-Poly1305 are stream modes); anything else is treated as failure.
bool update(const Libcrypto& c, EVP_CIPHER_CTX* ctx, std::uint8_t* out, ByteView in) {
    if (in.empty()) return true;
    int produced = 0;
    return c.EVP_CipherUpdate(ctx, out, &produced, in.data(), static_cast<int>(in.size())) == 1 &&
           static_cast<std::size_t>(produced) == in.size();
}

bool start_record(const Libcrypto& c, EVP_CIPHER_CTX* ctx, ByteView nonce, ByteView aad) {
    if (nonce.size() != nonce_size) return false;
    int ignored = 0;
    return c.EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data(), -1) == 1 &&
           c.EVP_CipherUpdate(ctx, nullptr, &ignored, aad.data(), static_cast<int>(aad.size())) ==
               1;
}

// A context exists only once libcrypto is loaded.
void free_context(EVP_CIPHER_CTX* ctx) {
    if (ctx != nullptr) libcrypto_if_loaded()->EVP_CIPHER_CTX_free(ctx);
}

}  // namespace

Aead::~Aead() {
    free_context(ctx_);
}

Aead::Aead(Aead&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}

Aead& Aead::operator=(Aead&& other) noexcept {
    if (this != &other) {
        free_context(ctx_);
        ctx_ = std::exchange(other.ctx_, nullptr);
    }
    return *this;
}

Result<Aead> Aead::create(const SuiteParams& suite, ByteView key, Mode mode) {
    if (key.size() != suite.key_size) return make_error("AEAD key has the wrong length");
    const Libcrypto* c = libcrypto();
    if (c == nullptr) return make_error("cannot load OpenSSL: " + libcrypto_error());
    EVP_CIPHER* cipher = c->EVP_CIPHER_fetch(nullptr, suite.cipher, nullptr);
    if (cipher == nullptr) return make_error("OpenSSL does not provide the suite's cipher");
    Aead aead;
    aead.ctx_ = c->EVP_CIPHER_CTX_new();
    const int enc = mode == Mode::seal ? 1 : 0;
    const bool ok =
        aead.ctx_ != nullptr &&
        c->EVP_CipherInit_ex(aead.ctx_, cipher, nullptr, nullptr, nullptr, enc) == 1 &&
        c->EVP_CIPHER_CTX_ctrl(aead.ctx_, EVP_CTRL_AEAD_SET_IVLEN, nonce_size, nullptr) == 1 &&
        c->EVP_CipherInit_ex(aead.ctx_, nullptr, nullptr, key.data(), nullptr, enc) == 1;
    c->EVP_CIPHER_free(cipher);
    if (!ok) return make_error("OpenSSL could not set up the AEAD context");
    return aead;
}

bool Aead::seal(ByteView nonce, ByteView aad, ByteView first, ByteView second, MutableByteView out,
                MutableByteView tag) {
    if (ctx_ == nullptr || out.size() != first.size() + second.size() || tag.size() != tag_size)
        return false;
    const Libcrypto& c = *libcrypto_if_loaded();  // loaded: ctx_ exists
    std::uint8_t final_block[tag_size];  // AEAD finals emit nothing; OpenSSL wants a buffer
    int ignored = 0;
    return start_record(c, ctx_, nonce, aad) && update(c, ctx_, out.data(), first) &&
           update(c, ctx_, out.data() + first.size(), second) &&
           c.EVP_CipherFinal_ex(ctx_, final_block, &ignored) == 1 &&
           c.EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, tag_size, tag.data()) == 1;
}

bool Aead::open(ByteView nonce, ByteView aad, ByteView ciphertext, ByteView tag,
                MutableByteView out, MutableByteView overflow) {
    if (ctx_ == nullptr || tag.size() != tag_size ||
        out.size() + overflow.size() < ciphertext.size())
        return false;
    const std::size_t head = std::min(out.size(), ciphertext.size());
    const ByteView tail = ciphertext.subspan(head);
    const Libcrypto& c = *libcrypto_if_loaded();  // loaded: ctx_ exists
    std::uint8_t final_block[tag_size];  // AEAD finals emit nothing; OpenSSL wants a buffer
    int ignored = 0;
    const bool ok = start_record(c, ctx_, nonce, aad) &&
                    update(c, ctx_, out.data(), ciphertext.first(head)) &&
                    update(c, ctx_, overflow.data(), tail) &&
                    c.EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, tag_size,
                                          const_cast<std::uint8_t*>(tag.data())) == 1 &&
                    c.EVP_CipherFinal_ex(ctx_, final_block, &ignored) == 1;
    if (!ok) {
        sodium_memzero(out.data(), head);
        sodium_memzero(overflow.data(), tail.size());
    }
    return ok;
}

}  // namespace sealsock::record
