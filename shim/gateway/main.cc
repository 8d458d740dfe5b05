// sealsock-gateway: sealed listeners in front of programs that cannot carry the shim, and a
// sealed exit for clients that cannot be touched (docs/gateway.md).
//
//   sealsock-gateway --config FILE [--check | --print-sealsock-config] [--pid-file FILE]
//
// The gateway does no TLS itself. It runs in two stages:
//   1. read and validate FILE, write the equivalent sealsock config into a memfd, and re-exec
//      itself with LD_PRELOAD=libsealsock.so and SEALSOCK_CONFIG=/proc/self/fd/N;
//   2. (sealed) refuse to run unless the shim is loaded (sealsock_peer is found), open or
//      inherit the listening sockets, start one event loop per core, and relay.
// SIGHUP re-executes stage 1 in a child that inherits the listening sockets: once it runs, this
// process stops accepting and exits when its connections have ended. SIGTERM and SIGINT stop at
// once.
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "config/file.h"
#include "gateway/relay.h"
#include "gateway/settings.h"

extern char** environ;

namespace sealsock::gateway {
namespace {

constexpr const char* env_stage = "SEALSOCK_GATEWAY_STAGE";      // "sealed" in stage 2
constexpr const char* env_source = "SEALSOCK_GATEWAY_SOURCE";    // fd: the config text stage 1 read
constexpr const char* env_listen = "SEALSOCK_GATEWAY_LISTEN";    // "ADDR:PORT=FD;..." (reload)
constexpr const char* env_ready = "SEALSOCK_GATEWAY_READY";      // fd: write 'R' once serving
constexpr const char* env_preload = "SEALSOCK_GATEWAY_PRELOAD";  // LD_PRELOAD before stage 1

struct Args {
    std::string config;
    std::string pid_file;
    bool check = false;
    bool print = false;
};

[[noreturn]] void die(const std::string& message, int code = 1) {
    std::fprintf(stderr, "sealsock-gateway: %s\n", message.c_str());
    std::exit(code);
}

Args parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--config" && i + 1 < argc) {
            a.config = argv[++i];
        } else if (arg == "--pid-file" && i + 1 < argc) {
            a.pid_file = argv[++i];
        } else if (arg == "--check") {
            a.check = true;
        } else if (arg == "--print-sealsock-config") {
            a.print = true;
        } else {
            die("usage: sealsock-gateway --config FILE [--check | --print-sealsock-config] "
                "[--pid-file FILE]",
                2);
        }
    }
    if (a.config.empty()) die("--config FILE is required", 2);
    return a;
}

std::string env_or(const char* name, const std::string& fallback = {}) {
    const char* v = std::getenv(name);
    return (v != nullptr && *v != '\0') ? std::string(v) : fallback;
}

// A memfd holding `text`, sealed against change, inherited across exec.
int text_memfd(const char* name, const std::string& text) {
    const int fd = memfd_create(name, MFD_ALLOW_SEALING);
    if (fd < 0) die(std::string("memfd_create: ") + std::strerror(errno));
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n <= 0) die(std::string("writing the generated config: ") + std::strerror(errno));
        done += static_cast<std::size_t>(n);
    }
    (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    return fd;
}

std::string read_fd(int fd) {
    std::string text;
    char buf[8192];
    (void)lseek(fd, 0, SEEK_SET);
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    return text;
}

// libsealsock.so: $SEALSOCK_SHIM, else next to this program (installed: ../lib/sealsock/; build
// tree: shim/gateway/../).
std::string find_shim() {
    std::string shim = env_or("SEALSOCK_SHIM");
    if (!shim.empty()) {
        if (access(shim.c_str(), R_OK) != 0)
            die("SEALSOCK_SHIM names " + shim + ", which cannot be read");
        return shim;
    }
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        std::string dir(self);
        dir.erase(dir.rfind('/'));
        for (const char* rel : {"/../lib/sealsock/libsealsock.so", "/../libsealsock.so"}) {
            const std::string c = dir + rel;
            char real[4096];
            if (realpath(c.c_str(), real) != nullptr && access(real, R_OK) == 0) return real;
        }
    }
    die("libsealsock.so is not found: set SEALSOCK_SHIM or install sealsock (cmake --install)");
}

// The environment for an exec: `environ` with `set` replacing or adding and `drop` removed.
std::vector<std::string> environment(const std::map<std::string, std::string>& set,
                                     const std::vector<std::string>& drop) {
    std::vector<std::string> out;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string entry = *e;
        const std::string key = entry.substr(0, entry.find('='));
        bool skip = set.count(key) != 0;
        for (const auto& d : drop)
            skip = skip || d == key;
        if (!skip) out.push_back(entry);
    }
    for (const auto& [k, v] : set)
        out.push_back(k + "=" + v);
    return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> p;
    for (auto& s : strings)
        p.push_back(s.data());
    p.push_back(nullptr);
    return p;
}

