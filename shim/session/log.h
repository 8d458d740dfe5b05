// One formatted line on the program's stderr ("sealsock: ..."), for failures the program sees
// as an errno (DESIGN I7: one line with the reason). Never pass secrets.
//
// Thread-safety: any thread; not for signal handlers (formats into a heap string).
#pragma once

#include <fmt/format.h>

#include <string>
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

}  // namespace sealsock
