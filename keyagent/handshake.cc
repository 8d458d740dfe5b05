#include "keyagent/handshake.h"

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "keyagent/policy.h"
#include "keyagent/socket_bio.h"
#include "record/seal.h"
#include "record/suite.h"
#include "record/wire.h"

namespace sealsock::keyagent {
namespace {

using agent::ErrorCode;
using agent::ErrorReply;
using agent::Role;

// ================================================================================================
// The state of one handshake

struct CtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
};

// Why the peer's certificate was refused: the first failure the verifier reported.
struct VerifyFailure {
    int error = X509_V_OK;
    int depth = 0;
    std::string subject;                 // of the certificate that failed
    std::string not_before;              // its validity, for expiry messages
    std::string not_after;               //
    std::vector<std::string> leaf_sans;  // the leaf's names, for name-mismatch messages
    Fingerprint leaf_fingerprint{};      // the leaf's fingerprint, for pin-mismatch messages
    bool pin_mismatch = false;
};

struct Engine {
    int fd = -1;
    Role role = Role::client;
    std::string peer;     // "server localhost (127.0.0.1:4433)" or "client 127.0.0.1:5555"
    std::string service;  // server: the local service
    std::string identity_name;
    std::uint32_t timeout_ms = 0;
    Expectation expect;               // client
    std::vector<AccessEntry> access;  // server

    std::unique_ptr<SSL_CTX, CtxFree> ctx;
    std::unique_ptr<SSL, SslFree> ssl;

    // Filled in by the OpenSSL callbacks during SSL_do_handshake.
    Secret client_secret;  // CLIENT_TRAFFIC_SECRET_0
    Secret server_secret;  // SERVER_TRAFFIC_SECRET_0
    bool keylog_malformed = false;
    std::optional<std::uint8_t> alert_received;  // description of the first alert the peer sent
    VerifyFailure verify;

    // Client through an HTTP proxy (request.proxy_connect): the CONNECT request, how much of it
    // went out, and the proxy's answer so far. open once the proxy said 2xx (or with no proxy).
    struct Proxy {
        std::string target;
        std::string request;
        std::size_t sent = 0;
        std::string answer;
        bool open = true;
    } proxy;

    bool done = false;
    bool succeeded = false;
    agent::HandshakeReply reply;
    ErrorReply error{ErrorCode::internal, "the handshake has not finished"};
};

int engine_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

Engine* engine_of(const SSL* ssl) {
    return static_cast<Engine*>(SSL_get_ex_data(ssl, engine_index()));
}

Engine* engine_of(X509_STORE_CTX* store) {
    const auto* ssl = static_cast<const SSL*>(
        X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    return ssl != nullptr ? engine_of(ssl) : nullptr;
}

// Ends the handshake. The SSL goes first, without SSL_shutdown: nothing more is written to the
// program's socket, and the socket itself stays open (the BIO borrows it).
void finish(Engine& e) {
    e.ssl.reset();
    e.ctx.reset();
    e.client_secret.wipe();
    e.server_secret.wipe();
    e.done = true;
}

void fail(Engine& e, ErrorCode code, std::string message) {
    e.reply = {};
    e.error = {code, std::move(message)};
    e.succeeded = false;
    finish(e);
}

// The newest OpenSSL error reason on this thread's queue, for a message.
std::string openssl_reason() {
    const unsigned long code = ERR_peek_last_error();
    const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
    return reason != nullptr ? reason : "no reason given by OpenSSL";
}

// "client 127.0.0.1:5555 of service redis", "server localhost (127.0.0.1:4433)".
std::string peer_text(const Engine& e) {
    if (e.role == Role::client || e.service.empty()) return e.peer;
    return e.peer + " of service " + e.service;
}

std::string the_peer(const Engine& e) {
    return "the " + peer_text(e);
}

// ================================================================================================
// The descriptor

std::string address_text(const sockaddr_storage& addr) {
    char host[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
        inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(in.sin_port));
    }
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6.sin6_port));
}

int socket_option(int fd, int option) {
    int value = -1;
    socklen_t len = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, option, &value, &len) != 0) return -1;
    return value;
}

// True for a TCP socket that has received segments: one the peer already closed or reset, as
// opposed to one never connected. Read from TCP_INFO, which has no side effects (SO_ERROR would
// consume the error the program is owed).
bool received_segments(int fd) {
    tcp_info info{};
    socklen_t len = sizeof info;
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
           len >= offsetof(tcp_info, tcpi_segs_in) + sizeof info.tcpi_segs_in &&
           info.tcpi_segs_in > 0;
}