Settings load(const Args& args, std::string& text) {
    const std::string source = env_or(env_source);
    if (!source.empty()) {
        text = read_fd(std::atoi(source.c_str()));
    } else {
        auto r = config::read_config_file(args.config);
        if (!r) die(args.config + ": " + r.error().message, 2);
        if (!r.value()) die(args.config + ": no such file", 2);
        text = *r.value();
    }
    ParseResult p = parse(text, args.config);
    if (!p.ok()) {
        std::fputs(config::format(p.errors).c_str(), stderr);
        die("the config has errors; nothing was started", 2);
    }
    return std::move(p.settings);
}

// Stage 1: re-exec under the shim with the generated config.
[[noreturn]] void exec_sealed(char** argv, const Settings& s, const std::string& text) {
    const std::string shim = find_shim();
    const int conf = text_memfd("sealsock-gateway.toml", s.shim_config);
    const int src = text_memfd("sealsock-gateway-source.toml", text);
    const std::string before = env_or("LD_PRELOAD");
    std::string preload = shim;
    if (!before.empty() && before.find(shim) == std::string::npos) preload += ":" + before;
    if (before.find(shim) != std::string::npos) preload = before;
    std::map<std::string, std::string> set = {
        {"LD_PRELOAD", preload},
        {"SEALSOCK_CONFIG", "/proc/self/fd/" + std::to_string(conf)},
        {env_stage, "sealed"},
        {env_source, std::to_string(src)},
        {env_preload, env_or(env_preload, before)},
    };
    auto env = environment(set, {});
    auto envp = pointers(env);
    execve("/proc/self/exe", argv, envp.data());
    die(std::string("cannot re-execute under the shim: ") + std::strerror(errno));
}

int open_listener(const Listener& l) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    addrinfo* res = nullptr;
    const int g =
        getaddrinfo(l.listen.host.c_str(), std::to_string(l.listen.port).c_str(), &hints, &res);
    if (g != 0) die("listener \"" + l.name + "\": " + l.listen.text + ": " + gai_strerror(g));
    const int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    if (fd >= 0) (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0)
        die("listener \"" + l.name + "\" cannot listen on " + l.listen.text + ": " +
            std::strerror(errno));
    freeaddrinfo(res);
    return fd;
}

// The listening sockets: inherited from the previous generation where the address is the same,
// else new. Inherited ones no listener wants are closed.
std::vector<ListenSocket> listeners(const Settings& s) {
    std::map<std::string, int> inherited;
    const std::string list = env_or(env_listen);
    for (std::size_t at = 0; at < list.size();) {
        std::size_t end = list.find(';', at);
        if (end == std::string::npos) end = list.size();
        const std::string item = list.substr(at, end - at);
        const auto eq = item.rfind('=');
        if (eq != std::string::npos)
            inherited[item.substr(0, eq)] = std::atoi(item.c_str() + eq + 1);
        at = end + 1;
    }
    std::vector<ListenSocket> out;
    for (const Listener& l : s.listeners) {
        auto it = inherited.find(l.listen.text);
        int fd = -1;
        if (it != inherited.end()) {
            fd = it->second;
            inherited.erase(it);
            (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
            (void)fcntl(fd, F_SETFL, O_NONBLOCK | fcntl(fd, F_GETFL));
        } else {
            fd = open_listener(l);
        }
        out.push_back({&l, fd});
    }
    for (const auto& [addr, fd] : inherited)
        ::close(fd);
    return out;
}

sigset_t handled_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGHUP, SIGTERM, SIGINT, SIGCHLD})
        sigaddset(&set, sig);
    return set;
}

