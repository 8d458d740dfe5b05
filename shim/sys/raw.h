// Direct system calls, for the few paths that must not go through libc: a call that arrives while
// dlsym is resolving the real symbol on the same thread, and the shim's own bookkeeping calls
// (prlimit, unshare). Only shim/sys/ includes this file.
//
// Not `syscall()`: that name is one of our hooks, so calling it from inside the shim would come
// straight back to us.
#pragma once

#include <type_traits>

namespace sealsock::sys {

// Returns the kernel's value: a result >= 0, or -errno. Async-signal-safe; touches no errno.
inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f) noexcept {
#if defined(__x86_64__)
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
#else
#error "sealsock: raw system calls are implemented for x86-64 and aarch64 only"
#endif
}

template <typename A>
long to_syscall_arg(A a) noexcept {
    if constexpr (std::is_null_pointer_v<A>) {
        return 0;
    } else if constexpr (std::is_pointer_v<A>) {
        return reinterpret_cast<long>(a);
    } else {
        return static_cast<long>(a);
    }
}

template <typename... A>
long raw_syscall(long nr, A... a) noexcept {
    static_assert(sizeof...(A) <= 6, "a system call takes at most six arguments");
    long v[6] = {to_syscall_arg(a)...};
    return raw_syscall6(nr, v[0], v[1], v[2], v[3], v[4], v[5]);
}

}  // namespace sealsock::sys
