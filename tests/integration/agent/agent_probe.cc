// agent_probe: drives a running sealsock-agent the way the shim will, for the agent's tests.
//
//   agent_probe --socket S client --connect HOST:PORT [--server-name N] [--identity N]
//               [--suite CODE] --line TEXT
//       Connects, has the agent run the client handshake on that socket, sends TEXT and a newline
//       through the record layer and prints the line that comes back ("reply: ...").
//   agent_probe --socket S server --port-file F [--identity N] [--service N] [--allow E]...
//       Listens on 127.0.0.1 (port written to F), accepts one connection, has the agent run the
//       server handshake, reads one line and answers it reversed, then close_notify.
//   agent_probe --socket S not-a-socket
//       Passes a pipe instead of a socket.
//   agent_probe --socket S pairs --pairs N --stall M --timeout-ms T --client-identity C
//               --server-identity S --allow E
//       N loopback connections whose both ends are handed to the agent at once (2N handshakes
//       in flight), plus M connections whose server end is never handed over (they must time
//       out). Checks every pair's secrets agree and that no good handshake waited as long as
//       the stalled ones' timeout.
//
// Agent refusals print "agent: CODE: message" and exit 3; other failures exit 1.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "protocol/agent_client.h"
#include "record/open.h"
#include "record/plaintext_cache.h"
#include "record/seal.h"
#include "record/suite.h"

namespace {

using namespace sealsock;
using Clock = std::chrono::steady_clock;

struct Options {
    std::string socket, mode, connect, server_name, identity, service, port_file, line;
    std::string client_identity, server_identity;
    std::vector<std::string> allow;
    std::uint16_t suite = 0;
    int pairs = 0, stall = 0;
    std::uint32_t timeout_ms = 10000;
};

[[noreturn]] void die(const std::string& m, int code = 1) {
    std::fprintf(stderr, "agent_probe: %s\n", m.c_str());
    std::exit(code);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto v = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value", 2);
            return argv[++i];
        };
        if (a == "--socket")
            o.socket = v();
        else if (a == "--connect")
            o.connect = v();
        else if (a == "--server-name")
            o.server_name = v();
        else if (a == "--identity")
            o.identity = v();
        else if (a == "--client-identity")
            o.client_identity = v();
        else if (a == "--server-identity")
            o.server_identity = v();
        else if (a == "--service")
            o.service = v();
        else if (a == "--allow")
            o.allow.push_back(v());
        else if (a == "--port-file")
            o.port_file = v();
        else if (a == "--line")
            o.line = v();
        else if (a == "--suite")
            o.suite = static_cast<std::uint16_t>(std::stoul(v(), nullptr, 0));
        else if (a == "--pairs")
            o.pairs = std::stoi(v());
        else if (a == "--stall")
            o.stall = std::stoi(v());
        else if (a == "--timeout-ms")
            o.timeout_ms = static_cast<std::uint32_t>(std::stoul(v()));
        else if (a[0] != '-' && o.mode.empty())
            o.mode = a;
        else
            die("unknown argument " + a, 2);
    }
    if (o.socket.empty()) o.socket = agent::default_socket_path();
    return o;
}

// Asks the agent for a handshake on `fd`; exits 3 with the agent's reason on refusal.
agent::HandshakeReply handshake(const Options& o, int fd, agent::HandshakeRequest req,
                                bool exit_on_refusal = true) {
    auto client = agent::AgentClient::connect(o.socket);
    if (!client) die(client.error().message);
    static std::atomic<std::uint64_t> ids{1};
    auto reply = client.value().call({agent::MessageType::handshake, ids++, std::move(req)}, fd,
                                     static_cast<int>(o.timeout_ms) + 10000);
    if (!reply) die("agent call failed: " + reply.error().message);
    if (auto* e = std::get_if<agent::ErrorReply>(&reply.value().body)) {
        if (!exit_on_refusal) return {};
        std::printf("agent: %s: %s\n", agent::error_code_name(e->code), e->message.c_str());
        std::exit(3);
    }
    return std::move(std::get<agent::HandshakeReply>(reply.value().body));
}

