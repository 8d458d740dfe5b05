// One formatted line on the program's stderr ("sealsock: ..."), for failures the program sees
// as an errno (DESIGN I7: one line with the reason). Never pass secrets.
//
// A connection's failure is said once per process and per kind (first_of_kind): a server turning
// away many clients for one reason prints it once; the audit log records every connection.
//
// Thread-safety: any thread; not for signal handlers (formats into a heap string).
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

#include "sys/real.h"

namespace sealsock {

template <typename... A>
void report(fmt::format_string<A...> format, A&&... args) noexcept {
    try {
        const std::string text = fmt::format(format, std::forward<A>(args)...);
        sys::log_line(text.c_str());
    } catch (...) {
        sys::log_line("a connection failed (no memory to say why)");
    }
}

// True the first time this process meets `kind` (after 64 kinds, always true).
bool first_of_kind(std::string_view kind) noexcept;

}  // namespace sealsock
