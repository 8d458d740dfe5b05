// Reading a passphrase from a person or a script, into guarded memory.
#pragma once

#include <sealsock/result.h>
#include <sealsock/secret.h>

#include <string>

namespace sealsock::keyagent {

// In order: the program named by $SEALSOCK_ASKPASS (its first output line), the terminal
// (prompt on /dev/tty, echo off), or one line of standard input. The trailing newline is
// removed. Fails on an empty passphrase.
Result<SecureBuffer> read_passphrase(const std::string& prompt);

// One line from descriptor `fd` (for --passphrase-fd).
Result<SecureBuffer> read_passphrase_fd(int fd);

}  // namespace sealsock::keyagent
