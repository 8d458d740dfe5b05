#include "keyagent/identity.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace sealsock::keyagent {
namespace {

FileStamp stamp_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    return {st.st_mtim.tv_sec, st.st_mtim.tv_nsec, static_cast<std::int64_t>(st.st_size)};
}

std::string openssl_reason() {
    const unsigned long e = ERR_peek_last_error();
    const char* r = e != 0 ? ERR_reason_error_string(e) : nullptr;
    ERR_clear_error();
    return r != nullptr ? r : "unknown OpenSSL error";
}

// The leaf and the intermediates of a PEM certificate file.
struct Chain {
    X509* leaf = nullptr;
    STACK_OF(X509) * rest = nullptr;
    void reset() {
        X509_free(leaf);
        sk_X509_pop_free(rest, X509_free);
        leaf = nullptr;
        rest = nullptr;
    }
};

Result<Chain> read_chain(const std::string& path) {
    BIO* bio = BIO_new_file(path.c_str(), "r");
    if (bio == nullptr)
        return make_error("cannot read certificate " + path + ": " + openssl_reason());
    Chain c;
    c.leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    if (c.leaf == nullptr) {
        BIO_free(bio);
        return make_error("no PEM certificate in " + path);
    }
    c.rest = sk_X509_new_null();
    while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr))
        sk_X509_push(c.rest, x);
    ERR_clear_error();  // the loop ends on "no start line"
    BIO_free(bio);
    return c;
}