// The peer's address if `fd` is a connected TCP socket (IPv4 or IPv6), else the refusal.
std::variant<std::string, ErrorReply> connected_tcp_peer(int fd) {
    const std::string which = "descriptor " + std::to_string(fd);
    if (fd < 0 || socket_option(fd, SO_TYPE) < 0)
        return ErrorReply{ErrorCode::not_a_socket,
                          which + " is not a socket: pass the program's TCP socket"};
    const int domain = socket_option(fd, SO_DOMAIN);
    if (socket_option(fd, SO_TYPE) != SOCK_STREAM || (domain != AF_INET && domain != AF_INET6))
        return ErrorReply{ErrorCode::not_a_socket,
                          which + " is not a TCP socket (only IPv4 and IPv6 TCP are sealed)"};
    if (socket_option(fd, SO_ACCEPTCONN) == 1)
        return ErrorReply{ErrorCode::not_a_socket,
                          which + " is a listening socket: pass an accepted connection"};
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) return address_text(addr);
    if (errno == ENOTCONN && received_segments(fd))
        return ErrorReply{ErrorCode::peer_closed, "the peer closed or reset the connection on " +
                                                      which + " before the handshake began"};
    return ErrorReply{ErrorCode::not_a_socket, which + " is a TCP socket that is not connected (" +
                                                   std::strerror(errno) + ")"};
}

// ================================================================================================
// OpenSSL callbacks

// Decodes the hex secret at the end of a keylog line into `out`; false if it is malformed.
bool decode_hex_secret(std::string_view hex, Secret& out) {
    std::array<std::uint8_t, Secret::capacity> raw{};
    if (hex.empty() || hex.size() % 2 != 0 || hex.size() / 2 > raw.size()) return false;
    auto nibble = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    bool ok = true;
    for (std::size_t i = 0; i < hex.size() / 2; ++i) {
        const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        ok = ok && hi >= 0 && lo >= 0;
        raw[i] = static_cast<std::uint8_t>((hi << 4 | lo) & 0xff);
    }
    if (ok) out.assign(ByteView(raw.data(), hex.size() / 2));
    OPENSSL_cleanse(raw.data(), raw.size());
    return ok;
}

// DESIGN fact 1: OpenSSL 3.0 has no getter for traffic secrets; the keylog callback hands them
// over, one line "LABEL CLIENT_RANDOM SECRET" each, inside SSL_do_handshake. Only the two
// application traffic secrets are kept; the line is never copied or logged.
void on_keylog(const SSL* ssl, const char* line) {
    Engine* e = engine_of(ssl);
    const std::string_view text(line);
    const std::size_t first = text.find(' '), last = text.rfind(' ');
    if (e == nullptr || first == std::string_view::npos || first == last) return;
    const std::string_view label = text.substr(0, first);
    Secret* target = label == "CLIENT_TRAFFIC_SECRET_0"   ? &e->client_secret
                     : label == "SERVER_TRAFFIC_SECRET_0" ? &e->server_secret
                                                          : nullptr;
    if (target != nullptr && !decode_hex_secret(text.substr(last + 1), *target))
        e->keylog_malformed = true;
}

// Remembers the first alert the peer sent (its description is the low byte of `value`).
void on_info(const SSL* ssl, int where, int value) {
    Engine* e = engine_of(ssl);
    if (e == nullptr || (where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT) return;
    if (!e->alert_received) e->alert_received = static_cast<std::uint8_t>(value & 0xff);
}

std::string time_text(const ASN1_TIME* t) {
    std::tm tm{};
    char text[32] = {};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1 ||
        std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        return "an unreadable date";
    return text;
}

// Records what failed about `cert` (the certificate at `depth`) and about the leaf.
void record_failure(Engine& e, int error, int depth, const X509* cert, const X509* leaf) {
    if (e.verify.error != X509_V_OK) return;  // the first failure is the one to report
    e.verify.error = error;
    e.verify.depth = depth;
    if (cert != nullptr) {
        auto facts = certificate_facts(cert);
        e.verify.subject = facts ? facts.value().identity.subject : "(undecodable subject)";
        e.verify.not_before = time_text(X509_get0_notBefore(cert));
        e.verify.not_after = time_text(X509_get0_notAfter(cert));
    }
    if (leaf == nullptr) return;
    if (auto facts = certificate_facts(leaf)) {
        e.verify.leaf_sans = facts.value().identity.sans;
        e.verify.leaf_fingerprint = facts.value().identity.fingerprint;
    }
}

// Chain verification by OpenSSL; this callback only watches and never overrides its verdict.
int on_verify(int preverify_ok, X509_STORE_CTX* store) {
    Engine* e = engine_of(store);
    if (preverify_ok != 1 && e != nullptr)
        record_failure(*e, X509_STORE_CTX_get_error(store), X509_STORE_CTX_get_error_depth(store),
                       X509_STORE_CTX_get_current_cert(store), X509_STORE_CTX_get0_cert(store));
    return preverify_ok;
}

// The verdict on a pinned certificate: it must be exactly the pinned one and valid now.
int pin_verdict(const X509* leaf, const Fingerprint& pin) {
    auto facts = certificate_facts(leaf);
    if (!facts || facts.value().identity.fingerprint != pin) return X509_V_ERR_CERT_REJECTED;
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) return X509_V_ERR_CERT_NOT_YET_VALID;
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) return X509_V_ERR_CERT_HAS_EXPIRED;
    return X509_V_OK;
}

