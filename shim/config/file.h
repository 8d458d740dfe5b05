// Reading config files: the only code in shim/config/ that touches the file system.
//
// The parser and the matcher never do I/O; these two functions read files into strings and hand
// them to load() (config/load.h). They are for the wrapper, the doctor and tests. The shim, whose
// own read() is a hook, reads the same files through its syscall seam and calls load() itself.
//
// Thread-safety: reentrant. Not for hooks or signal handlers (allocates, blocks on the disk).
#pragma once

#include <sealsock/result.h>

#include <optional>
#include <string>

#include "config/load.h"

namespace sealsock::config {

// The whole file, or nullopt when it does not exist. Errors (unreadable, not a regular file,
// larger than toml::max_input) say why in a sentence that follows "PATH: ".
Result<std::optional<std::string>> read_config_file(const std::string& path);

// Reads the files config_locations() names for `env` and loads them. A missing SEALSOCK_CONFIG
// file or an unreadable file is an error of the result, like a syntax error.
LoadResult load_files(const Environment& env);

// The Environment of this process (getenv; the strings live as long as the environment does).
Environment process_environment();

}  // namespace sealsock::config
