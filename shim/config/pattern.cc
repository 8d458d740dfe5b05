#include "config/pattern.h"

#include <arpa/inet.h>

#include <cstring>

#include "config/diagnostic.h"

namespace sealsock::config {
namespace {

constexpr std::size_t npos = std::string_view::npos;

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool has_wildcard(std::string_view s) {
    return s.find_first_of("*?") != npos;
}

bool is_mapped_prefix(const std::array<std::uint8_t, 16>& b) {
    for (int i = 0; i < 10; ++i)
        if (b[static_cast<std::size_t>(i)] != 0) return false;
    return b[10] == 0xff && b[11] == 0xff;
}

std::string address_text(Family family, const std::array<std::uint8_t, 16>& bytes) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == Family::ipv4 ? AF_INET : AF_INET6, bytes.data(), text, sizeof text);
    return text;
}

// Clears the bits after `prefix`; true when any was set.
bool mask(std::array<std::uint8_t, 16>& bytes, unsigned prefix, unsigned total_bits) {
    bool changed = false;
    for (unsigned bit = prefix; bit < total_bits; ++bit) {
        auto& byte = bytes[bit / 8];
        const auto m = static_cast<std::uint8_t>(0x80u >> (bit % 8));
        if (byte & m) changed = true;
        byte = static_cast<std::uint8_t>(byte & ~m);
    }
    return changed;
}

Result<std::uint16_t> parse_port(std::string_view s, std::string_view whole) {
    std::uint32_t v = 0;
    bool ok = !s.empty() && s.size() <= 5;
    for (const char c : s) {
        if (c < '0' || c > '9') ok = false;
        if (ok) v = v * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (!ok || v < 1 || v > 65535)
        return make_error(quote(whole) +
                          " is not a port or port range (ports are 1 to 65535, "
                          "ranges are written 8000-8099)");
    return static_cast<std::uint16_t>(v);
}

// Splits "HOST:PORTS" / "[V6]:PORTS" / "V6" into host and port text. False when malformed.
bool split_host_port(std::string_view text, std::string_view& host, std::string_view& ports,
                     std::string& why) {
    if (!text.empty() && text[0] == '[') {
        const std::size_t close = text.find(']');
        if (close == npos) {
            why = quote(text) +
                  " has [ without ]; write an IPv6 destination with a port as "
                  "[2001:db8::1]:443";
            return false;
        }
        host = text.substr(1, close - 1);
        const std::string_view rest = text.substr(close + 1);
        if (!rest.empty() && (rest[0] != ':' || rest.size() == 1)) {
            why = quote(text) + ": after ] only :PORT or :LOW-HIGH may follow";
            return false;
        }
        if (host.find(':') == npos) {
            why = quote(text) + ": brackets are only for IPv6 addresses; write host:port";
            return false;
        }
        ports = rest.empty() ? rest : rest.substr(1);
        return true;
    }
    const std::size_t colon = text.find(':');
    if (colon == npos || text.find(':', colon + 1) != npos) {  // no port, or bare IPv6
        host = text;
        ports = {};
        return true;
    }
    host = text.substr(0, colon);
    ports = text.substr(colon + 1);
    if (ports.empty()) {
        why = quote(text) + " ends with : but names no port";
        return false;
    }
    return true;
}

}  // namespace

// ---- addresses and networks -------------------------------------------------------------------

bool canonical_address(ByteView raw, Address& out) {
    out = Address{};
    if (raw.size() == 4) {
        out.family = Family::ipv4;
        std::memcpy(out.bytes.data(), raw.data(), 4);
        return true;
    }
    if (raw.size() != 16) return false;
    std::memcpy(out.bytes.data(), raw.data(), 16);
    out.family = Family::ipv6;
    if (is_mapped_prefix(out.bytes)) {
        out.family = Family::ipv4;
        std::memmove(out.bytes.data(), out.bytes.data() + 12, 4);
        std::memset(out.bytes.data() + 4, 0, 12);
    }
    return true;
}

bool Network::contains(const Address& a) const {
    if (a.family != family) return false;
    const unsigned whole = prefix / 8u;
    if (std::memcmp(bytes.data(), a.bytes.data(), whole) != 0) return false;
    const unsigned rest = prefix % 8u;
    if (rest == 0) return true;
    const auto m = static_cast<std::uint8_t>(0xffu << (8 - rest));
    return (a.bytes[whole] & m) == bytes[whole];
}

