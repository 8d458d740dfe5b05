// The syscall seam: the real libc entry points behind every hook, and nothing else.
//
// This directory is the only code in the shim that calls dlsym(RTLD_NEXT) or issues a system call
// itself (DESIGN I6, STYLE 4). Each function here calls the next definition of the same C symbol
// (normally glibc's) and returns Ret<T>: the value and the errno the call left.
//
// Resolution: every real symbol is resolved once, by a load-time constructor (resolve_all()). A
// hook called before that constructor ran (another library's constructor, or an allocator's
// initialisation) resolves its own symbol lazily, without locks or allocation on our side; if
// that resolution re-enters the shim on the same thread (dlsym calls calloc, an interposed
// allocator calls read or write) the nested call is made as a direct system call where one
// exists (the `raw` column of shim/sys/entry_points.h) and fails with ENOSYS otherwise. errno is
// preserved across resolution.
//
// Thread-safety: all functions may be called from any thread at any time, including before the
// constructor. Async-signal-safety: once a symbol is resolved its wrapper is exactly as
// async-signal-safe as the real function (no lock, no allocation); resolution itself (before the
// constructor only) calls dlsym.
#pragma once

#include <atomic>
#include <bit>

#include "sys/entry_points.h"
#include "sys/ret.h"

namespace sealsock::sys {

namespace detail {
enum Symbol : int {
#define SEALSOCK_SYS_ENUM(ret, name, ...) k_##name,
    SEALSOCK_FD_ENTRY_POINTS(SEALSOCK_SYS_ENUM) SEALSOCK_REAL_ONLY(SEALSOCK_SYS_ENUM)
#undef SEALSOCK_SYS_ENUM
#define SEALSOCK_SYS_ENUM(name) k_##name,
        SEALSOCK_REAL_VARIADIC(SEALSOCK_SYS_ENUM)
#undef SEALSOCK_SYS_ENUM
            kSymbolCount
};

// One pointer per real symbol: null until resolved, &g_missing when dlsym found nothing. Written
// at most once per value (every thread that resolves finds the same pointer), read lock-free.
extern std::atomic<void*> g_real[kSymbolCount];
extern char g_missing;
}  // namespace detail

// The real function behind each fd entry point, for a hook's passthrough: called directly, it
// leaves errno as the real call did, so the hook returns its result untouched (a tail call; no
// Ret<T> round trip through errno). Null while not resolved yet or missing: the hook then takes
// the wrapper below, which resolves or falls back to a direct system call.
#define SEALSOCK_SYS_PASSTHROUGH(ret, name, params, ...)                            \
    inline ret(*real_##name() noexcept) params {                                    \
        void* p = detail::g_real[detail::k_##name].load(std::memory_order_acquire); \
        if (p == nullptr || p == &detail::g_missing) [[unlikely]]                   \
            return nullptr;                                                         \
        return std::bit_cast<ret(*) params>(p);                                     \
    }
SEALSOCK_FD_ENTRY_POINTS(SEALSOCK_SYS_PASSTHROUGH)
#undef SEALSOCK_SYS_PASSTHROUGH

#define SEALSOCK_SYS_DECLARE(ret, name, params, ...) Ret<ret> name params noexcept;
SEALSOCK_FD_ENTRY_POINTS(SEALSOCK_SYS_DECLARE)
SEALSOCK_REAL_ONLY(SEALSOCK_SYS_DECLARE)
#undef SEALSOCK_SYS_DECLARE

// The variadic and void C entry points, with their variadic argument made explicit. fcntl and
// ioctl take the third argument as a pointer-sized word, as glibc's own wrappers read it.
Ret<int> fcntl(int fd, int cmd, void* arg) noexcept;
Ret<int> fcntl64(int fd, int cmd, void* arg) noexcept;
Ret<int> ioctl(int fd, unsigned long request, void* arg) noexcept;
// syscall(2) with all six argument words forwarded untouched.
Ret<long> syscall(long number, const long (&args)[6]) noexcept;
// closefrom(3) returns nothing; value is always 0 here.
Ret<int> closefrom(int lowfd) noexcept;

// Duplicates fd to a new close-on-exec descriptor, preferring numbers near the top of
// RLIMIT_NOFILE so the program's own low numbers stay free. Async-signal-safe.
Ret<int> dup_cloexec_high(int fd) noexcept;

// unshare(CLONE_FILES): what close_range(CLOSE_RANGE_UNSHARE) does before closing.
Ret<int> unshare_files() noexcept;

// Writes "sealsock: <message>\n" to stderr in one write. Async-signal-safe; never changes errno.
void log_line(const char* message) noexcept;

// Resolves every real symbol now. Called by the seam's constructor; idempotent.
void resolve_all() noexcept;

}  // namespace sealsock::sys