// A client with an `expect` pin replaces chain verification entirely: the server's leaf must be
// the pinned certificate (and within its validity period). The pin stands in for the CA and the
// name: no chain to the trust anchors is built and no name is checked.
int verify_pin(X509_STORE_CTX* store, void* /*arg*/) {
    Engine* e = engine_of(store);
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    const int verdict = e != nullptr ? pin_verdict(leaf, e->expect.pin) : X509_V_ERR_UNSPECIFIED;
    X509_STORE_CTX_set_error(store, verdict);
    if (verdict != X509_V_OK && e != nullptr) {
        record_failure(*e, verdict, 0, leaf, leaf);
        e->verify.pin_mismatch = verdict == X509_V_ERR_CERT_REJECTED;
    }
    return verdict == X509_V_OK ? 1 : 0;
}

// ================================================================================================
// Context and connection setup

Result<std::string> suite_list(const std::vector<std::uint16_t>& codes) {
    if (codes.empty())
        return std::string(
            "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
            "TLS_CHACHA20_POLY1305_SHA256");
    std::string list;
    for (const std::uint16_t code : codes) {
        const record::SuiteParams* suite = record::find_suite(code);
        if (suite == nullptr) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%04x", code);
            return make_error(std::string("cipher suite ") + hex +
                              " is not one sealsock speaks (0x1301, 0x1302, 0x1303)");
        }
        if (!list.empty()) list += ':';
        list += suite->name;
    }
    return list;
}

// Settings every agent context has (DESIGN facts 2, 3 and 4): TLS 1.3 only, no read-ahead and
// one pipeline (nothing past the handshake is read), no kernel TLS, no tickets, no session cache,
// no early data.
bool apply_fixed_settings(SSL_CTX* ctx, Role role) {
    bool ok = SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
              SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 &&
              SSL_CTX_set_max_pipelines(ctx, 1) == 1 && SSL_CTX_set_max_early_data(ctx, 0) == 1 &&
              SSL_CTX_set_recv_max_early_data(ctx, 0) == 1;
    SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_read_ahead(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (role == Role::server) {
        ok = ok && SSL_CTX_set_num_tickets(ctx, 0) == 1;
        // The rule's suite order is the order of preference.
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    }
    return ok;
}

// Our certificate, chain and key, and the trust anchors (all up-referenced by OpenSSL).
std::optional<ErrorReply> apply_identity(SSL_CTX* ctx, const HandshakeSetup& setup) {
    if (SSL_CTX_use_cert_and_key(ctx, setup.certificate, setup.key, setup.chain, 1) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        return ErrorReply{ErrorCode::no_identity,
                          "identity " + setup.identity_name +
                              " cannot be used: its certificate, chain and key do not fit " +
                              "together (" + openssl_reason() + ")"};
    SSL_CTX_set1_cert_store(ctx, setup.trust);  // takes a reference; cannot fail
    return std::nullopt;
}

void install_verification(SSL_CTX* ctx, const Engine& e) {
    // RFC 8446 4.4.2.4: "If the client does not send any certificates (i.e., it sends an empty
    // Certificate message), the server MAY at its discretion either continue the handshake
    // without client authentication or abort the handshake with a "certificate_required"
    // alert." A sealed server always aborts: every client must authenticate.
    const int mode = e.role == Role::server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                            : SSL_VERIFY_PEER;
    SSL_CTX_set_verify(ctx, mode, on_verify);
    if (e.role == Role::client && e.expect.kind == Expectation::Kind::pin)
        SSL_CTX_set_cert_verify_callback(ctx, verify_pin, nullptr);
    SSL_CTX_set_keylog_callback(ctx, on_keylog);
    SSL_CTX_set_info_callback(ctx, on_info);
}

bool is_ip_literal(const std::string& name) {
    std::array<std::uint8_t, sizeof(in6_addr)> buf{};
    return inet_pton(AF_INET, name.c_str(), buf.data()) == 1 ||
           inet_pton(AF_INET6, name.c_str(), buf.data()) == 1;
}

// Client: SNI carries the server name (RFC 6066 3: "Literal IPv4 and IPv6 addresses are not
// permitted in HostName"), and the certificate must match the expected name unless pinned.
bool apply_client_names(SSL* ssl, const std::string& server_name, const Expectation& expect) {
    if (!server_name.empty() && !is_ip_literal(server_name) &&
        SSL_set_tlsext_host_name(ssl, server_name.c_str()) != 1)
        return false;
    if (expect.kind == Expectation::Kind::pin) return true;
    if (is_ip_literal(expect.name))
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), expect.name.c_str()) == 1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, expect.name.c_str()) == 1;
}

