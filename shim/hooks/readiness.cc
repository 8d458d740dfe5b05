// poll, ppoll, epoll_wait, epoll_pwait, epoll_pwait2 and epoll_ctl: readiness as the program
// should see it.
//
// Kernel readiness is truthful for sealed sockets (DESIGN I2) except while the agent runs the
// handshake: the peer's handshake flight makes the socket readable for the moment the agent
// takes to read it, and a program woken then reads EAGAIN. The kernel allows that, but some
// programs take it for a dead connection (wrk counts a read error and reconnects, forever). So
// while a sealed fd's session is connecting or handshaking, these calls do not report it
// readable (hangups and errors still wake), and wait again for what is left of the timeout when
// nothing else was ready.
//
// epoll reports the program's data word, not the fd: epoll_ctl remembers, per epoll instance and
// data word, which sealed fd was registered (and with which events, to re-arm an EPOLLONESHOT
// registration whose event was held back). Registrations made before the fd was sealed (before
// its connect) are not known, and their events pass unfiltered, as before.
//
// Passthrough: with no sealed fd in the process, each call is the real one after one atomic load;
// with sealed fds but no handshake running, the real one plus one more.
#include <poll.h>
#include <sys/epoll.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <mutex>

#include "hooks/dispatch.h"
#include "sys/confined.h"

namespace sealsock::hooks {
namespace {

constexpr short kReadable = POLLIN | POLLRDNORM;
constexpr short kWakes = POLLHUP | POLLERR | POLLNVAL | POLLRDHUP;
constexpr std::uint32_t kEpollReadable = EPOLLIN | EPOLLRDNORM;
constexpr std::uint32_t kEpollWakes = EPOLLHUP | EPOLLERR | EPOLLRDHUP;
// Held-back readiness is usually gone within the agent's next read: wait this long before
// asking the kernel again, so a level-triggered wait does not spin meanwhile.
constexpr long kSettleNs = 200 * 1000;

bool hides_readable(int fd) noexcept {
    Session* s = registry::find(fd);
    if (s == nullptr) return false;
    const SessionOps* table = registry::ops();
    return table != nullptr && table->hides_readable != nullptr && table->hides_readable(*s);
}

// --- epoll registrations of sealed fds ------------------------------------------------------

struct Registration {
    int epfd = -1;  // -1: free
    int fd = -1;
    std::uint64_t data = 0;
    std::uint32_t events = 0;
};

class Registrations {
  public:
    void remember(int epfd, int fd, const epoll_event& ev) noexcept {
        std::lock_guard lock(mu_);
        Registration* free_slot = nullptr;
        for (int i = 0; i < used_; ++i) {
            Registration& r = table_[i];
            if (r.epfd == epfd && r.fd == fd) {
                r.data = ev.data.u64;
                r.events = ev.events;
                return;
            }
            if (r.epfd < 0 && free_slot == nullptr) free_slot = &r;
        }
        if (free_slot == nullptr) {
            if (used_ == static_cast<int>(table_.size()))
                return;  // full: this registration is not filtered
            free_slot = &table_[used_++];
        }
        *free_slot = {epfd, fd, ev.data.u64, ev.events};
        count_.fetch_add(1, std::memory_order_release);
    }

    void forget(int epfd, int fd) noexcept {
        if (count_.load(std::memory_order_acquire) == 0) return;
        std::lock_guard lock(mu_);
        for (int i = 0; i < used_; ++i) {
            Registration& r = table_[i];
            if (r.epfd == epfd && (fd < 0 || r.fd == fd)) drop(r);
        }
        trim();
    }

    // The registration an event of `epfd` with `data` came from, if it is a sealed fd's.
    bool find(int epfd, std::uint64_t data, Registration& out) noexcept {
        if (count_.load(std::memory_order_acquire) == 0) return false;
        std::lock_guard lock(mu_);
        bool found = false;
        for (int i = 0; i < used_ && !found; ++i) {
            Registration& r = table_[i];
            if (r.epfd != epfd || r.data != data) continue;
            if (registry::find(r.fd) == nullptr) {  // closed since: forget it
                drop(r);
                continue;
            }
            out = r;
            found = true;
        }
        trim();
        return found;
    }

  private:
    void drop(Registration& r) noexcept {
        if (r.epfd < 0) return;
        r = {};
        count_.fetch_sub(1, std::memory_order_release);
    }

    // Scans stop at used_: free entries at the end of the table are given back to it.
    void trim() noexcept {
        while (used_ > 0 && table_[used_ - 1].epfd < 0)
            --used_;
    }

