// The small languages inside rule values: program globs, host globs, networks (CIDR), ports,
// and the destinations that combine them. Parsing validates and normalises; matching is pure,
// allocation-free and safe to call from a hook.
//
// Globs: `*` matches any run of characters (including none), `?` exactly one byte; every other
// character is literal. There are no [classes] and no escapes.
//   - Program patterns: with a '/' the pattern is an absolute path, matched against the
//     program's executable path part by part (a `*` never crosses a '/'): "/usr/bin/*" matches
//     /usr/bin/psql but not /usr/bin/x/psql. Without a '/' the pattern is matched against the
//     executable's file name only: "psql", "python3*". Case-sensitive. The executable path is
//     the kernel's (/proc/self/exe: symbolic links resolved), so patterns must be canonical.
//   - Host patterns: matched against the host name the program looked up, ASCII
//     case-insensitively, ignoring one trailing dot. `*` may span dots: "*.example.com" matches
//     a.example.com and a.b.example.com but not example.com.
// Networks: "10.0.0.0/8", "192.0.2.7" (= /32), "2001:db8::/32", "::1" (= /128). Host bits after
// the prefix must be zero. An address is compared in its canonical family: an IPv4-mapped IPv6
// address (::ffff:a.b.c.d) is IPv4, and an IPv6 network inside ::ffff:0:0/96 is stored as the
// IPv4 network it denotes. So 10.0.0.0/8 matches ::ffff:10.1.2.3, and ::/0 matches only IPv6.
// Ports: 1 to 65535; ranges "8000-8099" include both ends.
//
// Thread-safety: all functions are pure. Matching functions never allocate.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sealsock::config {

enum class Family : std::uint8_t { ipv4, ipv6 };

// An address in canonical form (IPv4-mapped IPv6 turned into IPv4).
struct Address {
    Family family = Family::ipv4;
    std::array<std::uint8_t, 16> bytes{};  // IPv4: the first 4
};

// From the 4 or 16 bytes of a sockaddr's address (network order). False for any other size.
bool canonical_address(ByteView raw, Address& out);

struct Network {
    Family family = Family::ipv4;
    std::array<std::uint8_t, 16> bytes{};  // zero after the prefix
    std::uint8_t prefix = 0;               // 0..32 (IPv4) or 0..128 (IPv6)

    [[nodiscard]] bool contains(const Address& a) const;
};

Result<Network> parse_network(std::string_view text);

struct PortRange {
    std::uint16_t low = 1;
    std::uint16_t high = 65535;

    [[nodiscard]] bool contains(std::uint16_t port) const { return port >= low && port <= high; }
};

// "5432" or "8000-8099".
Result<PortRange> parse_port_range(std::string_view text);
// A port written as a TOML integer.
Result<PortRange> port_from_integer(std::int64_t port);
// True when some range holds `port`; false for an empty list.
bool contains_port(std::span<const PortRange> ranges, std::uint16_t port);

// Glob match, `*` and `?` as above; `fold_case` compares ASCII letters case-insensitively.
bool glob_match(std::string_view pattern, std::string_view text, bool fold_case);

// Validates a program pattern (returned unchanged).
Result<std::string> parse_program_pattern(std::string_view text);
bool program_matches(std::string_view pattern, std::string_view exe);

// Validates a host pattern and returns it in lower case without a trailing dot.
Result<std::string> parse_host_pattern(std::string_view text);
bool host_matches(std::string_view pattern, std::string_view host);

// One entry of an outbound rule's `destinations`:
//   "*"                        any destination
//   "db1.example.com"          a host pattern (see above)
//   "10.0.0.0/8", "::1/128"    a network
// each optionally followed by ":PORT" or ":LOW-HIGH" (IPv6 in brackets then: "[::1]:5432",
// "[2001:db8::/32]:443"). "*:5432" is any destination on port 5432.
struct Destination {
    enum class Kind : std::uint8_t { any, host, network };
    Kind kind = Kind::any;
    std::string host;              // Kind::host: lower-case pattern
    Network network;               // Kind::network
    std::vector<PortRange> ports;  // the entry's own ports; empty: the rule's `ports` apply
    std::string text;              // as written, for messages

    // Address and name only (ports are the rule's business). `address` may be null (unknown);
    // `host` may be empty (the program connected without looking a name up).
    [[nodiscard]] bool matches(const Address* address, std::string_view host_name) const;
};

Result<Destination> parse_destination(std::string_view text);

}  // namespace sealsock::config
