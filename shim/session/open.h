// The session layer's side of connect, accept and getaddrinfo (shim/session/open.cc): rule
// matching for new TCP connections and the names the program looked up.
//
// Thread-safety: any thread. Not for signal handlers (they read the config on first use, lock
// and allocate); connect() and accept() are not async-signal-safe in the shim.
#pragma once

#include <netdb.h>
#include <sealsock/bytes.h>
#include <sys/socket.h>

#include <string>

#include "sys/ret.h"

namespace sealsock {

// connect() on an fd no session owns: a TCP connection a rule seals becomes a session; anything
// else is the real connect.
sys::Ret<int> open_connect(int fd, const sockaddr* addr, socklen_t len) noexcept;
// accept()/accept4() on an fd no session owns.
sys::Ret<int> open_accept(int fd, sockaddr* addr, socklen_t* len, int flags,
                          bool has_flags) noexcept;

// Whether the config (read now if it was not yet) has any rule, or failed to load (then every
// TCP connection is refused: rules are in force all the same).
bool rules_in_force() noexcept;

// The name of a rule that seals connections of this program (by its `programs`, whatever the
// destination or port), a sentence if the config cannot be used, or null when none does.
const char* rule_sealing_this_program() noexcept;

// getaddrinfo() succeeded: remember `node` as the name of each address it returned.
void remember_names(const char* node, const addrinfo* result);
// The name last looked up for `address` (4 or 16 bytes), or empty.
std::string name_for(ByteView address);

}  // namespace sealsock
