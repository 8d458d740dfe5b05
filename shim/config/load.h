// Where the config comes from and how several files combine: pure functions over texts that the
// caller has already read (config/file.h reads them; the shim reads through its syscall seam).
//
// Precedence (docs/config.md):
//   - If SEALSOCK_CONFIG is set and not empty, that file alone is the config.
//   - Otherwise the user file ($XDG_CONFIG_HOME/sealsock/sealsock.toml, or
//     ~/.config/sealsock/sealsock.toml) and the system file (/etc/sealsock/sealsock.toml), both
//     optional, are merged, the user file first:
//       * top-level keys (enabled, audit_log, agent_socket): the user file's value where it sets
//         one, else the system file's, else the default;
//       * rules: the user file's [[outbound]] rules, then the system file's (and the same for
//         [[inbound]]), each file in its own order. First match wins, so a user rule comes
//         before every system rule.
//   - No file at all: no rules; every connection passes through untouched.
// Each file is parsed and validated on its own (errors name that file); any error in any file
// makes the whole load fail, so a half-valid config is never used.
//
// Thread-safety: pure functions.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/diagnostic.h"

namespace sealsock::config {

inline constexpr std::string_view system_config_path = "/etc/sealsock/sealsock.toml";

// The environment variables that decide the paths (empty when unset).
struct Environment {
    std::string_view sealsock_config;  // SEALSOCK_CONFIG
    std::string_view xdg_config_home;  // XDG_CONFIG_HOME (used only when absolute)
    std::string_view home;             // HOME
};

struct Location {
    std::string path;
    bool required = false;  // SEALSOCK_CONFIG must exist; the user and system files need not
};

// The files to read, highest precedence first: [SEALSOCK_CONFIG] or [user, system] (the user
// file is left out when neither XDG_CONFIG_HOME nor HOME is usable).
std::vector<Location> config_locations(const Environment& env);

struct Source {
    std::string file;  // the name used in diagnostics and rule origins
    std::string text;
};

struct LoadResult {
    Config config;  // meaningful only when ok()
    Diagnostics errors;
    [[nodiscard]] bool ok() const { return errors.empty(); }
};

// Parses, validates and merges `sources` (highest precedence first, as config_locations orders
// them; leave out files that do not exist).
LoadResult load(std::span<const Source> sources);

}  // namespace sealsock::config
