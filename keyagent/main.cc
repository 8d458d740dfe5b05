// sealsock-agent: the per-user key agent.
//
//   sealsock-agent [start] [--foreground] [options]   start (in the background unless told not to)
//   sealsock-agent status | lock | unlock | stop      talk to the running agent
//
// Started in the background it prints shell lines that export SEALSOCK_AGENT_SOCK, so
// `eval "$(sealsock agent)"` at login makes it available to the programs of that session.
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "keyagent/agent_server.h"
#include "keyagent/identity.h"
#include "keyagent/log.h"
#include "keyagent/passphrase.h"
#include "protocol/agent_client.h"

namespace {

using namespace sealsock;
using namespace sealsock::keyagent;

constexpr const char* usage = R"(usage: sealsock-agent [start] [options]
       sealsock-agent status | lock | unlock | stop [--socket PATH]

Start options:
  --foreground              stay in the foreground and log to stderr (service managers)
  --socket PATH             listen here (default: $SEALSOCK_AGENT_SOCK, else
                            $XDG_RUNTIME_DIR/sealsock/agent.sock)
  --identity NAME           start an identity; the options below apply to the last one
    --cert FILE             its certificate chain (PEM, leaf first)
    --key FILE              its private key (PEM, PKCS#8; encrypted, or mode 600)
    --allow-program PATH    only this executable may use it (repeatable; default: any)
  --trust FILE              trust anchors for peers' certificates (PEM)
  --config-dir DIR          without --identity: DIR/identities/NAME.crt and NAME.key, and
                            DIR/trust.pem (default: ~/.config/sealsock)
  --lifetime SECONDS        forget unlocked keys after this long
  --passphrase-fd N         read the passphrase for encrypted keys from descriptor N
)";

struct Options {
    std::string command = "start";
    bool foreground = false;
    std::string socket;
    std::vector<IdentityFiles> identities;
    std::string trust;
    std::string config_dir;
    std::uint64_t lifetime = 0;
    int passphrase_fd = -1;
};

[[noreturn]] void fail(const std::string& message, int code = 1) {
    std::fprintf(stderr, "sealsock-agent: %s\n", message.c_str());
    std::exit(code);
}

Options parse(int argc, char** argv) {
    Options o;
    auto value = [&](int& i) -> std::string {
        if (i + 1 >= argc) fail(std::string(argv[i]) + " needs a value\n" + usage, 2);
        return argv[++i];
    };
    auto last = [&](const char* flag) -> IdentityFiles& {
        if (o.identities.empty()) fail(std::string(flag) + " must follow --identity NAME", 2);
        return o.identities.back();
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "start" || a == "status" || a == "lock" || a == "unlock" || a == "stop")
            o.command = a;
        else if (a == "--stop")
            o.command = "stop";
        else if (a == "--foreground")
            o.foreground = true;
        else if (a == "--socket")
            o.socket = value(i);
        else if (a == "--identity")
            o.identities.push_back({value(i), "", "", {}});
        else if (a == "--cert")
            last("--cert").certificate = value(i);
        else if (a == "--key")
            last("--key").key = value(i);
        else if (a == "--allow-program")
            last("--allow-program").programs.push_back(value(i));
        else if (a == "--trust")
            o.trust = value(i);
        else if (a == "--config-dir")
            o.config_dir = value(i);
        else if (a == "--lifetime")
            o.lifetime = std::strtoull(value(i).c_str(), nullptr, 10);
        else if (a == "--passphrase-fd")
            o.passphrase_fd = std::atoi(value(i).c_str());
        else if (a == "-h" || a == "--help") {
            std::fputs(usage, stdout);
            std::exit(0);
        } else
            fail("unknown argument " + a + "\n" + usage, 2);
    }
    if (o.socket.empty()) o.socket = agent::default_socket_path();
    return o;
}

std::string default_config_dir() {
    if (const char* x = std::getenv("XDG_CONFIG_HOME"); x != nullptr && *x)
        return std::string(x) + "/sealsock";
    if (const char* h = std::getenv("HOME"); h != nullptr && *h)
        return std::string(h) + "/.config/sealsock";
    return ".";
}

// Identities from DIR/identities/NAME.crt + NAME.key when none were given on the command line.
void fill_from_config_dir(Options& o) {
    namespace fs = std::filesystem;
    const std::string dir = o.config_dir.empty() ? default_config_dir() : o.config_dir;
    if (o.trust.empty()) o.trust = dir + "/trust.pem";
    if (!o.identities.empty()) return;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir + "/identities", ec)) {
        if (entry.path().extension() != ".crt") continue;
        fs::path key = entry.path();
        key.replace_extension(".key");
        o.identities.push_back(
            {entry.path().stem().string(), entry.path().string(), key.string(), {}});
    }
    if (o.identities.empty())
        fail(
            "no identity: give --identity NAME --cert FILE --key FILE, or put NAME.crt and "
            "NAME.key in " +
            dir + "/identities (see `sealsock pki`)");
}

std::uint64_t next_request_id() {
    static std::uint64_t id = static_cast<std::uint64_t>(::getpid()) << 32;
    return ++id;
}