// SIGHUP: start the next generation with the listening sockets. True once it serves.
bool reload(char** argv, const std::vector<ListenSocket>& ls) {
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return false;
    std::string list;
    for (const ListenSocket& l : ls)
        list += l.listener->listen.text + "=" + std::to_string(l.fd) + ";";
    std::map<std::string, std::string> set = {{env_listen, list},
                                              {env_ready, std::to_string(ready[1])},
                                              {"LD_PRELOAD", env_or(env_preload)}};
    auto env = environment(
        set, {env_stage, env_source, "SEALSOCK_CONFIG", env_preload, "SEALSOCK_SESSIONS"});
    auto envp = pointers(env);
    std::vector<int> fds;
    for (const ListenSocket& l : ls)
        fds.push_back(l.fd);
    fds.push_back(ready[1]);
    const sigset_t mask = handled_signals();
    const pid_t child = fork();
    if (child == 0) {
        for (int fd : fds)
            (void)fcntl(fd, F_SETFD, 0);
        (void)pthread_sigmask(SIG_UNBLOCK, &mask, nullptr);
        execve("/proc/self/exe", argv, envp.data());
        _exit(127);
    }
    ::close(ready[1]);
    if (child < 0) {
        ::close(ready[0]);
        return false;
    }
    pollfd p{ready[0], POLLIN, 0};
    char c = 0;
    const bool ok = poll(&p, 1, 60'000) == 1 && ::read(ready[0], &c, 1) == 1 && c == 'R';
    ::close(ready[0]);
    if (!ok) {
        (void)kill(child, SIGTERM);
        (void)waitpid(child, nullptr, 0);
    }
    return ok;
}

void write_pid(const std::string& path) {
    if (path.empty()) return;
    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) return;
    std::fprintf(f, "%d\n", getpid());
    std::fclose(f);
    (void)std::rename(tmp.c_str(), path.c_str());
}

int serve(char** argv, const Args& args, const Settings& s) {
    // Never relay plaintext where sealing was configured: the shim must be in this process.
    auto peer = reinterpret_cast<sealsock_peer_fn>(dlsym(RTLD_DEFAULT, "sealsock_peer"));
    if (peer == nullptr)
        die("the sealing library is not loaded in this process (LD_PRELOAD=" +
            env_or("LD_PRELOAD", "unset") +
            "), or it does not export sealsock_peer: refusing to relay; run it as "
            "`sealsock gateway --config FILE` with a current libsealsock.so");
    const std::string source = env_or(env_source);
    if (!source.empty()) ::close(std::atoi(source.c_str()));
    unsetenv(env_source);

    const sigset_t mask = handled_signals();
    (void)pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_IGN);

    RelayLog log(s.relay_log);
    Shared shared;
    shared.settings = &s;
    shared.log = &log;
    shared.peer = peer;
    shared.listeners = listeners(s);
    const unsigned n =
        s.workers != 0 ? s.workers : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::unique_ptr<Worker>> workers;
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < n; ++i)
        workers.push_back(std::make_unique<Worker>(shared));
    for (auto& w : workers)
        threads.emplace_back([&w] { w->run(); });

    write_pid(args.pid_file);
    if (const std::string r = env_or(env_ready); !r.empty()) {
        const int fd = std::atoi(r.c_str());
        (void)!::write(fd, "R", 1);
        ::close(fd);
        unsetenv(env_ready);
    }
    unsetenv(env_listen);
    std::fprintf(stderr, "sealsock-gateway: serving %zu listener(s) with %u worker(s), pid %d\n",
                 shared.listeners.size(), n, getpid());

    for (;;) {
        siginfo_t info{};
        const int sig = sigwaitinfo(&mask, &info);
        if (sig == SIGCHLD) {
            while (waitpid(-1, nullptr, WNOHANG) > 0) {
            }
            continue;
        }
        if (sig == SIGHUP) {
            if (!reload(argv, shared.listeners)) {
                std::fprintf(stderr,
                             "sealsock-gateway: reload failed (the new configuration did "
                             "not start: see the lines above); still serving the old one\n");
                continue;
            }
            std::fprintf(stderr,
                         "sealsock-gateway: reloaded; pid %d finishes its %llu "
                         "connection(s) and exits\n",
                         getpid(), static_cast<unsigned long long>(shared.live.load()));
            for (auto& w : workers)
                w->stop_accepting();
            break;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            for (auto& w : workers)
                w->finish();
            break;
        }
    }
    for (auto& t : threads)
        t.join();
    for (const ListenSocket& l : shared.listeners)
        ::close(l.fd);
    return 0;
}

}  // namespace
}  // namespace sealsock::gateway

int main(int argc, char** argv) {
    using namespace sealsock::gateway;
    const Args args = parse_args(argc, argv);
    std::string text;
    const Settings settings = load(args, text);
    if (args.print) {
        std::fputs(settings.shim_config.c_str(), stdout);
        return 0;
    }
    if (args.check) {
        std::printf("%s: %zu listener(s), ok\n", args.config.c_str(), settings.listeners.size());
        return 0;
    }
    if (std::getenv(env_stage) == nullptr) exec_sealed(argv, settings, text);
    unsetenv(env_stage);
    return serve(argv, args, settings);
}
