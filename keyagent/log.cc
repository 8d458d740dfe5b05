#include "keyagent/log.h"

#include <unistd.h>

#include <ctime>
#include <string>

namespace sealsock::keyagent {

void write_log_line(std::string_view line) {
    char stamp[32] = "";
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    if (gmtime_r(&now, &tm) != nullptr)
        std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    // One write per line so concurrent lines from worker threads never interleave.
    const std::string out = fmt::format("{} sealsock-agent[{}]: {}\n", stamp, ::getpid(), line);
    const ssize_t ignored = ::write(STDERR_FILENO, out.data(), out.size());
    static_cast<void>(ignored);
}

}  // namespace sealsock::keyagent
