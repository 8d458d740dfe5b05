// record_interop: the TLS 1.3 record layer against real OpenSSL peers over loopback.
//
// One run is one connection. The driver starts the peer itself (`openssl s_server` when we are
// the client, `openssl s_client` when we are the server) with pipes on its stdin and stdout, does
// the TLS 1.3 handshake with libssl on a TCP socket, takes the traffic secrets from the keylog
// callback and frees the SSL object without SSL_shutdown, exactly as the agent hands a socket to
// the shim. From then on only RecordSealer and RecordOpener speak on the socket, while the driver
// types data and key-update commands into the peer and reads what the peer prints:
//
//   (a) we send ~1 MiB in writes of varied sizes; the peer prints it and we compare every byte;
//   (b) the peer sends ~256 KiB typed into its stdin; we open it and compare every byte;
//   (c) the peer sends a KeyUpdate (`k`); our opener must switch keys; data flows both ways;
//   (d) the peer sends a KeyUpdate with update_requested (`K`); we must answer before our next
//       data, and the peer's -msg trace must show our answer;
//   (e) we send a KeyUpdate asking the peer to update too and see its answering KeyUpdate;
//   (f) we rotate every 8 records, so dozens of our KeyUpdates reach OpenSSL mid-stream;
//   (g) we close with close_notify and the peer answers with its own (or, with --close peer,
//       s_client closes first and our opener reports end of file).
// Finally the peer's -msg trace must list exactly the KeyUpdates each side sent, in order, and
// our opener must have discarded exactly the peer's tickets and KeyUpdates.
//
// Every failed check prints one line and exits 1; every wait is bounded.
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sealsock/bytes.h>
#include <sealsock/secret.h>
#include <sealsock/unique_fd.h>

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "support/prng.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "record/key_schedule.h"
#include "record/open.h"
#include "record/plaintext_cache.h"
#include "record/seal.h"
#include "record/suite.h"
#include "record/wire.h"

extern char** environ;

namespace {

using namespace sealsock;
using namespace sealsock::record;
using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Failures and small utilities

// A failed check. Thrown, so that every owner on the way out (the peer process, sockets, the
// work directory) cleans up; main turns it into one line.
struct CheckFailure {
    std::string message;
};

[[noreturn]] void fail(std::string message) {
    throw CheckFailure{std::move(message)};
}

void check(bool ok, const std::string& what) {
    if (!ok) fail(what);
}

std::string errno_text(std::string_view call) {
    return std::string(call) + ": " + std::strerror(errno);
}

std::string openssl_errors() {
    std::string out;
    char line[256];
    while (const unsigned long e = ERR_get_error()) {
        ERR_error_string_n(e, line, sizeof line);
        out += out.empty() ? "" : "; ";
        out += line;
    }
    return out.empty() ? "no OpenSSL error queued" : out;
}

// Milliseconds until `end` (0 once passed), at most `cap`, for poll().
int poll_ms(Clock::time_point end, std::chrono::milliseconds cap = 50ms) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    return static_cast<int>(std::clamp(left, 0ms, cap).count());
}

void set_nonblocking(int fd) {
    const int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) fail(errno_text("fcntl"));
}

using Fd = sealsock::UniqueFd;

