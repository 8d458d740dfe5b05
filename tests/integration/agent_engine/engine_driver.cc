// engine_driver: the agent's handshake engine (keyagent/handshake.h) against real OpenSSL peers.
//
// One invocation runs one scenario (`--scenario NAME`; `--list` prints them all with what each
// asserts). The engine runs on a real TCP socket over loopback, exactly as the agent runs it on
// a socket passed by a program: a blocking socket (so a BIO that ever blocked would hang the
// test), driven by step() and poll(), with the deadline kept here and enforced with expire().
// The peer is `openssl s_server` or `openssl s_client` started by this driver, or a bare socket
// when a scenario needs a peer that misbehaves.
//
// Where a handshake succeeds, the secrets it returned are proven right by using them: a
// RecordSealer and RecordOpener (shim/record) exchange data with the very OpenSSL peer that did
// the handshake, and every byte is compared in both directions.
//
// Prints one line per scenario: "ok NAME: what it saw" or "FAIL NAME: why" (with the peer's
// output); exit status 0 only on success.
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <sealsock/agent_protocol.h>
#include <sealsock/unique_fd.h>

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "support/prng.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "keyagent/handshake.h"
#include "keyagent/policy.h"
#include "peer_process.h"
#include "record/open.h"
#include "record/seal.h"
#include "record/suite.h"
#include "record/wire.h"

namespace {

using namespace sealsock;
using namespace sealsock::engine_test;
using namespace std::chrono_literals;
using agent::ErrorCode;
using agent::Role;
using keyagent::Handshake;
using keyagent::HandshakeSetup;
using Bytes = std::vector<std::uint8_t>;

// ================================================================================================
// Options, PKI files

struct Options {
    std::string pki;  // directory made by 20-agent-engine.sh
    std::string openssl = "openssl";
    std::string tmpdir = "/tmp";
    std::string scenario;
};

struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct StoreFree {
    void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};

struct Identity {
    std::string name;
    std::unique_ptr<X509, X509Free> cert;
    std::unique_ptr<EVP_PKEY, KeyFree> key;
};

std::string pki_file(const Options& o, const std::string& name) {
    return o.pki + "/" + name;
}

Identity load_identity(const Options& o, const std::string& name) {
    Identity id;
    id.name = name;
    FILE* cert = std::fopen(pki_file(o, name + ".pem").c_str(), "r");
    FILE* key = std::fopen(pki_file(o, name + ".key").c_str(), "r");
    if (cert != nullptr) id.cert.reset(PEM_read_X509(cert, nullptr, nullptr, nullptr));
    if (key != nullptr) id.key.reset(PEM_read_PrivateKey(key, nullptr, nullptr, nullptr));
    if (cert != nullptr) std::fclose(cert);
    if (key != nullptr) std::fclose(key);
    check(id.cert != nullptr && id.key != nullptr,
          "cannot load identity " + name + " from " + o.pki);
    return id;
}

std::unique_ptr<X509_STORE, StoreFree> load_trust(const Options& o, const std::string& ca) {
    std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
    check(store != nullptr && X509_STORE_load_file(store.get(), pki_file(o, ca).c_str()) == 1,
          "cannot load trust anchors " + ca);
    return store;
}

keyagent::Fingerprint fingerprint_of(const Identity& id) {
    auto facts = keyagent::certificate_facts(id.cert.get());
    check(facts.ok(), "cannot read the fingerprint of " + id.name);
    return facts.value().identity.fingerprint;
}

// ================================================================================================
// Sockets

using Fd = sealsock::UniqueFd;

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
}

Fd listen_loopback(std::uint16_t& port) {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr = loopback(0);
    socklen_t len = sizeof addr;
    if (fd.get() < 0 || bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(fd.get(), 4) != 0 ||
        getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        fail(errno_text("listen on 127.0.0.1:0"));
    port = ntohs(addr.sin_port);
    return fd;
}

// A blocking TCP connection to 127.0.0.1:port (loopback connects at once).
Fd connect_loopback(std::uint16_t port) {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_in addr = loopback(port);
    if (fd.get() < 0 || connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr))
        fail(errno_text("connect to 127.0.0.1:" + std::to_string(port)));
    return fd;
}

bool wait_fd(int fd, short events, Clock::time_point end) {
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
        if (left <= 0ms) return false;
        pollfd p{fd, events, 0};
        const int r = poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 100)));
        if (r > 0) return true;
        if (r < 0 && errno != EINTR) fail(errno_text("poll"));
    }
}

