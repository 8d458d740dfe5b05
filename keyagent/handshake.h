// The agent's TLS 1.3 handshake engine: one handshake on a socket passed by a program.
//
// OpenSSL runs the handshake through the engine's own BIO, which uses
// recv/send(MSG_DONTWAIT | MSG_NOSIGNAL) on the passed descriptor and never touches its flags:
// the socket is the program's open file description, so O_NONBLOCK, socket options and the
// receive queue are shared with it (DESIGN fact 5). read_ahead stays off so OpenSSL never reads
// past the handshake (fact 2), kernel TLS is disabled (fact 3), a server issues no tickets
// (fact 4), and nothing is shut down. Secrets come from the keylog callback and go straight into
// Secret storage; they are never logged.
//
// The engine decides, before any secret leaves it:
//  - client: the server's chain reaches the trust anchors and the certificate is valid now and
//    names `server_name` (or the host of `expect` "name:HOST"). An `expect` "sha256:HEX" pin
//    replaces the chain and name checks: the server's leaf must be exactly the pinned
//    certificate (and within its validity period), whoever issued it;
//  - server: the client's chain reaches the trust anchors, the certificate is valid now, and the
//    identity is in the request's access list. A client refused by the access list is sent an
//    access_denied alert (sealed with the new keys, so the client learns why) and no secrets are
//    returned.
//
// Thread-safety: a Handshake is driven by one thread at a time (the agent moves it between its
// event loop and worker threads, never concurrently). Handshakes are independent of each other.
#pragma once

#include <sealsock/agent_protocol.h>
#include <sealsock/result.h>

#include <cstddef>
#include <memory>
#include <variant>

using X509 = struct x509_st;
using EVP_PKEY = struct evp_pkey_st;
using X509_STORE = struct x509_store_st;
struct stack_st_X509;

namespace sealsock::keyagent {

// What the engine needs for one handshake, resolved by the agent from its identities and trust.
// The OpenSSL objects are borrowed for the duration of start(): the engine takes its own
// references, so the agent may lock or reload while a handshake runs.
struct HandshakeSetup {
    agent::HandshakeRequest request;
    X509* certificate = nullptr;     // this side's leaf
    stack_st_X509* chain = nullptr;  // intermediates, may be null
    EVP_PKEY* key = nullptr;         // this side's private key
    X509_STORE* trust = nullptr;     // trust anchors for the peer's chain
    std::string identity_name;       // reported back in the reply
};

// TLS contexts kept for reuse. Building an SSL_CTX costs OpenSSL 3 a round of algorithm fetches
// and list building, and setting the identity checks the key against the certificate: about a
// sixth of an agent's CPU per handshake when done for each one. A context depends only on the
// role, the suites, the verification mode (CA and name, or pin), the identity (certificate,
// chain, key) and the trust anchors, so one is built per combination and each handshake makes
// its SSL from it. A cached context holds references to the key and the trust anchors: clear()
// whenever the identity store changes (lock, unlock, reload), so a locked key is freed at once
// and a renewed certificate is used for the next handshake. At most `capacity` contexts are kept
// (the whole cache is dropped when it is full).
//
// Thread-safety: none; the agent's event loop owns it. Handshakes running on worker threads
// share a context through their SSL, which OpenSSL allows.
class ContextCache {
  public:
    static constexpr std::size_t capacity = 64;
    ContextCache();
    ~ContextCache();
    ContextCache(const ContextCache&) = delete;
    ContextCache& operator=(const ContextCache&) = delete;
    void clear();
    [[nodiscard]] std::size_t size() const;

  private:
    friend class Handshake;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

class Handshake {
  public:
    enum class Want { read, write, done };

    // Prepares a handshake on `fd` (not owned: the caller closes it after the handshake ends).
    // Nothing is sent or received yet: the first step() does that. Refusals come as the agent
    // replies them: ErrorCode::not_a_socket for a descriptor that is not a connected IPv4/IPv6
    // TCP socket (listening sockets included); peer_closed for one the peer already closed or
    // reset; bad_request for an unknown suite code, a malformed `expect` (or a client request
    // with neither server_name nor expect) or a malformed access-list entry; no_identity when
    // certificate, chain and key do not fit; internal for missing setup objects or OpenSSL
    // allocation failures. With `contexts`, the TLS context comes from (or goes into) that
    // cache; without, a fresh one is built. Any thread may call it (the cache's owner only, with
    // a cache).
    static std::variant<std::unique_ptr<Handshake>, agent::ErrorReply> prepare(
        int fd, const HandshakeSetup& setup, ContextCache* contexts = nullptr);
    ~Handshake();
    Handshake(const Handshake&) = delete;
    Handshake& operator=(const Handshake&) = delete;

    // Advances the handshake as far as the socket allows. Returns what it waits for (poll the
    // socket for it, then call again), or done; after done it does nothing and returns done.
    // Clears the calling thread's OpenSSL error queue before and after.
    Want step();

    // After done: the reply (secrets, sequence numbers, verified peer) or the error (code and one
    // sentence naming what failed and, where it helps, what to do).
    // take_reply() moves the reply out once (a later call returns an empty reply); error() is
    // meaningful only when done and not succeeded. The server's access check has already run:
    // a refused client is an ErrorCode::access_denied error, never a reply.
    [[nodiscard]] bool succeeded() const;
    [[nodiscard]] agent::HandshakeReply take_reply();
    [[nodiscard]] const agent::ErrorReply& error() const;

    // Ends a handshake that ran out of time: done with ErrorCode::timeout (no-op once done).
    // The caller keeps the clock (request.timeout_ms); the engine only reports it.
    void expire();

  private:
    struct State;
    explicit Handshake(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

}  // namespace sealsock::keyagent
