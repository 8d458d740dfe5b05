// A problem found in a config file: where it is and what to do about it.
//
// Every error the config module reports is a Diagnostic: the file name as the caller gave it, the
// 1-based line and column of the offending text, and one sentence that says what is wrong and how
// to fix it. format() renders the conventional "file:line:column: message" form that editors and
// people both read.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sealsock::config {

struct Diagnostic {
    std::string file;
    std::uint32_t line = 0;    // 1-based; 0 when the problem is the file as a whole
    std::uint32_t column = 0;  // 1-based, in characters; 0 when not known
    std::string message;
};

using Diagnostics = std::vector<Diagnostic>;

// "file:line:column: message" (or "file:line: message", or "file: message").
std::string format(const Diagnostic& d);

// Every diagnostic, one per line, each ending in '\n'.
std::string format(const Diagnostics& ds);

// `text` in backquotes for a message: control characters shown as '?', cut to about 60 bytes
// (at a character boundary) with "..." so that no input can flood or garble a terminal.
std::string quote(std::string_view text);

}  // namespace sealsock::config
