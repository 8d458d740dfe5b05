// New connections: which ones are sealed, and how a sealed one starts (DESIGN I1, I4, I7).
//
// connect(): the real connect on the program's own socket, then the handshake through the agent
// on the anchor. A blocking connect returns when the keys are installed or with the failure's
// errno; a nonblocking one returns EINPROGRESS and the background thread carries on.
// accept()/accept4(): the real accept, then the handshake in the background; the program gets
// its fd at once (a slow client never blocks the accept loop) and reads nothing until the peer
// is authenticated and allowed.
//
// The config is read once, at the first TCP connect or accept. If it cannot be read, every
// sealed decision fails closed: TCP connects fail with ECONNREFUSED and accepted connections are
// reset, each with a log line naming the config error.
#include "session/open.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>

#include "config/diagnostic.h"
#include "config/file.h"
#include "config/match.h"
#include "protocol/agent_client.h"
#include "session/audit.h"
#include "session/background.h"
#include "session/log.h"
#include "session/registry.h"
#include "session/session.h"
#include "session/shared.h"
#include "sys/confined.h"
#include "sys/real.h"

namespace sealsock {
namespace {

// The environment the config and the agent socket come from, as it was when the program started:
// servers clear or rebuild their environment before the first accept (nginx gives its workers
// only the variables named by `env`), and the rules must not vanish with it.
struct StartEnvironment {
    std::string sealsock_config;
    std::string xdg_config_home;
    std::string home;
    std::string agent_socket;  // agent::default_socket_path() at start
    std::string invoked;       // argv[0] (servers overwrite it later with process titles)
};

StartEnvironment* g_start = nullptr;

__attribute__((constructor(102))) void remember_environment() noexcept {
    try {
        const config::Environment now = config::process_environment();
        g_start =
            new StartEnvironment{std::string(now.sealsock_config), std::string(now.xdg_config_home),
                                 std::string(now.home), agent::default_socket_path(),
                                 program_invocation_name != nullptr ? program_invocation_name : ""};
    } catch (...) {  // no memory at start: the environment is read at first use instead
    }
}

std::string_view invoked() {
    return g_start != nullptr ? std::string_view(g_start->invoked) : std::string_view();
}

struct Rules {
    config::Config config;
    std::string error;  // empty when the config loaded
    std::string exe;    // /proc/self/exe
};

std::atomic<const Rules*> g_rules{nullptr};  // set once rules() has loaded them

const Rules& rules() {
    static Rules* loaded = [] {
        auto* r = new Rules;
        char path[4096];
        const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n > 0) r->exe.assign(path, static_cast<std::size_t>(n));
        const config::Environment env =
            g_start != nullptr ? config::Environment{g_start->sealsock_config,
                                                     g_start->xdg_config_home, g_start->home}
                               : config::process_environment();
        config::LoadResult result = config::load_files(env);
        if (!result.ok()) {
            r->error = config::format(result.errors.front());
            report(
                "the config cannot be used, so no TCP connection of this program can be "
                "decided: they fail closed: {}",
                r->error);
        } else {
            r->config = std::move(result.config);
        }
        audit::set_destination(r->config.audit_log);
        std::string socket = r->config.agent_socket;
        if (socket.empty())
            socket = g_start != nullptr ? g_start->agent_socket : agent::default_socket_path();
        background::set_agent_socket(std::move(socket));
        g_rules.store(r, std::memory_order_release);
        return r;
    }();
    return *loaded;
}

// Names the program looked up, by address, for SNI and host rules: a small ring, newest wins.
struct Names {
    struct Item {
        std::array<std::uint8_t, 16> address{};
        std::size_t size = 0;
        std::string host;
    };
    std::mutex mu;
    std::array<Item, 64> ring;
    std::size_t next = 0;
};

Names& names() {
    static auto* n = new Names;
    return *n;
}

// The address bytes of an AF_INET/AF_INET6 sockaddr (network order) and its port.
struct Endpoint {
    ByteView address;
    std::uint16_t port = 0;
};

bool endpoint_of(const sockaddr* sa, socklen_t len, Endpoint& out) {
    if (sa == nullptr) return false;
    if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        out.address = ByteView(reinterpret_cast<const std::uint8_t*>(&in->sin_addr), 4);
        out.port = ntohs(in->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        out.address = ByteView(reinterpret_cast<const std::uint8_t*>(&in6->sin6_addr), 16);
        out.port = ntohs(in6->sin6_port);
        return true;
    }
    return false;
}

std::string describe(const sockaddr* sa) {
    char text[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        return fmt::format("{}:{}", text, ntohs(in->sin_port));
    }
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return fmt::format("[{}]:{}", text, ntohs(in6->sin6_port));
}

// The local address of a connected socket, for the audit log ("" when unknown).
std::string local_of(int fd) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return {};
    return describe(reinterpret_cast<const sockaddr*>(&local));
}

