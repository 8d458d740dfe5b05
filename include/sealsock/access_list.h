// The syntax of the two policy fields of a handshake request (docs/agent-protocol.md): the
// server's access list (`allow`) and the client's expectation of its server (`expect`).
//
// Shared by the agent, which enforces them, and the config file, which checks them before any
// program runs, so both read the same syntax. Pure: no certificates, no I/O.
//
// Access-list entries (docs/agent-protocol.md), checked in order, the first match wins:
//   any             any certificate that chained to the trust anchors
//   cn:NAME         a commonName of the subject is exactly NAME
//   o:NAME          an organizationName of the subject is exactly NAME (a group)
//   ou:NAME         an organizationalUnitName of the subject is exactly NAME (a group)
//   dns:NAME        a DNS subjectAltName is NAME (ASCII case-insensitive, as DNS is; no wildcard
//                   expansion: a SAN "*.example" matches only the entry "dns:*.example")
//   email:ADDR      an email subjectAltName is exactly ADDR
//   uri:URI         a URI subjectAltName is exactly URI
//   sha256:HEX      the SHA-256 of the DER certificate (64 hex digits, any case, colons allowed)
// An entry of any other form is a configuration error, never skipped. An empty list allows
// nobody: a service must name who may reach it.
//
// Thread-safety: all functions are pure and may be called from any thread.
#pragma once

#include <sealsock/result.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sealsock::agent {

using Fingerprint = std::array<std::uint8_t, 32>;

// Parses a SHA-256 fingerprint written as 64 hex digits (either case, colons anywhere ignored).
std::optional<Fingerprint> parse_fingerprint(std::string_view hex);

// Lower-case hex, no separators (a fingerprint is public: fine in messages and logs).
std::string fingerprint_hex(const Fingerprint& fingerprint);

enum class AccessKind : std::uint8_t { any, cn, o, ou, dns, email, uri, sha256 };

struct AccessEntry {
    AccessKind kind = AccessKind::any;
    std::string value;          // cn/o/ou/dns/email/uri: the name to match
    Fingerprint fingerprint{};  // sha256: the certificate's fingerprint
    std::string text;           // the entry as written, for logs
};

// Parses an access list. Fails on the first entry that is not one of the forms above (unknown
// kind, empty value, bad fingerprint), naming it. An empty list parses (and allows nobody).
Result<std::vector<AccessEntry>> parse_access_list(std::span<const std::string> entries);

// What a client checks the server's certificate against.
struct Expectation {
    enum class Kind : std::uint8_t { name, pin };
    Kind kind = Kind::name;
    std::string name;   // name: host name or IP literal the certificate must match
    Fingerprint pin{};  // pin: SHA-256 of the server's DER certificate
};

// Parses a client's `expect`: "name:HOST", "sha256:HEX", or empty for the default, which is to
// verify `server_name`. Fails for any other form, for an empty HOST or a malformed fingerprint,
// and when there is nothing to check (no expect and no server name): a client never accepts a
// server just because its chain is trusted.
Result<Expectation> parse_expect(std::string_view expect, std::string_view server_name);

}  // namespace sealsock::agent