// A FIFO of bytes: append at the back, consume from the front.
class ByteQueue {
  public:
    void append(ByteView b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }
    [[nodiscard]] ByteView view() const { return ByteView(bytes_).subspan(head_); }
    [[nodiscard]] bool empty() const { return head_ == bytes_.size(); }
    void consume(std::size_t n) {
        head_ += n;
        if (head_ == bytes_.size()) {
            bytes_.clear();
            head_ = 0;
        } else if (head_ > (std::size_t{1} << 20)) {
            bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }

  private:
    Bytes bytes_;
    std::size_t head_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Options

enum class Role { client, server };  // our role; the peer takes the other one
enum class Closer { us, peer };      // who sends the first close_notify

struct Options {
    Role role = Role::client;
    const SuiteParams* suite = nullptr;
    std::string ca;
    std::string cert, key;            // our identity
    std::string peer_cert, peer_key;  // the peer's identity
    std::string openssl = "/usr/bin/openssl";
    Closer closer = Closer::us;
    std::string tmpdir;
};

const char* usage =
    "usage: record_interop --role client|server --suite TLS_AES_128_GCM_SHA256|"
    "TLS_AES_256_GCM_SHA384|TLS_CHACHA20_POLY1305_SHA256\n"
    "         --ca CA.pem --cert OURS.pem --key OURS.key --peer-cert PEER.pem --peer-key PEER.key\n"
    "         [--openssl /usr/bin/openssl] [--close us|peer] [--tmpdir DIR]\n";

[[noreturn]] void usage_error(const std::string& why) {
    std::fprintf(stderr, "record_interop: %s\n%s", why.c_str(), usage);
    std::exit(2);
}

Options parse_options(int argc, char** argv) {
    Options o;
    const char* tmp = std::getenv("TMPDIR");
    o.tmpdir = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    const std::pair<std::string_view, std::string Options::*> paths[] = {
        {"--ca", &Options::ca},
        {"--cert", &Options::cert},
        {"--key", &Options::key},
        {"--peer-cert", &Options::peer_cert},
        {"--peer-key", &Options::peer_key},
        {"--openssl", &Options::openssl},
        {"--tmpdir", &Options::tmpdir},
    };
    for (int i = 1; i < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (i + 1 >= argc) usage_error(std::string(flag) + " needs a value");
        const std::string value = argv[i + 1];
        const auto path = std::find_if(std::begin(paths), std::end(paths),
                                       [&](const auto& p) { return p.first == flag; });
        if (path != std::end(paths))
            o.*(path->second) = value;
        else if (flag == "--role" && (value == "client" || value == "server"))
            o.role = value == "client" ? Role::client : Role::server;
        else if (flag == "--suite" && find_suite(std::string_view(value)) != nullptr)
            o.suite = find_suite(std::string_view(value));
        else if (flag == "--close" && (value == "us" || value == "peer"))
            o.closer = value == "us" ? Closer::us : Closer::peer;
        else
            usage_error("bad option " + std::string(flag) + " " + value);
    }
    if (o.suite == nullptr || o.ca.empty() || o.cert.empty() || o.key.empty() ||
        o.peer_cert.empty() || o.peer_key.empty())
        usage_error("missing option");
    // s_server's own close (`q`, `Q`, end of stdin) closes the socket before SSL_shutdown, so it
    // never sends close_notify; only s_client can close first.
    if (o.closer == Closer::peer && o.role == Role::client)
        usage_error("--close peer needs --role server (s_server never sends close_notify first)");
    return o;
}

std::string role_name(Role r) {
    return r == Role::client ? "client" : "server";
}

// ---------------------------------------------------------------------------------------------
// Payloads

using sealsock::test::Prng;

// Data we send to the peer: bytes 0x80..0xff only. The peer prints what it receives raw on its
// stdout, mixed with its own status text ("read R BLOCK", "DONE", connection details, ...) at
// arbitrary points; that text is ASCII, so the two separate exactly (see Peer::read_output).
Bytes binary_payload(Prng& prng, std::size_t n) {
    Bytes b(n);
    for (auto& byte : b)
        byte = static_cast<std::uint8_t>(0x80 | (prng.next() & 0x7f));
    return b;
}

// Data typed into the peer's stdin: decimal digits and newlines only. Both tools treat one
// read() of stdin as a command when its first byte is special: s_server on Q or q (any chunk),
// r R k K c followed by \n or \r, and P or S (which also send the chunk); s_client on Q R K k
// (any chunk). A read may start at any byte of the stream, so no data byte may be one of them.
std::string typed_payload(Prng& prng, std::size_t n) {
    std::string s(n, '0');
    for (auto& c : s) {
        const std::uint64_t r = prng.next();
        c = r % 23 == 0 ? '\n' : static_cast<char>('0' + r % 10);
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// The peer process

// A private directory for the peer's -msgfile and stderr, removed with everything in it.
class WorkDir {
  public:
    explicit WorkDir(const std::string& parent) {
        std::string tmpl = parent + "/record_interop.XXXXXX";
        if (mkdtemp(tmpl.data()) == nullptr) fail(errno_text("mkdtemp " + tmpl));
        path_ = tmpl;
    }
    ~WorkDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    WorkDir(const WorkDir&) = delete;
    WorkDir& operator=(const WorkDir&) = delete;

    [[nodiscard]] std::string file(std::string_view name) const {
        return path_ + "/" + std::string(name);
    }

  private:
    std::string path_;
};

// `openssl s_server` or `s_client`: we type into its stdin and read its stdout; its stderr goes
// to a file. Killed and reaped on destruction if it is still running.
class Peer {
  public:
    Peer(const std::vector<std::string>& argv, const std::string& stderr_path) {
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) != 0) fail(errno_text("pipe2"));
        stdin_ = Fd(in[1]);
        Fd child_in(in[0]);
        if (pipe2(out, O_CLOEXEC) != 0) fail(errno_text("pipe2"));
        stdout_ = Fd(out[0]);
        Fd child_out(out[1]);
        set_nonblocking(stdin_.get());
        set_nonblocking(stdout_.get());

        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, child_in.get(), 0);
        posix_spawn_file_actions_adddup2(&actions, child_out.get(), 1);
        posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
        std::vector<char*> args;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        const int err = posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (err != 0) fail("cannot start " + argv[0] + ": " + std::strerror(err));
    }
    ~Peer() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;

    [[nodiscard]] int stdin_fd() const { return stdin_.get(); }
    [[nodiscard]] int stdout_fd() const { return output_ended_ ? -1 : stdout_.get(); }
    [[nodiscard]] bool output_ended() const { return output_ended_; }
    // What the peer printed, split: bytes 0x80..0xff (data it received from us), and the rest
    // (its own status text).
    [[nodiscard]] const Bytes& payload() const { return payload_; }
    [[nodiscard]] const std::string& text() const { return text_; }

    // Reads everything the peer has printed so far.
    void read_output() {
        std::array<std::uint8_t, 1 << 16> buf;
        while (!output_ended_) {
            const ssize_t n = read(stdout_.get(), buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return;
            if (n < 0) fail(errno_text("read(peer stdout)"));
            if (n == 0) output_ended_ = true;
            for (ssize_t i = 0; i < n; ++i) {
                const std::uint8_t byte = buf[static_cast<std::size_t>(i)];
                if (byte & 0x80)
                    payload_.push_back(byte);
                else
                    text_.push_back(static_cast<char>(byte));
            }
        }
    }

    // Writes as much of `bytes` into the peer's stdin as the pipe takes; returns the count.
    std::size_t write_input(ByteView bytes) {
        const ssize_t n = write(stdin_.get(), bytes.data(), bytes.size());
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        if (n < 0) fail(errno_text("write(peer stdin)"));
        return static_cast<std::size_t>(n);
    }

    // Waits until `end` for the peer to exit; its wait status, or nothing if it still runs.
    std::optional<int> wait_exit(Clock::time_point end) {
        while (pid_ > 0) {
            int status = 0;
            const pid_t r = waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                pid_ = 0;
                return status;
            }
            if (r < 0 && errno != EINTR) fail(errno_text("waitpid"));
            if (Clock::now() >= end) return std::nullopt;
            std::this_thread::sleep_for(5ms);
        }
        return std::nullopt;
    }

  private:
    pid_t pid_ = 0;
    Fd stdin_;
    Fd stdout_;
    bool output_ended_ = false;
    Bytes payload_;
    std::string text_;
};

// Waits until `fd` is ready for `events`, reading the peer's stdout meanwhile so that the peer
// never blocks on a full pipe.
void wait_ready(int fd, short events, Peer& peer, Clock::time_point end, const std::string& what) {
    while (true) {
        pollfd fds[2] = {{fd, events, 0}, {peer.stdout_fd(), POLLIN, 0}};
        check(!peer.output_ended(), "the peer exited while we were waiting for " + what);
        if (Clock::now() >= end) fail("timed out waiting for " + what);
        if (poll(fds, 2, poll_ms(end)) < 0 && errno != EINTR) fail(errno_text("poll"));
        if (fds[1].revents != 0) peer.read_output();
        if (fds[0].revents != 0) return;
    }
}

// s_server prints "ACCEPT 127.0.0.1:PORT" once it listens; with port 0 the kernel chose PORT.
std::uint16_t wait_listening_port(Peer& peer, Clock::time_point end) {
    constexpr std::string_view marker = "ACCEPT 127.0.0.1:";
    while (true) {
        const std::string& text = peer.text();
        const std::size_t at = text.find(marker);
        if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
            const unsigned long port = std::strtoul(text.c_str() + at + marker.size(), nullptr, 10);
            check(port > 0 && port < 65536, "s_server printed a bad port: " + text.substr(at));
            return static_cast<std::uint16_t>(port);
        }
        check(!peer.output_ended(), "s_server exited before it listened");
        if (Clock::now() >= end) fail("timed out waiting for s_server to listen");
        pollfd pfd{peer.stdout_fd(), POLLIN, 0};
        if (poll(&pfd, 1, poll_ms(end)) < 0 && errno != EINTR) fail(errno_text("poll"));
        peer.read_output();
    }
}