Result<Network> parse_network(std::string_view text) {
    const std::size_t slash = text.find('/');
    const std::string_view addr = text.substr(0, slash);
    char buf[INET6_ADDRSTRLEN + 1] = {};
    Network n;
    const bool v6 = addr.find(':') != npos;
    n.family = v6 ? Family::ipv6 : Family::ipv4;
    if (addr.empty() || addr.size() >= sizeof buf)
        return make_error(quote(text) + " is not an IPv4 or IPv6 address or network");
    std::memcpy(buf, addr.data(), addr.size());
    if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, n.bytes.data()) != 1)
        return make_error(quote(text) + " is not " +
                          (v6 ? "an IPv6 address" : "an IPv4 address (four numbers 0 to 255)"));
    const unsigned total = v6 ? 128 : 32;
    unsigned prefix = total;
    if (slash != npos) {
        const std::string_view p = text.substr(slash + 1);
        bool ok = !p.empty() && p.size() <= 3;
        unsigned v = 0;
        for (const char c : p) {
            if (c < '0' || c > '9') ok = false;
            if (ok) v = v * 10 + static_cast<unsigned>(c - '0');
        }
        if (!ok || v > total)
            return make_error(quote(text) + ": the prefix length after / must be 0 to " +
                              std::to_string(total) + (v6 ? " for IPv6" : " for IPv4"));
        prefix = v;
    }
    if (mask(n.bytes, prefix, total))
        return make_error(quote(text) + " has bits set after its /" + std::to_string(prefix) +
                          " prefix; write the network address, " + address_text(n.family, n.bytes) +
                          "/" + std::to_string(prefix));
    n.prefix = static_cast<std::uint8_t>(prefix);
    if (v6 && prefix >= 96 && is_mapped_prefix(n.bytes)) {  // ::ffff:a.b.c.d/N is IPv4
        n.family = Family::ipv4;
        std::memmove(n.bytes.data(), n.bytes.data() + 12, 4);
        std::memset(n.bytes.data() + 4, 0, 12);
        n.prefix = static_cast<std::uint8_t>(prefix - 96);
    }
    return n;
}

// ---- ports ------------------------------------------------------------------------------------

Result<PortRange> parse_port_range(std::string_view text) {
    const std::size_t dash = text.find('-');
    auto low = parse_port(text.substr(0, dash), text);
    if (!low) return low.error();
    if (dash == npos) return PortRange{low.value(), low.value()};
    auto high = parse_port(text.substr(dash + 1), text);
    if (!high) return high.error();
    if (high.value() < low.value())
        return make_error("port range " + quote(text) + " runs backwards; write " +
                          std::to_string(high.value()) + "-" + std::to_string(low.value()));
    return PortRange{low.value(), high.value()};
}

Result<PortRange> port_from_integer(std::int64_t port) {
    if (port < 1 || port > 65535)
        return make_error(std::to_string(port) + " is not a port (ports are 1 to 65535)");
    const auto p = static_cast<std::uint16_t>(port);
    return PortRange{p, p};
}

bool contains_port(std::span<const PortRange> ranges, std::uint16_t port) {
    for (const PortRange& r : ranges)
        if (r.contains(port)) return true;
    return false;
}

// ---- globs ------------------------------------------------------------------------------------

// Iterative matching with one backtrack point (the last `*`): O(pattern x text) at worst, no
// recursion, no allocation.
bool glob_match(std::string_view pattern, std::string_view text, bool fold_case) {
    std::size_t p = 0;
    std::size_t t = 0;
    std::size_t star = npos;
    std::size_t mark = 0;
    while (t < text.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            mark = t;
        } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t] ||
                                          (fold_case && lower(pattern[p]) == lower(text[t])))) {
            ++p, ++t;
        } else if (star != npos) {
            p = star + 1;
            t = ++mark;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*')
        ++p;
    return p == pattern.size();
}

