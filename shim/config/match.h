// Which rule applies to a connection: pure, allocation-free, lock-free; safe from a hook.
//
// Semantics (docs/config.md):
//   - Rules are tried in order (after merging: the user file's, then the system file's) and the
//     first rule that matches wins. A rule with enabled = false is skipped as if absent.
//   - A rule whose mode is "off" that matches is returned like any other: it means "explicitly
//     not sealed" and stops the search, so a narrow "off" rule placed first exempts a program
//     or a host from a broader sealing rule below it. nullptr means no rule applies; the caller
//     treats both alike (pass through) but can log the difference.
//   - With the global enabled = false nothing matches.
//   - An outbound rule matches when
//       its `programs` is empty or one pattern matches the executable or the name the program
//       was started as (argv[0]: /usr/bin/redis-server is a link to redis-check-rdb), and
//       its `destinations` is empty or one entry matches the address (networks) or the host name
//       the program looked up (host patterns; "*" matches anything), and
//       the port is in that entry's own ports if it names some, else in the rule's `ports` if
//       that is not empty (an empty `ports` means any port).
//   - An inbound rule matches when its `programs` matches as above and its `ports` is empty or
//     holds the local listening port.
//
// Thread-safety: reads a const Config only. Never allocates, never blocks, takes no lock.
#pragma once

#include <sealsock/bytes.h>

#include <cstdint>
#include <string_view>

#include "config/config.h"

namespace sealsock::config {

struct OutboundQuery {
    std::string_view exe;   // the program's executable (/proc/self/exe); empty if unknown
    ByteView address;       // the destination: 4 bytes (IPv4) or 16 (IPv6), network byte order
    std::string_view host;  // the name the program looked up for that address; empty if none
    std::uint16_t port = 0;
    std::string_view invoked = {};  // argv[0] as the program was started; empty if unknown
};

struct InboundQuery {
    std::string_view exe;
    std::uint16_t port = 0;  // the local port the program listens on
    std::string_view invoked = {};
};

// Whether `rule`'s `programs` selects the program with executable `exe` started as `invoked`.
bool program_applies(const Rule& rule, std::string_view exe, std::string_view invoked = {});

// The first enabled outbound rule that matches, or nullptr.
const OutboundRule* match_outbound(const Config& config, const OutboundQuery& query);

// The first enabled inbound rule that matches, or nullptr.
const InboundRule* match_inbound(const Config& config, const InboundQuery& query);

}  // namespace sealsock::config
