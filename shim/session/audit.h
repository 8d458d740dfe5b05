// The audit log: one JSON line per connection event, for the people who run sealsock.
//
// Events:
//   open     the handshake succeeded: the connection is sealed from here on
//   refuse   a connection a rule seals never got its keys (no agent, the agent or the peer said
//            no, the config cannot be used, ...): nothing was delivered
//   close    a sealed connection ended; with the application bytes each way
// Each line carries the time (UTC, milliseconds), the pid, exe and uid of the process that saw
// the event, the direction, the rule, the local and peer addresses, the peer's certificate
// subject and fingerprint, the identity presented, the suite, the byte counts, the outcome and
// the reason. Never a secret: no key, no traffic secret, no application byte.
//
// Destinations (the config's `audit_log`): "syslog" (a datagram to /dev/log, facility authpriv,
// tag "sealsock"), "stderr", or an absolute file path (opened for each event with O_APPEND and
// written with one write(), so lines from several processes never interleave). A destination
// that cannot be written is said once per process on stderr; the connection itself goes on.
//
// Thread-safety: any thread; not for signal handlers (formats into a heap string).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sealsock::audit {

enum class Event : std::uint8_t { open, refuse, close };

struct Record {
    Event event = Event::open;
    bool outbound = true;
    std::string_view rule;
    std::string_view local;  // "ADDR:PORT", empty when unknown
    std::string_view peer;   // "ADDR:PORT" or "HOST (ADDR:PORT)"
    std::string_view identity;
    std::string_view peer_subject;
    std::string_view peer_fingerprint;  // hex SHA-256 of the peer's certificate
    std::string_view suite;
    std::uint64_t bytes_sent = 0;  // application bytes the program sent and the shim sealed
    std::uint64_t bytes_received = 0;
    std::string_view outcome;  // "sealed", "refused", "closed", "failed"
    std::string_view reason;   // empty when there is nothing to explain
};

// Who saw the event.
struct Process {
    long pid = 0;
    unsigned uid = 0;
    std::string_view exe;
};

// The JSON object for `record` (no newline). `time` is RFC 3339 text. Strings are escaped as
// JSON requires; bytes that are not UTF-8 become U+FFFD. Pure, for tests.
std::string json_line(const Record& record, const Process& process, std::string_view time);

// Where events go from now on (the config's audit_log).
void set_destination(std::string destination);

// Writes one event. Never throws, never changes errno.
void write(const Record& record) noexcept;

}  // namespace sealsock::audit