// ---------------------------------------------------------------------------------------------
// The peer's -msg trace

// What the peer's -msgfile says it sent and received.
struct MsgTrace {
    std::vector<bool> received_key_updates;  // update_requested of each KeyUpdate it received
    std::vector<bool> sent_key_updates;      // ... and of each it sent
    std::size_t sent_tickets = 0;
    bool received_close_notify = false;
    bool sent_close_notify = false;
};

// The trace has one line per message, then its bytes in hex:
//   <<< TLS 1.3, Handshake [length 0005], KeyUpdate
//       18 00 00 01 01
// ("<<<" received, ">>>" sent; type 24, length 1, request_update). Only complete lines count,
// so a trace still being written reads as a shorter one.
MsgTrace read_msg_trace(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    all.erase(all.find_last_of('\n') == std::string::npos ? 0 : all.find_last_of('\n') + 1);
    std::vector<std::string> lines;
    std::istringstream split(all);
    for (std::string line; std::getline(split, line);)
        lines.push_back(line);

    MsgTrace t;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::string& line = lines[i];
        const bool received = line.starts_with("<<< ");
        if (!received && !line.starts_with(">>> ")) continue;
        if (line.ends_with(", KeyUpdate")) {
            if (i + 1 == lines.size()) break;  // its bytes are not written yet
            const std::string& hex = lines[i + 1];
            check(hex == "    18 00 00 01 00" || hex == "    18 00 00 01 01",
                  "unexpected KeyUpdate bytes in the peer's trace: '" + hex + "'");
            (received ? t.received_key_updates : t.sent_key_updates).push_back(hex.back() == '1');
        } else if (line.ends_with(", NewSessionTicket") && !received) {
            ++t.sent_tickets;
        } else if (line.ends_with(", warning close_notify")) {
            (received ? t.received_close_notify : t.sent_close_notify) = true;
        }
    }
    return t;
}

std::string flags_text(const std::vector<bool>& flags) {
    std::string s = "[";
    for (bool f : flags)
        s += f ? '1' : '0';
    return s + "]";
}

// ---------------------------------------------------------------------------------------------
// Sockets

Fd listen_loopback(std::uint16_t& port) {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) fail(errno_text("socket"));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(fd.get(), 1) != 0 ||
        getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        fail(errno_text("bind/listen on 127.0.0.1:0"));
    port = ntohs(addr.sin_port);
    return fd;
}

Fd accept_peer(int listener, Peer& peer, Clock::time_point end) {
    wait_ready(listener, POLLIN, peer, end, "s_client to connect");
    Fd fd(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (fd.get() < 0) fail(errno_text("accept4"));
    return fd;
}

Fd connect_peer(std::uint16_t port, Peer& peer, Clock::time_point end) {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) fail(errno_text("socket"));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
        errno != EINPROGRESS)
        fail(errno_text("connect to 127.0.0.1:" + std::to_string(port)));
    wait_ready(fd.get(), POLLOUT, peer, end, "the connection to s_server");
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
        fail("connect to 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(err));
    return fd;
}

// ---------------------------------------------------------------------------------------------
// The handshake, done by libssl as the agent does it

struct CapturedSecrets {
    Secret client;  // CLIENT_TRAFFIC_SECRET_0
    Secret server;  // SERVER_TRAFFIC_SECRET_0
    bool malformed = false;
};

int secrets_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

// Decodes the hex secret that ends a keylog line into `out`. Never prints it.
bool decode_secret(std::string_view hex, Secret& out) {
    std::array<std::uint8_t, Secret::capacity> raw{};
    if (hex.size() % 2 != 0 || hex.size() / 2 > raw.size()) return false;
    bool ok = true;
    auto nibble = [&ok](char c) -> std::uint8_t {
        if (c >= '0' && c <= '9') return static_cast<std::uint8_t>(c - '0');
        if (c >= 'a' && c <= 'f') return static_cast<std::uint8_t>(c - 'a' + 10);
        if (c >= 'A' && c <= 'F') return static_cast<std::uint8_t>(c - 'A' + 10);
        ok = false;
        return 0;
    };
    for (std::size_t i = 0; i < hex.size() / 2; ++i)
        raw[i] = static_cast<std::uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
    if (ok) out.assign(ByteView(raw.data(), hex.size() / 2));
    OPENSSL_cleanse(raw.data(), raw.size());
    return ok;
}

// Keylog lines are "LABEL CLIENT_RANDOM SECRET"; only the two application secrets matter here.
void on_keylog_line(const SSL* ssl, const char* line) {
    auto* secrets = static_cast<CapturedSecrets*>(SSL_get_ex_data(ssl, secrets_index()));
    const std::string_view text(line);
    const std::size_t first = text.find(' ');
    const std::size_t last = text.rfind(' ');
    if (secrets == nullptr || first == std::string_view::npos || first == last) return;
    const std::string_view label = text.substr(0, first);
    Secret* target = label == "CLIENT_TRAFFIC_SECRET_0"   ? &secrets->client
                     : label == "SERVER_TRAFFIC_SECRET_0" ? &secrets->server
                                                          : nullptr;
    if (target != nullptr && !decode_secret(text.substr(last + 1), *target))
        secrets->malformed = true;
}

using ContextPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;
using SslPtr = std::unique_ptr<SSL, decltype(&SSL_free)>;