// Accepts one connection (a blocking socket, as programs usually have).
Fd accept_one(int listener, Clock::time_point end, const PeerProcess* peer) {
    if (!wait_fd(listener, POLLIN, end))
        fail("no connection arrived" + (peer ? "\n" + peer->describe() : std::string()));
    Fd fd(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (fd.get() < 0) fail(errno_text("accept4"));
    return fd;
}

// ================================================================================================
// Driving the engine as the agent does

struct Outcome {
    bool ok = false;
    agent::HandshakeReply reply;
    agent::ErrorReply error;
};

std::string outcome_text(const Outcome& o) {
    if (o.ok) return "succeeded";
    return std::string(agent::error_code_name(o.error.code)) + ": " + o.error.message;
}

// Runs a prepared handshake to the end: poll for what it wants, expire at `end`.
Outcome drive(Handshake& hs, int fd, Clock::time_point end) {
    const int flags = fcntl(fd, F_GETFL);
    Handshake::Want want = hs.step();
    while (want != Handshake::Want::done) {
        if (!wait_fd(fd, want == Handshake::Want::read ? POLLIN : POLLOUT, end)) {
            hs.expire();
            break;
        }
        want = hs.step();
    }
    check(hs.step() == Handshake::Want::done, "step() after done did not return done");
    // DESIGN fact 5: the engine shares the program's open file description; it must not have
    // changed its flags, and must not have closed it.
    check(fcntl(fd, F_GETFL) == flags, "the engine changed the socket's file status flags");
    Outcome o;
    o.ok = hs.succeeded();
    if (o.ok)
        o.reply = hs.take_reply();
    else
        o.error = hs.error();
    return o;
}

Outcome run_engine(int fd, const HandshakeSetup& setup,
                   keyagent::ContextCache* contexts = nullptr) {
    auto prepared = Handshake::prepare(fd, setup, contexts);
    if (auto* error = std::get_if<agent::ErrorReply>(&prepared)) return {false, {}, *error};
    auto& hs = *std::get<std::unique_ptr<Handshake>>(prepared);
    return drive(hs, fd, Clock::now() + std::chrono::milliseconds(setup.request.timeout_ms));
}

HandshakeSetup setup_for(Role role, const Identity& id, X509_STORE* trust) {
    HandshakeSetup s;
    s.request.role = role;
    s.request.timeout_ms = 15000;
    s.certificate = id.cert.get();
    s.key = id.key.get();
    s.trust = trust;
    s.identity_name = id.name;
    return s;
}

void expect_error(const Outcome& o, ErrorCode code, const std::vector<std::string>& phrases) {
    check(!o.ok, "the handshake succeeded, but " + std::string(agent::error_code_name(code)) +
                     " was expected");
    check(o.error.code == code,
          "expected " + std::string(agent::error_code_name(code)) + ", got " + outcome_text(o));
    for (const auto& p : phrases)
        check(o.error.message.find(p) != std::string::npos,
              "the message does not mention '" + p + "': " + o.error.message);
}

// ================================================================================================
// Proving the secrets: data both ways with the record layer

using sealsock::test::Prng;

// What we send: bytes 0x80..0xff, so they separate exactly from the peer's ASCII status text
// in its stdout.
Bytes binary_payload(std::size_t n, std::uint64_t seed) {
    Prng prng(seed);
    Bytes b(n);
    for (auto& byte : b)
        byte = static_cast<std::uint8_t>(0x80 | (prng.next() & 0x7f));
    return b;
}

// What the peer sends (typed into its stdin): digits and newlines, none of the characters
// s_server and s_client treat as commands at the start of a read (Q q R r K k c P S).
std::string typed_payload(std::size_t n, std::uint64_t seed) {
    Prng prng(seed);
    std::string s(n, '0');
    for (auto& c : s) {
        const std::uint64_t r = prng.next();
        c = r % 29 == 0 ? '\n' : static_cast<char>('0' + r % 10);
    }
    return s;
}

Bytes high_bytes(const std::string& text) {
    Bytes out;
    for (const char c : text)
        if (static_cast<unsigned char>(c) >= 0x80) out.push_back(static_cast<std::uint8_t>(c));
    return out;
}

void send_all(int fd, ByteView bytes, Clock::time_point end) {
    while (!bytes.empty()) {
        const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            bytes = bytes.subspan(static_cast<std::size_t>(n));
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            fail(errno_text("send"));
        } else if (!wait_fd(fd, POLLOUT, end)) {
            fail("timed out sending to the peer");
        }
    }
}

// Our data to the peer: sealed with reply.write_secret at reply.write_seq; the peer prints it.
void send_sealed(int fd, const agent::HandshakeReply& reply, const PeerProcess& peer,
                 Clock::time_point end) {
    const record::SuiteParams* suite = record::find_suite(reply.suite);
    auto sealer =
        record::RecordSealer::create(*suite, reply.write_secret.view(), reply.write_seq, {}, 0);
    check(sealer.ok(), "RecordSealer::create failed");
    const Bytes data = binary_payload(40000, reply.suite);
    Bytes wire(record::sealed_size(data.size()));
    const record::SealOutcome s = sealer.value().seal_data(data, wire, 0);
    check(s.ok && s.consumed == data.size(), "sealing our data failed");
    send_all(fd, ByteView(wire).first(s.written), end);
    while (high_bytes(peer.output()).size() < data.size() && Clock::now() < end)
        std::this_thread::sleep_for(10ms);
    check(high_bytes(peer.output()) == data,
          "the peer did not print exactly the data we sealed with the write secret\n" +
              peer.describe());
}

// Opens records from `fd` until `want` bytes of application data arrived (or a fatal outcome).
record::OpenOutcome receive(int fd, record::RecordOpener& opener, Bytes& got, std::size_t want,
                            PeerProcess* peer, std::string_view typing, Clock::time_point end) {
    const auto peer_text = [peer] { return peer != nullptr ? "\n" + peer->describe() : ""; };
    Bytes in;
    Bytes plain(record::max_plaintext_bound);
    std::size_t typed = 0;
    while (got.size() < want) {
        if (peer != nullptr) typed += peer->type(typing.substr(typed));
        const record::OpenOutcome o = opener.open(in, plain);
        if (o.status == record::OpenStatus::fatal || o.status == record::OpenStatus::close_notify)
            return o;
        if (o.status == record::OpenStatus::data)
            got.insert(got.end(), plain.begin(), plain.begin() + static_cast<long>(o.plaintext));
        if (o.status != record::OpenStatus::need_more) {
            in.erase(in.begin(), in.begin() + static_cast<long>(o.consumed));
            continue;
        }
        check(wait_fd(fd, POLLIN, end), "timed out waiting for the peer's records" + peer_text());
        std::array<std::uint8_t, 1 << 16> buf;
        const ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        check(n > 0, "the peer closed the connection before sending its data" + peer_text());
        in.insert(in.end(), buf.begin(), buf.begin() + n);
    }
    return {record::OpenStatus::data, 0, got.size()};
}

record::RecordOpener make_opener(const agent::HandshakeReply& reply) {
    const record::SuiteParams* suite = record::find_suite(reply.suite);
    auto opener = record::RecordOpener::create(*suite, reply.read_secret.view(), reply.read_seq);
    check(opener.ok(), "RecordOpener::create failed");
    return std::move(opener.value());
}

// The peer's data to us: typed into its stdin, opened with reply.read_secret at reply.read_seq.
void receive_opened(int fd, const agent::HandshakeReply& reply, PeerProcess& peer,
                    Clock::time_point end) {
    record::RecordOpener opener = make_opener(reply);
    const std::string typed = typed_payload(30000, reply.suite + 1);
    Bytes got;
    const record::OpenOutcome o = receive(fd, opener, got, typed.size(), &peer, typed, end);
    check(o.status == record::OpenStatus::data,
          std::string("opening the peer's records failed: ") + o.reason + "\n" + peer.describe());
    check(got == Bytes(typed.begin(), typed.end()),
          "the data opened with the read secret differs from what the peer sent");
}

