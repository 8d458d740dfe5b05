// The libcrypto functions the record layer calls, loaded when the first key is installed.
//
// libsealsock.so is preloaded into every program `sealsock run` starts, and most of those never
// seal a connection (a shell, make, the compiler). Linked against libcrypto, the shim made each of
// them load it at start-up: 0.65 ms for /bin/true on the benchmark machine
// (scripts/bench.d/findings.md). So the record layer opens libcrypto.so.3 itself (dlopen,
// RTLD_LOCAL: its symbols do not join the program's global scope) the first time it needs a
// cipher or a key derivation, and calls it through this table. A program that already uses
// libcrypto.so.3 shares that copy.
//
// Failing to load is failing closed: no cipher, so the connection is refused with the reason.
// Load it before the program confines itself with seccomp (session layer, before_confinement),
// when opening a file may no longer be allowed.
#pragma once

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <string>

namespace sealsock::record {

struct Libcrypto {
#define SEALSOCK_LIBCRYPTO_FUNCTIONS(X)  \
    X(EVP_CIPHER_fetch)                  \
    X(EVP_CIPHER_free)                   \
    X(EVP_CIPHER_CTX_new)                \
    X(EVP_CIPHER_CTX_free)               \
    X(EVP_CIPHER_CTX_ctrl)               \
    X(EVP_CipherInit_ex)                 \
    X(EVP_CipherUpdate)                  \
    X(EVP_CipherFinal_ex)                \
    X(EVP_KDF_fetch)                     \
    X(EVP_KDF_CTX_new)                   \
    X(EVP_KDF_CTX_free)                  \
    X(EVP_KDF_derive)                    \
    X(OSSL_PARAM_construct_int)          \
    X(OSSL_PARAM_construct_utf8_string)  \
    X(OSSL_PARAM_construct_octet_string) \
    X(OSSL_PARAM_construct_end)          \
    X(OPENSSL_init_crypto)               \
    X(OPENSSL_thread_stop)
#define SEALSOCK_LIBCRYPTO_MEMBER(name) decltype(&::name) name;
    SEALSOCK_LIBCRYPTO_FUNCTIONS(SEALSOCK_LIBCRYPTO_MEMBER)
#undef SEALSOCK_LIBCRYPTO_MEMBER
};

// The table, loading libcrypto.so.3 on the first call (thread-safe; later calls cost one atomic
// load). Null if it cannot be loaded or lacks one of the functions; libcrypto_error() says why.
[[nodiscard]] const Libcrypto* libcrypto() noexcept;

// The table if libcrypto is already loaded, else null: never loads it (for clean-up paths).
[[nodiscard]] const Libcrypto* libcrypto_if_loaded() noexcept;

// Why the last load failed ("" if it did not): the loader's message, for the refusal.
[[nodiscard]] std::string libcrypto_error();

}  // namespace sealsock::record
