// sealsock-check: what the `sealsock` wrapper and `sealsock doctor` ask before a program runs.
//
//   sealsock-check check [--config FILE] [--exe PATH] [--quiet]
//   sealsock-check match [--config FILE] --exe PATH
//   sealsock-check inspect PATH
//   sealsock-check agent [--config FILE]
//
// It reads the config with the shim's own loader (shim/config/), judges programs with the shim's
// own exec check (shim/session/exec_target.cc), loads identity files with the agent's own store
// (keyagent/identity.h) and asks a running agent through the agent protocol, so the wrapper never
// has a second opinion about anything the shim or the agent decide. Exit codes are in `usage`.
#include <fcntl.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/file.h"
#include "config/match.h"
#include "keyagent/identity.h"
#include "protocol/agent_client.h"
#include "session/exec_target.h"

namespace {

using namespace sealsock;
namespace cfg = sealsock::config;

constexpr const char* usage = R"(usage: sealsock-check check [--config FILE] [--exe PATH] [--quiet]
       sealsock-check match [--config FILE] --exe PATH
       sealsock-check inspect PATH
       sealsock-check agent [--config FILE]

check    validate the config (every file it merges) and the identities its rules name; say
         whether sealing rules (those that apply to PATH, with --exe) need an agent and whether
         one answers. Exit 0 ready, 1 errors, 3 an agent is needed and none answers.
match    list the rules that apply to the program PATH. Exit 0 some rule seals its connections,
         4 none does, 1 config errors.
inspect  can PATH carry the shim? Exit 0 yes, 4 no (the reason is printed), 1 cannot tell.
agent    the agent's state: running, locked, identities and expiry. Exit 0 running and unlocked,
         3 not running, 5 locked, 6 an identity expires within 30 days or has expired.
)";

constexpr int kOk = 0, kErrors = 1, kUsage = 2, kNoAgent = 3, kNo = 4, kLocked = 5, kExpiry = 6;
constexpr std::time_t kExpiryWarning = 30 * 24 * 3600;

struct Options {
    std::string command;
    std::string config;  // --config FILE (absolute), empty: the usual precedence
    std::string exe;     // --exe PATH, or inspect's PATH
    bool quiet = false;
};

[[noreturn]] void usage_error(const std::string& why) {
    std::fprintf(stderr, "sealsock-check: %s\n%s", why.c_str(), usage);
    std::exit(kUsage);
}

Options parse(int argc, char** argv) {
    if (argc < 2) usage_error("which check?");
    Options o{argv[1], "", "", false};
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--config" && has_value)
            o.config = argv[++i];
        else if (a == "--exe" && has_value)
            o.exe = argv[++i];
        else if (a == "--quiet")
            o.quiet = true;
        else if (o.command == "inspect" && o.exe.empty())
            o.exe = a;
        else
            usage_error("unexpected argument " + a);
    }
    return o;
}

// --- the config -----------------------------------------------------------------------------

struct Loaded {
    cfg::LoadResult result;
    std::string agent_socket;
};

Loaded load_config(const Options& o) {
    cfg::Environment env = cfg::process_environment();
    if (!o.config.empty()) env.sealsock_config = o.config;
    Loaded l{cfg::load_files(env), ""};
    l.agent_socket = l.result.config.agent_socket.empty() ? agent::default_socket_path()
                                                          : l.result.config.agent_socket;
    return l;
}

bool seals(const cfg::Rule& r) {
    return r.enabled && r.mode != cfg::Mode::off;
}

// A program as the shim inside it will see it: the executable (/proc/self/exe) and argv[0].
struct Program {
    std::string exe;
    std::string invoked;
};

bool applies(const cfg::Rule& r, const Program& p) {
    return cfg::program_applies(r, p.exe, p.invoked);
}

std::string where(const cfg::Rule& r) {
    return r.origin.file + ":" + std::to_string(r.origin.line);
}

// An enabled "off" rule for every connection of its programs: no later rule of its direction is
// ever consulted for them (first match wins).
bool exempts_everything(const cfg::OutboundRule& r) {
    return r.enabled && r.mode == cfg::Mode::off && r.destinations.empty() && r.ports.empty();
}
bool exempts_everything(const cfg::InboundRule& r) {
    return r.enabled && r.mode == cfg::Mode::off && r.ports.empty();
}

