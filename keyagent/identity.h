// The agent's identities and trust anchors.
//
// An identity is a certificate chain plus a private key, both standard PEM files (the key in
// PKCS#8, encrypted or not). Encrypted keys stay locked until unlock() is given the passphrase;
// lock() forgets every decrypted key. Private keys are decoded into OpenSSL's secure heap
// (mlocked, guarded, wiped on free) once the agent has initialised it, and the key files are
// read through libsodium guarded memory, so key material never sits in ordinary heap pages.
// An unencrypted key must be readable by its owner only (like ssh), or it is refused.
//
// Files are re-read when they change on disk (reload_if_changed), so any CA that renews files in
// place works; unlocked keys stay unlocked across a reload (the passphrase is kept in guarded
// memory while unlocked, for exactly that, and wiped by lock()).
//
// Thread-safety: none. The agent's event loop owns the store; handshakes take their own OpenSSL
// references to what they use, so lock and reload never pull a key from under a running
// handshake.
#pragma once

#include <sealsock/agent_protocol.h>
#include <sealsock/bytes.h>
#include <sealsock/result.h>
#include <sealsock/secret.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <variant>
#include <vector>

using X509 = struct x509_st;
using EVP_PKEY = struct evp_pkey_st;
using X509_STORE = struct x509_store_st;
struct stack_st_X509;

namespace sealsock::keyagent {

// When a file last changed, to notice renewals.
struct FileStamp {
    std::time_t mtime = 0;
    long mtime_ns = 0;
    std::int64_t size = -1;
    bool operator==(const FileStamp&) const = default;
};

struct IdentityFiles {
    std::string name;
    std::string certificate;            // PEM: leaf first, then intermediates
    std::string key;                    // PEM: PKCS#8 private key, encrypted or not
    std::vector<std::string> programs;  // executables allowed to use it; empty: any
};

struct Credentials {
    std::string name;
    X509* certificate = nullptr;
    stack_st_X509* chain = nullptr;
    EVP_PKEY* key = nullptr;
    X509_STORE* trust = nullptr;
};

class IdentityStore {
  public:
    // Loads every identity and the trust file. Certificates must parse and match their keys
    // (once unlocked); unencrypted keys are loaded now, encrypted ones wait for unlock().
    static Result<std::unique_ptr<IdentityStore>> load(std::vector<IdentityFiles> files,
                                                       std::string trust_file);
    ~IdentityStore();
    IdentityStore(const IdentityStore&) = delete;
    IdentityStore& operator=(const IdentityStore&) = delete;

    // Decrypts every locked key with `passphrase`. Fails, leaving everything locked, when the
    // passphrase opens none of them.
    Status unlock(ByteView passphrase);
    // Forgets every key that came from an encrypted file and the passphrase.
    void lock();
    // True when some identity's key is not available.
    [[nodiscard]] bool locked() const;
    [[nodiscard]] bool has_encrypted_keys() const;

    // Re-reads files whose modification time or size changed. Returns a sentence per problem;
    // a file that fails to load keeps its previous contents in use.
    std::vector<std::string> reload_if_changed();

    // The identity named `name` (empty: the first one), checked against `program` (the caller's
    // executable). Errors say which rule failed; the codes are the protocol's. The pointers stay
    // valid until the next call that changes the store (lock, unlock, reload).
    std::variant<Credentials, agent::ErrorReply> resolve(const std::string& name,
                                                         const std::string& program) const;

    // Changes whenever lock, unlock or reload may have changed what resolve() returns (a new
    // key, certificate or trust store), so a cache built from resolved credentials knows when
    // to drop them.
    [[nodiscard]] std::uint64_t generation() const { return generation_; }

    // One line per identity for `status`: name, subject, expiry, locked or not.
    [[nodiscard]] std::vector<std::string> describe() const;

  private:
    struct Entry;
    IdentityStore() = default;
    Status load_trust();
    std::vector<std::unique_ptr<Entry>> entries_;
    std::string trust_file_;
    X509_STORE* trust_ = nullptr;
    FileStamp trust_stamp_;
    SecureBuffer passphrase_;
    std::uint64_t generation_ = 0;
};

// Makes OpenSSL allocate private keys from its secure heap (mlocked, wiped on free). Call once at
// agent start, before any key is loaded. False if the heap could not be set up.
bool enable_secure_key_heap();

}  // namespace sealsock::keyagent