Result<std::string> parse_program_pattern(std::string_view text) {
    if (text.empty())
        return make_error(
            "an empty program pattern; write a name like \"psql\" or a path like "
            "\"/usr/bin/psql\", or leave `programs` out to match every program");
    if (text.size() > 4096) return make_error(quote(text) + " is longer than a path can be");
    for (const char c : text)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            return make_error(quote(text) + " contains a control character");
    if (text.find('/') == npos) return std::string(text);
    if (text[0] != '/')
        return make_error(quote(text) + " is a relative path; write an absolute path (/usr/bin/" +
                          "psql) or just the program's name (psql)");
    if (text.back() == '/')
        return make_error(quote(text) + " ends with /; name the program, not its directory " +
                          "(\"/usr/local/bin/*\" matches every program in it)");
    for (std::size_t start = 1; start <= text.size();) {
        std::size_t end = text.find('/', start);
        if (end == npos) end = text.size();
        const std::string_view part = text.substr(start, end - start);
        if (part.empty() || part == "." || part == "..")
            return make_error(quote(text) +
                              " is not a canonical path (no //, /./ or /../): the "
                              "program's path is compared as the kernel reports "
                              "it, with symbolic links resolved");
        start = end + 1;
    }
    return std::string(text);
}

bool program_matches(std::string_view pattern, std::string_view exe) {
    if (pattern.empty()) return false;
    if (pattern[0] != '/') {
        const std::size_t slash = exe.rfind('/');
        return glob_match(pattern, slash == npos ? exe : exe.substr(slash + 1), false);
    }
    for (;;) {  // part by part, so `*` never crosses a '/'
        const std::size_t pe = pattern.find('/');
        const std::size_t te = exe.find('/');
        if (!glob_match(pattern.substr(0, pe), exe.substr(0, te), false)) return false;
        if (pe == npos || te == npos) return pe == npos && te == npos;
        pattern.remove_prefix(pe + 1);
        exe.remove_prefix(te + 1);
    }
}

Result<std::string> parse_host_pattern(std::string_view text) {
    std::string host;
    for (const char c : text)
        host += lower(c);
    if (!host.empty() && host.back() == '.') host.pop_back();
    if (host.empty()) return make_error("an empty host name");
    if (host.size() > 253) return make_error(quote(text) + " is longer than a host name can be");
    for (const char c : host) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                        c == '.' || c == '*' || c == '?';
        if (!ok)
            return make_error(quote(text) + " is not a host name or pattern: host patterns use " +
                              "letters, digits, - _ . and the wildcards * and ?");
    }
    if (host[0] == '.' || host.find("..") != npos)
        return make_error(quote(text) + " has an empty label (a leading dot or two dots in a row)");
    if (host.find_first_not_of("0123456789.*?") == npos) {
        if (has_wildcard(host))
            return make_error(quote(text) + " looks like an address pattern; write address " +
                              "ranges as networks, e.g. \"10.0.0.0/24\"");
        return make_error(quote(text) + " is not a valid IPv4 address (four numbers 0 to 255)");
    }
    return host;
}

bool host_matches(std::string_view pattern, std::string_view host) {
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    if (host.empty()) return false;
    return glob_match(pattern, host, true);
}

// ---- destinations -----------------------------------------------------------------------------

bool Destination::matches(const Address* address, std::string_view host_name) const {
    switch (kind) {
        case Kind::any:
            return true;
        case Kind::host:
            return host_matches(host, host_name);
        case Kind::network:
            return address != nullptr && network.contains(*address);
    }
    return false;
}

Result<Destination> parse_destination(std::string_view text) {
    Destination d;
    d.text = std::string(text);
    std::string_view host;
    std::string_view ports;
    std::string why;
    if (text.empty())
        return make_error("an empty destination; write a host pattern, a network or \"*\"");
    if (!split_host_port(text, host, ports, why)) return make_error(why);
    if (!ports.empty()) {
        auto range = parse_port_range(ports);
        if (!range) return range.error();
        d.ports.push_back(range.value());
    }
    if (host == "*") {
        d.kind = Destination::Kind::any;
        return d;
    }
    const bool v6 = host.find(':') != npos;
    const bool numeric =
        !host.empty() && host.find_first_not_of("0123456789./") == npos && host.find('.') != npos;
    if (v6 || host.find('/') != npos || (numeric && !has_wildcard(host))) {
        auto net = parse_network(host);
        if (!net && v6 && text[0] != '[')
            return make_error(net.error().message + "; an IPv6 destination with a port is " +
                              "written in brackets, as in [2001:db8::/32]:443");
        if (!net) return net.error();
        d.kind = Destination::Kind::network;
        d.network = net.value();
        return d;
    }
    auto pattern = parse_host_pattern(host);
    if (!pattern) return pattern.error();
    d.kind = Destination::Kind::host;
    d.host = std::move(pattern.value());
    return d;
}

}  // namespace sealsock::config