// A connection refused before it had a session: the audit log's refuse event.
void audit_refusal(bool outbound, std::string_view rule, std::string_view peer,
                   std::string_view reason) {
    audit::Record record;
    record.event = audit::Event::refuse;
    record.outbound = outbound;
    record.rule = rule;
    record.peer = peer;
    record.outcome = "refused";
    record.reason = reason;
    audit::write(record);
}

bool is_tcp(int fd) {
    int type = 0;
    socklen_t len = sizeof type;
    if (sys::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len).value < 0 || type != SOCK_STREAM)
        return false;
    int protocol = 0;
    len = sizeof protocol;
    return sys::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len).value == 0 &&
           protocol == IPPROTO_TCP;
}

bool is_nonblocking(int fd) {
    const sys::Ret<int> fl = sys::fcntl(fd, F_GETFL, nullptr);
    return fl.value >= 0 && (fl.value & O_NONBLOCK) != 0;
}

record::RotationPolicy rotation_of(const config::Rule& rule) {
    return {rule.rotation.records, rule.rotation.bytes, rule.rotation.seconds};
}

// The receive buffer must hold two whole records, or the head record can never be completed
// (DESIGN, SO_RCVLOWAT catch 2). Returns the value the program sees (0: it never set one).
void keep_receive_buffer(int fd) {
    constexpr int kMinimum = 64 * 1024;  // the kernel doubles it: 128 KiB of receive buffer
    int now = 0;
    socklen_t len = sizeof now;
    if (sys::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &now, &len).value == 0 && now < 2 * kMinimum)
        (void)sys::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kMinimum, sizeof kMinimum);
}

// Registers a new session for the program's fd (and its anchor). Null with errno on failure;
// the caller fails the connection closed.
Session* register_session(int fd, SessionSetup setup, SessionState state, int& err) {
    arm_exit_handler();
    std::shared_lock names(shared::names_lock());
    const sys::Ret<int> anchor = sys::dup_cloexec_high(fd);
    if (anchor.value < 0) {
        err = anchor.err;
        return nullptr;
    }
    SharedSession* slot = shared::allocate(shared::cookie_of(fd));
    if (slot == nullptr) {
        err = errno;
        (void)sys::close(anchor.value);
        return nullptr;
    }
    auto* session = new (std::nothrow) Session(*slot, anchor.value, std::move(setup), state);
    if (session == nullptr) {
        shared::detach(*slot);
        (void)sys::close(anchor.value);
        err = ENOMEM;
        return nullptr;
    }
    const sys::Ret<int> a = registry::insert(anchor.value, session);
    const sys::Ret<int> b = a.value == 0 ? registry::insert(fd, session) : a;
    if (b.value != 0) {
        if (a.value == 0) (void)registry::erase(anchor.value);
        (void)sys::close(anchor.value);
        delete session;
        err = b.err;
        return nullptr;
    }
    keep_receive_buffer(anchor.value);
    return session;
}

void disconnect(int fd) {
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    (void)sys::connect(fd, &unspec, sizeof unspec);
}