    std::mutex mu_;
    std::atomic<int> count_{0};
    int used_ = 0;  // entries [used_, end) are free (under mu_)
    std::array<Registration, 1024> table_{};
};

Registrations& registrations() noexcept {
    static Registrations r;
    return r;
}

// --- filtering --------------------------------------------------------------------------------

// Removes readiness that belongs to handshakes; returns the new count.
int filter_poll(pollfd* fds, nfds_t nfds, int n) noexcept {
    if (n <= 0 || !registry::handshakes_running()) return n;
    for (nfds_t i = 0; i < nfds; ++i) {
        pollfd& p = fds[i];
        if ((p.revents & kReadable) == 0 || (p.revents & kWakes) != 0) continue;
        if (!hides_readable(p.fd)) continue;
        p.revents = static_cast<short>(p.revents & ~kReadable);
        if (p.revents == 0) --n;
    }
    return n;
}

int filter_epoll(int epfd, epoll_event* events, int n) noexcept {
    if (n <= 0 || !registry::handshakes_running()) return n;
    int kept = 0;
    for (int i = 0; i < n; ++i) {
        epoll_event ev = events[i];
        Registration r;
        if ((ev.events & kEpollReadable) != 0 && (ev.events & kEpollWakes) == 0 &&
            registrations().find(epfd, ev.data.u64, r) && hides_readable(r.fd)) {
            ev.events &= ~kEpollReadable;
            if ((r.events & EPOLLONESHOT) != 0) {  // the kernel disarmed it: arm it again
                epoll_event again{};
                again.events = r.events;
                again.data.u64 = r.data;
                (void)sys::epoll_ctl(epfd, EPOLL_CTL_MOD, r.fd, &again);
                continue;  // what else it reported comes again with the re-armed registration
            }
            if (ev.events == 0) continue;
        }
        events[kept++] = ev;
    }
    return kept;
}

std::int64_t now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void settle_pause() noexcept {
    const timespec pause{0, kSettleNs};
    (void)nanosleep(&pause, nullptr);
}

// The rest of a timeout given in milliseconds (-1: none), after `start`.
int remaining_ms(int timeout, std::int64_t start) noexcept {
    if (timeout < 0) return -1;
    const std::int64_t left = static_cast<std::int64_t>(timeout) - (now_ns() - start) / 1000000;
    return left > 0 ? static_cast<int>(left) : 0;
}

// The rest of a timespec timeout (null: none) after `start`, into `out`; returns the pointer to
// pass.
const timespec* remaining_ts(const timespec* timeout, std::int64_t start, timespec& out) noexcept {
    if (timeout == nullptr) return nullptr;
    std::int64_t left = static_cast<std::int64_t>(timeout->tv_sec) * 1000000000 + timeout->tv_nsec -
                        (now_ns() - start);
    if (left < 0) left = 0;
    out.tv_sec = static_cast<time_t>(left / 1000000000);
    out.tv_nsec = static_cast<long>(left % 1000000000);
    return &out;
}

// Runs `wait` (the real call, given the timeout to use) until it reports something the filter
// keeps, an error, or the timeout ends.
template <typename Wait, typename Filter, typename Timeout>
sys::Ret<int> filtered(Wait wait, Filter filter, Timeout next_timeout,
                       bool timed_out_now) noexcept {
    const std::int64_t start = now_ns();
    bool first = true;
    for (;;) {
        const sys::Ret<int> r = wait(first, start);
        if (r.value <= 0) return r;
        const int kept = filter(r.value);
        if (kept > 0 || timed_out_now || next_timeout(start)) return {kept, r.err};
        first = false;
        settle_pause();
    }
}

// A sandboxed process reads each record whole (sys/confined.h): plaintext the shim already
// holds is not in the kernel's readiness any more. Such fds are readable now: the real call
// then only looks (timeout 0) and the shim adds them. False when there are none.
bool plaintext_ready(int fd) noexcept {
    Session* s = registry::find(fd);
    const SessionOps* table = registry::ops();
    return s != nullptr && table != nullptr && table->plaintext_ready != nullptr &&
           table->plaintext_ready(*s);
}

template <typename Look>
bool confined_ready(pollfd* fds, nfds_t nfds, sys::Ret<int>& out, Look look) noexcept {
    if (!confined::active()) [[likely]]
        return false;
    bool any = false;
    for (nfds_t i = 0; i < nfds && !any; ++i)
        any = (fds[i].events & kReadable) != 0 && plaintext_ready(fds[i].fd);
    if (!any) return false;
    out = look();
    if (out.value < 0) return true;
    int n = 0;
    for (nfds_t i = 0; i < nfds; ++i) {
        pollfd& p = fds[i];
        if ((p.events & kReadable) != 0 && plaintext_ready(p.fd))
            p.revents = static_cast<short>(p.revents | (p.events & kReadable));
        if (p.revents != 0) ++n;
    }
    out.value = n;
    return true;
}

sys::Ret<int> poll_filtered(pollfd* fds, nfds_t nfds, int timeout) noexcept {
    if (registry::live_count() == 0) [[likely]]
        return sys::poll(fds, nfds, timeout);
    sys::Ret<int> now{};
    if (confined_ready(fds, nfds, now, [&] { return sys::poll(fds, nfds, 0); })) return now;
    return filtered(
        [&](bool, std::int64_t start) {
            return sys::poll(fds, nfds, remaining_ms(timeout, start));
        },
        [&](int n) { return filter_poll(fds, nfds, n); },
        [&](std::int64_t start) { return remaining_ms(timeout, start) == 0; }, timeout == 0);
}

sys::Ret<int> ppoll_filtered(pollfd* fds, nfds_t nfds, const timespec* timeout,
                             const sigset_t* sigmask) noexcept {
    if (registry::live_count() == 0) [[likely]]
        return sys::ppoll(fds, nfds, timeout, sigmask);
    sys::Ret<int> now{};
    const timespec zero_ts{0, 0};
    if (confined_ready(fds, nfds, now, [&] { return sys::ppoll(fds, nfds, &zero_ts, sigmask); }))
        return now;
    timespec left{};
    const bool zero = timeout != nullptr && timeout->tv_sec == 0 && timeout->tv_nsec == 0;
    return filtered(
        [&](bool, std::int64_t start) {
            return sys::ppoll(fds, nfds, remaining_ts(timeout, start, left), sigmask);
        },
        [&](int n) { return filter_poll(fds, nfds, n); },
        [&](std::int64_t start) {
            return timeout != nullptr && remaining_ts(timeout, start, left)->tv_sec == 0 &&
                   left.tv_nsec == 0;
        },
        zero);
}

}  // namespace
}  // namespace sealsock::hooks