// What a TLS context depends on: two handshakes with equal keys can share one. The pointers stay
// unique while the context lives, because it holds references to the certificate, key and trust
// anchors (a reloaded file yields new objects, hence a new key).
struct ContextKey {
    Role role;
    bool pinned;
    std::string suites;
    const void* certificate;
    const void* chain;
    const void* key;
    const void* trust;
    auto operator<=>(const ContextKey&) const = default;
};

std::optional<ErrorReply> build_context(Engine& e, const HandshakeSetup& setup,
                                        const std::string& suites) {
    e.ctx.reset(SSL_CTX_new(e.role == Role::client ? TLS_client_method() : TLS_server_method()));
    if (e.ctx == nullptr || !apply_fixed_settings(e.ctx.get(), e.role) ||
        SSL_CTX_set_ciphersuites(e.ctx.get(), suites.c_str()) != 1)
        return ErrorReply{ErrorCode::internal,
                          "cannot set up a TLS context (" + openssl_reason() + ")"};
    if (auto refused = apply_identity(e.ctx.get(), setup)) return refused;
    install_verification(e.ctx.get(), e);
    return std::nullopt;
}

}  // namespace

struct ContextCache::Impl {
    std::map<ContextKey, std::unique_ptr<SSL_CTX, CtxFree>> contexts;
};

ContextCache::ContextCache() : impl_(std::make_unique<Impl>()) {}
ContextCache::~ContextCache() = default;

void ContextCache::clear() {
    impl_->contexts.clear();
}

std::size_t ContextCache::size() const {
    return impl_->contexts.size();
}