ContextPtr make_context(const Options& o) {
    ContextPtr ctx(SSL_CTX_new(TLS_method()), &SSL_CTX_free);
    check(ctx != nullptr, "SSL_CTX_new: " + openssl_errors());
    SSL_CTX* c = ctx.get();
    const std::string suite(o.suite->name);
    const bool ok = SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) == 1 &&
                    SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) == 1 &&
                    SSL_CTX_set_ciphersuites(c, suite.c_str()) == 1 &&
                    SSL_CTX_use_certificate_chain_file(c, o.cert.c_str()) == 1 &&
                    SSL_CTX_use_PrivateKey_file(c, o.key.c_str(), SSL_FILETYPE_PEM) == 1 &&
                    SSL_CTX_check_private_key(c) == 1 &&
                    SSL_CTX_load_verify_locations(c, o.ca.c_str(), nullptr) == 1;
    check(ok, "configuring the TLS context: " + openssl_errors());
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    // DESIGN facts 2 and 3: no read-ahead (a record after the Finished stays in the kernel for
    // the record layer) and never kernel TLS on a socket the record layer will own.
    SSL_CTX_set_read_ahead(c, 0);
    SSL_CTX_clear_options(c, SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_keylog_callback(c, on_keylog_line);
    // DESIGN fact 4: the server agent sends no tickets, so it hands off at sequence 0.
    if (o.role == Role::server) SSL_CTX_set_num_tickets(c, 0);
    return ctx;
}

// What the handshake hands to the record layer (what the agent returns to the shim).
struct Handoff {
    const SuiteParams* suite = nullptr;
    Secret write_secret;  // ours
    Secret read_secret;   // the peer's
};

Handoff handshake(int fd, const Options& o, Peer& peer, Clock::time_point end) {
    const ContextPtr ctx = make_context(o);
    SslPtr ssl(SSL_new(ctx.get()), &SSL_free);
    CapturedSecrets secrets;
    check(ssl != nullptr && SSL_set_fd(ssl.get(), fd) == 1 &&
              SSL_set_ex_data(ssl.get(), secrets_index(), &secrets) == 1,
          "SSL_new: " + openssl_errors());
    if (o.role == Role::client) {
        check(SSL_set_tlsext_host_name(ssl.get(), "localhost") == 1 &&
                  SSL_set1_host(ssl.get(), "localhost") == 1,
              "setting the server name: " + openssl_errors());
        SSL_set_connect_state(ssl.get());
    } else {
        SSL_set_accept_state(ssl.get());
    }
    while (true) {
        const int r = SSL_do_handshake(ssl.get());
        if (r == 1) break;
        const int err = SSL_get_error(ssl.get(), r);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
            fail("TLS handshake failed: " + openssl_errors());
        wait_ready(fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, peer, end,
                   "the TLS handshake");
    }

    check(SSL_version(ssl.get()) == TLS1_3_VERSION, "the handshake did not negotiate TLS 1.3");
    const std::uint16_t code = SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(ssl.get()));
    check(find_suite(code) == o.suite,
          "the handshake negotiated another suite than " + std::string(o.suite->name));
    check(SSL_get0_peer_certificate(ssl.get()) != nullptr &&
              SSL_get_verify_result(ssl.get()) == X509_V_OK,
          "the peer's certificate was not verified");
    check(!secrets.malformed && secrets.client.size() == o.suite->hash_size &&
              secrets.server.size() == o.suite->hash_size,
          "the keylog callback did not deliver both application traffic secrets");
    // DESIGN fact 2: refuse the handoff if libssl holds bytes the record layer would never see.
    check(SSL_has_pending(ssl.get()) == 0, "libssl holds unread bytes after the handshake");
    // No SSL_shutdown: freeing the SSL leaves the socket open and untouched (BIO_NOCLOSE).
    ssl.reset();

    Handoff h;
    h.suite = o.suite;
    h.write_secret = std::move(o.role == Role::client ? secrets.client : secrets.server);
    h.read_secret = std::move(o.role == Role::client ? secrets.server : secrets.client);
    return h;
}

// RecordSealer takes its rotation policy at creation. To change it mid-stream, the same key
// stream continues in a new sealer: the current secret is derived again from secret 0 ("traffic
// upd", once per KeyUpdate so far) and the sequence number is carried over, which is what a
// session restored after exec does.
RecordSealer continue_sealer(const SuiteParams& suite, const Secret& secret0,
                             const RecordSealer& old, RotationPolicy policy, std::uint64_t now) {
    Secret secret = secret0.clone();
    for (std::uint64_t g = 0; g < old.generation(); ++g) {
        Secret next;
        check(next_traffic_secret(suite, secret.view(), next), "next_traffic_secret failed");
        secret = std::move(next);
    }
    auto sealer = RecordSealer::create(suite, secret.view(), old.sequence(), policy, now);
    check(sealer.ok(), "RecordSealer::create: " + (sealer.ok() ? "" : sealer.error().message));
    return std::move(sealer).value();
}

// ---------------------------------------------------------------------------------------------
// The record pump

std::string describe_fatal(const OpenOutcome& o) {
    if (o.peer_ended)
        return std::string("the peer sent a fatal alert: ") + alert_name(o.peer_alert);
    return std::string("opening a record failed: ") + o.reason + " (we would send " +
           alert_name(static_cast<std::uint8_t>(o.alert)) + ")";
}

struct PeerKeyUpdate {
    bool requested = false;   // update_requested
    std::size_t at_byte = 0;  // application bytes we had received from the peer before it
};

// Moves bytes between the record layer, the socket and the peer's stdin and stdout, and checks
// every application byte on arrival against what was sent: the peer's printed payload against
// what we sealed, and what we open against what was typed into the peer.
class Pump {
  public:
    Pump(int fd, Peer& peer, RecordSealer sealer, RecordOpener opener, Clock::time_point start,
         Clock::time_point run_end)
        : fd_(fd),
          peer_(peer),
          sealer_(std::move(sealer)),
          opener_(std::move(opener)),
          start_(start),
          run_end_(run_end) {}

    // Seals `data` (a KeyUpdate goes first when one is due) and queues the records.
    void send(ByteView data) {
        sent_.insert(sent_.end(), data.begin(), data.end());
        while (!data.empty()) {
            const std::uint64_t generation = sealer_.generation();
            const SealOutcome r = sealer_.seal_data(data, window_, now());
            check(r.ok, "the sealer failed");
            check(r.written > 0, "the sealer made no progress with room for four records");
            queue_sealed(r.written, generation);
            data = data.subspan(r.consumed);
        }
    }