// Reads a private-key file into guarded memory, refusing files others could read or replace.
Result<SecureBuffer> read_key_file(const std::string& path, bool& others_can_read) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return make_error("cannot open private key " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > 64 * 1024) {
        ::close(fd);
        return make_error("private key " + path + " is not a regular PEM file");
    }
    if (st.st_uid != ::geteuid()) {
        ::close(fd);
        return make_error("private key " + path + " is not owned by the agent's user");
    }
    others_can_read = (st.st_mode & 077) != 0;
    SecureBuffer buf(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (buf.valid() && got < buf.size()) {
        const ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (!buf.valid() || got != buf.size()) return make_error("cannot read private key " + path);
    return buf;
}

struct PassphraseSource {
    ByteView passphrase;
    bool asked = false;
};

int passphrase_callback(char* out, int size, int /*rwflag*/, void* user) {
    auto* src = static_cast<PassphraseSource*>(user);
    src->asked = true;
    if (src->passphrase.empty() || src->passphrase.size() > static_cast<std::size_t>(size))
        return -1;
    std::memcpy(out, src->passphrase.data(), src->passphrase.size());
    return static_cast<int>(src->passphrase.size());
}

enum class KeyOutcome { loaded, needs_passphrase, wrong_passphrase, failed };

struct KeyLoad {
    KeyOutcome outcome = KeyOutcome::failed;
    EVP_PKEY* key = nullptr;
    bool encrypted = false;
    std::string error;
};

KeyLoad load_key(const std::string& path, ByteView passphrase) {
    KeyLoad r;
    bool others_can_read = false;
    auto text = read_key_file(path, others_can_read);
    if (!text) {
        r.error = text.error().message;
        return r;
    }
    BIO* bio = BIO_new_mem_buf(text.value().data(), static_cast<int>(text.value().size()));
    PassphraseSource src{passphrase};
    r.key =
        bio != nullptr ? PEM_read_bio_PrivateKey(bio, nullptr, passphrase_callback, &src) : nullptr;
    BIO_free(bio);
    r.encrypted = src.asked;
    if (r.key != nullptr && !r.encrypted && others_can_read) {
        EVP_PKEY_free(r.key);
        r.key = nullptr;
        r.error = "private key " + path +
                  " is unencrypted and readable by others: chmod 600 it, or encrypt it";
        return r;
    }
    if (r.key != nullptr) {
        r.outcome = KeyOutcome::loaded;
    } else if (r.encrypted) {
        r.outcome =
            passphrase.empty() ? KeyOutcome::needs_passphrase : KeyOutcome::wrong_passphrase;
    } else {
        r.error = "cannot decode private key " + path + ": " + openssl_reason();
    }
    ERR_clear_error();
    return r;
}

std::string subject_of(X509* x) {
    BIO* bio = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string s(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return s;
}

std::string not_after_of(X509* x) {
    BIO* bio = BIO_new(BIO_s_mem());
    ASN1_TIME_print(bio, X509_get0_notAfter(x));
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string s(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return s;
}

}  // namespace

struct IdentityStore::Entry {
    IdentityFiles files;
    Chain chain;
    EVP_PKEY* key = nullptr;
    bool encrypted = false;
    FileStamp cert_stamp;
    FileStamp key_stamp;

    ~Entry() {
        chain.reset();
        EVP_PKEY_free(key);
    }

    void set_key(EVP_PKEY* k) {
        EVP_PKEY_free(key);
        key = k;
    }

    // Loads the certificate file; keeps the old chain if the new one is unusable.
    Status load_certificate() {
        auto c = read_chain(files.certificate);
        if (!c) return c.error();
        chain.reset();
        chain = c.value();
        cert_stamp = stamp_of(files.certificate);
        return {};
    }

    // Loads the key with `passphrase` (may be empty). Keeps the old key if the new one fails.
    Status load_key_with(ByteView passphrase) {
        KeyLoad k = load_key(files.key, passphrase);
        key_stamp = stamp_of(files.key);
        encrypted = k.encrypted;
        switch (k.outcome) {
            case KeyOutcome::loaded:
                if (X509_check_private_key(chain.leaf, k.key) != 1) {
                    EVP_PKEY_free(k.key);
                    ERR_clear_error();
                    return make_error("private key " + files.key +
                                      " does not belong to certificate " + files.certificate);
                }
                set_key(k.key);
                return {};
            case KeyOutcome::needs_passphrase:
                set_key(nullptr);
                return {};
            case KeyOutcome::wrong_passphrase:
                return make_error("wrong passphrase for " + files.key);
            case KeyOutcome::failed:
                break;
        }
        return make_error(k.error);
    }
};

bool enable_secure_key_heap() {
    // 1 MiB holds the private parts of hundreds of keys. 2 means the heap exists but could not
    // be locked in memory (RLIMIT_MEMLOCK); it is still guarded and wiped.
    return CRYPTO_secure_malloc_initialized() != 0 || CRYPTO_secure_malloc_init(1 << 20, 16) != 0;
}

Result<std::unique_ptr<IdentityStore>> IdentityStore::load(std::vector<IdentityFiles> files,
                                                           std::string trust_file) {
    if (files.empty()) return make_error("no identity configured");
    std::unique_ptr<IdentityStore> store(new IdentityStore());
    store->trust_file_ = std::move(trust_file);
    if (Status s = store->load_trust(); !s) return s.error();
    for (auto& f : files) {
        auto e = std::make_unique<Entry>();
        e->files = std::move(f);
        if (Status s = e->load_certificate(); !s) return s.error();
        if (Status s = e->load_key_with({}); !s) return s.error();
        store->entries_.push_back(std::move(e));
    }
    return store;
}

IdentityStore::~IdentityStore() {
    X509_STORE_free(trust_);
}

Status IdentityStore::load_trust() {
    X509_STORE* fresh = X509_STORE_new();
    if (fresh == nullptr || X509_STORE_load_file(fresh, trust_file_.c_str()) != 1) {
        X509_STORE_free(fresh);
        return make_error("cannot load trust anchors from " + trust_file_ + ": " +
                          openssl_reason());
    }
    X509_STORE_free(trust_);
    trust_ = fresh;
    trust_stamp_ = stamp_of(trust_file_);
    return {};
}

Status IdentityStore::unlock(ByteView passphrase) {
    bool any_locked = false, opened = false;
    std::string last_error;
    ++generation_;
    for (auto& e : entries_) {
        if (e->key != nullptr) continue;
        any_locked = true;
        if (Status s = e->load_key_with(passphrase); !s) {
            last_error = s.error().message;
        } else if (e->key != nullptr) {
            opened = true;
        }
    }
    if (!any_locked) return {};
    if (!opened) return make_error(last_error.empty() ? "wrong passphrase" : last_error);
    passphrase_ = SecureBuffer(passphrase.size());
    if (passphrase_.valid()) std::copy(passphrase.begin(), passphrase.end(), passphrase_.data());
    return {};
}

void IdentityStore::lock() {
    ++generation_;
    for (auto& e : entries_)
        if (e->encrypted) e->set_key(nullptr);
    passphrase_ = SecureBuffer();
}

bool IdentityStore::locked() const {
    return std::any_of(entries_.begin(), entries_.end(),
                       [](const auto& e) { return e->key == nullptr; });
}

bool IdentityStore::has_encrypted_keys() const {
    return std::any_of(entries_.begin(), entries_.end(),
                       [](const auto& e) { return e->encrypted; });
}

std::vector<std::string> IdentityStore::reload_if_changed() {
    std::vector<std::string> problems;
    if (!(stamp_of(trust_file_) == trust_stamp_)) {
        ++generation_;
        if (Status s = load_trust(); !s) problems.push_back(s.error().message);
    }
    for (auto& e : entries_) {
        if (!(stamp_of(e->files.certificate) == e->cert_stamp)) {
            ++generation_;
            if (Status s = e->load_certificate(); !s) problems.push_back(s.error().message);
        }
        if (!(stamp_of(e->files.key) == e->key_stamp)) {
            ++generation_;
            const ByteView pass = passphrase_.valid() ? passphrase_.view() : ByteView();
            if (Status s = e->load_key_with(pass); !s) problems.push_back(s.error().message);
        }
    }
    return problems;
}

std::variant<Credentials, agent::ErrorReply> IdentityStore::resolve(
    const std::string& name, const std::string& program) const {
    using agent::ErrorCode;
    const auto it = name.empty()
                        ? entries_.begin()
                        : std::find_if(entries_.begin(), entries_.end(),
                                       [&](const auto& e) { return e->files.name == name; });
    if (it == entries_.end())
        return agent::ErrorReply{ErrorCode::no_identity, "the agent has no identity named " + name};
    const Entry& e = **it;
    const auto& allowed = e.files.programs;
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), program) == allowed.end())
        return agent::ErrorReply{ErrorCode::program_not_allowed,
                                 "program " +
                                     (program.empty() ? std::string("(unknown)") : program) +
                                     " may not use identity " + e.files.name};
    if (e.key == nullptr)
        return agent::ErrorReply{ErrorCode::locked, "identity " + e.files.name +
                                                        " is locked: run `sealsock agent unlock`"};
    return Credentials{e.files.name, e.chain.leaf, e.chain.rest, e.key, trust_};
}

std::vector<std::string> IdentityStore::describe() const {
    std::vector<std::string> lines;
    for (const auto& e : entries_) {
        const char* state = e->key == nullptr ? "locked"
                            : e->encrypted    ? "unlocked"
                                              : "unencrypted";
        lines.push_back(e->files.name + " " + subject_of(e->chain.leaf) + " (valid until " +
                        not_after_of(e->chain.leaf) + ", key " + state + ")");
    }
    return lines;
}

}  // namespace sealsock::keyagent