void exchange(int fd, const agent::HandshakeReply& reply, PeerProcess& peer) {
    const auto end = Clock::now() + 30s;
    send_sealed(fd, reply, peer, end);
    receive_opened(fd, reply, peer, end);
}

void check_reply(const Outcome& o, std::uint16_t suite, const Identity& us, const Identity& peer,
                 const std::string& subject) {
    check(o.ok, "the handshake failed: " + outcome_text(o));
    check(o.reply.suite == suite, "negotiated suite " + std::to_string(o.reply.suite));
    check(o.reply.write_seq == 0 && o.reply.read_seq == 0, "sequence numbers are not 0/0");
    check(o.reply.identity == us.name, "the reply names identity " + o.reply.identity);
    check(o.reply.peer.subject == subject, "peer subject is " + o.reply.peer.subject);
    check(o.reply.peer.fingerprint == fingerprint_of(peer), "peer fingerprint is not " + peer.name);
    const std::size_t hash = record::find_suite(suite)->hash_size;
    check(o.reply.write_secret.size() == hash && o.reply.read_secret.size() == hash,
          "secrets have the wrong size");
}

// ================================================================================================
// Peers

struct Context {
    const Options& o;
    TempDir dir;
    std::unique_ptr<X509_STORE, StoreFree> trust;  // the test CA
    keyagent::ContextCache* contexts = nullptr;    // serve() and connect_to() use it if set
    explicit Context(const Options& opts)
        : o(opts), dir(opts.tmpdir), trust(load_trust(opts, "ca.pem")) {}
};

std::string suite_name(std::uint16_t code) {
    return std::string(record::find_suite(code)->name);
}

// s_client connecting to our listener; `cert` empty: it presents no certificate.
std::vector<std::string> s_client_args(const Context& c, std::uint16_t port, std::uint16_t suite,
                                       const std::string& cert, const std::string& ca) {
    std::vector<std::string> a = {
        c.o.openssl, "s_client",         "-connect",        "127.0.0.1:" + std::to_string(port),
        "-tls1_3",   "-ciphersuites",    suite_name(suite), "-servername",
        "localhost", "-verify_hostname", "localhost",       "-verify_return_error",
        "-CAfile",   pki_file(c.o, ca)};
    if (!cert.empty())
        a.insert(a.end(),
                 {"-cert", pki_file(c.o, cert + ".pem"), "-key", pki_file(c.o, cert + ".key")});
    return a;
}