// The rules of one direction that can apply to `exe` (every program when empty), in order, up to
// one that exempts all of its connections.
template <typename R>
void reachable(const std::vector<R>& rules, const Program& p,
               std::vector<std::pair<const cfg::Rule*, bool>>& out, bool outbound) {
    for (const R& r : rules) {
        if (!p.exe.empty() && !applies(r, p)) continue;
        out.emplace_back(&r, outbound);
        if (!p.exe.empty() && exempts_everything(r)) return;
    }
}

// The rules that can apply to `exe`, outbound then inbound, each with its direction.
std::vector<std::pair<const cfg::Rule*, bool>> rules_for(const cfg::Config& c, const Program& p) {
    std::vector<std::pair<const cfg::Rule*, bool>> out;
    reachable(c.outbound, p, out, true);
    reachable(c.inbound, p, out, false);
    return out;
}

// Sealing rules that can apply to `exe` (every sealing rule when `exe` is empty).
std::vector<const cfg::Rule*> sealing_rules(const cfg::Config& c, const Program& p) {
    std::vector<const cfg::Rule*> out;
    if (!c.enabled) return out;
    for (const auto& [r, outbound] : rules_for(c, p))
        if (seals(*r)) out.push_back(r);
    return out;
}

// --- programs -------------------------------------------------------------------------------

