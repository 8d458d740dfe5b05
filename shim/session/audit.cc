#include "session/audit.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iterator>
#include <mutex>

#include "session/log.h"
#include "sys/real.h"

namespace sealsock::audit {
namespace {

const char* event_name(Event e) {
    switch (e) {
        case Event::open:
            return "open";
        case Event::refuse:
            return "refuse";
        case Event::close:
            return "close";
    }
    return "?";
}

// The length of the UTF-8 sequence at the start of `s`, or 0 if it is not one (overlong forms,
// surrogates and code points past U+10FFFF included).
std::size_t utf8_length(std::string_view s) {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char c = b(0);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07u;
    } else {
        return 0;
    }
    if (s.size() < n) return 0;
    for (std::size_t i = 1; i < n; ++i) {
        if ((b(i) & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (b(i) & 0x3fu);
    }
    const bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
    if (overlong || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return 0;
    return n;
}

void append_string(std::string& out, std::string_view s) {
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            const std::size_t n = utf8_length(s.substr(i));
            if (n == 0) {
                out += "\\ufffd";
                ++i;
            } else {
                out.append(s.substr(i, n));
                i += n;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20 || c == 0x7f)
                    out += fmt::format("\\u{:04x}", c);
                else
                    out += static_cast<char>(c);
        }
        ++i;
    }
    out += '"';
}

void field(std::string& out, std::string_view key, std::string_view value) {
    out += ',';
    append_string(out, key);
    out += ':';
    append_string(out, value);
}

void field(std::string& out, std::string_view key, std::uint64_t value) {
    out += fmt::format(",\"{}\":{}", key, value);
}

std::string now_rfc3339() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm utc{};
    gmtime_r(&ts.tv_sec, &utc);
    char text[40];
    const std::size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    return fmt::format("{}.{:03}Z", std::string_view(text, n), ts.tv_nsec / 1000000);
}

// The program's executable, read once per program image (an exec starts a new one): a readlink
// of /proc/self/exe for every record showed in the profile of a sealed server answering one
// connection per request. Never destroyed: events may come from exit handlers.
const std::string& exe_path() {
    static const std::string* const exe = [] {
        char path[4096];
        const ssize_t n = readlink("/proc/self/exe", path, sizeof path);
        return new std::string(n > 0 ? std::string(path, static_cast<std::size_t>(n)) : "");
    }();
    return *exe;
}

struct Sink {
    std::mutex mu;
    std::string destination = "syslog";
    bool complained = false;  // the destination failed once: said on stderr
};

Sink& sink() {
    static auto* s = new Sink;  // never destroyed: events may come from exit handlers
    return *s;
}

// One write() of the whole line; false with errno on failure or a short write.
bool write_all_once(int fd, const std::string& line) {
    const sys::Ret<ssize_t> w = sys::write(fd, line.data(), line.size());
    if (w.value == static_cast<ssize_t>(line.size())) return true;
    errno = w.value < 0 ? w.err : EIO;
    return false;
}

bool to_file(const std::string& path, const std::string& line) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) return false;
    const bool ok = write_all_once(fd, line);
    const int err = errno;
    (void)sys::close(fd);
    errno = err;
    return ok;
}

// RFC 3164 framing, as syslog(3) sends it: "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG".
bool to_syslog(const std::string& json, bool refusal) {
    constexpr int kAuthpriv = 10 << 3;
    const int priority = kAuthpriv | (refusal ? 5 : 6);  // notice / info
    const time_t now = time(nullptr);
    tm local{};
    localtime_r(&now, &local);
    char stamp[32];
    const std::size_t n = strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &local);
    const std::string message = fmt::format("<{}>{} sealsock[{}]: {}", priority,
                                            std::string_view(stamp, n), getpid(), json);
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, "/dev/log");
    const sys::Ret<ssize_t> s = sys::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                                            reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    (void)sys::close(fd);
    if (s.value < 0) errno = s.err;
    return s.value == static_cast<ssize_t>(message.size());
}

}  // namespace

std::string json_line(const Record& record, const Process& process, std::string_view time) {
    std::string out = "{";
    append_string(out, "time");
    out += ':';
    append_string(out, time);
    field(out, "event", event_name(record.event));
    field(out, "pid", static_cast<std::uint64_t>(process.pid));
    field(out, "exe", process.exe);
    field(out, "uid", static_cast<std::uint64_t>(process.uid));
    field(out, "direction", record.outbound ? "outbound" : "inbound");
    field(out, "rule", record.rule);
    field(out, "local", record.local);
    field(out, "peer", record.peer);
    field(out, "identity", record.identity);
    field(out, "peer_subject", record.peer_subject);
    field(out, "peer_fingerprint", record.peer_fingerprint);
    field(out, "suite", record.suite);
    field(out, "bytes_sent", record.bytes_sent);
    field(out, "bytes_received", record.bytes_received);
    field(out, "outcome", record.outcome);
    field(out, "reason", record.reason);
    out += '}';
    return out;
}

void set_destination(std::string destination) {
    Sink& s = sink();
    std::lock_guard lock(s.mu);
    s.destination = std::move(destination);
}

void write(const Record& record) noexcept {
    const int saved_errno = errno;
    try {
        const Process process{getpid(), getuid(), exe_path()};
        const std::string json = json_line(record, process, now_rfc3339());
        Sink& s = sink();
        std::lock_guard lock(s.mu);
        bool ok = true;
        if (s.destination == "syslog")
            ok = to_syslog(json, record.event == Event::refuse);
        else if (s.destination == "stderr")
            ok = write_all_once(STDERR_FILENO, json + '\n');
        else
            ok = to_file(s.destination, json + '\n');
        if (!ok && !s.complained) {
            s.complained = true;
            report(
                "the audit log cannot be written to {} ({}): connection events of this "
                "process are not recorded; check `audit_log` in the config",
                s.destination == "syslog" ? "syslog (/dev/log)" : s.destination,
                std::strerror(errno));
        }
    } catch (...) {  // out of memory: the event is lost, the connection is not
    }
    errno = saved_errno;
}

}  // namespace sealsock::audit

namespace sealsock {

bool first_of_kind(std::string_view kind) noexcept {
    static std::mutex mu;
    static std::string_view seen[64];  // each points into a copy that is never freed
    static std::size_t count = 0;
    std::lock_guard lock(mu);
    for (std::size_t i = 0; i < count; ++i)
        if (seen[i] == kind) return false;
    if (count == std::size(seen)) return true;
    char* copy = static_cast<char*>(std::malloc(kind.size()));
    if (copy == nullptr) return true;
    std::memcpy(copy, kind.data(), kind.size());
    seen[count++] = std::string_view(copy, kind.size());
    return true;
}

}  // namespace sealsock
