// syscall(): the numbers that act on fds are routed like their libc counterparts (libuv closes
// with syscall(SYS_close)); every other number is forwarded untouched, all six argument words
// included (DESIGN I6: torsocks denied unknown numbers and drowned in bug reports).
#include <linux/close_range.h>
#include <sys/syscall.h>

#include <cstdarg>

#include "hooks/dispatch.h"

namespace sealsock::hooks {
namespace {

// System calls that name fds, and which argument words hold them (-1: none). A sealed fd in one
// of them sends the call to the session layer.
struct FdSyscall {
    long number;
    signed char fd_arg[2];
};

constexpr FdSyscall kFdSyscalls[] = {
    {SYS_read, {0, -1}},       {SYS_write, {0, -1}},    {SYS_readv, {0, -1}},
    {SYS_writev, {0, -1}},     {SYS_recvfrom, {0, -1}}, {SYS_sendto, {0, -1}},
    {SYS_recvmsg, {0, -1}},    {SYS_sendmsg, {0, -1}},  {SYS_recvmmsg, {0, -1}},
    {SYS_sendmmsg, {0, -1}},   {SYS_connect, {0, -1}},  {SYS_accept, {0, -1}},
    {SYS_accept4, {0, -1}},    {SYS_shutdown, {0, -1}}, {SYS_getsockopt, {0, -1}},
    {SYS_setsockopt, {0, -1}}, {SYS_ioctl, {0, -1}},    {SYS_fcntl, {0, -1}},
    {SYS_dup, {0, -1}},        {SYS_sendfile, {0, 1}},  {SYS_splice, {0, 2}},
    {SYS_close, {0, -1}},      {SYS_dup3, {0, 1}},
#ifdef SYS_dup2
    {SYS_dup2, {0, 1}},
#endif
};

Session* sealed_fd_argument(long number, const long (&a)[6]) noexcept {
    for (const FdSyscall& entry : kFdSyscalls) {
        if (entry.number != number) continue;
        for (signed char i : entry.fd_arg)
            if (i >= 0)
                if (Session* s = registry::find(static_cast<int>(a[i]))) return s;
        return nullptr;
    }
    return nullptr;
}

sys::Ret<long> widen(sys::Ret<int> r) noexcept {
    return {r.value, r.err};
}

// The calls that can touch the shim's own fds: answered like the libc hooks answer them.
bool touches_own_fds(long number, const long (&a)[6], sys::Ret<long>& out) noexcept {
    if (number == SYS_close && registry::is_protected(static_cast<int>(a[0]))) {
        out = widen(close_fd(static_cast<int>(a[0])));
        return true;
    }
    if (number == SYS_close_range) {
        const auto first = static_cast<unsigned>(a[0]);
        const auto last = static_cast<unsigned>(a[1]);
        const auto flags = static_cast<unsigned>(a[2]);
        if (first > last || (flags & ~(CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE)) != 0)
            return false;
        if (!range_needs_care(first, last)) return false;
        out = widen(close_range_around(first, last, static_cast<int>(flags)));
        return true;
    }
    bool dup_onto = number == SYS_dup3;
#ifdef SYS_dup2
    dup_onto = dup_onto || number == SYS_dup2;
#endif
    if (dup_onto) {
        sys::Ret<int> room = clear_target(static_cast<int>(a[0]), static_cast<int>(a[1]));
        if (room.value < 0) {
            out = widen(room);
            return true;
        }
    }
    return false;
}

long syscall_hook(long number, const long (&a)[6]) noexcept {
    sys::Ret<long> out{0, 0};
    if (confines(number, a)) return confining_call(number, a);
    if (touches_own_fds(number, a, out)) return finish(out);
    if (number == SYS_io_uring_setup) {
        const SessionOps* table = registry::ops();
        if (table != nullptr && table->io_uring_setup != nullptr) table->io_uring_setup();
    }
    if (Session* session = sealed_fd_argument(number, a)) {
        if (number == SYS_close) return finish(widen(close_fd(static_cast<int>(a[0]))));
        const SessionOps* table = registry::ops();
        if (table == nullptr || table->syscall == nullptr) {
            log_no_session_op();
            return finish(sys::fail<long>(EIO));
        }
        return finish(table->syscall(*session, number, a));
    }
    return finish(sys::syscall(number, a));
}

}  // namespace
}  // namespace sealsock::hooks

namespace {
// Reads six argument words whatever the caller passed, exactly like glibc's assembly syscall():
// words past the caller's real arguments are whatever lies in the registers and on its stack,
// and the kernel ignores them. Reading the caller's stack that way is deliberate, so ASan must
// not instrument it.
__attribute__((no_sanitize("address"))) void read_words(va_list& ap, long (&a)[6]) noexcept {
    for (long& word : a)
        word = va_arg(ap, long);
}
}  // namespace

SEALSOCK_HOOK long syscall(long number, ...) noexcept {
    va_list ap;
    va_start(ap, number);
    long a[6];
    read_words(ap, a);
    va_end(ap);
    return sealsock::hooks::syscall_hook(number, a);
}
