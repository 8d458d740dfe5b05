// What every hook does, written once: route to the session layer or to the real call, then turn
// the seam's Ret<T> into the C convention (value, errno) exactly once (STYLE 12).
//
// Hooks are extern "C", never throw, and on the passthrough path take no lock and allocate
// nothing, so any of them may be called from a signal handler whose real counterpart may.
#pragma once

#include <cerrno>
#include <type_traits>

#include "session/registry.h"
#include "sys/real.h"

// Exported from libsealsock.so (everything else is hidden by -fvisibility=hidden).
#define SEALSOCK_HOOK extern "C" __attribute__((visibility("default")))
#define SEALSOCK_UNPAREN(...) __VA_ARGS__

namespace sealsock::hooks {

// The C result of a seam call: sets errno to what the call left and returns its value.
template <typename T>
inline T finish(sys::Ret<T> r) noexcept {
    errno = r.err;
    return r.value;
}

// Logs once per process that a sealed fd reached a call the session layer does not handle.
void log_no_session_op() noexcept;

// Calls the session layer's op for a sealed fd; fails closed (EIO, one log line) when the session
// layer is absent or does not handle this call (DESIGN I7).
template <typename Op, typename... A>
auto sealed(Op SessionOps::*op, Session& session, A... args) noexcept
    -> std::invoke_result_t<Op, Session&, A...> {
    using R = std::invoke_result_t<Op, Session&, A...>;
    const SessionOps* table = registry::ops();
    if (table == nullptr || table->*op == nullptr) [[unlikely]] {
        log_no_session_op();
        return R{sys::failure_value<decltype(R::value)>(), EIO};
    }
    return (table->*op)(session, args...);
}

// close() of one fd, shared by close, close_range, closefrom and syscall(SYS_close): a protected
// fd answers EBADF, a sealed fd goes to the session layer, anything else is the real close.
sys::Ret<int> close_fd(int fd) noexcept;

// close_range() semantics over [first, last] that leaves the shim's own fds open and lets the
// session layer close sealed ones (CLOSE_RANGE_CLOEXEC leaves sealed fds to the real call).
sys::Ret<int> close_range_around(unsigned first, unsigned last, int flags) noexcept;

// Whether [first, last] holds a protected or sealed fd (the slow path of the range calls).
bool range_needs_care(long first, long last) noexcept;

// Makes room for the program's dup2/dup3 onto newfd: if newfd is one of the shim's own fds,
// moves it away first. Returns 1 if it moved one, 0 if there was nothing to do, or -1 with the
// errno to report (the program's call must then not proceed).
sys::Ret<int> clear_target(int oldfd, int newfd) noexcept;

// fork() as the program sees it; vfork() runs the same (see shim/hooks/process.cc).
pid_t fork_process() noexcept;

// Whether syscall `number` with these argument words puts the calling thread under seccomp
// (prctl PR_SET_SECCOMP, seccomp SET_MODE_STRICT/FILTER); confining_call makes it after the
// session layer prepared and the shim confined itself (shim/hooks/sandbox.cc).
bool confines(long number, const long (&a)[6]) noexcept;
long confining_call(long number, const long (&a)[6]) noexcept;

}  // namespace sealsock::hooks