// The proxy of a `via` rule, as an address of `family` (IPv4 as mapped IPv6 for an AF_INET6
// socket). Returns its length, or 0 with the getaddrinfo error in err. The real getaddrinfo
// (the program's own lookups are remembered for rules; this one is not the program's).
sys::Ret<socklen_t> resolve_proxy(const config::OutboundRule& rule, int family,
                                  sockaddr_storage& out) {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (family == AF_INET6 ? AI_V4MAPPED : 0);
    addrinfo* found = nullptr;
    const std::string port = std::to_string(rule.via_port);
    const sys::Ret<int> r = sys::getaddrinfo(rule.via_host.c_str(), port.c_str(), &hints, &found);
    if (r.value != 0 || found == nullptr) return {0, r.value != 0 ? r.value : EAI_NONAME};
    const auto n = static_cast<socklen_t>(std::min<std::size_t>(found->ai_addrlen, sizeof out));
    std::memcpy(&out, found->ai_addr, n);
    freeaddrinfo(found);
    return {n, 0};
}

// What the proxy is asked for: the name the program looked up, else the address ([v6]), and the
// port.
std::string connect_target(const std::string& host, const Endpoint& to) {
    if (!host.empty()) return fmt::format("{}:{}", host, to.port);
    char text[INET6_ADDRSTRLEN] = {};
    const bool v4 = to.address.size() == 4;
    inet_ntop(v4 ? AF_INET : AF_INET6, to.address.data(), text, sizeof text);
    return v4 ? fmt::format("{}:{}", text, to.port) : fmt::format("[{}]:{}", text, to.port);
}

// A sandboxed process (sys/confined.h) cannot reach the agent: where a rule may seal its
// connections, new ones fail closed; where none can, they pass through untouched.
bool refused_in_sandbox(const char* what) {
    // Not read yet: reading it now may be refused or fatal (open, readlink under the filter), so
    // the connection cannot be decided and fails closed.
    const char* rule = g_rules.load(std::memory_order_acquire) == nullptr
                           ? "the config was not read before the filter"
                           : rule_sealing_this_program();
    if (rule == nullptr) return false;
    if (first_of_kind("sandbox"))
        report(
            "{} refused: the program put itself under a seccomp filter, so the shim cannot "
            "reach the agent to seal it (rule \"{}\")",
            what, rule);
    return true;
}