namespace {

// The engine's context: the cached one for this setup, else a new one (cached if there is a
// cache). Only a context that was set up completely is cached.
std::optional<ErrorReply> make_context(
    Engine& e, const HandshakeSetup& setup, const std::string& suites,
    std::map<ContextKey, std::unique_ptr<SSL_CTX, CtxFree>>* cache) {
    if (cache == nullptr) return build_context(e, setup, suites);
    const ContextKey key{
        e.role,      e.role == Role::client && e.expect.kind == Expectation::Kind::pin,
        suites,      setup.certificate,
        setup.chain, setup.key,
        setup.trust};
    if (auto it = cache->find(key); it != cache->end()) {
        if (SSL_CTX_up_ref(it->second.get()) != 1)
            return ErrorReply{ErrorCode::internal, "cannot reuse a TLS context"};
        e.ctx.reset(it->second.get());
        return std::nullopt;
    }
    if (auto refused = build_context(e, setup, suites)) return refused;
    if (SSL_CTX_up_ref(e.ctx.get()) != 1) return std::nullopt;  // used once, not cached
    if (cache->size() >= ContextCache::capacity) cache->clear();
    cache->emplace(key, std::unique_ptr<SSL_CTX, CtxFree>(e.ctx.get()));
    return std::nullopt;
}

Status make_connection(Engine& e, const HandshakeSetup& setup) {
    e.ssl.reset(SSL_new(e.ctx.get()));
    BIO* bio = e.ssl != nullptr ? socket_bio_new(e.fd) : nullptr;
    if (bio == nullptr || SSL_set_ex_data(e.ssl.get(), engine_index(), &e) != 1) {
        BIO_free(bio);
        return make_error("cannot set up a TLS connection (" + openssl_reason() + ")");
    }
    SSL_set_bio(e.ssl.get(), bio, bio);  // the SSL owns the BIO; the BIO borrows the fd
    if (e.role == Role::server) {
        SSL_set_accept_state(e.ssl.get());
        return {};
    }
    SSL_set_connect_state(e.ssl.get());
    if (!apply_client_names(e.ssl.get(), setup.request.server_name, e.expect))
        return make_error("cannot set the server name to verify (" + openssl_reason() + ")");
    return {};
}

// Checks the request and reads its policy into `e`. A bad request fails with its code.
std::optional<ErrorReply> load_request(Engine& e, const agent::HandshakeRequest& request) {
    if (request.role != Role::client && request.role != Role::server)
        return ErrorReply{ErrorCode::bad_request, "the handshake request has no valid role"};
    e.role = request.role;
    e.service = request.service;
    e.timeout_ms = request.timeout_ms;
    if (e.role == Role::client) {
        auto expect = parse_expect(request.expect, request.server_name);
        if (!expect) return ErrorReply{ErrorCode::bad_request, expect.error().message};
        e.expect = std::move(expect.value());
        return std::nullopt;
    }
    auto access = parse_access_list(request.allow);
    if (!access)
        return ErrorReply{ErrorCode::bad_request,
                          "service " + request.service + ": " + access.error().message};
    e.access = std::move(access.value());
    return std::nullopt;
}

std::string peer_label(Role role, const std::string& server_name, const std::string& address) {
    if (role == Role::server) return "client " + address;
    if (server_name.empty()) return "server " + address;
    return "server " + server_name + " (" + address + ")";
}

// Sets `e` up for a handshake on `fd`; `e` must not move afterwards (OpenSSL points to it).
std::optional<ErrorReply> prepare_engine(
    Engine& e, int fd, const HandshakeSetup& setup,
    std::map<ContextKey, std::unique_ptr<SSL_CTX, CtxFree>>* contexts) {
    auto address = connected_tcp_peer(fd);
    if (auto* refused = std::get_if<ErrorReply>(&address)) return std::move(*refused);
    if (setup.certificate == nullptr || setup.key == nullptr || setup.trust == nullptr)
        return ErrorReply{ErrorCode::internal,
                          "handshake setup lacks a certificate, key or trust anchors"};
    e.fd = fd;
    e.identity_name = setup.identity_name;
    if (auto bad = load_request(e, setup.request)) return bad;
    e.peer = peer_label(e.role, setup.request.server_name, std::get<std::string>(address));
    if (!setup.request.proxy_connect.empty()) {
        e.proxy.target = setup.request.proxy_connect;
        e.proxy.request =
            "CONNECT " + e.proxy.target + " HTTP/1.1\r\nHost: " + e.proxy.target + "\r\n\r\n";
        e.proxy.open = false;
        e.peer += " through the proxy at " + std::get<std::string>(address);
    }
    auto suites = suite_list(setup.request.suites);
    if (!suites) return ErrorReply{ErrorCode::bad_request, suites.error().message};
    if (auto refused = make_context(e, setup, suites.value(), contexts)) return refused;
    if (auto conn = make_connection(e, setup); !conn)
        return ErrorReply{ErrorCode::internal, conn.error().message};
    return std::nullopt;
}

// ================================================================================================
// Failure: one sentence naming the peer, what failed and what to do

ErrorReply expiry_error(const Engine& e) {
    const VerifyFailure& v = e.verify;
    const std::string which = v.depth == 0 ? " presented certificate " : "'s chain contains ";
    const std::string when =
        v.error == X509_V_ERR_CERT_HAS_EXPIRED
            ? ", which expired on " + v.not_after + "; it must be renewed"
            : ", which is not valid before " + v.not_before + "; check the clocks of both machines";
    return {ErrorCode::peer_expired, the_peer(e) + which + v.subject + when};
}

std::string joined(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) {
        if (!s.empty()) s += ", ";
        s += n;
    }
    return s.empty() ? "no names" : s;
}

ErrorReply name_error(const Engine& e) {
    const VerifyFailure& v = e.verify;
    if (v.pin_mismatch)
        return {ErrorCode::peer_name_mismatch,
                the_peer(e) + " presented certificate " + v.subject + " with SHA-256 " +
                    fingerprint_hex(v.leaf_fingerprint) + ", not the pinned " +
                    fingerprint_hex(e.expect.pin) +
                    "; if its certificate was replaced on purpose, update the pin"};
    return {ErrorCode::peer_name_mismatch,
            the_peer(e) + " presented certificate " + v.subject + " for " + joined(v.leaf_sans) +
                ", not for " + e.expect.name +
                "; connect by a name the certificate lists or set expect in the rule"};
}

