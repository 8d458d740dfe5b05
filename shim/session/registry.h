// The fd -> Session table, the session layer's entry table (SessionOps), and the shim's own fds.
//
// Every hook asks this registry one question first: does a session own this fd? The answer must
// cost one table lookup with no lock and no allocation, from any thread and from signal handlers
// (DESIGN I6). A sealed fd's call goes through SessionOps, which the session layer fills once
// (shim/session/ops.cc); a slot it leaves empty makes that sealed call fail closed with EIO and
// one log line (DESIGN I7).
//
// The shim's own fds (agent connection, eventfd, exec hand-off memfd, ...) are registered here
// too, so the program's close/close_range/closefrom/dup2/dup3 never close or replace them.
#pragma once

#include <sys/types.h>

#include <sealsock/peer.h>

#include <atomic>
#include <cstddef>

#include "sys/entry_points.h"
#include "sys/ret.h"

namespace sealsock {

class Session;  // one sealed connection (shim/session/), defined by the session layer

// What an exec or a spawn is about to run, for the session layer to judge whether the new image
// will carry the shim.
struct ExecTarget {
    const char* file = nullptr;  // the program file, or null when only `fd` names it
    bool search_path = false;    // execvp-style: `file` is looked up in PATH when it has no '/'
    int fd = -1;                 // fexecve, or execveat's dirfd (AT_FDCWD: none)
    bool replaces = true;        // exec (this image ends) or spawn (this process goes on)
    const posix_spawn_file_actions_t* actions = nullptr;  // a spawn's file actions, if any
    bool in_libc = false;  // system(), popen(): the C library spawns /bin/sh past every hook
};

// What the session layer does for calls on fds it owns, and for process events. Filled once with
// registry::set_ops(); a null slot makes that sealed call fail closed (EIO) and log. Each
// function receives the session that owns the key fd and the hook's arguments unchanged, and
// returns the C result with its errno; it must not throw.
struct SessionOps {
#define SEALSOCK_SESSION_OP(ret, name, params, args, keys, nx, raw) \
    sys::Ret<ret> (*name)(Session & session, SEALSOCK_PARAMS params);
#define SEALSOCK_PARAMS(...) __VA_ARGS__
    SEALSOCK_FD_ENTRY_POINTS(SEALSOCK_SESSION_OP)
#undef SEALSOCK_PARAMS
#undef SEALSOCK_SESSION_OP

    // fd-keyed calls with hand-written hooks. close: the last step is the session layer's (it
    // erases the fd from the registry and closes it); without a session layer the hook erases
    // and closes itself, because closing a sealed socket can never leak plaintext.
    sys::Ret<int> (*close)(Session& session, int fd);
    sys::Ret<int> (*dup2)(Session& session, int oldfd, int newfd);
    sys::Ret<int> (*dup3)(Session& session, int oldfd, int newfd, int flags);
    sys::Ret<int> (*fcntl)(Session& session, int fd, int cmd, void* arg);
    sys::Ret<int> (*ioctl)(Session& session, int fd, unsigned long request, void* arg);
    // syscall() whose fd argument names a sealed socket; args are the six raw words.
    sys::Ret<long> (*syscall)(Session& session, long number, const long (&args)[6]);

    // New connections on fds no session owns (shim/hooks/open.cc): the session layer matches
    // the rules and either seals the connection or makes the real call. accept() passes
    // has_flags = false, accept4() true with its flags. Null: the real call.
    sys::Ret<int> (*open_connect)(int fd, const sockaddr* addr, socklen_t len);
    sys::Ret<int> (*open_accept)(int fd, sockaddr* addr, socklen_t* len, int flags, bool has_flags);

