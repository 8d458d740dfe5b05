// Will a program about to be exec'd or spawned carry the shim? (DESIGN I5, I8)
//
// Sealed connections may pass to a new program image only if that image runs libsealsock.so;
// otherwise the program would write plaintext into a TLS stream. The answer is no when:
//   - the new environment's LD_PRELOAD does not name libsealsock.so;
//   - the file is statically linked (no PT_INTERP: the dynamic loader never runs, so nothing is
//     preloaded), or is a Go binary (its runtime makes system calls itself, past any hook);
//   - the file is set-user-ID or set-group-ID (the loader runs it in secure mode and ignores a
//     preload given by path);
//   - the file cannot be inspected (fail closed).
// A "#!" script is judged by its interpreter.
//
// Thread-safety: any thread. Async-signal-safe: yes (open, pread, close, fstat, access only; no
// allocation), so it may run in a forked child before exec; spawn_dup2_sources allocates once,
// on its first call (its layout check).
#pragma once

#include "session/registry.h"

namespace sealsock {

// Null when the image will carry the shim; else why not (static text, for one log line).
const char* shim_missing(const ExecTarget& target, char* const envp[]) noexcept;

// Why a file cannot carry the shim (static, Go, set-ID, unreadable), or null if it can. `fd` is
// open on the file. Used for the running program too (/proc/self/exe).
const char* file_cannot_carry_shim(int fd) noexcept;

// The source fds of the dup2 actions in a spawn's file actions (glibc runs them in the child,
// past every hook): up to `max` of them into `out`, returning how many there are, or -1 when
// this C library's layout of file actions is not the one expected (checked once against
// posix_spawn_file_actions_adddup2; the caller then assumes the worst).
int spawn_dup2_sources(const posix_spawn_file_actions_t* actions, int* out, int max) noexcept;

}  // namespace sealsock
