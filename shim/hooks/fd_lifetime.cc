// Hooks that end or replace fds: close, close_range, closefrom, dup2, dup3.
//
// They keep the shim's own fds (registry::protect) out of the program's reach and hand sealed
// fds to the session layer; on every other fd they are the real call.
#include <fcntl.h>
#include <linux/close_range.h>
#include <unistd.h>

#include "hooks/dispatch.h"

namespace sealsock::hooks {
namespace {

sys::Ret<int> close_sealed(Session& session, int fd) noexcept {
    const SessionOps* table = registry::ops();
    if (table != nullptr && table->close != nullptr) return table->close(session, fd);
    // No session layer: forget the fd and close it. Closing can never leak plaintext, so this is
    // the fail-closed answer for close (failing it would only leak the socket).
    (void)registry::erase(fd);
    return sys::close(fd);
}

// close_range over [lo, hi] that contains neither protected nor sealed fds.
sys::Ret<int> close_plain_range(unsigned lo, unsigned hi, int flags) noexcept {
    sys::Ret<int> r = sys::close_range(lo, hi, flags);
    if (r.value < 0 && r.err == ENOSYS && (flags & CLOSE_RANGE_CLOEXEC) == 0 && hi - lo < 65536) {
        for (unsigned fd = lo;; ++fd) {  // kernels before 5.9: one close per fd
            (void)sys::close(static_cast<int>(fd));
            if (fd == hi) break;
        }
        r = {0, r.err};
    }
    return r;
}

}  // namespace

sys::Ret<int> close_fd(int fd) noexcept {
    if (registry::is_protected(fd)) return sys::fail<int>(EBADF);
    if (Session* session = registry::find(fd)) return close_sealed(*session, fd);
    return sys::close(fd);
}

bool range_needs_care(long first, long last) noexcept {
    return registry::next_protected(first, last) >= 0 || registry::next_owned(first, last) >= 0;
}

sys::Ret<int> close_range_around(unsigned first, unsigned last, int flags) noexcept {
    const bool cloexec = (flags & CLOSE_RANGE_CLOEXEC) != 0;
    sys::Ret<int> result{0, errno};
    bool issued = false;
    long lo = first;
    while (lo <= static_cast<long>(last)) {
        const long own = registry::next_protected(lo, last);
        const long sealed_fd = cloexec ? -1 : registry::next_owned(lo, last);
        long stop = own;  // the next fd that is not the real call's to close
        if (stop < 0 || (sealed_fd >= 0 && sealed_fd < stop)) stop = sealed_fd;
        const long hi = stop < 0 ? static_cast<long>(last) : stop - 1;
        if (hi >= lo) {
            sys::Ret<int> r =
                close_plain_range(static_cast<unsigned>(lo), static_cast<unsigned>(hi), flags);
            issued = true;
            if (r.value < 0 && result.value == 0) result = r;
        }
        if (stop < 0) break;
        if (stop == sealed_fd) {
            if (Session* session = registry::find(static_cast<int>(stop)))
                (void)close_sealed(*session, static_cast<int>(stop));
        }
        lo = stop + 1;
    }
    if (!issued && (flags & CLOSE_RANGE_UNSHARE) != 0) {
        sys::Ret<int> r = sys::unshare_files();
        if (r.value < 0) result = r;
    }
    return result;
}

sys::Ret<int> clear_target(int oldfd, int newfd) noexcept {
    if (oldfd == newfd || !registry::is_protected(newfd)) return {0, errno};
    sys::Ret<int> moved = registry::move_protected(newfd);
    if (moved.value < 0) return moved;
    return {1, errno};
}

}  // namespace sealsock::hooks

using sealsock::Session;
using sealsock::SessionOps;
namespace registry = sealsock::registry;
namespace sys = sealsock::sys;
namespace hooks = sealsock::hooks;

SEALSOCK_HOOK int close(int fd) {
    return hooks::finish(hooks::close_fd(fd));
}

SEALSOCK_HOOK int close_range(unsigned int first, unsigned int last, int flags) noexcept {
    // Invalid ranges and flags are the kernel's to reject; only valid ones need splitting.
    const int known = CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE;
    if (first > last || (flags & ~known) != 0 || !hooks::range_needs_care(first, last))
        return hooks::finish(sys::close_range(first, last, flags));
    return hooks::finish(hooks::close_range_around(first, last, flags));
}

SEALSOCK_HOOK void closefrom(int lowfd) noexcept {
    const int saved = errno;
    const long first = lowfd < 0 ? 0 : lowfd;
    if (!hooks::range_needs_care(first, registry::kFdLimit - 1)) {
        (void)sys::closefrom(lowfd);
    } else {
        // Everything below the highest protected or sealed fd goes through close_range_around;
        // the open-ended rest through the real closefrom (which has its own /proc fallback).
        long top = first;
        for (long fd = first; fd >= 0;) {
            const long p = registry::next_protected(fd, registry::kFdLimit - 1);
            const long s = registry::next_owned(fd, registry::kFdLimit - 1);
            const long next = p > s ? p : s;
            if (next < 0) break;
            top = next;
            fd = next + 1;
        }
        (void)hooks::close_range_around(static_cast<unsigned>(first), static_cast<unsigned>(top),
                                        0);
        if (top + 1 < registry::kFdLimit) (void)sys::closefrom(static_cast<int>(top + 1));
    }
    errno = saved;  // closefrom(3) reports nothing
}

SEALSOCK_HOOK int dup2(int oldfd, int newfd) noexcept {
    sys::Ret<int> room = hooks::clear_target(oldfd, newfd);
    if (room.value < 0) return hooks::finish(room);
    Session* session = registry::find_any(oldfd, newfd);
    sys::Ret<int> r = session == nullptr ? sys::dup2(oldfd, newfd)
                                         : hooks::sealed(&SessionOps::dup2, *session, oldfd, newfd);
    // A failed call leaves newfd holding the moved-away copy of the shim's fd: drop it, so the
    // number is as closed as the program believes.
    if (r.value < 0 && room.value == 1) (void)sys::close(newfd);
    return hooks::finish(r);
}

SEALSOCK_HOOK int dup3(int oldfd, int newfd, int flags) noexcept {
    sys::Ret<int> room = hooks::clear_target(oldfd, newfd);
    if (room.value < 0) return hooks::finish(room);
    Session* session = registry::find_any(oldfd, newfd);
    sys::Ret<int> r = session == nullptr
                          ? sys::dup3(oldfd, newfd, flags)
                          : hooks::sealed(&SessionOps::dup3, *session, oldfd, newfd, flags);
    // A failed call leaves newfd holding the moved-away copy of the shim's fd: drop it, so the
    // number is as closed as the program believes.
    if (r.value < 0 && room.value == 1) (void)sys::close(newfd);
    return hooks::finish(r);
}
