// The syscall seam: one table of real symbols, resolved once at load (see real.h).
#include "sys/real.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstring>

#include "sys/confined.h"
#include "sys/raw.h"

namespace sealsock::sys {

std::atomic<void*> detail::g_real[detail::kSymbolCount];
char detail::g_missing;

namespace {

using namespace detail;  // Symbol, its k_ names, g_real

constexpr const char* kSymbolNames[kSymbolCount] = {
#define SEALSOCK_SYS_NAME(ret, name, ...) #name,
    SEALSOCK_FD_ENTRY_POINTS(SEALSOCK_SYS_NAME) SEALSOCK_REAL_ONLY(SEALSOCK_SYS_NAME)
#undef SEALSOCK_SYS_NAME
#define SEALSOCK_SYS_NAME(name) #name,
        SEALSOCK_REAL_VARIADIC(SEALSOCK_SYS_NAME)
#undef SEALSOCK_SYS_NAME
};

// Set while this thread is inside dlsym: a hook that arrives meanwhile (dlsym -> calloc -> an
// interposed allocator -> write) must not resolve again. initial-exec: static TLS, so reading it
// never allocates (a preloaded library always gets static TLS).
thread_local bool t_resolving __attribute__((tls_model("initial-exec"))) = false;

void* resolve_slow(Symbol s) noexcept {
    if (t_resolving) return nullptr;  // nested: the caller falls back to a direct system call
    const int saved = errno;
    t_resolving = true;
    void* p = dlsym(RTLD_NEXT, kSymbolNames[s]);
    t_resolving = false;
    errno = saved;
    g_real[s].store(p != nullptr ? p : &g_missing, std::memory_order_release);
    return p;
}

// The real function for s, or null when it cannot be had (yet).
inline void* real(Symbol s) noexcept {
    void* p = g_real[s].load(std::memory_order_acquire);
    if (p != nullptr) [[likely]]
        return p == &g_missing ? nullptr : p;
    return resolve_slow(s);
}

// Converts a kernel-style result (>= 0 or -errno) into Ret<T>.
template <typename T>
Ret<T> from_raw(long r) noexcept {
    if (r < 0 && r > -4096) return fail<T>(static_cast<int>(-r));
    if constexpr (std::is_pointer_v<T>) {
        return fail<T>(ENOSYS);  // no pointer-returning call has a raw path
    } else {
        return Ret<T>{static_cast<T>(r), errno};
    }
}

}  // namespace

// One wrapper per listed symbol: call the real function, or the raw fallback while unresolvable.
#define SEALSOCK_RAW(...) raw_syscall(__VA_ARGS__)
#define SEALSOCK_NO_RAW (-static_cast<long>(ENOSYS))
#define SEALSOCK_SYS_DEFINE(ret, name, params, args, raw) \
    Ret<ret> name params noexcept {                       \
        using Fn = ret(*) params;                         \
        void* p = real(k_##name);                         \
        if (p == nullptr) [[unlikely]]                    \
            return from_raw<ret>(raw);                    \
        ret seam_value_ = std::bit_cast<Fn>(p) args;      \
        return Ret<ret>{seam_value_, errno};              \
    }
#define SEALSOCK_SYS_DEFINE_FD(ret, name, params, args, keys, nx, raw) \
    SEALSOCK_SYS_DEFINE(ret, name, params, args, raw)
#define SEALSOCK_SYS_DEFINE_REAL(ret, name, params, args, nx, raw) \
    SEALSOCK_SYS_DEFINE(ret, name, params, args, raw)
SEALSOCK_FD_ENTRY_POINTS(SEALSOCK_SYS_DEFINE_FD)
SEALSOCK_REAL_ONLY(SEALSOCK_SYS_DEFINE_REAL)
#undef SEALSOCK_SYS_DEFINE_REAL
#undef SEALSOCK_SYS_DEFINE_FD
#undef SEALSOCK_SYS_DEFINE
#undef SEALSOCK_NO_RAW
#undef SEALSOCK_RAW

Ret<int> fcntl(int fd, int cmd, void* arg) noexcept {
    void* p = real(k_fcntl);
    if (p == nullptr) [[unlikely]]
        return from_raw<int>(raw_syscall(SYS_fcntl, fd, cmd, arg));
    int value = std::bit_cast<int (*)(int, int, ...)>(p)(fd, cmd, arg);
    return Ret<int>{value, errno};
}

Ret<int> fcntl64(int fd, int cmd, void* arg) noexcept {
    void* p = real(k_fcntl64);
    if (p == nullptr) [[unlikely]]
        return from_raw<int>(raw_syscall(SYS_fcntl, fd, cmd, arg));
    int value = std::bit_cast<int (*)(int, int, ...)>(p)(fd, cmd, arg);
    return Ret<int>{value, errno};
}

Ret<int> ioctl(int fd, unsigned long request, void* arg) noexcept {
    void* p = real(k_ioctl);
    if (p == nullptr) [[unlikely]]
        return from_raw<int>(raw_syscall(SYS_ioctl, fd, request, arg));
    int value = std::bit_cast<int (*)(int, unsigned long, ...)>(p)(fd, request, arg);
    return Ret<int>{value, errno};
}

Ret<long> syscall(long number, const long (&a)[6]) noexcept {
    void* p = real(k_syscall);
    if (p == nullptr) [[unlikely]]
        return from_raw<long>(raw_syscall6(number, a[0], a[1], a[2], a[3], a[4], a[5]));
    long value = std::bit_cast<long (*)(long, ...)>(p)(number, a[0], a[1], a[2], a[3], a[4], a[5]);
    return Ret<long>{value, errno};
}

Ret<int> closefrom(int lowfd) noexcept {
    void* p = real(k_closefrom);
    if (p == nullptr) [[unlikely]] {
        const unsigned first = lowfd < 0 ? 0U : static_cast<unsigned>(lowfd);
        Ret<int> r = from_raw<int>(raw_syscall(SYS_close_range, first, ~0U, 0));
        return Ret<int>{0, r.err};
    }
    std::bit_cast<void (*)(int)>(p)(lowfd);
    return Ret<int>{0, errno};
}

Ret<int> dup_cloexec_high(int fd) noexcept {
    // Aim below the soft RLIMIT_NOFILE (F_DUPFD fails with EINVAL at or above it), far from the
    // low numbers programs expect open() to hand out; fall back to any free number (also when
    // the top numbers are all taken).
    rlimit lim{};
    long floor = 3;
    if (raw_syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, nullptr, &lim) == 0 && lim.rlim_cur > 256) {
        const rlim_t cur = lim.rlim_cur < (1U << 20) ? lim.rlim_cur : (1U << 20);
        floor = static_cast<long>(cur) - 64;
    }
    Ret<int> r = fcntl(fd, F_DUPFD_CLOEXEC, reinterpret_cast<void*>(floor));
    if (r.value < 0 && (r.err == EINVAL || r.err == EMFILE) && floor != 3)
        r = fcntl(fd, F_DUPFD_CLOEXEC, reinterpret_cast<void*>(3L));
    return r;
}

Ret<int> unshare_files() noexcept {
    return from_raw<int>(raw_syscall(SYS_unshare, CLONE_FILES));
}

void log_line(const char* message) noexcept {
    // A sandboxed process may die of the write itself: OpenSSH's child sets RLIMIT_FSIZE to 0,
    // so a stderr that is a file raises SIGXFSZ. Its connection's end is said by an unconfined
    // process that shares it.
    if (confined::active()) return;
    char line[1024];
    static constexpr char kPrefix[] = "sealsock: ";
    size_t n = sizeof kPrefix - 1;
    std::memcpy(line, kPrefix, n);
    const size_t room = sizeof line - n - 1;
    const size_t len = strnlen(message, room);
    std::memcpy(line + n, message, len);
    n += len;
    line[n++] = '\n';
    (void)raw_syscall(SYS_write, STDERR_FILENO, line, n);  // raw: leaves errno alone
}

void resolve_all() noexcept {
    for (int s = 0; s < kSymbolCount; ++s)
        (void)real(static_cast<Symbol>(s));
}

namespace {
// Resolve everything at load, before the program's main (hooks called earlier resolve lazily).
__attribute__((constructor(101))) void resolve_at_load() noexcept {
    resolve_all();
}
}  // namespace

}  // namespace sealsock::sys
