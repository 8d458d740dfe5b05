#include "gateway/relay_log.h"

#include "gateway/quote.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace sealsock::gateway {
namespace {

std::string now_rfc3339() {
    const auto now = std::chrono::system_clock::now();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
    const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms.count() % 1000));
    return buf;
}

}  // namespace

RelayLog::RelayLog(const std::string& destination) {
    if (destination == "syslog") {
        syslog_ = true;
        openlog("sealsock-gateway", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
    } else if (destination != "stderr") {
        fd_ =
            ::open(destination.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd_ < 0)
            std::fprintf(stderr,
                         "sealsock-gateway: the relay log %s cannot be opened (%s); "
                         "writing it to stderr\n",
                         destination.c_str(), std::strerror(errno));
    }
}

RelayLog::~RelayLog() {
    if (fd_ >= 0) ::close(fd_);
}

void RelayLog::write(const RelayRecord& r) {
    std::string line =
        "{\"time\":" + quoted(now_rfc3339()) +
        ",\"event\":\"relay\",\"pid\":" + std::to_string(getpid()) +
        ",\"listener\":" + quoted(r.listener) + ",\"direction\":" + quoted(r.direction) +
        ",\"client\":" + quoted(r.client) + ",\"local\":" + quoted(r.local) +
        ",\"target\":" + quoted(r.target) + ",\"peer_subject\":" + quoted(r.peer_subject) +
        ",\"peer_fingerprint\":" + quoted(r.peer_fingerprint) +
        ",\"bytes_up\":" + std::to_string(r.bytes_up) +
        ",\"bytes_down\":" + std::to_string(r.bytes_down) +
        ",\"duration_ms\":" + std::to_string(r.duration_ms) + ",\"outcome\":" + quoted(r.outcome) +
        ",\"reason\":" + quoted(r.reason) + "}";
    if (syslog_) {
        syslog(r.outcome == "closed" ? LOG_INFO : LOG_NOTICE, "%s", line.c_str());
        return;
    }
    line += '\n';
    const int fd = fd_ >= 0 ? fd_ : STDERR_FILENO;
    if (::write(fd, line.data(), line.size()) < 0) {
        // Nothing better to do: the relay goes on (as the shim's audit log does).
    }
}

}  // namespace sealsock::gateway
