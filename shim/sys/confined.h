// Whether the program put itself under a seccomp filter (prctl(PR_SET_SECCOMP) or seccomp(2)).
//
// A sandboxed process may be killed by any system call outside its filter's list. OpenSSH's
// privilege-separated child is the case in point: it allows read, write, poll and little else,
// and kills on sendto, recvfrom, fcntl, getsockopt or clone. From the moment a program asks for
// a filter, the shim confines itself in that process to what such a program can be assumed to
// do on its own socket (docs/session.md, "Sandboxed processes"):
//   - record I/O with read() and write() on the socket, poll() to learn readiness without
//     waiting; no peeking, no MSG_* flags, no socket options, no ioctl;
//   - no background thread (no clone, eventfd or epoll): a tail left by a short write is sent
//     before the program's call returns;
//   - no new sealed connection (the agent cannot be reached): connect() and accept() under a
//     sealing rule fail closed;
//   - no audit record (the log may be a socket or a file the filter denies): an unconfined
//     process that shares the connection writes it.
// The flag is per process and never goes back: filters are inherited and cannot be removed.
#pragma once

namespace sealsock::confined {

[[nodiscard]] bool active() noexcept;
// Sets the flag (before the program's filter call: the preparations still have every call).
// `on` false: the call failed and the process was not confined before.
void set(bool on) noexcept;

}  // namespace sealsock::confined