// One side of a sealed connection over the record layer, blocking.
class Sealed {
  public:
    Sealed(int fd, agent::HandshakeReply& r) : fd_(fd) {
        const auto* suite = record::find_suite(r.suite);
        if (suite == nullptr) die("agent returned an unknown suite");
        auto s = record::RecordSealer::create(*suite, r.write_secret.view(), r.write_seq, {}, 0);
        auto o = record::RecordOpener::create(*suite, r.read_secret.view(), r.read_seq);
        if (!s || !o) die("bad secrets from the agent");
        sealer_ = std::make_unique<record::RecordSealer>(std::move(s.value()));
        opener_ = std::make_unique<record::RecordOpener>(std::move(o.value()));
    }

    void send(ByteView data) {
        std::vector<std::uint8_t> wire(record::sealed_size(data.size()) + 64);
        auto r = sealer_->seal_data(data, wire, 0);
        if (!r.ok || r.consumed != data.size()) die("seal failed");
        write_all(wire.data(), r.written);
    }

    void close_notify() {
        std::uint8_t wire[64];
        write_all(wire, sealer_->seal_alert(record::Alert::close_notify, wire));
    }

    // Reads until a newline; returns the line without it (or what arrived before EOF).
    std::string read_line() {
        std::string line;
        for (;;) {
            const auto o = opener_->open(in_, cache_.space());
            if (o.status == record::OpenStatus::data) {
                line.append(reinterpret_cast<const char*>(cache_.space().data()), o.plaintext);
                in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(o.consumed));
                if (const auto nl = line.find('\n'); nl != std::string::npos)
                    return line.substr(0, nl);
            } else if (o.status == record::OpenStatus::discarded) {
                in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(o.consumed));
            } else if (o.status == record::OpenStatus::need_more) {
                std::uint8_t buf[16384];
                const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
                if (n <= 0) return line;
                in_.insert(in_.end(), buf, buf + n);
            } else if (o.status == record::OpenStatus::close_notify) {
                return line;
            } else {
                die(std::string("record layer: ") + o.reason +
                    (o.peer_ended ? std::string(" (") + record::alert_name(o.peer_alert) + ")"
                                  : ""));
            }
        }
    }

  private:
    void write_all(const std::uint8_t* p, std::size_t n) {
        while (n > 0) {
            const ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
            if (w <= 0) die(std::string("send: ") + std::strerror(errno));
            p += w;
            n -= static_cast<std::size_t>(w);
        }
    }
    int fd_;
    std::unique_ptr<record::RecordSealer> sealer_;
    std::unique_ptr<record::RecordOpener> opener_;
    record::PlaintextCache cache_;
    std::vector<std::uint8_t> in_;
};

// Connects to "HOST:PORT" or "[V6]:PORT".
int tcp_connect(const std::string& hostport) {
    const auto colon = hostport.rfind(':');
    std::string host = hostport.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* ai = nullptr;
    if (::getaddrinfo(host.c_str(), hostport.substr(colon + 1).c_str(), &hints, &ai) != 0)
        die("bad address " + hostport);
    const int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool ok = fd >= 0 && ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    ::freeaddrinfo(ai);
    if (!ok) die("cannot connect to " + hostport + ": " + std::strerror(errno));
    return fd;
}

int tcp_listen(std::uint16_t& port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd, 1024) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        die(std::string("cannot listen: ") + std::strerror(errno));
    port = ntohs(a.sin_port);
    return fd;
}

int run_client(const Options& o) {
    const int fd = tcp_connect(o.connect);
    agent::HandshakeRequest req;
    req.role = agent::Role::client;
    req.server_name = o.server_name;
    req.identity = o.identity;
    if (o.suite != 0) req.suites = {o.suite};
    req.timeout_ms = o.timeout_ms;
    auto reply = handshake(o, fd, req);
    std::printf("suite: %s\npeer: %s\n", std::string(record::find_suite(reply.suite)->name).c_str(),
                reply.peer.subject.c_str());
    Sealed s(fd, reply);
    s.send(as_bytes(o.line + "\n"));
    std::printf("reply: %s\n", s.read_line().c_str());
    s.close_notify();
    ::close(fd);
    return 0;
}