std::string real_path(const std::string& path) {
    char buf[PATH_MAX];
    return ::realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

// `file` looked up in PATH as execvp does (unchanged when it has a '/').
std::string search_path(const std::string& file) {
    if (file.find('/') != std::string::npos) return file;
    const char* env = std::getenv("PATH");
    std::string path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
    std::size_t at = 0;
    for (;;) {
        const std::size_t colon = path.find(':', at);
        std::string dir = path.substr(at, colon - at);
        const std::string candidate = (dir.empty() ? "." : dir) + "/" + file;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        if (colon == std::string::npos) return file;
        at = colon + 1;
    }
}

// The executable the kernel will report as /proc/self/exe for `path`, which rules match: the
// file itself, or for a "#!" script its interpreter (through `env NAME`, the program env runs).
std::string image_of(const std::string& path) {
    std::string exe = real_path(search_path(path));
    std::FILE* f = std::fopen(exe.c_str(), "re");
    if (f == nullptr) return exe;
    char line[PATH_MAX + 3] = {};
    const bool script =
        std::fgets(line, sizeof line, f) != nullptr && line[0] == '#' && line[1] == '!';
    std::fclose(f);
    if (!script) return exe;
    std::vector<std::string> words;
    for (char* w = std::strtok(line + 2, " \t\n"); w != nullptr; w = std::strtok(nullptr, " \t\n"))
        words.emplace_back(w);
    if (words.empty()) return exe;
    const bool via_env = words[0].size() >= 4 && words[0].ends_with("/env") && words.size() > 1;
    return real_path(via_env ? search_path(words[1]) : words[0]);
}

// `path` as `sealsock run` starts it: argv[0] is `path` as given (`exec -a`), except for a "#!"
// script, whose interpreter the kernel starts under the interpreter's own name.
Program program_of(const std::string& path) {
    Program p{image_of(path), path};
    if (p.exe != real_path(search_path(path))) p.invoked.clear();
    return p;
}

// --- the agent ------------------------------------------------------------------------------

struct AgentState {
    bool running = false;
    std::string why;  // when not running: the client's sentence (names the path, says what to do)
    agent::StatusReply status;
};

AgentState ask_agent(const std::string& socket) {
    AgentState s;
    auto client = agent::AgentClient::connect(socket);
    if (!client) {
        s.why = client.error().message;
        return s;
    }
    const std::uint64_t id = static_cast<std::uint64_t>(::getpid()) << 32 | 1;
    auto reply = client.value().call({agent::MessageType::status, id, agent::Empty{}}, -1, 5000);
    if (!reply) {
        s.why = "the agent at " + socket + " did not answer: " + reply.error().message;
    } else if (const auto* st = std::get_if<agent::StatusReply>(&reply.value().body)) {
        s.running = true;
        s.status = *st;
    } else {
        s.why = "the agent at " + socket + " refused the status request";
    }
    return s;
}

// The identity's name: the first word of its status line.
std::string identity_name(const std::string& line) {
    return line.substr(0, line.find(' '));
}

// When the certificate of a status line ("... (valid until Mar  5 12:00:00 2026 GMT, ...")
// expires; nullopt when the line does not say.
std::optional<std::time_t> expiry_of(const std::string& line) {
    const std::size_t at = line.find("(valid until ");
    if (at == std::string::npos) return std::nullopt;
    std::tm tm{};
    const char* end = ::strptime(line.c_str() + at + 13, "%b %d %H:%M:%S %Y GMT", &tm);
    if (end == nullptr) return std::nullopt;
    return ::timegm(&tm);
}

// "" when fine, else why the identity on this status line needs attention.
std::string expiry_problem(const std::string& line, std::time_t now) {
    const auto when = expiry_of(line);
    if (!when) return "";
    if (*when <= now) return "its certificate has expired: renew it and restart the agent";
    if (*when - now < kExpiryWarning)
        return "its certificate expires in " + std::to_string((*when - now) / 86400) +
               " days: renew it soon";
    return "";
}

// The directory `sealsock agent` loads identities from by default (sealsock-agent
// --config-dir, keyagent/main.cc).
std::string agent_config_dir() {
    if (const char* x = std::getenv("XDG_CONFIG_HOME"); x != nullptr && *x != '\0')
        return std::string(x) + "/sealsock";
    if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0')
        return std::string(h) + "/.config/sealsock";
    return ".";
}

// Why the agent could not serve identity `name`, or "" if it can: from the running agent's
// status, or else by loading the files `sealsock agent` would load with the agent's own code.
std::string identity_problem(const std::string& name, const AgentState& agent,
                             const std::string& socket) {
    if (agent.running) {
        std::string held;
        for (const auto& line : agent.status.identities) {
            if (identity_name(line) == name) return "";
            held += (held.empty() ? "" : ", ") + identity_name(line);
        }
        return "the agent at " + socket + " holds no identity `" + name + "` (it holds: " + held +
               "); restart it with that identity (--identity " + name +
               " --cert FILE --key FILE, or " + name + ".crt and " + name + ".key in " +
               agent_config_dir() + "/identities), or change the rule's `identity`";
    }
    const std::string dir = agent_config_dir();
    keyagent::IdentityFiles files{
        name, dir + "/identities/" + name + ".crt", dir + "/identities/" + name + ".key", {}};
    auto store = keyagent::IdentityStore::load({files}, dir + "/trust.pem");
    if (store) return "";
    return "identity `" + name + "`, as `sealsock agent` would load it from " + dir + ": " +
           store.error().message +
           " (install it with `sealsock pki install`, or fix the rule's `identity`)";
}

// The rules' identities, checked once per name; errors at the first rule naming each.
cfg::Diagnostics check_identities(const std::vector<const cfg::Rule*>& rules,
                                  const AgentState& agent, const std::string& socket) {
    cfg::Diagnostics out;
    std::set<std::string> seen;
    for (const cfg::Rule* r : rules) {
        if (r->identity.empty() || !seen.insert(r->identity).second) continue;
        const std::string why = identity_problem(r->identity, agent, socket);
        if (!why.empty())
            out.push_back({r->origin.file, r->origin.line, 0, "rule `" + r->name + "`: " + why});
    }
    return out;
}

// --- the commands ---------------------------------------------------------------------------

void print_config_summary(const Loaded& l) {
    const cfg::Config& c = l.result.config;
    if (c.files.empty()) {
        std::puts("config: no file (no rules: every connection passes through)");
        return;
    }
    for (const auto& f : c.files)
        std::printf("config: %s\n", f.c_str());
    std::printf("config: valid; %zu outbound and %zu inbound rules%s\n", c.outbound.size(),
                c.inbound.size(), c.enabled ? "" : "; switched off (enabled = false)");
}

int check(const Options& o) {
    const Loaded l = load_config(o);
    if (!l.result.ok()) {
        std::fputs(cfg::format(l.result.errors).c_str(), stderr);
        return kErrors;
    }
    const cfg::Config& c = l.result.config;
    const auto rules = sealing_rules(c, o.exe.empty() ? Program{} : program_of(o.exe));
    if (!o.quiet) print_config_summary(l);
    if (rules.empty()) {
        if (!o.quiet) std::puts("agent: not needed (no rule seals connections)");
        return kOk;
    }
    const AgentState agent = ask_agent(l.agent_socket);
    const cfg::Diagnostics problems = check_identities(rules, agent, l.agent_socket);
    std::fputs(cfg::format(problems).c_str(), stderr);
    if (!agent.running) {
        std::fprintf(stderr, "sealsock: rule `%s` (%s) seals connections, but %s\n",
                     rules.front()->name.c_str(), where(*rules.front()).c_str(), agent.why.c_str());
        return problems.empty() ? kNoAgent : kErrors;
    }
    if (agent.status.locked)
        std::fprintf(stderr,
                     "sealsock: warning: the agent at %s is locked: sealed connections fail "
                     "until you run `sealsock agent unlock`\n",
                     l.agent_socket.c_str());
    if (!o.quiet) std::printf("agent: %s answers\n", l.agent_socket.c_str());
    return problems.empty() ? kOk : kErrors;
}

std::string describe(const cfg::Rule& r, bool outbound) {
    std::string s = std::string(outbound ? "outbound" : "inbound") + " rule `" + r.name + "` (" +
                    where(r) + "): ";
    if (!r.enabled) return s + "disabled (enabled = false)";
    if (r.mode == cfg::Mode::off) return s + "mode \"off\": its connections are not sealed";
    s += r.mode == cfg::Mode::require ? "seals" : "seals TLS clients, passes plaintext clients";
    if (!r.identity.empty()) s += " as identity `" + r.identity + "`";
    return s;
}

int match(const Options& o) {
    if (o.exe.empty()) usage_error("match needs --exe PATH");
    const Loaded l = load_config(o);
    if (!l.result.ok()) {
        std::fputs(cfg::format(l.result.errors).c_str(), stderr);
        return kErrors;
    }
    const cfg::Config& c = l.result.config;
    const Program p = program_of(o.exe);
    std::printf("program: %s\n", p.exe.c_str());
    if (!c.enabled) {
        std::puts("sealsock is switched off (enabled = false): nothing is sealed");
        return kNo;
    }
    bool any = false;
    for (const auto& [r, outbound] : rules_for(c, p)) {
        std::printf("%s\n", describe(*r, outbound).c_str());
        any = any || seals(*r);
    }
    if (!any) std::puts("no rule seals this program's connections: they pass through untouched");
    return any ? kOk : kNo;
}

int inspect(const Options& o) {
    if (o.exe.empty()) usage_error("inspect needs a PATH");
    const std::string path = search_path(o.exe);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        std::printf("%s: cannot be read (%s)\n", path.c_str(), std::strerror(errno));
        return kErrors;
    }
    const char* why = file_cannot_carry_shim(fd);
    ::close(fd);
    if (why != nullptr) {
        std::printf("%s: cannot carry the shim: %s\n", path.c_str(), why);
        return kNo;
    }
    std::printf("%s: can carry the shim (dynamically linked)\n", path.c_str());
    return kOk;
}