sys::Ret<int> open_connect_impl(int fd, const sockaddr* addr, socklen_t len) {
    if (confined::active()) [[unlikely]] {
        if (refused_in_sandbox("a new connection")) return sys::fail<int>(EACCES);
        return sys::connect(fd, addr, len);
    }
    const int saved_errno = errno;  // a successful connect leaves errno as it found it
    Endpoint to;
    if (!endpoint_of(addr, len, to) || !is_tcp(fd)) return sys::connect(fd, addr, len);
    const Rules& r = rules();
    const std::string peer = describe(addr);
    if (!r.error.empty()) {
        if (first_of_kind("config"))
            report("outbound connection to {} refused: the config cannot be used: {}", peer,
                   r.error);
        audit_refusal(true, "", peer, "the config cannot be used: " + r.error);
        return sys::fail<int>(ECONNREFUSED);
    }
    const std::string host = name_for(to.address);
    const config::OutboundRule* rule =
        config::match_outbound(r.config, {r.exe, to.address, host, to.port, invoked()});
    errno = saved_errno;
    if (rule == nullptr || rule->mode != config::Mode::require) return sys::connect(fd, addr, len);

    SessionSetup setup;
    setup.role = SessionRole::client;
    setup.rule = rule->name;
    setup.peer = host.empty() ? peer : fmt::format("{} ({})", host, peer);
    setup.rotation = rotation_of(*rule);
    agent::HandshakeRequest& q = setup.request;
    q.role = agent::Role::client;
    q.server_name = rule->server_name.empty() ? host : rule->server_name;
    q.expect = rule->expect;
    q.identity = rule->identity;
    q.suites = rule->suites;
    if (q.server_name.empty() && q.expect.empty()) {
        if (first_of_kind("bare address " + rule->name))
            report(
                "outbound connection to {} refused (rule \"{}\"): it is made to a bare address, "
                "so the server's certificate cannot be checked by name: give the rule an "
                "`expect` (\"name:HOST\" or \"sha256:HEX\") or a `server_name`",
                peer, rule->name);
        audit_refusal(true, rule->name, peer,
                      "made to a bare address: the rule needs `expect` or `server_name`");
        return sys::fail<int>(ECONNREFUSED);
    }

    // `via`: the socket goes to the proxy, and the agent asks it for the server (CONNECT).
    sockaddr_storage proxy{};
    if (rule->via_port != 0) {
        const sys::Ret<socklen_t> p = resolve_proxy(*rule, addr->sa_family, proxy);
        if (p.value == 0) {
            if (first_of_kind("proxy " + rule->name))
                report(
                    "outbound connection to {} refused (rule \"{}\"): the proxy {}:{} "
                    "cannot be found: {}",
                    peer, rule->name, rule->via_host, rule->via_port, gai_strerror(p.err));
            audit_refusal(true, rule->name, peer, "the proxy cannot be found");
            return sys::fail<int>(ECONNREFUSED);
        }
        q.proxy_connect = connect_target(host, to);
        setup.peer += fmt::format(" via {}", describe(reinterpret_cast<sockaddr*>(&proxy)));
        addr = reinterpret_cast<const sockaddr*>(&proxy);
        len = p.value;
    }

    errno = saved_errno;
    const sys::Ret<int> c = sys::connect(fd, addr, len);
    const bool in_progress = c.value < 0 && (c.err == EINPROGRESS || c.err == EINTR);
    if (c.value < 0 && !in_progress) return c;
    setup.local = local_of(fd);
    int err = 0;
    Session* s =
        register_session(fd, std::move(setup),
                         in_progress ? SessionState::connecting : SessionState::handshaking, err);
    if (s == nullptr) {
        report("outbound connection to {} reset: the shim could not track it: {}", peer,
               std::strerror(err));
        audit_refusal(true, rule->name, peer,
                      fmt::format("the shim could not track it: {}", std::strerror(err)));
        disconnect(fd);
        return sys::fail<int>(ECONNREFUSED);
    }
    if (in_progress) {
        background::await_connect(*s);
        return c;  // EINPROGRESS as usual (or EINTR: the kernel carries on connecting)
    }
    background::start_handshake(*s);
    if (is_nonblocking(fd)) return {0, saved_errno};
    if (s->wait_settled() != SessionState::established)
        return sys::fail<int>(s->take_socket_error());
    return {0, saved_errno};
}

sys::Ret<int> open_accept_impl(int lfd, sockaddr* addr, socklen_t* len, int flags, bool has_flags) {
    const sys::Ret<int> a =
        has_flags ? sys::accept4(lfd, addr, len, flags) : sys::accept(lfd, addr, len);
    if (a.value < 0) return a;
    if (confined::active()) [[unlikely]] {
        if (!refused_in_sandbox("an accepted connection")) return a;
        (void)sys::close(a.value);
        return sys::fail<int>(ECONNABORTED);
    }
    const int fd = a.value;
    sockaddr_storage local{}, remote{};
    socklen_t local_len = sizeof local, remote_len = sizeof remote;
    Endpoint here;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        !endpoint_of(reinterpret_cast<sockaddr*>(&local), local_len, here) || !is_tcp(fd))
        return a;
    const Rules& r = rules();
    const config::InboundRule* rule =
        r.error.empty() ? config::match_inbound(r.config, {r.exe, here.port, invoked()}) : nullptr;
    if (r.error.empty() && (rule == nullptr || rule->mode == config::Mode::off)) return a;
    // allow-plaintext is not supported by this shim yet: such a rule seals like require, so a
    // plaintext client is refused rather than let through unchecked (fail closed).
    (void)::getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &remote_len);

    SessionSetup setup;
    setup.role = SessionRole::server;
    setup.peer = describe(reinterpret_cast<sockaddr*>(&remote));
    setup.local = describe(reinterpret_cast<sockaddr*>(&local));
    if (rule != nullptr) {
        setup.rule = rule->name;
        setup.rotation = rotation_of(*rule);
        agent::HandshakeRequest& q = setup.request;
        q.role = agent::Role::server;
        q.service = rule->service.empty() ? rule->name : rule->service;
        q.identity = rule->identity;
        q.suites = rule->suites;
        q.allow = rule->allow;
    }
    int err = 0;
    Session* s = register_session(fd, std::move(setup), SessionState::handshaking, err);
    if (s == nullptr) {
        report("inbound connection from {} reset: the shim could not track it: {}",
               describe(reinterpret_cast<sockaddr*>(&remote)), std::strerror(err));
        audit_refusal(false, rule != nullptr ? rule->name : "",
                      describe(reinterpret_cast<sockaddr*>(&remote)),
                      fmt::format("the shim could not track it: {}", std::strerror(err)));
        disconnect(fd);
        return a;  // the program reads ECONNRESET... from the kernel: nothing was delivered
    }
    if (!r.error.empty()) {
        s->fail(ECONNRESET, "the config cannot be used: " + r.error);
        return a;
    }
    background::start_handshake(*s);
    return a;
}

}  // namespace

