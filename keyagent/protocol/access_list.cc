// Parsing of access-list entries and expectations (include/sealsock/access_list.h).
#include <sealsock/access_list.h>

#include <algorithm>
#include <iterator>
#include <utility>

namespace sealsock::agent {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

struct NamedKind {
    std::string_view prefix;
    AccessKind kind;
};

constexpr NamedKind named_kinds[] = {
    {"cn", AccessKind::cn},         {"o", AccessKind::o},         {"ou", AccessKind::ou},
    {"dns", AccessKind::dns},       {"email", AccessKind::email}, {"uri", AccessKind::uri},
    {"sha256", AccessKind::sha256},
};

std::string quoted(std::string_view text) {
    std::string q(text.size() + 2, '`');
    std::copy(text.begin(), text.end(), q.begin() + 1);
    return q;
}

constexpr std::string_view fingerprint_form =
    "a sha256 pin is 64 hexadecimal digits (colons allowed), the SHA-256 of the DER certificate";

Result<AccessEntry> parse_entry(const std::string& text) {
    AccessEntry entry;
    entry.text = text;
    if (text == "any") return entry;
    const std::size_t colon = text.find(':');
    const std::string_view prefix = std::string_view(text).substr(0, colon);
    const auto* named = std::find_if(std::begin(named_kinds), std::end(named_kinds),
                                     [&](const NamedKind& k) { return k.prefix == prefix; });
    if (colon == std::string::npos || named == std::end(named_kinds))
        return make_error(quoted(text) +
                          " is not an access-list entry; write \"any\" or one of cn:NAME, o:NAME, "
                          "ou:NAME, dns:NAME, email:ADDR, uri:URI, sha256:HEX");
    entry.kind = named->kind;
    entry.value = text.substr(colon + 1);
    if (entry.value.empty())
        return make_error(quoted(text) + " names nobody: write the name after the colon");
    if (entry.kind == AccessKind::sha256) {
        const auto fingerprint = parse_fingerprint(entry.value);
        if (!fingerprint) return make_error(quoted(text) + ": " + std::string(fingerprint_form));
        entry.fingerprint = *fingerprint;
    }
    return entry;
}

}  // namespace

std::optional<Fingerprint> parse_fingerprint(std::string_view hex) {
    Fingerprint out{};
    std::size_t digits = 0;
    for (const char c : hex) {
        if (c == ':') continue;
        const int v = hex_value(c);
        if (v < 0 || digits == 2 * out.size()) return std::nullopt;
        out[digits / 2] = static_cast<std::uint8_t>(out[digits / 2] << 4 | v);
        ++digits;
    }
    if (digits != 2 * out.size()) return std::nullopt;
    return out;
}

std::string fingerprint_hex(const Fingerprint& fingerprint) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (const std::uint8_t b : fingerprint) {
        s += digits[b >> 4];
        s += digits[b & 0xf];
    }
    return s;
}

Result<std::vector<AccessEntry>> parse_access_list(std::span<const std::string> entries) {
    std::vector<AccessEntry> list;
    for (const std::string& text : entries) {
        auto entry = parse_entry(text);
        if (!entry) return entry.error();
        list.push_back(std::move(entry.value()));
    }
    return list;
}

Result<Expectation> parse_expect(std::string_view expect, std::string_view server_name) {
    Expectation e;
    if (expect.empty()) {
        if (server_name.empty())
            return make_error(
                "no server name and no expect pin: nothing to check the server's "
                "certificate against (set a name or sha256:HEX in the rule)");
        e.name = server_name;
        return e;
    }
    if (expect.starts_with("name:")) {
        e.name = expect.substr(5);
        if (e.name.empty())
            return make_error(quoted(expect) +
                              ": write the server's host name or address after name:, as in "
                              "\"name:db1.example.com\"");
        return e;
    }
    if (expect.starts_with("sha256:")) {
        const auto pin = parse_fingerprint(expect.substr(7));
        if (!pin) return make_error(quoted(expect) + ": " + std::string(fingerprint_form));
        e.kind = Expectation::Kind::pin;
        e.pin = *pin;
        return e;
    }
    return make_error(quoted(expect) +
                      " is not an expectation; write \"name:HOST\" to verify the server's "
                      "certificate names HOST, or \"sha256:HEX\" to pin its certificate");
}

}  // namespace sealsock::agent