ErrorReply verify_error(const Engine& e) {
    switch (e.verify.error) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return expiry_error(e);
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
            return name_error(e);
        case X509_V_ERR_CERT_REJECTED:
            if (e.verify.pin_mismatch) return name_error(e);
            break;
        default:
            break;
    }
    return {ErrorCode::peer_untrusted,
            the_peer(e) + " presented certificate " + e.verify.subject +
                ", which is not trusted (" + X509_verify_cert_error_string(e.verify.error) +
                "); the agent accepts only certificates issued under its trust anchors"};
}

bool is_certificate_alert(std::uint8_t alert) {
    using record::Alert;
    switch (static_cast<Alert>(alert)) {
        case Alert::bad_certificate:
        case Alert::unsupported_certificate:
        case Alert::certificate_revoked:
        case Alert::certificate_expired:
        case Alert::certificate_unknown:
        case Alert::unknown_ca:
        case Alert::access_denied:
        case Alert::certificate_required:
            return true;
        default:
            return false;
    }
}

ErrorReply alert_error(const Engine& e, std::uint8_t alert) {
    const std::string name = record::alert_name(alert);
    if (alert == static_cast<std::uint8_t>(record::Alert::close_notify))
        return {ErrorCode::peer_closed,
                the_peer(e) + " closed the connection (close_notify) during the handshake"};
    if (is_certificate_alert(alert))
        return {ErrorCode::peer_rejected,
                the_peer(e) + " refused our certificate: " + name + "; check that it trusts the " +
                    "issuer of identity " + e.identity_name + " and lets it in"};
    return {ErrorCode::peer_rejected,
            the_peer(e) + " ended the handshake with alert " + name +
                (name == "protocol_version" ? " (it does not speak TLS 1.3)" : "") +
                (name == "handshake_failure" ? " (no cipher suite or key share in common?)" : "")};
}

bool has_reason(int reason) {
    const unsigned long code = ERR_peek_last_error();
    return code != 0 && ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == reason;
}

// The peer closed or reset the connection. End of file wins over a later send error: that is
// usually OpenSSL's own alert hitting the closed connection.
std::optional<ErrorReply> closed_error(const Engine& e, int ssl_error) {
    const SocketBioStatus io = socket_bio_status(SSL_get_rbio(e.ssl.get()));
    if (io.eof || (io.last_errno == 0 &&
                   (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN ||
                    has_reason(SSL_R_UNEXPECTED_EOF_WHILE_READING))))
        return ErrorReply{ErrorCode::peer_closed,
                          the_peer(e) + " closed the connection during the handshake; does it " +
                              "speak TLS 1.3 on this port?"};
    if (io.last_errno == ECONNRESET)
        return ErrorReply{ErrorCode::peer_closed,
                          the_peer(e) + " reset the connection during the handshake"};
    if (io.last_errno != 0)
        return ErrorReply{ErrorCode::peer_closed, "the connection to " + peer_text(e) +
                                                      " failed during the handshake (" +
                                                      std::strerror(io.last_errno) + ")"};
    return std::nullopt;
}

// Turns a failed SSL_do_handshake into a reply. Reads this thread's OpenSSL error queue.
ErrorReply describe_failure(const Engine& e, int ssl_error) {
    if (e.verify.error != X509_V_OK) return verify_error(e);
    if (e.alert_received) return alert_error(e, *e.alert_received);
    if (has_reason(SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE))
        return {ErrorCode::peer_untrusted,
                the_peer(e) + " presented no certificate; sealed services accept only clients " +
                    "with a certificate issued under the agent's trust anchors"};
    if (auto closed = closed_error(e, ssl_error)) return std::move(*closed);
    return {ErrorCode::handshake_failed,
            "TLS handshake with " + peer_text(e) + " failed: " + openssl_reason()};
}

// ================================================================================================
// Success: checks before any secret leaves the engine

