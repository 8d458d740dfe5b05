// A double-quoted string literal that is valid both as a JSON string and as a TOML basic string:
// '"' and '\' escaped, control characters as \u00XX, everything else (UTF-8 included) as is.
// Pure.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace sealsock::gateway {

inline std::string quoted(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7f) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", u);
            out += esc;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

}  // namespace sealsock::gateway