const char* rule_sealing_this_program() noexcept {
    try {
        const Rules& r = rules();
        if (!r.error.empty()) return "the config cannot be used";
        if (!r.config.enabled) return nullptr;
        const auto seals = [&](const config::Rule& rule) {
            return rule.enabled && rule.mode != config::Mode::off &&
                   config::program_applies(rule, r.exe, invoked());
        };
        for (const config::OutboundRule& rule : r.config.outbound)
            if (seals(rule)) return rule.name.c_str();
        for (const config::InboundRule& rule : r.config.inbound)
            if (seals(rule)) return rule.name.c_str();
        return nullptr;
    } catch (...) {
        return "the config cannot be read (out of memory)";
    }
}

bool rules_in_force() noexcept {
    try {
        const Rules& r = rules();
        return !r.error.empty() || !r.config.outbound.empty() || !r.config.inbound.empty();
    } catch (...) {
        return true;
    }
}

std::string name_for(ByteView address) {
    Names& n = names();
    std::lock_guard lock(n.mu);
    for (std::size_t i = 0; i < n.ring.size(); ++i) {
        const Names::Item& item = n.ring[(n.next + n.ring.size() - 1 - i) % n.ring.size()];
        if (item.size == address.size() &&
            std::memcmp(item.address.data(), address.data(), item.size) == 0)
            return item.host;
    }
    return {};
}

void remember_names(const char* node, const addrinfo* result) {
    if (node == nullptr) return;
    // An address literal is not a name (no SNI, no host rule).
    std::uint8_t probe[16];
    if (inet_pton(AF_INET, node, probe) == 1 || inet_pton(AF_INET6, node, probe) == 1) return;
    try {
        Names& n = names();
        std::lock_guard lock(n.mu);
        for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
            Endpoint e;
            if (!endpoint_of(ai->ai_addr, ai->ai_addrlen, e)) continue;
            Names::Item& item = n.ring[n.next];
            n.next = (n.next + 1) % n.ring.size();
            std::memcpy(item.address.data(), e.address.data(), e.address.size());
            item.size = e.address.size();
            item.host = node;
        }
    } catch (...) {  // out of memory: the name is simply not known
    }
}

sys::Ret<int> open_connect(int fd, const sockaddr* addr, socklen_t len) noexcept {
    try {
        return open_connect_impl(fd, addr, len);
    } catch (...) {
        report("outbound connection refused: out of memory");
        return sys::fail<int>(ENOMEM);
    }
}

sys::Ret<int> open_accept(int fd, sockaddr* addr, socklen_t* len, int flags,
                          bool has_flags) noexcept {
    try {
        return open_accept_impl(fd, addr, len, flags, has_flags);
    } catch (...) {
        report("inbound connection refused: out of memory");
        return sys::fail<int>(ENOMEM);
    }
}

}  // namespace sealsock