agent::Message call_agent(const Options& o, agent::Message request) {
    auto client = agent::AgentClient::connect(o.socket);
    if (!client) fail(client.error().message);
    auto reply = client.value().call(request);
    if (!reply) fail(reply.error().message);
    if (auto* e = std::get_if<agent::ErrorReply>(&reply.value().body))
        fail(std::string(agent::error_code_name(e->code)) + ": " + e->message);
    return std::move(reply.value());
}

int client_command(const Options& o) {
    using agent::MessageType;
    if (o.command == "stop") {
        call_agent(o, {MessageType::stop, next_request_id(), agent::Empty{}});
        std::puts("sealsock agent stopped");
    } else if (o.command == "lock") {
        call_agent(o, {MessageType::lock, next_request_id(), agent::Empty{}});
        std::puts("identities locked");
    } else if (o.command == "unlock") {
        auto pass = o.passphrase_fd >= 0 ? read_passphrase_fd(o.passphrase_fd)
                                         : read_passphrase("Passphrase for sealsock identities: ");
        if (!pass) fail(pass.error().message);
        call_agent(o, {MessageType::unlock, next_request_id(),
                       agent::UnlockRequest{std::move(pass.value())}});
        std::puts("identities unlocked");
    } else {
        const auto reply = call_agent(o, {MessageType::status, next_request_id(), agent::Empty{}});
        const auto& s = std::get<agent::StatusReply>(reply.body);
        std::printf("agent: %s\nlocked: %s\nhandshakes in flight: %u\n", o.socket.c_str(),
                    s.locked ? "yes" : "no", s.in_flight);
        for (const auto& line : s.identities)
            std::printf("identity: %s\n", line.c_str());
    }
    return 0;
}

void print_environment(const std::string& socket, pid_t pid) {
    std::printf("SEALSOCK_AGENT_SOCK=%s; export SEALSOCK_AGENT_SOCK;\n", socket.c_str());
    if (pid > 0) {
        std::printf("SEALSOCK_AGENT_PID=%d; export SEALSOCK_AGENT_PID;\n", pid);
        std::printf("echo sealsock agent pid %d;\n", pid);
    } else {
        std::printf("echo sealsock agent already running;\n");
    }
    std::fflush(stdout);
}

AgentServer* running_server = nullptr;

extern "C" void on_signal(int) {
    if (running_server != nullptr) running_server->stop();
}

void unlock_at_start(const Options& o, IdentityStore& store) {
    if (!store.locked() || !store.has_encrypted_keys()) return;
    Result<SecureBuffer> pass = make_error("");
    if (o.passphrase_fd >= 0) {
        pass = read_passphrase_fd(o.passphrase_fd);
    } else if (::isatty(STDIN_FILENO) || std::getenv("SEALSOCK_ASKPASS") != nullptr) {
        pass = read_passphrase("Passphrase for sealsock identities: ");
    } else {
        std::fprintf(stderr, "sealsock-agent: keys are locked; run `sealsock agent unlock`\n");
        return;
    }
    if (!pass) fail(pass.error().message);
    if (Status s = store.unlock(pass.value().view()); !s) fail(s.error().message);
}

// Moves the agent into the background: the parent prints the shell lines and exits.
void daemonize(const Options& o) {
    const std::string log_file = o.socket.substr(0, o.socket.rfind('/') + 1) + "agent.log";
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) fail(std::string("fork: ") + std::strerror(errno));
    if (pid > 0) {
        print_environment(o.socket, pid);
        std::_Exit(0);
    }
    ::setsid();
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const int out = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    if (out >= 0) {
        ::dup2(out, STDOUT_FILENO);
        ::dup2(out, STDERR_FILENO);
    }
}

int start(Options o) {
    if (!o.foreground) {
        // One agent per user: a second start reports the running one.
        if (auto c = agent::AgentClient::connect(o.socket); c) {
            print_environment(o.socket, 0);
            return 0;
        }
    }
    fill_from_config_dir(o);
    if (!enable_secure_key_heap()) log("warning: OpenSSL's secure heap is not available");
    auto store = IdentityStore::load(o.identities, o.trust);
    if (!store) fail(store.error().message);
    unlock_at_start(o, *store.value());
    const bool unlocked = !store.value()->locked();
    ServerOptions so;
    so.socket_path = o.socket;
    so.lifetime_seconds = o.lifetime;
    auto server = AgentServer::create(so, std::move(store.value()));
    if (!server) fail(server.error().message);
    if (!o.foreground) daemonize(o);
    running_server = server.value().get();
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    if (unlocked) server.value()->note_unlocked();
    log("listening on {} ({} identities{})", o.socket, o.identities.size(),
        unlocked ? "" : ", locked");
    const int rc = server.value()->run();
    running_server = nullptr;
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    // No core dumps and no ptrace by other processes of the same user: keys live here.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (sodium_init() < 0) fail("libsodium failed to initialise");
    Options o = parse(argc, argv);
    return o.command == "start" ? start(std::move(o)) : client_command(o);
}