using sealsock::hooks::finish;
namespace hooks = sealsock::hooks;
namespace registry = sealsock::registry;
namespace sys = sealsock::sys;

SEALSOCK_HOOK int epoll_ctl(int epfd, int op, int fd, epoll_event* event) noexcept {
    const sys::Ret<int> r = sys::epoll_ctl(epfd, op, fd, event);
    if (r.value == 0 && registry::live_count() != 0) {
        if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && event != nullptr &&
            registry::find(fd) != nullptr)
            hooks::registrations().remember(epfd, fd, *event);
        else if (op == EPOLL_CTL_DEL)
            hooks::registrations().forget(epfd, fd);
    }
    return finish(r);
}

SEALSOCK_HOOK int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) {
    if (registry::live_count() == 0) [[likely]]
        return finish(sys::epoll_wait(epfd, events, maxevents, timeout));
    return finish(hooks::filtered(
        [&](bool, std::int64_t start) {
            return sys::epoll_wait(epfd, events, maxevents, hooks::remaining_ms(timeout, start));
        },
        [&](int n) { return hooks::filter_epoll(epfd, events, n); },
        [&](std::int64_t start) { return hooks::remaining_ms(timeout, start) == 0; },
        timeout == 0));
}

SEALSOCK_HOOK int epoll_pwait(int epfd, epoll_event* events, int maxevents, int timeout,
                              const sigset_t* sigmask) {
    if (registry::live_count() == 0) [[likely]]
        return finish(sys::epoll_pwait(epfd, events, maxevents, timeout, sigmask));
    return finish(hooks::filtered(
        [&](bool, std::int64_t start) {
            return sys::epoll_pwait(epfd, events, maxevents, hooks::remaining_ms(timeout, start),
                                    sigmask);
        },
        [&](int n) { return hooks::filter_epoll(epfd, events, n); },
        [&](std::int64_t start) { return hooks::remaining_ms(timeout, start) == 0; },
        timeout == 0));
}

SEALSOCK_HOOK int epoll_pwait2(int epfd, epoll_event* events, int maxevents,
                               const timespec* timeout, const sigset_t* sigmask) {
    if (registry::live_count() == 0) [[likely]]
        return finish(sys::epoll_pwait2(epfd, events, maxevents, timeout, sigmask));
    timespec left{};
    const bool zero = timeout != nullptr && timeout->tv_sec == 0 && timeout->tv_nsec == 0;
    return finish(hooks::filtered(
        [&](bool, std::int64_t start) {
            return sys::epoll_pwait2(epfd, events, maxevents,
                                     hooks::remaining_ts(timeout, start, left), sigmask);
        },
        [&](int n) { return hooks::filter_epoll(epfd, events, n); },
        [&](std::int64_t start) {
            return timeout != nullptr && hooks::remaining_ts(timeout, start, left)->tv_sec == 0 &&
                   left.tv_nsec == 0;
        },
        zero));
}

SEALSOCK_HOOK int poll(pollfd* fds, nfds_t nfds, int timeout) {
    return finish(hooks::poll_filtered(fds, nfds, timeout));
}

SEALSOCK_HOOK int ppoll(pollfd* fds, nfds_t nfds, const timespec* timeout,
                        const sigset_t* sigmask) {
    return finish(hooks::ppoll_filtered(fds, nfds, timeout, sigmask));
}

// The fortify variants (-D_FORTIFY_SOURCE): glibc checks the array size, then calls its own poll
// past the hook.
SEALSOCK_HOOK int __poll_chk(pollfd* fds, nfds_t nfds, int timeout, size_t fdslen) {
    if (fdslen / sizeof(*fds) < nfds) __builtin_trap();  // glibc's __chk_fail: a buffer overflow
    return finish(hooks::poll_filtered(fds, nfds, timeout));
}

SEALSOCK_HOOK int __ppoll_chk(pollfd* fds, nfds_t nfds, const timespec* timeout,
                              const sigset_t* sigmask, size_t fdslen) {
    if (fdslen / sizeof(*fds) < nfds) __builtin_trap();
    return finish(hooks::ppoll_filtered(fds, nfds, timeout, sigmask));
}