// RFC 8446 6.2: access_denied: "A valid certificate or PSK was received, but when access control
// was applied, the sender decided not to proceed with negotiation." The client finished its
// handshake before we checked (DESIGN fact 6), so the alert goes under our application key, at
// sequence 0 (no tickets were sent). Best effort: the refusal stands whether it arrives or not.
void send_access_denied(const Engine& e, const record::SuiteParams& suite) {
    auto sealer = record::RecordSealer::create(suite, e.server_secret.view(), 0, {}, 0);
    if (!sealer) return;
    std::array<std::uint8_t, record::header_size + 2 + 1 + record::tag_size> record{};
    const std::size_t n = sealer.value().seal_alert(record::Alert::access_denied, record);
    if (n > 0) (void)send(e.fd, record.data(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

std::string denial_message(const Engine& e, const CertificateFacts& peer, AccessOutcome outcome) {
    const std::string service = e.service.empty() ? "(unnamed)" : e.service;
    if (outcome == AccessOutcome::empty_list)
        return "access denied: the access list of service " + service +
               " is empty, so nobody may connect (identity " + peer.identity.subject + ", " +
               e.peer + ")";
    return "access denied: identity " + peer.identity.subject +
           " is not in the access list of service " + service + " (" + e.peer + ")";
}

// Server: the verified client must be in the access list. False (and the engine done) if not.
bool admit(Engine& e, const CertificateFacts& peer, const record::SuiteParams& suite) {
    const AccessDecision decision = check_access(e.access, peer);
    if (decision.outcome == AccessOutcome::allowed) return true;
    send_access_denied(e, suite);
    fail(e, ErrorCode::access_denied, denial_message(e, peer, decision.outcome));
    return false;
}

// The handshake is complete: checks what it produced and builds the reply (or the refusal).
void complete(Engine& e) {
    SSL* ssl = e.ssl.get();
    if (e.role == Role::server) {
        // The client's last flight has just been read, and its program's first request follows
        // as a separate small segment, which Nagle holds until that flight is acknowledged. A
        // delayed ACK (40 ms on Linux) made every sealed connection take 44 ms to open on
        // loopback instead of 3 ms. Acknowledge now: TCP_QUICKACK is a one-time hint to the
        // kernel, not a lasting setting of the program's socket.
        const int one = 1;
        (void)setsockopt(e.fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
    const record::SuiteParams* suite =
        record::find_suite(SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(ssl)));
    if (SSL_version(ssl) != TLS1_3_VERSION || suite == nullptr)
        return fail(e, ErrorCode::internal, "the handshake ended without a TLS 1.3 suite");
    const X509* leaf = SSL_get0_peer_certificate(ssl);
    if (leaf == nullptr || SSL_get_verify_result(ssl) != X509_V_OK)
        return fail(e, ErrorCode::peer_untrusted, the_peer(e) + "'s certificate was not verified");
    if (e.keylog_malformed || e.client_secret.size() != suite->hash_size ||
        e.server_secret.size() != suite->hash_size)
        return fail(e, ErrorCode::internal, "OpenSSL did not deliver the traffic secrets");
    // DESIGN fact 2: bytes OpenSSL has read past the handshake would never reach the program.
    if (SSL_has_pending(ssl) != 0)
        return fail(e, ErrorCode::unsafe_handoff,
                    the_peer(e) + " sent data that OpenSSL read together with the handshake; " +
                        "refusing to hand the connection over, as that data would be lost");
    auto facts = certificate_facts(leaf);
    if (!facts)
        return fail(e, ErrorCode::peer_untrusted, the_peer(e) + ": " + facts.error().message);
    if (e.role == Role::server && !admit(e, facts.value(), *suite)) return;

    const bool client = e.role == Role::client;
    e.reply.suite = static_cast<std::uint16_t>(suite->id);
    e.reply.write_secret = std::move(client ? e.client_secret : e.server_secret);
    e.reply.read_secret = std::move(client ? e.server_secret : e.client_secret);
    // DESIGN fact 4: no tickets from a sealsock server, none read by a client: both at 0.
    e.reply.write_seq = 0;
    e.reply.read_seq = 0;
    e.reply.identity = e.identity_name;
    e.reply.peer = std::move(facts.value().identity);
    e.succeeded = true;
    finish(e);
}

}  // namespace

// ================================================================================================
// Handshake

struct Handshake::State {
    Engine engine;
};

Handshake::Handshake(std::unique_ptr<State> state) : state_(std::move(state)) {}

Handshake::~Handshake() = default;

std::variant<std::unique_ptr<Handshake>, ErrorReply> Handshake::prepare(int fd,
                                                                        const HandshakeSetup& setup,
                                                                        ContextCache* contexts) {
    ERR_clear_error();
    auto state = std::make_unique<State>();
    auto error = prepare_engine(state->engine, fd, setup,
                                contexts != nullptr ? &contexts->impl_->contexts : nullptr);
    ERR_clear_error();
    if (error) return std::move(*error);
    return std::unique_ptr<Handshake>(new Handshake(std::move(state)));
}

namespace {

// The HTTP CONNECT exchange before the handshake (`via` in the config; RFC 9110, 9.3.6): the
// request, then the proxy's answer up to its blank line and never past it (peeked first, then
// taken exactly), so the first byte after it is the server's. Returns what it waits for, or
// nothing once the tunnel is open. A 2xx answer opens it; anything else fails the handshake.
std::optional<Handshake::Want> proxy_step(Engine& e) {
    Engine::Proxy& p = e.proxy;
    const auto broken = [&](const std::string& what) {
        fail(
            e, ErrorCode::peer_closed,
            "the proxy for " + peer_text(e) + " " + what + " before answering CONNECT " + p.target);
        return Handshake::Want::done;
    };
    while (p.sent < p.request.size()) {
        const ssize_t n = ::send(e.fd, p.request.data() + p.sent, p.request.size() - p.sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            p.sent += static_cast<std::size_t>(n);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Handshake::Want::write;
        return broken(std::string("failed (") + std::strerror(errno) + ")");
    }
    constexpr std::size_t kLimit = 8192;
    std::array<char, 1024> buf{};
    while (true) {
        const ssize_t n = ::recv(e.fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Handshake::Want::read;
        if (n < 0) return broken(std::string("failed (") + std::strerror(errno) + ")");
        if (n == 0) return broken("closed the connection");
        // Where the blank line ends, counting the bytes already taken (it may straddle them).
        const std::size_t before = p.answer.size();
        const std::string joined = p.answer.substr(before < 3 ? 0 : before - 3) +
                                   std::string(buf.data(), static_cast<std::size_t>(n));
        const std::size_t end = joined.find("\r\n\r\n");
        const std::size_t offset = before < 3 ? before : 3;
        const std::size_t take =
            end == std::string::npos ? static_cast<std::size_t>(n) : end + 4 - offset;
        const ssize_t got = ::recv(e.fd, buf.data(), take, MSG_DONTWAIT);
        if (got != static_cast<ssize_t>(take)) return broken("lost bytes it had sent");
        p.answer.append(buf.data(), take);
        if (end != std::string::npos) break;
        if (p.answer.size() > kLimit) {
            fail(e, ErrorCode::handshake_failed,
                 "the proxy for " + peer_text(e) +
                     " answered CONNECT with more than 8 KiB of "
                     "header: is it an HTTP proxy?");
            return Handshake::Want::done;
        }
    }
    const std::string status = p.answer.substr(0, p.answer.find("\r\n"));
    const bool http = status.rfind("HTTP/1.", 0) == 0 && status.size() >= 12 && status[8] == ' ';
    if (http && status[9] == '2') {
        p.open = true;
        p.answer.clear();
        return std::nullopt;
    }
    fail(e, ErrorCode::handshake_failed,
         "the proxy for " + peer_text(e) + " refused CONNECT " + p.target + ": \"" +
             status.substr(0, 120) + "\"");
    return Handshake::Want::done;
}

}  // namespace

Handshake::Want Handshake::step() {
    Engine& e = state_->engine;
    if (e.done) return Want::done;
    if (!e.proxy.open)
        if (const std::optional<Want> w = proxy_step(e)) return *w;
    ERR_clear_error();
    const int r = SSL_do_handshake(e.ssl.get());
    const int ssl_error = r == 1 ? SSL_ERROR_NONE : SSL_get_error(e.ssl.get(), r);
    Want want = Want::done;
    if (r == 1)
        complete(e);
    else if (ssl_error == SSL_ERROR_WANT_READ)
        want = Want::read;
    else if (ssl_error == SSL_ERROR_WANT_WRITE)
        want = Want::write;
    else {
        ErrorReply error = describe_failure(e, ssl_error);
        fail(e, error.code, std::move(error.message));
    }
    ERR_clear_error();
    return want;
}

bool Handshake::succeeded() const {
    return state_->engine.succeeded;
}

agent::HandshakeReply Handshake::take_reply() {
    return std::move(state_->engine.reply);
}

const agent::ErrorReply& Handshake::error() const {
    return state_->engine.error;
}

void Handshake::expire() {
    Engine& e = state_->engine;
    if (e.done) return;
    fail(e, ErrorCode::timeout,
         "handshake with " + peer_text(e) + " did not finish within " +
             std::to_string(e.timeout_ms) + " ms");
}

}  // namespace sealsock::keyagent