    // Process events, called whether or not a session exists; null means nothing to do.
    // before_fork / after_fork: around fork and vfork (which the shim runs as fork); after_fork
    // runs in the parent (pid > 0), in the child (pid == 0), or once with pid < 0 when fork
    // failed. before_exec: before any exec or posix_spawn. It may ask for one environment entry
    // for the new image: it writes "NAME=VALUE" into `entry` (`size` bytes) and returns 1 (the
    // hook then passes the program's environment with that entry added, replacing any entry of
    // the same name), returns 0 for none, or -1 with an errno that cancels the call.
    // after_exec: the exec failed (started false), or the spawn returned (started: a child
    // runs): undo what before_exec prepared, or what the child will take over.
    // io_uring_setup: the program set up io_uring through syscall() (DESIGN I8: report it).
    // name_resolved: getaddrinfo succeeded (host names for SNI and name rules).
    void (*before_fork)();
    void (*after_fork)(pid_t pid);
    sys::Ret<int> (*before_exec)(const ExecTarget& target, char* const envp[], char* entry,
                                 std::size_t size);
    void (*after_exec)(bool started);
    void (*io_uring_setup)();
    // hides_readable: whether readiness to read on a sealed fd is the handshake's, not the
    // program's (the session is connecting or handshaking): poll and epoll do not report it.
    bool (*hides_readable)(Session& session);
    // before_confinement: the program is about to put itself under seccomp (sys/confined.h):
    // the last moment every call is allowed. plaintext_ready: under confinement, whether the
    // session holds opened plaintext the kernel no longer shows (poll reports it readable).
    void (*before_confinement)();
    bool (*plaintext_ready)(Session& session);
    // sealsock_peer() (include/sealsock/peer.h) on a sealed fd.
    sys::Ret<int> (*peer)(Session& session, struct sealsock_peer_info* out, int timeout_ms);
    void (*name_resolved)(const char* node, const addrinfo* result);
};

namespace registry {

// Largest fd the table can hold, plus one (all non-negative ints).
inline constexpr long kFdLimit = 1L << 31;

namespace detail {
// Two levels: 2^16 top-level slots (static, zero) each naming a chunk of 2^15 owner slots (256
// KiB, mmap'd when the first fd in its range gets an owner). Together they cover every
// non-negative int; a process that never seals touches nothing but the top level.
inline constexpr int kChunkBits = 15;
inline constexpr long kChunkSize = 1L << kChunkBits;
inline constexpr long kTopSize = kFdLimit / kChunkSize;
using Slot = std::atomic<Session*>;
static_assert(Slot::is_always_lock_free, "find() must be async-signal-safe");
extern std::atomic<Slot*> g_top[kTopSize];
}  // namespace detail

// The session that owns fd, or null (also for fd < 0). Lock-free, allocation-free,
// async-signal-safe; may be called before any session exists and from any thread. Inline: every
// hook asks it first, and for an fd the shim does not own it is the whole cost of the hook.
[[nodiscard]] inline Session* find(int fd) noexcept {
    if (fd < 0) return nullptr;
    detail::Slot* c = detail::g_top[fd >> detail::kChunkBits].load(std::memory_order_acquire);
    if (c == nullptr) [[likely]]
        return nullptr;
    return c[fd & (detail::kChunkSize - 1)].load(std::memory_order_acquire);
}

// The first session owning either fd, or null. Same guarantees as find().
[[nodiscard]] inline Session* find_any(int fd) noexcept {
    return find(fd);
}
[[nodiscard]] inline Session* find_any(int a, int b) noexcept {
    Session* s = find(a);
    return s != nullptr ? s : find(b);
}

// Makes `session` the owner of fd. Maps the table chunk for fd on first use (mmap), so it is not
// async-signal-safe. Fails with EBADF for fd < 0, EINVAL for a null session, EEXIST if fd already
// has an owner (erase it first), and mmap's errno (ENOMEM). Chunks are never unmapped: a
// concurrent find() may be reading one.
[[nodiscard]] sys::Ret<int> insert(int fd, Session* session) noexcept;

// Removes fd's owner and returns it (null if none). Lock-free and async-signal-safe.
Session* erase(int fd) noexcept;

// Number of fds that have an owner; 0 lets range operations skip scanning. Lock-free.
[[nodiscard]] long live_count() noexcept;

// Sessions of this process whose handshake is running (poll and epoll filter readiness only
// while there are some). Lock-free.
void handshake_started() noexcept;
void handshake_ended() noexcept;
[[nodiscard]] bool handshakes_running() noexcept;

// The lowest fd in [from, last] that has an owner, or -1. Lock-free; skips unmapped chunks.
[[nodiscard]] long next_owned(long from, long last) noexcept;

// The session layer's table (see SessionOps). set_ops once, before the first insert; the table
// must outlive the process. ops() is lock-free and async-signal-safe.
void set_ops(const SessionOps* ops) noexcept;
[[nodiscard]] const SessionOps* ops() noexcept;

// --- the shim's own fds ----------------------------------------------------------------------
//
// A protected fd is one the shim opened for itself. The program cannot close it: close() and
// syscall(SYS_close) answer EBADF (from the program's point of view that number was never its
// own), close_range() and closefrom() close everything around it. When the program dup2()s or
// dup3()s onto its number, the shim's fd first moves to a new close-on-exec number (high, see
// sys::dup_cloexec_high) and then the program's call proceeds, so the program gets exactly what
// it asked for. Owners therefore refer to their fd by handle and read own_fd(handle) at each use.
// (An owner thread that read the number just before a dup2 moved it may act on the program's new
// fd: owners that can race with the program must hold the number only across one system call.)

inline constexpr int kMaxOwnFds = 64;  // the background thread's two, and the session chunks

// Registers fd; returns a handle >= 0, or -1 if fd < 0 or the table is full. Lock-free.
[[nodiscard]] int protect(int fd) noexcept;
// Forgets the handle (the owner closes the fd itself). Lock-free.
void unprotect(int handle) noexcept;
// The fd the handle names now (-1 if the handle is free). Lock-free, async-signal-safe.
[[nodiscard]] int own_fd(int handle) noexcept;
// Whether fd is one of the shim's. Lock-free, async-signal-safe.
[[nodiscard]] bool is_protected(int fd) noexcept;
// The lowest protected fd in [from, last], or -1. Lock-free, async-signal-safe.
[[nodiscard]] long next_protected(long from, long last) noexcept;
// Moves protected fd to a new close-on-exec number and updates its handle; the old number then
// still refers to the same file but is no longer the shim's (the caller replaces or closes it).
// Returns the new fd. Async-signal-safe.
[[nodiscard]] sys::Ret<int> move_protected(int fd) noexcept;

}  // namespace registry
}  // namespace sealsock
