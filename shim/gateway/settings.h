// The gateway's config file: listeners, and the sealsock config that seals their connections.
//
// A gateway config (docs/gateway.md) lists [[inbound]] listeners (sealed connections in,
// plaintext to a backend) and [[outbound]] listeners (plaintext in from allowed sources, sealed to
// a destination). The sealing itself is the shim's: parse() also writes the equivalent sealsock
// config (one rule per listener, `mode = "off"` rules for the backends and the plaintext
// listeners) and validates it with the shim's own schema, so every key the shim knows (identity,
// suites, allow, expect, via, ...) is accepted here exactly as the shim accepts it, and its
// errors are reported at the line of the gateway file that wrote the value.
//
// Pure: no I/O, no name resolution (endpoints keep their host names; the relay resolves them).
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.h"
#include "config/pattern.h"

namespace sealsock::gateway {

// "HOST:PORT", "[V6]:PORT" or "unix:/PATH".
struct Endpoint {
    bool is_unix = false;
    std::string host;  // an address literal or a name (TCP)
    std::uint16_t port = 0;
    std::string path;  // is_unix
    std::string text;  // as written
};

enum class Direction : std::uint8_t { inbound, outbound };

struct Listener {
    Direction direction = Direction::inbound;
    std::string name;
    Endpoint listen;                        // an address literal and a port
    Endpoint target;                        // inbound: the backend; outbound: the destination
    bool proxy_v2 = false;                  // inbound: PROXY protocol v2 header to the backend
    std::vector<config::Network> sources;   // outbound: who may connect (empty: anyone)
    std::vector<std::string> source_texts;  // as written, for messages
};

struct Settings {
    std::vector<Listener> listeners;
    std::string audit_log = "syslog";  // the shim's audit lines (the sealed side)
    std::string relay_log;  // the gateway's lines: "syslog", "stderr", a path; default: audit_log
    unsigned workers = 0;   // event loops; 0: one per core
    std::uint64_t connect_timeout_ms = 10'000;
    std::uint64_t handshake_timeout_ms = 15'000;
    std::uint64_t idle_timeout_ms = 15 * 60'000;
    std::uint64_t drain_timeout_ms =
        0;                    // after a reload: how long old connections may run; 0: no limit
    std::string shim_config;  // the generated sealsock config (TOML)
};

struct ParseResult {
    Settings settings;
    config::Diagnostics errors;
    [[nodiscard]] bool ok() const { return errors.empty(); }
};

// Parses and validates a gateway config. `file` labels the diagnostics.
ParseResult parse(std::string_view text, std::string_view file);

// "HOST:PORT", "[V6]:PORT", or (when unix_ok) "unix:/PATH"; a sentence on error.
bool parse_endpoint(std::string_view text, bool unix_ok, Endpoint& out, std::string& why);

}  // namespace sealsock::gateway
