#include "record/key_schedule.h"

#include <openssl/core_names.h>

#include <array>
#include <cstdint>

#include "record/libcrypto.h"
#include "record/wire.h"

namespace sealsock::record {
namespace {

EVP_KDF* hkdf(const Libcrypto& c) {
    // Fetched once per process: fetching costs more than the derivation itself.
    static EVP_KDF* const kdf = c.EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr);
    return kdf;
}

bool hkdf_expand(const char* digest, ByteView prk, ByteView info, MutableByteView out) {
    const Libcrypto* c = libcrypto();
    if (c == nullptr) return false;
    EVP_KDF* kdf = hkdf(*c);
    if (kdf == nullptr) return false;
    EVP_KDF_CTX* ctx = c->EVP_KDF_CTX_new(kdf);
    if (ctx == nullptr) return false;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        c->OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        c->OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest), 0),
        c->OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                             const_cast<std::uint8_t*>(prk.data()), prk.size()),
        c->OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                             const_cast<std::uint8_t*>(info.data()), info.size()),
        c->OSSL_PARAM_construct_end(),
    };
    const bool ok = c->EVP_KDF_derive(ctx, out.data(), out.size(), params) == 1;
    c->EVP_KDF_CTX_free(ctx);
    return ok;
}

}  // namespace

bool hkdf_expand_label(const SuiteParams& suite, ByteView secret, std::string_view label,
                       ByteView context, MutableByteView out) {
    // RFC 8446 7.1:
    //   struct {
    //       uint16 length = Length;
    //       opaque label<7..255> = "tls13 " + Label;
    //       opaque context<0..255> = Context;
    //   } HkdfLabel;
    constexpr std::string_view prefix = "tls13 ";
    const std::size_t label_size = prefix.size() + label.size();
    if (label_size > 255 || context.size() > 255 || out.size() > 0xffff) return false;

    std::array<std::uint8_t, 2 + 1 + 255 + 1 + 255> info_buf{};
    Writer info(info_buf);
    info.u16(static_cast<std::uint16_t>(out.size()));
    info.u8(static_cast<std::uint8_t>(label_size));
    info.bytes(as_bytes(prefix));
    info.bytes(as_bytes(label));
    info.u8(static_cast<std::uint8_t>(context.size()));
    info.bytes(context);
    if (!info.ok()) return false;

    if (!hkdf_expand(suite.digest, secret, info.view(), out)) {
        sodium_memzero(out.data(), out.size());
        return false;
    }
    return true;
}

bool derive_traffic_keys(const SuiteParams& suite, ByteView secret, TrafficKeys& out) {
    const bool ok =
        hkdf_expand_label(suite, secret, "key", {}, out.key.resize_for_write(suite.key_size)) &&
        hkdf_expand_label(suite, secret, "iv", {}, out.iv.resize_for_write(nonce_size));
    if (!ok) {
        out.key.wipe();
        out.iv.wipe();
    }
    return ok;
}

bool next_traffic_secret(const SuiteParams& suite, ByteView secret, Secret& out) {
    if (secret.size() != suite.hash_size) return false;
    // Derive into a temporary: `secret` may be a view of `out` itself.
    Secret next;
    if (!hkdf_expand_label(suite, secret, "traffic upd", {},
                           next.resize_for_write(suite.hash_size)))
        return false;
    out = std::move(next);
    return true;
}

}  // namespace sealsock::record