int run_server(const Options& o) {
    std::uint16_t port = 0;
    const int lfd = tcp_listen(port);
    std::ofstream(o.port_file + ".tmp") << port << "\n";
    std::rename((o.port_file + ".tmp").c_str(), o.port_file.c_str());
    const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) die("accept failed");
    agent::HandshakeRequest req;
    req.role = agent::Role::server;
    req.identity = o.identity;
    req.service = o.service;
    req.allow = o.allow;
    if (o.suite != 0) req.suites = {o.suite};
    req.timeout_ms = o.timeout_ms;
    auto reply = handshake(o, fd, req);
    std::printf("suite: %s\npeer: %s\n", std::string(record::find_suite(reply.suite)->name).c_str(),
                reply.peer.subject.c_str());
    std::fflush(stdout);
    Sealed s(fd, reply);
    std::string line = s.read_line();
    std::printf("received: %s\n", line.c_str());
    std::reverse(line.begin(), line.end());
    s.send(as_bytes(line + "\n"));
    s.close_notify();
    ::shutdown(fd, SHUT_WR);
    char drain[256];
    while (::recv(fd, drain, sizeof drain, 0) > 0) {
    }
    ::close(fd);
    return 0;
}

int run_not_a_socket(const Options& o) {
    int p[2];
    if (::pipe(p) != 0) die("pipe");
    agent::HandshakeRequest req;
    handshake(o, p[0], req);
    die("the agent accepted a pipe as a socket");
}

int run_pairs(const Options& o) {
    std::uint16_t port = 0;
    const int lfd = tcp_listen(port);
    const std::string target = "127.0.0.1:" + std::to_string(port);
    const int total = o.pairs + o.stall;
    std::vector<int> client_fds, server_fds;
    for (int i = 0; i < total; ++i) {
        client_fds.push_back(tcp_connect(target));
        server_fds.push_back(::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
    }
    std::vector<agent::HandshakeReply> client_replies(total), server_replies(o.pairs);
    std::vector<double> client_seconds(total);
    std::vector<bool> client_ok(total);
    const auto start = Clock::now();
    std::vector<std::thread> threads;
    for (int i = 0; i < total; ++i) {
        threads.emplace_back([&, i] {
            agent::HandshakeRequest req;
            req.role = agent::Role::client;
            req.server_name = "localhost";
            req.identity = o.client_identity;
            req.timeout_ms = o.timeout_ms;
            client_replies[i] = handshake(o, client_fds[i], req, false);
            client_ok[i] = !client_replies[i].write_secret.empty();
            client_seconds[i] = std::chrono::duration<double>(Clock::now() - start).count();
        });
        if (i >= o.pairs) continue;  // stalled: nobody answers on the server end
        threads.emplace_back([&, i] {
            agent::HandshakeRequest req;
            req.role = agent::Role::server;
            req.identity = o.server_identity;
            req.service = "pairs";
            req.allow = o.allow;
            req.timeout_ms = o.timeout_ms;
            server_replies[i] = handshake(o, server_fds[i], req, false);
        });
    }
    for (auto& t : threads)
        t.join();
    int failures = 0;
    double slowest_good = 0;
    for (int i = 0; i < o.pairs; ++i) {
        const bool agree =
            client_ok[i] && !server_replies[i].write_secret.empty() &&
            client_replies[i].write_secret.equals(server_replies[i].read_secret.view()) &&
            client_replies[i].read_secret.equals(server_replies[i].write_secret.view());
        if (!agree) ++failures;
        slowest_good = std::max(slowest_good, client_seconds[i]);
    }
    double fastest_stall = 1e9;
    int stalls_timed_out = 0;
    for (int i = o.pairs; i < total; ++i) {
        if (!client_ok[i]) ++stalls_timed_out;
        fastest_stall = std::min(fastest_stall, client_seconds[i]);
    }
    std::printf(
        "pairs: %d/%d agreed, slowest %.3f s; stalled: %d/%d timed out, first after %.3f s\n",
        o.pairs - failures, o.pairs, slowest_good, stalls_timed_out, o.stall,
        o.stall ? fastest_stall : 0.0);
    const double timeout_s = o.timeout_ms / 1000.0;
    if (failures != 0) die("some pairs did not complete with matching secrets");
    if (stalls_timed_out != o.stall) die("a stalled handshake did not time out");
    if (o.stall != 0 && fastest_stall < timeout_s * 0.9) die("a stalled handshake ended too early");
    if (slowest_good >= timeout_s) die("good handshakes were held up as long as the timeout");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    if (o.mode == "client") return run_client(o);
    if (o.mode == "server") return run_server(o);
    if (o.mode == "not-a-socket") return run_not_a_socket(o);
    if (o.mode == "pairs") return run_pairs(o);
    die("mode must be client, server, not-a-socket or pairs", 2);
}
