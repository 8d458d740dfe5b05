#include "config/diagnostic.h"

namespace sealsock::config {

std::string format(const Diagnostic& d) {
    std::string out = d.file;
    if (d.line != 0) {
        out += ':';
        out += std::to_string(d.line);
        if (d.column != 0) {
            out += ':';
            out += std::to_string(d.column);
        }
    }
    out += ": ";
    out += d.message;
    return out;
}

std::string quote(std::string_view text) {
    constexpr std::size_t limit = 60;
    std::string out = "`";
    std::size_t i = 0;
    for (; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        // Stop only where a character starts, so a cut never splits one.
        if (i >= limit && (c & 0xC0) != 0x80) break;
        out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
    }
    if (i < text.size()) out += "...";
    out += '`';
    return out;
}

std::string format(const Diagnostics& ds) {
    std::string out;
    for (const Diagnostic& d : ds) {
        out += format(d);
        out += '\n';
    }
    return out;
}

}  // namespace sealsock::config
