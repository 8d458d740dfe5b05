// sealsock's configuration, as validated values: the global switches and the ordered rules.
//
// A Config comes from load() (config/load.h) and is immutable afterwards; the shim keeps one per
// process and matches connections against it with config/match.h. Every key, its meaning and
// its default are documented in docs/config.md; the defaults below are the same.
//
// Thread-safety: plain values; share a const Config freely.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/pattern.h"

namespace sealsock::config {

enum class Mode : std::uint8_t {
    require,          // seal: handshake through the agent, fail closed
    allow_plaintext,  // inbound only: seal TLS clients, pass plaintext clients through
    off,              // explicitly not sealed (stops the search: later rules are not consulted)
};

// Where a rule was written, for logs and messages ("/etc/sealsock/sealsock.toml:12").
struct Origin {
    std::string file;
    std::uint32_t line = 0;
};

// When a sending key is rotated with a KeyUpdate; 0 means no limit of that kind (the suite's own
// record limit, RFC 8446 5.5, always applies).
struct Rotation {
    std::uint64_t bytes = 0;
    std::uint64_t seconds = 0;
    std::uint64_t records = 0;
};

// What outbound and inbound rules share.
struct Rule {
    std::string name;  // `name`, else "outbound #N" / "inbound #N" (N: position in its file)
    Origin origin;
    bool enabled = true;
    std::vector<std::string> programs;  // program patterns; empty: every program
    Mode mode = Mode::require;
    std::string identity;               // the agent identity to present; empty: agent's default
    std::vector<std::uint16_t> suites;  // IANA codes in preference order; empty: all three
    Rotation rotation;
};

struct OutboundRule : Rule {
    std::vector<Destination> destinations;  // empty: every destination
    std::vector<PortRange> ports;           // for destinations without their own; empty: any
    std::string server_name;                // SNI and name to verify; empty: the looked-up name
    std::string expect;                     // "name:HOST" or "sha256:HEX"; empty: server_name
    // `via = "http://HOST:PORT"`: an HTTP proxy reached with CONNECT before TLS. Empty: direct.
    std::string via_host;  // a name or an address (IPv6 without brackets)
    std::uint16_t via_port = 0;
};

struct InboundRule : Rule {
    std::vector<PortRange> ports;    // listening ports; empty: every port
    std::string service;             // the name in logs and access errors; default: the rule name
    std::vector<std::string> allow;  // access list, as written (forms in docs/config.md)
};

struct Config {
    bool enabled = true;                 // false: no rule matches, every connection passes through
    std::string audit_log = "syslog";    // "syslog", "stderr" or an absolute file path
    std::string agent_socket;            // empty: $SEALSOCK_AGENT_SOCK or the agent's default
    std::vector<OutboundRule> outbound;  // in precedence order (first match wins)
    std::vector<InboundRule> inbound;
    std::vector<std::string> files;  // the files that were merged, highest precedence first
};

// The three suites by IANA name; 0 for any other name.
std::uint16_t suite_code(std::string_view iana_name);

}  // namespace sealsock::config