std::vector<std::string> s_server_args(const Context& c, const std::string& cert,
                                       const std::string& ca, std::vector<std::string> extra) {
    std::vector<std::string> a = {c.o.openssl,
                                  "s_server",
                                  "-accept",
                                  "127.0.0.1:0",
                                  "-naccept",
                                  "1",
                                  "-cert",
                                  pki_file(c.o, cert + ".pem"),
                                  "-key",
                                  pki_file(c.o, cert + ".key"),
                                  "-CAfile",
                                  pki_file(c.o, ca),
                                  "-Verify",
                                  "2",
                                  "-verify_return_error"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

// s_server prints "ACCEPT 127.0.0.1:PORT" once it listens.
std::uint16_t listening_port(const PeerProcess& server) {
    constexpr std::string_view marker = "ACCEPT 127.0.0.1:";
    check(server.wait_for_text(marker, Clock::now() + 20s),
          "s_server did not start listening\n" + server.describe());
    const std::string out = server.output();
    return static_cast<std::uint16_t>(
        std::strtoul(out.c_str() + out.find(marker) + marker.size(), nullptr, 10));
}

// The engine as server of service "redis" against s_client presenting `client_cert`.
struct ServerRun {
    std::unique_ptr<PeerProcess> peer;
    Fd fd;
    Outcome outcome;
};

ServerRun serve(Context& c, std::uint16_t suite, const std::string& client_cert,
                std::vector<std::string> allow, const std::string& client_ca = "ca.pem") {
    std::uint16_t port = 0;
    Fd listener = listen_loopback(port);
    ServerRun run;
    run.peer = std::make_unique<PeerProcess>(s_client_args(c, port, suite, client_cert, client_ca),
                                             c.dir.path(), "s_client");
    run.fd = accept_one(listener.get(), Clock::now() + 20s, run.peer.get());
    const Identity server = load_identity(c.o, "server");
    HandshakeSetup setup = setup_for(Role::server, server, c.trust.get());
    setup.request.service = "redis";
    setup.request.allow = std::move(allow);
    setup.request.suites = {suite};
    run.outcome = run_engine(run.fd.get(), setup, c.contexts);
    return run;
}

// The engine as client (identity alice) against s_server presenting `server_cert`.
struct ClientRun {
    std::unique_ptr<PeerProcess> peer;
    Fd fd;
    Outcome outcome;
};

ClientRun connect_to(Context& c, const std::string& server_cert, HandshakeSetup setup,
                     const std::string& server_ca = "ca.pem",
                     std::vector<std::string> extra = {"-tls1_3"}) {
    ClientRun run;
    run.peer = std::make_unique<PeerProcess>(s_server_args(c, server_cert, server_ca, extra),
                                             c.dir.path(), "s_server");
    run.fd = connect_loopback(listening_port(*run.peer));
    run.outcome = run_engine(run.fd.get(), setup, c.contexts);
    return run;
}

HandshakeSetup client_setup(const Identity& alice, X509_STORE* trust, std::string server_name,
                            std::string expect = "") {
    HandshakeSetup setup = setup_for(Role::client, alice, trust);
    setup.request.server_name = std::move(server_name);
    setup.request.expect = std::move(expect);
    return setup;
}

// Waits for the peer to report `text` (an alert it received) and returns the OpenSSL error
// field that says it, e.g. "tlsv1 alert unknown ca (SSL alert number 48)".
std::string expect_peer_saw(const PeerProcess& peer, const std::string& text) {
    check(peer.wait_for_text(text, Clock::now() + 10s),
          "the peer never reported '" + text + "'\n" + peer.describe());
    const std::string all = peer.output() + peer.errors();
    const std::size_t at = all.find(text);
    const std::size_t begin = all.rfind(':', at) + 1;  // npos + 1 == 0
    const std::size_t end = std::min(all.find_first_of(":\n", at), all.size());
    std::string field = all.substr(begin, end - begin);
    const std::size_t number = all.find("SSL alert number ", at);
    if (number != std::string::npos && number < all.find('\n', at))
        field += " (" + all.substr(number, all.find_first_of("\n", number) - number) + ")";
    return field;
}

// ================================================================================================
// Scenarios: the engine as server (s_client is the peer)

std::string server_ok(Context& c, std::uint16_t suite) {
    ServerRun run = serve(c, suite, "alice", {"cn:nobody", "ou:nothing", "cn:alice"});
    check_reply(run.outcome, suite, load_identity(c.o, "server"), load_identity(c.o, "alice"),
                "CN=alice,O=Example");
    check(run.outcome.reply.peer.sans == std::vector<std::string>{"email:alice@example.org"},
          "alice's SANs were not reported");
    exchange(run.fd.get(), run.outcome.reply, *run.peer);
    return "alice admitted, 40000 bytes each way match";
}

std::string server_access_denied(Context& c) {
    ServerRun run = serve(c, 0x1301, "bob", {"cn:alice", "o:Example"});
    expect_error(run.outcome, ErrorCode::access_denied,
                 {"access denied: identity CN=bob is not in the access list of service redis"});
    const std::string saw = expect_peer_saw(*run.peer, "alert access denied");
    return run.outcome.error.message + " / s_client: " + saw;
}

std::string server_empty_list(Context& c) {
    ServerRun run = serve(c, 0x1301, "alice", {});
    expect_error(run.outcome, ErrorCode::access_denied, {"empty", "redis", "CN=alice"});
    const std::string saw = expect_peer_saw(*run.peer, "alert access denied");
    return run.outcome.error.message + " / s_client: " + saw;
}

std::string server_untrusted(Context& c) {
    ServerRun run = serve(c, 0x1301, "mallory", {"any"});
    expect_error(run.outcome, ErrorCode::peer_untrusted, {"CN=mallory", "redis", "not trusted"});
    const std::string saw = expect_peer_saw(*run.peer, "alert unknown ca");
    return run.outcome.error.message + " / s_client: " + saw;
}

std::string server_expired(Context& c) {
    ServerRun run = serve(c, 0x1301, "carol-expired", {"any"});
    expect_error(run.outcome, ErrorCode::peer_expired,
                 {"CN=carol", "expired on 2020-01-02 00:00:00 UTC"});
    const std::string saw = expect_peer_saw(*run.peer, "alert certificate expired");
    return run.outcome.error.message + " / s_client: " + saw;
}

std::string server_no_certificate(Context& c) {
    ServerRun run = serve(c, 0x1301, "", {"any"});
    expect_error(run.outcome, ErrorCode::peer_untrusted, {"presented no certificate", "redis"});
    const std::string saw = expect_peer_saw(*run.peer, "alert certificate required");
    return run.outcome.error.message + " / s_client: " + saw;
}

std::string server_rejected_by_client(Context& c) {
    ServerRun run = serve(c, 0x1301, "alice", {"any"}, "other-ca.pem");
    expect_error(run.outcome, ErrorCode::peer_rejected, {"refused our certificate: unknown_ca"});
    return run.outcome.error.message;
}

std::string server_silent_peer(Context& c) {
    std::uint16_t port = 0;
    Fd listener = listen_loopback(port);
    Fd silent = connect_loopback(port);  // connects and sends nothing
    Fd fd = accept_one(listener.get(), Clock::now() + 5s, nullptr);
    const Identity server = load_identity(c.o, "server");
    HandshakeSetup setup = setup_for(Role::server, server, c.trust.get());
    setup.request.service = "redis";
    setup.request.allow = {"any"};
    setup.request.timeout_ms = 400;
    const Outcome o = run_engine(fd.get(), setup);
    expect_error(o, ErrorCode::timeout, {"did not finish within 400 ms", "redis"});
    return o.error.message;
}

// A bare peer connected to a fresh listener: the accepted socket (blocking) and the peer's end.
struct BarePeer {
    Fd listener;
    Fd peer;
    Fd fd;
};

BarePeer bare_peer(bool reset_on_close) {
    BarePeer b;
    std::uint16_t port = 0;
    b.listener = listen_loopback(port);
    b.peer = connect_loopback(port);
    if (reset_on_close) {
        const linger abort_on_close{1, 0};
        check(setsockopt(b.peer.get(), SOL_SOCKET, SO_LINGER, &abort_on_close,
                         sizeof abort_on_close) == 0,
              errno_text("SO_LINGER"));
    }
    b.fd = accept_one(b.listener.get(), Clock::now() + 5s, nullptr);
    return b;
}

// The peer closes (FIN) or resets (RST) while the engine waits for its ClientHello.
std::string server_peer_closes(Context& c, bool reset) {
    BarePeer b = bare_peer(reset);
    const Identity server = load_identity(c.o, "server");
    HandshakeSetup setup = setup_for(Role::server, server, c.trust.get());
    setup.request.allow = {"any"};
    auto prepared = Handshake::prepare(b.fd.get(), setup);
    check(std::holds_alternative<std::unique_ptr<Handshake>>(prepared), "prepare() refused");
    Handshake& hs = *std::get<std::unique_ptr<Handshake>>(prepared);
    check(hs.step() == Handshake::Want::read, "the engine did not wait for the ClientHello");
    b.peer.reset();
    const Outcome o = drive(hs, b.fd.get(), Clock::now() + 10s);
    expect_error(o, ErrorCode::peer_closed,
                 {reset ? "reset the connection during the handshake" : "closed the connection"});
    return o.error.message;
}

// The peer resets before the engine starts: the socket is no longer connected, and prepare()
// says the peer went away (not that the program passed a bad descriptor).
std::string server_reset_before_start(Context& c) {
    BarePeer b = bare_peer(true);
    b.peer.reset();
    const Identity server = load_identity(c.o, "server");
    HandshakeSetup setup = setup_for(Role::server, server, c.trust.get());
    setup.request.allow = {"any"};
    const Outcome o = run_engine(b.fd.get(), setup);
    expect_error(o, ErrorCode::peer_closed, {"before the handshake began"});
    return o.error.message;
}

// A plaintext client (an HTTP request where a ClientHello belongs): a protocol error, reported
// with OpenSSL's reason.
std::string server_plaintext_peer(Context& c) {
    BarePeer b = bare_peer(false);
    const std::string_view request = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    send_all(b.peer.get(), as_bytes(request), Clock::now() + 5s);
    const Identity server = load_identity(c.o, "server");
    HandshakeSetup setup = setup_for(Role::server, server, c.trust.get());
    setup.request.allow = {"any"};
    const Outcome o = run_engine(b.fd.get(), setup);
    expect_error(o, ErrorCode::handshake_failed, {"TLS handshake with client 127.0.0.1:", "http"});
    return o.error.message;
}

// An in-process OpenSSL client on memory BIOs, so that the test decides how its bytes are cut
// into segments.
struct MemoryClient {
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{nullptr, &SSL_CTX_free};
    std::unique_ptr<SSL, decltype(&SSL_free)> ssl{nullptr, &SSL_free};
    BIO* in = nullptr;   // owned by ssl
    BIO* out = nullptr;  // owned by ssl
};

MemoryClient memory_client(const Options& o, const Identity& id) {
    MemoryClient m;
    m.ctx.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX* ctx = m.ctx.get();
    check(ctx != nullptr && SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
              SSL_CTX_use_certificate(ctx, id.cert.get()) == 1 &&
              SSL_CTX_use_PrivateKey(ctx, id.key.get()) == 1 &&
              SSL_CTX_load_verify_file(ctx, pki_file(o, "ca.pem").c_str()) == 1,
          "cannot set up the in-process client");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    m.ssl.reset(SSL_new(ctx));
    m.in = BIO_new(BIO_s_mem());
    m.out = BIO_new(BIO_s_mem());
    check(m.ssl != nullptr && m.in != nullptr && m.out != nullptr, "SSL_new/BIO_new failed");
    SSL_set_bio(m.ssl.get(), m.in, m.out);
    SSL_set_connect_state(m.ssl.get());
    check(SSL_set1_host(m.ssl.get(), "localhost") == 1, "SSL_set1_host failed");
    return m;
}

// Sends everything the client has written so far in one send(): one segment on loopback.
void flush_client(MemoryClient& m, int sock) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(m.out, &data);
    if (n <= 0) return;
    send_all(sock,
             ByteView(reinterpret_cast<const std::uint8_t*>(data), static_cast<std::size_t>(n)),
             Clock::now() + 5s);
    check(BIO_reset(m.out) == 1, "BIO_reset failed");
}

// Hands the client whatever arrived on its socket.
void feed_client(MemoryClient& m, int sock) {
    std::array<std::uint8_t, 1 << 14> buf;
    ssize_t n;
    while ((n = recv(sock, buf.data(), buf.size(), MSG_DONTWAIT)) > 0)
        check(BIO_write(m.in, buf.data(), static_cast<int>(n)) == n, "BIO_write failed");
}

int queued_bytes(int fd) {
    int n = -1;
    check(ioctl(fd, FIONREAD, &n) == 0, errno_text("FIONREAD"));
    return n;
}

// DESIGN fact 2: a client's first application record sent in the same segment as its Finished
// must stay in the kernel: the engine hands off with exactly that record queued, and it opens
// with the returned read secret at sequence 0.
std::string server_data_with_finished(Context& c) {
    BarePeer b = bare_peer(false);
    MemoryClient client = memory_client(c.o, load_identity(c.o, "alice"));
    const Identity server = load_identity(c.o, "server");
    HandshakeSetup setup = setup_for(Role::server, server, c.trust.get());
    setup.request.allow = {"cn:alice"};
    auto prepared = Handshake::prepare(b.fd.get(), setup);
    check(std::holds_alternative<std::unique_ptr<Handshake>>(prepared), "prepare() refused");
    Handshake& hs = *std::get<std::unique_ptr<Handshake>>(prepared);
    const Bytes data = binary_payload(1000, 7);
    bool written = false;
    const auto end = Clock::now() + 10s;
    Handshake::Want want = Handshake::Want::read;
    while (want != Handshake::Want::done && Clock::now() < end) {
        if (!written && SSL_do_handshake(client.ssl.get()) == 1)
            written = SSL_write(client.ssl.get(), data.data(), static_cast<int>(data.size())) ==
                      static_cast<int>(data.size());
        flush_client(client, b.peer.get());  // Finished and data leave in one send()
        want = hs.step();
        std::this_thread::sleep_for(2ms);
        feed_client(client, b.peer.get());
    }
    const Outcome o = drive(hs, b.fd.get(), end);
    check(o.ok && written, "the handshake failed: " + outcome_text(o));
    const int queued = queued_bytes(b.fd.get());
    check(queued == static_cast<int>(data.size() + record::record_overhead),
          "after the handoff the kernel holds " + std::to_string(queued) +
              " bytes, not exactly the client's first record");
    record::RecordOpener opener = make_opener(o.reply);
    Bytes got;
    const record::OpenOutcome r = receive(b.fd.get(), opener, got, data.size(), nullptr, "", end);
    check(r.status == record::OpenStatus::data && got == data,
          "the record sent with the Finished did not open to the client's data");
    return "Finished and data in one segment: handoff left exactly the data record (" +
           std::to_string(queued) + " bytes) in the kernel; it opens at sequence 0";
}

// ================================================================================================
// Scenarios: the engine as client (s_server is the peer)

// How s_server -trace shows an SNI extension in the ClientHello.
constexpr std::string_view sni_extension = "extension_type=server_name(0)";

std::string client_ok(Context& c, std::uint16_t suite) {
    const Identity alice = load_identity(c.o, "alice");
    HandshakeSetup setup = client_setup(alice, c.trust.get(), "localhost");
    setup.request.suites = {suite};
    ClientRun run = connect_to(c, "server", std::move(setup), "ca.pem", {"-tls1_3", "-trace"});
    check_reply(run.outcome, suite, alice, load_identity(c.o, "server"), "CN=localhost");
    check(run.peer->output().find(sni_extension) != std::string::npos,
          "the ClientHello carried no server_name extension\n" + run.peer->describe());
    check(run.outcome.reply.peer.sans == std::vector<std::string>{"DNS:localhost", "IP:127.0.0.1"},
          "the server's SANs were not reported");
    exchange(run.fd.get(), run.outcome.reply, *run.peer);
    return "server verified, SNI sent, 40000 bytes each way match (tickets left to the opener)";
}

std::string client_ip_literal(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    ClientRun run = connect_to(c, "server", client_setup(alice, c.trust.get(), "127.0.0.1"),
                               "ca.pem", {"-tls1_3", "-trace"});
    check(run.outcome.ok, "the handshake failed: " + outcome_text(run.outcome));
    // RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted in "HostName"."
    check(run.peer->output().find(sni_extension) == std::string::npos,
          "the ClientHello carried a server_name for an IP literal\n" + run.peer->describe());
    exchange(run.fd.get(), run.outcome.reply, *run.peer);
    ClientRun wrong = connect_to(c, "server", client_setup(alice, c.trust.get(), "127.0.0.2"));
    expect_error(wrong.outcome, ErrorCode::peer_name_mismatch, {"not for 127.0.0.2"});
    return "IP SAN 127.0.0.1 verified without SNI; 127.0.0.2 refused";
}

std::string client_name_mismatch(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    ClientRun run = connect_to(c, "server", client_setup(alice, c.trust.get(), "db1.example"));
    expect_error(run.outcome, ErrorCode::peer_name_mismatch,
                 {"db1.example", "DNS:localhost", "CN=localhost"});
    const std::string saw = expect_peer_saw(*run.peer, "alert bad certificate");
    return run.outcome.error.message + " / s_server: " + saw;
}

std::string client_untrusted(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    ClientRun run = connect_to(c, "rogue", client_setup(alice, c.trust.get(), "localhost"));
    expect_error(run.outcome, ErrorCode::peer_untrusted, {"localhost", "not trusted"});
    const std::string saw = expect_peer_saw(*run.peer, "alert unknown ca");
    return run.outcome.error.message + " / s_server: " + saw;
}

std::string client_expired(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    ClientRun run =
        connect_to(c, "server-expired", client_setup(alice, c.trust.get(), "localhost"));
    expect_error(run.outcome, ErrorCode::peer_expired, {"expired on 2020-01-02"});
    const std::string saw = expect_peer_saw(*run.peer, "alert certificate expired");
    return run.outcome.error.message + " / s_server: " + saw;
}

std::string client_not_yet_valid(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    ClientRun run = connect_to(c, "server-future", client_setup(alice, c.trust.get(), "localhost"));
    expect_error(run.outcome, ErrorCode::peer_expired, {"not valid before 2099-01-01"});
    return run.outcome.error.message;
}

std::string client_pin_accepts(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    const std::string pin =
        "sha256:" + keyagent::fingerprint_hex(fingerprint_of(load_identity(c.o, "rogue")));
    // rogue is issued by another CA and does not name db1.example: the pin stands for both.
    ClientRun run = connect_to(c, "rogue", client_setup(alice, c.trust.get(), "db1.example", pin));
    check(run.outcome.ok, "the pinned handshake failed: " + outcome_text(run.outcome));
    exchange(run.fd.get(), run.outcome.reply, *run.peer);
    return "pinned certificate accepted past CA and name checks; data matches";
}

std::string client_pin_mismatch(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    const std::string pin =
        "sha256:" + keyagent::fingerprint_hex(fingerprint_of(load_identity(c.o, "rogue")));
    // server is trusted by the CA and names localhost, but it is not the pinned certificate.
    ClientRun run = connect_to(c, "server", client_setup(alice, c.trust.get(), "localhost", pin));
    expect_error(run.outcome, ErrorCode::peer_name_mismatch, {"not the pinned", pin.substr(7)});
    return run.outcome.error.message;
}

std::string client_refused_after_handoff(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    // s_server trusts only the other CA, so it refuses alice, but only after our Finished
    // (DESIGN fact 6): the engine succeeds and the refusal arrives as an alert under the
    // server's application key 0, which the record layer must report.
    ClientRun run =
        connect_to(c, "server", client_setup(alice, c.trust.get(), "localhost"), "other-ca.pem");
    check(run.outcome.ok, "the handshake failed: " + outcome_text(run.outcome));
    record::RecordOpener opener = make_opener(run.outcome.reply);
    Bytes got;
    const record::OpenOutcome o =
        receive(run.fd.get(), opener, got, 1, run.peer.get(), "", Clock::now() + 10s);
    check(o.status == record::OpenStatus::fatal && o.peer_ended &&
              o.peer_alert == static_cast<std::uint8_t>(record::Alert::unknown_ca),
          "expected the server's unknown_ca alert after the handoff");
    return "handshake completed, then the opener reported the server's alert unknown_ca";
}

std::string client_protocol_version(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    ClientRun run = connect_to(c, "server", client_setup(alice, c.trust.get(), "localhost"),
                               "ca.pem", {"-tls1_2"});
    expect_error(run.outcome, ErrorCode::peer_rejected, {"protocol_version"});
    return run.outcome.error.message;
}

std::string client_no_common_suite(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    HandshakeSetup setup = client_setup(alice, c.trust.get(), "localhost");
    setup.request.suites = {0x1303};
    ClientRun run = connect_to(c, "server", std::move(setup), "ca.pem",
                               {"-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"});
    expect_error(run.outcome, ErrorCode::peer_rejected, {"handshake_failure"});
    return run.outcome.error.message;
}

std::string client_silent_server(Context& c) {
    std::uint16_t port = 0;
    Fd listener = listen_loopback(port);  // never accepts: the kernel completes the connect
    Fd fd = connect_loopback(port);
    const Identity alice = load_identity(c.o, "alice");
    HandshakeSetup setup = client_setup(alice, c.trust.get(), "localhost");
    setup.request.timeout_ms = 300;
    const Outcome o = run_engine(fd.get(), setup);
    expect_error(o, ErrorCode::timeout, {"server localhost (127.0.0.1:", "within 300 ms"});
    return o.error.message;
}

std::string client_server_hangs_up(Context& c) {
    std::uint16_t port = 0;
    Fd listener = listen_loopback(port);
    Fd fd = connect_loopback(port);
    accept_one(listener.get(), Clock::now() + 5s, nullptr).reset();  // accept, then close
    const Identity alice = load_identity(c.o, "alice");
    const Outcome o = run_engine(fd.get(), client_setup(alice, c.trust.get(), "localhost"));
    expect_error(o, ErrorCode::peer_closed, {"server localhost"});
    return o.error.message;
}

// ================================================================================================
// Scenario: handshakes sharing cached TLS contexts (as the agent runs them)

std::string context_cache(Context& c) {
    keyagent::ContextCache cache;
    c.contexts = &cache;
    struct Restore {
        Context& c;
        ~Restore() { c.contexts = nullptr; }
    } restore{c};
    const Identity alice = load_identity(c.o, "alice");
    for (int i = 0; i < 2; ++i) {
        ClientRun run = connect_to(c, "server", client_setup(alice, c.trust.get(), "localhost"));
        check(run.outcome.ok,
              "a client handshake from the cache failed: " + outcome_text(run.outcome));
        exchange(run.fd.get(), run.outcome.reply, *run.peer);
    }
    check(cache.size() == 1, "two equal client handshakes did not share one context");
    // The pin replaces the CA check in the pinned context only: the next unpinned handshake to
    // the same untrusted server must still be refused.
    const std::string pin =
        "sha256:" + keyagent::fingerprint_hex(fingerprint_of(load_identity(c.o, "rogue")));
    ClientRun pinned =
        connect_to(c, "rogue", client_setup(alice, c.trust.get(), "db1.example", pin));
    check(pinned.outcome.ok, "the pinned handshake failed: " + outcome_text(pinned.outcome));
    ClientRun unpinned = connect_to(c, "rogue", client_setup(alice, c.trust.get(), "localhost"));
    expect_error(unpinned.outcome, ErrorCode::peer_untrusted, {"not trusted"});
    check(cache.size() == 2, "the pinned and the CA-checked client shared a context");
    // The server's access list and name checks are per handshake, not per context.
    ServerRun admitted = serve(c, 0x1301, "alice", {"cn:alice"});
    check(admitted.outcome.ok, "the server handshake failed: " + outcome_text(admitted.outcome));
    exchange(admitted.fd.get(), admitted.outcome.reply, *admitted.peer);
    ServerRun denied = serve(c, 0x1301, "bob", {"cn:alice"});
    expect_error(denied.outcome, ErrorCode::access_denied, {"CN=bob"});
    ClientRun wrong_name =
        connect_to(c, "server", client_setup(alice, c.trust.get(), "db1.example"));
    expect_error(wrong_name.outcome, ErrorCode::peer_name_mismatch, {"db1.example"});
    check(cache.size() == 4,
          "expected 4 contexts (client, pinned client, one per loaded server identity), got " +
              std::to_string(cache.size()));
    cache.clear();
    check(cache.size() == 0, "clear() left contexts behind");
    return "equal handshakes share a context; pin, access list and names still checked each time";
}

// ================================================================================================
// Scenarios: refusals before any byte is sent

std::string bad_setup(Context& c) {
    const Identity alice = load_identity(c.o, "alice");
    const HandshakeSetup setup = client_setup(alice, c.trust.get(), "localhost");
    auto refused = [&](int fd, const HandshakeSetup& s, ErrorCode code, const std::string& phrase,
                       const std::string& what) {
        auto prepared = Handshake::prepare(fd, s);
        const auto* error = std::get_if<agent::ErrorReply>(&prepared);
        check(error != nullptr, what + ": prepare() accepted it");
        check(error->code == code && error->message.find(phrase) != std::string::npos,
              what + ": got " + agent::error_code_name(error->code) + ": " + error->message);
    };
    int pipe_fds[2];
    check(pipe(pipe_fds) == 0, errno_text("pipe"));
    Fd pipe_r(pipe_fds[0]), pipe_w(pipe_fds[1]);
    refused(pipe_r.get(), setup, ErrorCode::not_a_socket, "is not a socket", "a pipe");
    refused(-1, setup, ErrorCode::not_a_socket, "is not a socket", "fd -1");
    Fd udp(socket(AF_INET, SOCK_DGRAM, 0));
    refused(udp.get(), setup, ErrorCode::not_a_socket, "not a TCP socket", "a UDP socket");
    int pair[2];
    check(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0, errno_text("socketpair"));
    Fd unix_a(pair[0]), unix_b(pair[1]);
    refused(unix_a.get(), setup, ErrorCode::not_a_socket, "not a TCP socket", "a Unix socket");
    Fd unconnected(socket(AF_INET6, SOCK_STREAM, 0));
    refused(unconnected.get(), setup, ErrorCode::not_a_socket, "not connected", "unconnected TCP");

    std::uint16_t port = 0;
    Fd listener = listen_loopback(port);
    refused(listener.get(), setup, ErrorCode::not_a_socket, "listening socket", "a listener");
    Fd tcp = connect_loopback(port);
    HandshakeSetup s = client_setup(alice, c.trust.get(), "localhost");
    s.request.suites = {0x1301, 0x1304};
    refused(tcp.get(), s, ErrorCode::bad_request, "0x1304", "suite 0x1304");
    s = client_setup(alice, c.trust.get(), "");
    refused(tcp.get(), s, ErrorCode::bad_request, "nothing to check", "no name, no pin");
    s = client_setup(alice, c.trust.get(), "localhost", "sha256:abc");
    refused(tcp.get(), s, ErrorCode::bad_request, "sha256:abc", "a short pin");
    s = setup_for(Role::server, alice, c.trust.get());
    s.request.service = "redis";
    s.request.allow = {"cn:alice", "group:ops"};
    refused(tcp.get(), s, ErrorCode::bad_request, "`group:ops`", "an unknown access entry");
    const Identity bob = load_identity(c.o, "bob");
    s = client_setup(alice, c.trust.get(), "localhost");
    s.key = bob.key.get();
    refused(tcp.get(), s, ErrorCode::no_identity, "identity alice", "alice's cert, bob's key");
    s.key = nullptr;
    refused(tcp.get(), s, ErrorCode::internal, "lacks", "no key");
    check(fcntl(pipe_r.get(), F_GETFD) >= 0 && fcntl(tcp.get(), F_GETFD) >= 0,
          "a refused descriptor was closed");
    return "pipe, fd -1, UDP, Unix, unconnected TCP, listener, bad suite, no name, bad pin, bad "
           "access entry, mismatched key and missing key all refused with their codes";
}

// ================================================================================================
// The table

struct Scenario {
    std::string name;
    std::string asserts;
    std::function<std::string(Context&)> run;
};

std::vector<Scenario> scenarios() {
    std::vector<Scenario> all;
    for (const std::uint16_t suite : {0x1301, 0x1302, 0x1303}) {
        const std::string name(record::find_suite(suite)->name);
        all.push_back({"server_ok_" + name,
                       "server role, s_client as alice: admitted (cn:alice), suite " + name +
                           ", peer CN/SAN/fingerprint, data both ways with the returned secrets",
                       [suite](Context& c) { return server_ok(c, suite); }});
        all.push_back({"client_ok_" + name,
                       "client role against s_server: verified, suite " + name +
                           ", peer CN/SAN/fingerprint, data both ways (tickets discarded)",
                       [suite](Context& c) { return client_ok(c, suite); }});
    }
    const std::vector<Scenario> rest = {
        {"server_access_denied",
         "bob -> access_denied naming CN=bob and redis; s_client sees access denied",
         server_access_denied},
        {"server_empty_list", "empty access list -> access_denied for alice (fail closed)",
         server_empty_list},
        {"server_untrusted",
         "client cert from another CA -> peer_untrusted; s_client sees unknown ca",
         server_untrusted},
        {"server_expired",
         "expired client cert -> peer_expired with the date; s_client sees certificate expired",
         server_expired},
        {"server_no_certificate",
         "client without a cert -> peer_untrusted; s_client sees certificate required",
         server_no_certificate},
        {"server_rejected_by_client", "s_client refuses our cert -> peer_rejected: unknown_ca",
         server_rejected_by_client},
        {"server_silent_peer", "peer connects and sends nothing -> timeout at expire()",
         server_silent_peer},
        {"server_peer_closes", "peer closes mid-handshake -> peer_closed",
         [](Context& c) { return server_peer_closes(c, false); }},
        {"server_peer_resets", "peer resets mid-handshake -> peer_closed naming the reset",
         [](Context& c) { return server_peer_closes(c, true); }},
        {"server_reset_before_start",
         "peer resets before prepare() -> peer_closed, not "
         "not_a_socket",
         server_reset_before_start},
        {"server_plaintext_peer",
         "plaintext HTTP instead of a ClientHello -> handshake_failed "
         "with OpenSSL's reason",
         server_plaintext_peer},
        {"server_data_with_finished",
         "client data in the Finished's segment stays in the kernel "
         "and opens with the read secret (no over-read)",
         server_data_with_finished},
        {"client_ip_literal",
         "server_name 127.0.0.1 verifies the IP SAN (no SNI); 127.0.0.2 -> peer_name_mismatch",
         client_ip_literal},
        {"client_name_mismatch",
         "wrong server name -> peer_name_mismatch listing the cert's names; s_server sees bad "
         "certificate",
         client_name_mismatch},
        {"client_untrusted",
         "server cert from another CA -> peer_untrusted; s_server sees unknown ca",
         client_untrusted},
        {"client_expired", "expired server cert -> peer_expired; s_server sees certificate expired",
         client_expired},
        {"client_not_yet_valid", "server cert valid from 2099 -> peer_expired (not valid before)",
         client_not_yet_valid},
        {"client_pin_accepts",
         "sha256 pin of an untrusted, misnamed cert -> accepted, data matches", client_pin_accepts},
        {"client_pin_mismatch",
         "trusted, well-named cert that is not the pinned one -> peer_name_mismatch",
         client_pin_mismatch},
        {"client_refused_after_handoff",
         "s_server refuses our cert after our Finished: engine succeeds, opener gets unknown_ca",
         client_refused_after_handoff},
        {"client_protocol_version", "TLS 1.2-only server -> peer_rejected: protocol_version",
         client_protocol_version},
        {"client_no_common_suite", "no common suite -> peer_rejected: handshake_failure",
         client_no_common_suite},
        {"client_silent_server", "server accepts nothing and says nothing -> timeout at expire()",
         client_silent_server},
        {"client_server_hangs_up", "server closes at once -> peer_closed", client_server_hangs_up},
        {"context_cache",
         "handshakes through a ContextCache: equal setups share a context; pin, names and access "
         "list still decided per handshake",
         context_cache},
        {"bad_setup",
         "non-TCP and unconnected fds -> not_a_socket; bad suite/expect/access entry -> "
         "bad_request; bad key -> no_identity",
         bad_setup},
    };
    all.insert(all.end(), rest.begin(), rest.end());
    return all;
}

const char* usage =
    "usage: engine_driver --pki DIR [--openssl PATH] [--tmpdir DIR] --scenario NAME\n"
    "       engine_driver --list\n";

Options parse_options(int argc, char** argv) {
    Options o;
    if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') o.tmpdir = t;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        std::string* target = flag == "--pki"        ? &o.pki
                              : flag == "--openssl"  ? &o.openssl
                              : flag == "--tmpdir"   ? &o.tmpdir
                              : flag == "--scenario" ? &o.scenario
                                                     : nullptr;
        if (target == nullptr) {
            std::fprintf(stderr, "engine_driver: unknown option %s\n%s", argv[i], usage);
            std::exit(2);
        }
        *target = argv[i + 1];
    }
    if (argc % 2 == 0 || o.pki.empty() || o.scenario.empty()) {
        std::fputs(usage, stderr);
        std::exit(2);
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    const std::vector<Scenario> all = scenarios();
    if (argc == 2 && std::string_view(argv[1]) == "--list") {
        for (const auto& s : all)
            std::printf("%s\t%s\n", s.name.c_str(), s.asserts.c_str());
        return 0;
    }
    const Options o = parse_options(argc, argv);
    const auto s = std::find_if(all.begin(), all.end(),
                                [&](const Scenario& x) { return x.name == o.scenario; });
    if (s == all.end()) {
        std::fprintf(stderr, "engine_driver: no scenario %s (see --list)\n", o.scenario.c_str());
        return 2;
    }
    try {
        Context c(o);
        const std::string saw = s->run(c);
        std::printf("ok %s: %s\n", s->name.c_str(), saw.c_str());
        return 0;
    } catch (const CheckFailure& f) {
        std::printf("FAIL %s: %s\n", s->name.c_str(), f.message.c_str());
        return 1;
    }
}
