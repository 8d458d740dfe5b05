// The sealsock schema over a parsed TOML document: one file's keys and rules, validated.
//
// Every key of every table is checked against a table of known keys (config/schema.cc); an
// unknown key is an error that names the nearest known key (or says in which kind of table the
// key belongs). Values are checked for type and form: program and host patterns, networks, ports
// and ranges, suite names, access-list entries, expectations, sizes and durations. Rule-level
// checks run at the end of each rule (an inbound rule that seals with an empty access list, a
// `ports` list that no destination uses) and of the file (rule names unique per direction).
// All errors are collected, sorted by position, and capped at toml::max_errors.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/diagnostic.h"
#include "config/toml.h"

namespace sealsock::config {

// One file's settings before merging: the top-level keys it sets, and its rules in file order.
struct FileConfig {
    std::optional<bool> enabled;
    std::optional<std::string> audit_log;
    std::optional<std::string> agent_socket;
    std::vector<OutboundRule> outbound;
    std::vector<InboundRule> inbound;
};

struct FileResult {
    FileConfig config;
    Diagnostics errors;
    [[nodiscard]] bool ok() const { return errors.empty(); }
};

// Validates a parsed document (its root table). `file` labels the diagnostics and the rules.
FileResult check_document(const toml::Value& root, std::string_view file);

// Parses `text` as TOML and, if that succeeds, validates it. TOML errors are reported alone:
// the schema is checked once the file is valid TOML.
FileResult parse_file(std::string_view text, std::string_view file);

// Byte counts: a whole number of bytes or "N KiB|MiB|GiB|TiB" (space optional), 1 to 2^62.
Result<std::uint64_t> parse_size(std::string_view text);
// Seconds: "N s|m|h|d" (space optional), 1 to 2^62 seconds.
Result<std::uint64_t> parse_duration(std::string_view text);
// Checks one access-list entry's form (the agent's grammar, keyagent/policy.h).
Status check_access_entry(std::string_view entry);
// Checks a client's `expect` ("name:HOST" or "sha256:HEX").
Status check_expect(std::string_view expect);

}  // namespace sealsock::config
