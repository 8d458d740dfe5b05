// The agent's log: one line per event on stderr (a file when the agent runs in the background).
// Never given secrets: callers pass names, addresses, codes and sentences only.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <string_view>

namespace sealsock::keyagent {

void write_log_line(std::string_view line);

template <typename... Args>
void log(fmt::format_string<Args...> format, Args&&... args) {
    write_log_line(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace sealsock::keyagent