    // Schedules a KeyUpdate and sends it at once, without data.
    void send_key_update(bool ask_peer) {
        sealer_.schedule_key_update(ask_peer);
        ask_peer_pending_ = ask_peer_pending_ || ask_peer;
        const std::uint64_t generation = sealer_.generation();
        const SealOutcome r = sealer_.flush_key_update(window_, now());
        check(r.ok && r.written > 0, "flush_key_update sent nothing");
        queue_sealed(r.written, generation);
    }

    void send_close_notify() {
        const std::size_t n = sealer_.seal_alert(Alert::close_notify, window_);
        check(n > 0, "seal_alert(close_notify) failed");
        outgoing_.append(ByteView(window_).first(n));
    }

    void replace_sealer(RecordSealer sealer) { sealer_ = std::move(sealer); }

    // Application data typed into the peer's stdin; it must come back to us byte for byte.
    void type_data(std::string_view text) {
        typed_.append(text);
        peer_input_.append(as_bytes(text));
    }

    // A command typed into the peer's stdin. It must be the whole of one read() by the peer, so
    // the peer must have consumed everything typed before (all of it came back), and nothing may
    // be typed after it until its effect has been seen.
    void type_command(std::string_view command) {
        check(peer_input_.empty() && received_ == typed_.size(),
              "typing a command while typed data is still on its way");
        peer_input_.append(as_bytes(command));
    }

    // Pumps until `done` holds. Fails on the first wrong byte, a fatal record, a connection
    // closed without close_notify, or after `limit` (and never beyond the run's deadline).
    void wait_until(const std::string& what, const std::function<bool()>& done,
                    Clock::duration limit = 8s) {
        const Clock::time_point end = std::min(run_end_, Clock::now() + limit);
        while (!done()) {
            check(!socket_eof_ || peer_closed_,
                  "the peer closed the connection without close_notify while waiting for " + what);
            if (Clock::now() >= end)
                fail("timed out waiting for " + what + " (" + progress() + ")");
            step(end);
        }
    }

    void shutdown_write() {
        wait_until("our last records to leave", [this] { return outgoing_.empty(); });
        if (shutdown(fd_, SHUT_WR) != 0) fail(errno_text("shutdown(SHUT_WR)"));
    }

    [[nodiscard]] bool peer_caught_up() const { return peer_checked_ == sent_.size(); }
    [[nodiscard]] bool we_caught_up() const { return received_ == typed_.size(); }
    [[nodiscard]] std::size_t sent_bytes() const { return sent_.size(); }
    [[nodiscard]] std::size_t received_bytes() const { return received_; }
    [[nodiscard]] const std::vector<bool>& our_key_updates() const { return our_key_updates_; }
    [[nodiscard]] const std::vector<PeerKeyUpdate>& peer_key_updates() const {
        return peer_key_updates_;
    }
    [[nodiscard]] std::vector<bool> peer_key_update_flags() const {
        std::vector<bool> flags;
        for (const auto& k : peer_key_updates_)
            flags.push_back(k.requested);
        return flags;
    }
    [[nodiscard]] std::size_t discarded() const { return discarded_; }
    [[nodiscard]] bool peer_closed() const { return peer_closed_; }
    [[nodiscard]] bool socket_eof() const { return socket_eof_; }
    [[nodiscard]] const RecordSealer& sealer() const { return sealer_; }
    [[nodiscard]] std::uint64_t now() const {
        return static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start_).count());
    }

  private:
    // One round: wait for any of the descriptors, then move whatever can move.
    void step(Clock::time_point end) {
        const int socket_events = (socket_eof_ ? 0 : POLLIN) | (outgoing_.empty() ? 0 : POLLOUT);
        pollfd fds[3] = {
            {socket_events == 0 ? -1 : fd_, static_cast<short>(socket_events), 0},
            {peer_.stdout_fd(), POLLIN, 0},
            {peer_input_.empty() ? -1 : peer_.stdin_fd(), POLLOUT, 0},
        };
        if (poll(fds, 3, poll_ms(end)) < 0 && errno != EINTR) fail(errno_text("poll"));
        flush_socket();
        read_socket();
        feed_peer_input();
        peer_.read_output();
        check_peer_payload();
    }

    void queue_sealed(std::size_t written, std::uint64_t generation_before) {
        outgoing_.append(ByteView(window_).first(written));
        for (std::uint64_t g = generation_before; g < sealer_.generation(); ++g) {
            // The first KeyUpdate after schedule_key_update(true) carries update_requested.
            our_key_updates_.push_back(std::exchange(ask_peer_pending_, false));
        }
    }

    void flush_socket() {
        while (!outgoing_.empty()) {
            const ByteView out = outgoing_.view();
            const ssize_t n = ::send(fd_, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
            if (n < 0) fail(errno_text("send"));
            outgoing_.consume(static_cast<std::size_t>(n));
        }
    }

    void read_socket() {
        std::array<std::uint8_t, 1 << 16> buf;
        while (!socket_eof_) {
            const ssize_t n = recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
            if (n < 0) fail(errno_text("recv"));
            if (n == 0) socket_eof_ = true;
            incoming_.append(ByteView(buf.data(), static_cast<std::size_t>(n)));
        }
        open_records();
    }

    // Opens every complete record, as a program reading into a 4 KiB buffer would: records
    // whose plaintext may not fit are opened into a PlaintextCache and handed out in parts.
    void open_records() {
        while (!peer_closed_) {
            OpenOutcome o = opener_.open(incoming_.view(), program_buffer_);
            if (o.status == OpenStatus::need_buffer)
                o = open_into_cache();
            else if (o.status == OpenStatus::data)
                on_plaintext(ByteView(program_buffer_).first(o.plaintext));
            switch (o.status) {
                case OpenStatus::need_more:
                    return;
                case OpenStatus::data:
                    break;
                case OpenStatus::discarded:
                    on_discarded();
                    break;
                case OpenStatus::close_notify:
                    peer_closed_ = true;
                    break;
                case OpenStatus::need_buffer:
                    fail("the opener asked for a larger buffer than a whole record needs");
                case OpenStatus::fatal:
                    fail(describe_fatal(o));
            }
            incoming_.consume(o.consumed);
        }
    }

    OpenOutcome open_into_cache() {
        const OpenOutcome o = opener_.open(incoming_.view(), cache_->space());
        if (o.status != OpenStatus::data) return o;
        cache_->filled(o.plaintext);
        while (!cache_->empty()) {
            const std::size_t n = cache_->take(program_buffer_);
            on_plaintext(ByteView(program_buffer_).first(n));
        }
        return o;
    }

    void on_plaintext(ByteView data) {
        check(received_ + data.size() <= typed_.size(),
              "received " + std::to_string(received_ + data.size()) +
                  " application bytes from the peer, but only " + std::to_string(typed_.size()) +
                  " were typed");
        for (std::size_t i = 0; i < data.size(); ++i) {
            if (data[i] == static_cast<std::uint8_t>(typed_[received_ + i])) continue;
            fail("application byte " + std::to_string(received_ + i) +
                 " from the peer differs from what was typed");
        }
        received_ += data.size();
    }

    // A record the opener handled itself: a ticket or a KeyUpdate.
    void on_discarded() {
        ++discarded_;
        if (opener_.generation() == peer_generation_) return;
        check(opener_.generation() == peer_generation_ + 1, "one record changed two read keys");
        peer_generation_ = opener_.generation();
        const bool requested = opener_.take_update_request();
        peer_key_updates_.push_back({requested, received_});
        // RFC 8446 4.6.3: answer with a KeyUpdate of our own before our next application data.
        if (requested) sealer_.schedule_key_update(false);
    }

    void feed_peer_input() {
        while (!peer_input_.empty()) {
            const std::size_t n = peer_.write_input(peer_input_.view());
            if (n == 0) return;
            peer_input_.consume(n);
        }
    }

    void check_peer_payload() {
        const Bytes& printed = peer_.payload();
        check(printed.size() <= sent_.size(), "the peer printed " + std::to_string(printed.size()) +
                                                  " payload bytes, but only " +
                                                  std::to_string(sent_.size()) + " were sent");
        for (; peer_checked_ < printed.size(); ++peer_checked_) {
            if (printed[peer_checked_] == sent_[peer_checked_]) continue;
            fail("byte " + std::to_string(peer_checked_) +
                 " printed by the peer differs from what we sent");
        }
    }

    [[nodiscard]] std::string progress() const {
        return "peer printed " + std::to_string(peer_checked_) + "/" +
               std::to_string(sent_.size()) + " bytes we sent, we opened " +
               std::to_string(received_) + "/" + std::to_string(typed_.size()) +
               " typed bytes, our KeyUpdates " + std::to_string(our_key_updates_.size()) +
               ", peer KeyUpdates " + std::to_string(peer_key_updates_.size()) +
               (peer_closed_ ? ", peer sent close_notify" : "") +
               (socket_eof_ ? ", connection closed" : "") +
               (peer_.output_ended() ? ", peer stdout closed" : "");
    }

    int fd_;
    Peer& peer_;
    RecordSealer sealer_;
    RecordOpener opener_;
    Clock::time_point start_;
    Clock::time_point run_end_;

    Bytes window_ = Bytes(4 * max_sealed_record + 64);  // sealing buffer: four full records
    Bytes program_buffer_ = Bytes(4096);
    std::unique_ptr<PlaintextCache> cache_ = std::make_unique<PlaintextCache>();
    ByteQueue outgoing_;    // sealed records the kernel has not taken yet
    ByteQueue incoming_;    // received bytes not yet opened
    ByteQueue peer_input_;  // bytes for the peer's stdin

    Bytes sent_;         // every application byte we sealed
    std::string typed_;  // every application byte typed into the peer
    std::size_t peer_checked_ = 0;
    std::size_t received_ = 0;
    std::vector<bool> our_key_updates_;  // update_requested of each KeyUpdate we sent
    bool ask_peer_pending_ = false;
    std::vector<PeerKeyUpdate> peer_key_updates_;
    std::uint64_t peer_generation_ = 0;
    std::size_t discarded_ = 0;
    bool peer_closed_ = false;
    bool socket_eof_ = false;
};