int agent_report(const Options& o) {
    const Loaded l = load_config(o);
    const AgentState agent = ask_agent(l.agent_socket);
    if (!agent.running) {
        std::printf("agent: %s\n", agent.why.c_str());
        return kNoAgent;
    }
    std::printf("agent: running at %s, %s\n", l.agent_socket.c_str(),
                agent.status.locked ? "locked: run `sealsock agent unlock`" : "unlocked");
    int rc = agent.status.locked ? kLocked : kOk;
    const std::time_t now = std::time(nullptr);
    for (const auto& line : agent.status.identities) {
        std::printf("identity: %s\n", line.c_str());
        const std::string problem = expiry_problem(line, now);
        if (problem.empty()) continue;
        std::printf("identity %s: %s\n", identity_name(line).c_str(), problem.c_str());
        if (rc == kOk) rc = kExpiry;
    }
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    // Identity checks may decode the user's unencrypted keys (as the agent would): no core dumps.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (sodium_init() < 0) {
        std::fputs("sealsock-check: libsodium failed to initialise\n", stderr);
        return kErrors;
    }
    keyagent::enable_secure_key_heap();
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // interleaves with stderr in the order written
    Options o = parse(argc, argv);
    if (!o.config.empty()) o.config = real_path(o.config);
    if (o.command == "check") return check(o);
    if (o.command == "match") return match(o);
    if (o.command == "inspect") return inspect(o);
    if (o.command == "agent") return agent_report(o);
    usage_error("unknown check " + o.command);
}