// ---------------------------------------------------------------------------------------------
// The scenario

constexpr std::size_t KiB = 1024;
constexpr Clock::duration run_budget = 18s;

class Scenario {
  public:
    explicit Scenario(const Options& o) : o_(o), start_(Clock::now()) {}

    void run() {
        phase("setup", &Scenario::start);
        phase("(a) bulk data to the peer", &Scenario::bulk_to_peer);
        phase("(b) bulk data from the peer", &Scenario::bulk_from_peer);
        phase("(c) peer KeyUpdate", &Scenario::peer_key_update_plain);
        phase("(d) peer KeyUpdate with update_requested", &Scenario::peer_key_update_requested);
        phase("(e) our KeyUpdate with update_requested", &Scenario::our_key_update);
        phase("(f) rotation every 8 records", &Scenario::rotation_storm);
        phase("(g) close_notify",
              o_.closer == Closer::us ? &Scenario::close_by_us : &Scenario::close_by_peer);
        phase("trace", &Scenario::check_trace);
    }

    [[nodiscard]] std::string summary() const {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.2f s",
                      std::chrono::duration<double>(Clock::now() - start_).count());
        return "sent " + std::to_string(pump_->sent_bytes()) + " B, received " +
               std::to_string(pump_->received_bytes()) + " B, our KeyUpdates " +
               std::to_string(pump_->our_key_updates().size()) + ", peer KeyUpdates " +
               std::to_string(pump_->peer_key_updates().size()) + ", tickets discarded " +
               std::to_string(tickets_) + ", " + seconds;
    }

    // What the peer said, for a failure report.
    void print_peer_output() const {
        if (peer_ == nullptr) return;
        print_tail("peer stderr", read_file(dir_->file("peer.stderr")));
        print_tail("peer stdout (its own text)", peer_->text());
    }

  private:
    using Step = void (Scenario::*)();

    void phase(const char* name, Step step) {
        try {
            (this->*step)();
        } catch (CheckFailure& f) {
            f.message = std::string(name) + ": " + f.message;
            throw;
        }
    }

    [[nodiscard]] Clock::time_point run_end() const { return start_ + run_budget; }
    [[nodiscard]] Clock::time_point soon() const { return std::min(run_end(), Clock::now() + 8s); }
    [[nodiscard]] const char* peer_name() const {
        return o_.role == Role::client ? "s_server" : "s_client";
    }

    void start() {
        dir_ = std::make_unique<WorkDir>(o_.tmpdir);
        msgfile_ = dir_->file("peer.msg");
        if (o_.role == Role::client) {
            peer_ = std::make_unique<Peer>(peer_argv(0), dir_->file("peer.stderr"));
            socket_ = connect_peer(wait_listening_port(*peer_, soon()), *peer_, soon());
        } else {
            std::uint16_t port = 0;
            const Fd listener = listen_loopback(port);
            peer_ = std::make_unique<Peer>(peer_argv(port), dir_->file("peer.stderr"));
            socket_ = accept_peer(listener.get(), *peer_, soon());
        }
        Handoff h = handshake(socket_.get(), o_, *peer_, soon());
        auto sealer = RecordSealer::create(*h.suite, h.write_secret.view(), 0, {}, 0);
        auto opener = RecordOpener::create(*h.suite, h.read_secret.view(), 0);
        check(sealer.ok() && opener.ok(), "cannot create the record layer from the secrets");
        write_secret0_ = std::move(h.write_secret);
        pump_ = std::make_unique<Pump>(socket_.get(), *peer_, std::move(sealer).value(),
                                       std::move(opener).value(), start_, run_end());
    }

    // The peer: TLS 1.3 with the one suite, the peer's identity, verification against the test
    // CA with failures fatal (the server requires a client certificate), and its -msg trace.
    std::vector<std::string> peer_argv(std::uint16_t port) const {
        std::vector<std::string> argv = {o_.openssl};
        if (o_.role == Role::client)
            argv.insert(argv.end(),
                        {"s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-Verify", "2"});
        else
            argv.insert(argv.end(),
                        {"s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-verify",
                         "2", "-verify_hostname", "localhost", "-servername", "localhost"});
        argv.insert(argv.end(), {"-tls1_3", "-ciphersuites", std::string(o_.suite->name), "-cert",
                                 o_.peer_cert, "-key", o_.peer_key, "-CAfile", o_.ca,
                                 "-verify_return_error", "-msg", "-msgfile", msgfile_});
        return argv;
    }

    // Sends `to_peer` bytes in writes cycling through `sizes` and types `from_peer` bytes into
    // the peer, then waits until both have arrived intact.
    void exchange(std::size_t to_peer, std::size_t from_peer, const std::vector<std::size_t>& sizes,
                  const std::string& what) {
        pump_->type_data(typed_payload(prng_, from_peer));
        for (std::size_t i = 0, done = 0; done < to_peer; ++i) {
            const std::size_t n = std::min(sizes[i % sizes.size()], to_peer - done);
            pump_->send(binary_payload(prng_, n));
            done += n;
        }
        pump_->wait_until(what,
                          [this] { return pump_->peer_caught_up() && pump_->we_caught_up(); });
    }

    void exchange(std::size_t to_peer, std::size_t from_peer, const std::string& what) {
        exchange(to_peer, from_peer, {1000, 16384, 20000, 7}, what);
    }

    // Waits until the peer's -msg trace satisfies `done`.
    MsgTrace wait_for_trace(const std::string& what,
                            const std::function<bool(const MsgTrace&)>& done) {
        MsgTrace t;
        pump_->wait_until(what, [&] { return done(t = read_msg_trace(msgfile_)); });
        return t;
    }

    // (a) Writes of 1 byte up to 200,000 bytes: records of every size, full 2^14-byte records
    // and writes split across several.
    void bulk_to_peer() {
        const std::vector<std::size_t> sizes = {1,     5,     100,   1000, 4096,   16383, 16384,
                                                16385, 32768, 50000, 777,  100000, 49153, 200000};
        exchange(1024 * KiB, 0, sizes, "1 MiB to arrive at the peer");
        check(pump_->our_key_updates().empty(), "the sealer rotated without being asked to");
    }

    // (b) The peer's writes: s_server sends 16 KiB records, s_client 8 KiB ones. In the client
    // role its two NewSessionTickets came first and were discarded.
    void bulk_from_peer() {
        exchange(0, 256 * KiB, "256 KiB from the peer");
        if (o_.role == Role::client)
            check(pump_->discarded() > 0,
                  "our opener discarded no record, but s_server sends "
                  "NewSessionTickets after the handshake");
        check(pump_->peer_key_updates().empty(), "the peer updated its key unasked");
    }

    void peer_key_update_plain() { peer_key_update(false); }
    void peer_key_update_requested() { peer_key_update(true); }

    // (c) and (d): the peer's `k` / `K` command.
    void peer_key_update(bool requested) {
        const std::size_t before = pump_->peer_key_updates().size();
        const std::size_t ours = pump_->our_key_updates().size();
        const std::size_t discarded = pump_->discarded();
        pump_->type_command(requested ? "K\n" : "k\n");
        wait_for_trace("the peer to log sending a KeyUpdate",
                       [&](const MsgTrace& t) { return t.sent_key_updates.size() == before + 1; });
        // It is the only record the peer sends now: once the opener has handled it, the read
        // key must have changed.
        pump_->wait_until("the peer's KeyUpdate record",
                          [&] { return pump_->discarded() > discarded; });
        check(pump_->peer_key_updates().size() == before + 1,
              "our opener discarded the peer's KeyUpdate without switching to its new key");
        check(pump_->peer_key_updates().back().requested == requested,
              requested ? "the peer's KeyUpdate asked for ours, but the opener did not report it"
                        : "the opener reported update_requested for the peer's plain KeyUpdate");
        check(pump_->sealer().key_update_due(pump_->now()) == requested,
              requested ? "no KeyUpdate is scheduled in answer to the peer's request"
                        : "a KeyUpdate is scheduled without a reason");
        exchange(64 * KiB, 32 * KiB, "data both ways after the peer's KeyUpdate");
        if (!requested) {
            check(pump_->our_key_updates().size() == ours, "we sent a KeyUpdate unasked");
            return;
        }
        check(pump_->our_key_updates().size() == ours + 1 && !pump_->our_key_updates().back(),
              "we did not answer the peer's request with exactly one KeyUpdate (no request)");
        wait_for_trace("the peer to log our answering KeyUpdate", [&](const MsgTrace& t) {
            return t.received_key_updates.size() == ours + 1;
        });
    }

    // (e) OpenSSL owes an answer once it has processed our request, and sends it before its
    // next application data: only when it next writes, so data is typed after the trace shows
    // our KeyUpdate arrived.
    void our_key_update() {
        const std::size_t before = pump_->peer_key_updates().size();
        const std::size_t at_byte = pump_->received_bytes();
        pump_->send_key_update(true);
        check(pump_->our_key_updates().back(), "our KeyUpdate was sent without update_requested");
        const std::size_t ours = pump_->our_key_updates().size();
        wait_for_trace("the peer to log our KeyUpdate",
                       [&](const MsgTrace& t) { return t.received_key_updates.size() == ours; });
        exchange(0, 32 * KiB, "the peer's data after our KeyUpdate");
        check(pump_->peer_key_updates().size() == before + 1,
              "the peer did not answer our update_requested with one KeyUpdate");
        check(!pump_->peer_key_updates().back().requested,
              "the peer's answering KeyUpdate asked for another one");
        check(pump_->peer_key_updates().back().at_byte == at_byte,
              "the peer's answering KeyUpdate did not come before its next data");
        exchange(64 * KiB, 16 * KiB, "data both ways after the key updates");
    }

    // (f) At most 8 records per key, so a KeyUpdate goes before every seventh data record, in
    // the middle of data flowing both ways.
    void rotation_storm() {
        const std::size_t before = pump_->our_key_updates().size();
        check(!pump_->sealer().key_update_due(pump_->now()), "a KeyUpdate is pending");
        RotationPolicy policy;
        policy.max_records = 8;
        pump_->replace_sealer(
            continue_sealer(*o_.suite, write_secret0_, pump_->sealer(), policy, pump_->now()));
        std::vector<std::size_t> sizes;
        for (std::size_t i = 0; i < 64; ++i)
            sizes.push_back(i % 32 == 31 ? 40000 : (i * 7919) % 1500 + 1);
        exchange(512 * KiB, 64 * KiB, sizes, "data both ways under rotation");
        const std::size_t storm = pump_->our_key_updates().size() - before;
        check(storm >= 24, "only " + std::to_string(storm) + " KeyUpdates under max_records = 8");
        wait_for_trace("the peer to log all our KeyUpdates", [&](const MsgTrace& t) {
            return t.received_key_updates.size() == pump_->our_key_updates().size();
        });
    }

    // (g) We close; the peer answers with its own close_notify, which is our end of file. Both
    // tools then close the socket (s_client after we shut down our side too).
    void close_by_us() {
        pump_->send_close_notify();
        pump_->wait_until("the peer's close_notify in answer to ours",
                          [this] { return pump_->peer_closed() && pump_->socket_eof(); });
        pump_->shutdown_write();
        expect_peer_exit();
        const MsgTrace t = read_msg_trace(msgfile_);
        check(t.received_close_notify, "the peer's trace does not show our close_notify");
        check(t.sent_close_notify, "the peer's trace does not show its close_notify");
    }

    // (g) s_client closes first (a stdin read starting with Q): close_notify, then FIN. TLS 1.3
    // close is a half-close, so we can still send our own close_notify afterwards.
    void close_by_peer() {
        pump_->type_command("Q\n");
        pump_->wait_until("the peer's close_notify",
                          [this] { return pump_->peer_closed() && pump_->socket_eof(); });
        pump_->send_close_notify();
        pump_->shutdown_write();
        expect_peer_exit();
        check(read_msg_trace(msgfile_).sent_close_notify,
              "the peer's trace does not show its close_notify");
    }

    void expect_peer_exit() {
        pump_->wait_until("the peer's stdout to close", [this] { return peer_->output_ended(); });
        const std::optional<int> status = peer_->wait_exit(soon());
        check(status.has_value(), std::string(peer_name()) + " did not exit");
        check(WIFEXITED(*status) && WEXITSTATUS(*status) == 0,
              std::string(peer_name()) + " failed (wait status " + std::to_string(*status) + ")");
    }

    // The peer's trace, complete now that it exited, must list exactly the KeyUpdates each side
    // sent, in order, and our opener must have discarded exactly its tickets and KeyUpdates.
    void check_trace() {
        const MsgTrace t = read_msg_trace(msgfile_);
        check(t.received_key_updates == pump_->our_key_updates(),
              "the peer received KeyUpdates " + flags_text(t.received_key_updates) +
                  " but we sent " + flags_text(pump_->our_key_updates()));
        check(t.sent_key_updates == pump_->peer_key_update_flags(),
              "the peer sent KeyUpdates " + flags_text(t.sent_key_updates) + " but we opened " +
                  flags_text(pump_->peer_key_update_flags()));
        check(pump_->peer_key_update_flags() == std::vector<bool>{false, true, false},
              "expected the peer's KeyUpdates [010], got " +
                  flags_text(pump_->peer_key_update_flags()));
        tickets_ = pump_->discarded() - pump_->peer_key_updates().size();
        const std::string tickets = std::to_string(tickets_);
        check(tickets_ == t.sent_tickets, "our opener discarded " + tickets +
                                              " records besides KeyUpdates, but the peer sent " +
                                              std::to_string(t.sent_tickets) + " tickets");
        check((o_.role == Role::client) == (tickets_ > 0),
              o_.role == Role::client ? "s_server sent no NewSessionTicket"
                                      : "s_client sent a NewSessionTicket");
    }

    static std::string read_file(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }

    static void print_tail(const char* title, const std::string& text) {
        constexpr std::size_t limit = 3000;
        const std::size_t from = text.size() > limit ? text.size() - limit : 0;
        std::fprintf(stderr, "---- %s%s ----\n%s\n", title, from > 0 ? " (last part)" : "",
                     text.substr(from).c_str());
    }

    const Options& o_;
    Clock::time_point start_;
    Prng prng_{0x5ea15ec0de};
    std::unique_ptr<WorkDir> dir_;
    std::string msgfile_;
    std::unique_ptr<Peer> peer_;
    Fd socket_;
    Secret write_secret0_;
    std::unique_ptr<Pump> pump_;
    std::size_t tickets_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    // A peer that exits early must not kill us through its stdin pipe.
    signal(SIGPIPE, SIG_IGN);
    const std::string name = role_name(options.role) + " " + std::string(options.suite->name) +
                             (options.closer == Closer::peer ? " (peer closes)" : "");
    Scenario scenario(options);
    try {
        scenario.run();
    } catch (const CheckFailure& f) {
        std::fprintf(stderr, "record_interop: FAIL %s: %s\n", name.c_str(), f.message.c_str());
        scenario.print_peer_output();
        return 1;
    }
    std::printf("record_interop: ok   %s: %s\n", name.c_str(), scenario.summary().c_str());
    return 0;
}
