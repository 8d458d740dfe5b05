// The one list of entry points the shim interposes (DESIGN I8).
//
// Three consumers expand these X-macros, so a call is declared exactly once:
//   - shim/sys/real.{h,cc}: the real-symbol seam (one resolved pointer and one wrapper per name);
//   - shim/hooks/: the exported hooks (the FD list generates its hooks wholesale);
//   - shim/session/registry.h: SessionOps, the table the session layer fills (one slot per FD
//   call).
//
// Columns:
//   ret     return type of the C function
//   name    the C symbol
//   params  parenthesised parameter list, exactly as glibc 2.36 declares it (names are ours)
//   args    the parameter names, parenthesised, for forwarding
//   keys    the fds whose session (if any) takes the call (FD list only)
//   nx      `noexcept` where glibc declares the function __THROW (C++ demands the same exception
//           specification on our definition), empty otherwise
//   raw     what the seam does when the real symbol cannot be resolved (a call that arrives while
//           dlsym itself is running on this thread, or a libc without the symbol):
//           SEALSOCK_RAW(nr, args...) issues the system call directly; SEALSOCK_NO_RAW fails
//           with ENOSYS.
#pragma once

#include <netdb.h>
#include <poll.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdio>
#include <ctime>

// Calls keyed by one or two fds, each with a SessionOps slot. Two groups:
//   - SEALSOCK_OPEN_ENTRY_POINTS: connect, accept, accept4. Their hooks are written by hand
//     (shim/hooks/open.cc): on an fd without a session they ask the session layer whether the
//     new connection is sealed.
//   - SEALSOCK_IO_ENTRY_POINTS: every other call, whose hooks are generated wholesale: "if a
//     session owns the fd, the session layer takes the call, else the real call".
#define SEALSOCK_FD_ENTRY_POINTS(X) SEALSOCK_OPEN_ENTRY_POINTS(X) SEALSOCK_IO_ENTRY_POINTS(X)

#define SEALSOCK_OPEN_ENTRY_POINTS(X)                                                            \
    X(int, connect, (int fd, const sockaddr* addr, socklen_t len), (fd, addr, len), (fd), ,      \
      SEALSOCK_RAW(SYS_connect, fd, addr, len))                                                  \
    X(int, accept, (int fd, sockaddr* addr, socklen_t* len), (fd, addr, len), (fd), ,            \
      SEALSOCK_RAW(SYS_accept, fd, addr, len))                                                   \
    X(int, accept4, (int fd, sockaddr* addr, socklen_t* len, int flags), (fd, addr, len, flags), \
      (fd), , SEALSOCK_RAW(SYS_accept4, fd, addr, len, flags))

#define SEALSOCK_IO_ENTRY_POINTS(X)                                                                \
    X(ssize_t, read, (int fd, void* buf, size_t n), (fd, buf, n), (fd), ,                          \
      SEALSOCK_RAW(SYS_read, fd, buf, n))                                                          \
    X(ssize_t, readv, (int fd, const iovec* iov, int iovcnt), (fd, iov, iovcnt), (fd), ,           \
      SEALSOCK_RAW(SYS_readv, fd, iov, iovcnt))                                                    \
    X(ssize_t, recv, (int fd, void* buf, size_t n, int flags), (fd, buf, n, flags), (fd), ,        \
      SEALSOCK_RAW(SYS_recvfrom, fd, buf, n, flags, 0, 0))                                         \
    X(ssize_t, recvfrom, (int fd, void* buf, size_t n, int flags, sockaddr* addr, socklen_t* len), \
      (fd, buf, n, flags, addr, len), (fd), ,                                                      \
      SEALSOCK_RAW(SYS_recvfrom, fd, buf, n, flags, addr, len))                                    \
    X(ssize_t, recvmsg, (int fd, msghdr* msg, int flags), (fd, msg, flags), (fd), ,                \
      SEALSOCK_RAW(SYS_recvmsg, fd, msg, flags))                                                   \
    X(int, recvmmsg, (int fd, mmsghdr* vec, unsigned int vlen, int flags, timespec* timeout),      \
      (fd, vec, vlen, flags, timeout), (fd), ,                                                     \
      SEALSOCK_RAW(SYS_recvmmsg, fd, vec, vlen, flags, timeout))                                   \
    X(ssize_t, write, (int fd, const void* buf, size_t n), (fd, buf, n), (fd), ,                   \
      SEALSOCK_RAW(SYS_write, fd, buf, n))                                                         \
    X(ssize_t, writev, (int fd, const iovec* iov, int iovcnt), (fd, iov, iovcnt), (fd), ,          \
      SEALSOCK_RAW(SYS_writev, fd, iov, iovcnt))                                                   \
    X(ssize_t, send, (int fd, const void* buf, size_t n, int flags), (fd, buf, n, flags), (fd), ,  \
      SEALSOCK_RAW(SYS_sendto, fd, buf, n, flags, 0, 0))                                           \
    X(ssize_t, sendto,                                                                             \
      (int fd, const void* buf, size_t n, int flags, const sockaddr* addr, socklen_t len),         \
      (fd, buf, n, flags, addr, len), (fd), ,                                                      \
      SEALSOCK_RAW(SYS_sendto, fd, buf, n, flags, addr, len))                                      \
    X(ssize_t, sendmsg, (int fd, const msghdr* msg, int flags), (fd, msg, flags), (fd), ,          \
      SEALSOCK_RAW(SYS_sendmsg, fd, msg, flags))                                                   \
    X(int, sendmmsg, (int fd, mmsghdr* vec, unsigned int vlen, int flags), (fd, vec, vlen, flags), \
      (fd), , SEALSOCK_RAW(SYS_sendmmsg, fd, vec, vlen, flags))                                    \
    X(ssize_t, sendfile, (int out_fd, int in_fd, off_t* offset, size_t count),                     \
      (out_fd, in_fd, offset, count), (out_fd, in_fd), noexcept,                                   \
      SEALSOCK_RAW(SYS_sendfile, out_fd, in_fd, offset, count))                                    \
    X(ssize_t, sendfile64, (int out_fd, int in_fd, off64_t* offset, size_t count),                 \
      (out_fd, in_fd, offset, count), (out_fd, in_fd), noexcept,                                   \
      SEALSOCK_RAW(SYS_sendfile, out_fd, in_fd, offset, count))                                    \
    X(ssize_t, splice,                                                                             \
      (int fd_in, off64_t* off_in, int fd_out, off64_t* off_out, size_t len, unsigned int flags),  \
      (fd_in, off_in, fd_out, off_out, len, flags), (fd_in, fd_out), ,                             \
      SEALSOCK_RAW(SYS_splice, fd_in, off_in, fd_out, off_out, len, flags))                        \
    X(int, shutdown, (int fd, int how), (fd, how), (fd), noexcept,                                 \
      SEALSOCK_RAW(SYS_shutdown, fd, how))                                                         \
    X(int, dup, (int fd), (fd), (fd), noexcept, SEALSOCK_RAW(SYS_dup, fd))                         \
    X(int, getsockopt, (int fd, int level, int name, void* value, socklen_t* len),                 \
      (fd, level, name, value, len), (fd), noexcept,                                               \
      SEALSOCK_RAW(SYS_getsockopt, fd, level, name, value, len))                                   \
    X(int, setsockopt, (int fd, int level, int name, const void* value, socklen_t len),            \
      (fd, level, name, value, len), (fd), noexcept,                                               \
      SEALSOCK_RAW(SYS_setsockopt, fd, level, name, value, len))                                   \
    X(FILE*, fdopen, (int fd, const char* mode), (fd, mode), (fd), noexcept, SEALSOCK_NO_RAW)      \
    X(ssize_t, __read_chk, (int fd, void* buf, size_t n, size_t buflen), (fd, buf, n, buflen),     \
      (fd), , SEALSOCK_NO_RAW)                                                                     \
    X(ssize_t, __recv_chk, (int fd, void* buf, size_t n, size_t buflen, int flags),                \
      (fd, buf, n, buflen, flags), (fd), , SEALSOCK_NO_RAW)                                        \
    X(ssize_t, __recvfrom_chk,                                                                     \
      (int fd, void* buf, size_t n, size_t buflen, int flags, sockaddr* addr, socklen_t* len),     \
      (fd, buf, n, buflen, flags, addr, len), (fd), , SEALSOCK_NO_RAW)

// Real symbols whose hooks are written by hand (they protect the shim's own fds, act on the
// process, or have no fd): X(ret, name, params, args, nx, raw).
#define SEALSOCK_REAL_ONLY(X)                                                                      \
    X(int, close, (int fd), (fd), , SEALSOCK_RAW(SYS_close, fd))                                   \
    X(int, close_range, (unsigned int first, unsigned int last, int flags), (first, last, flags),  \
      noexcept, SEALSOCK_RAW(SYS_close_range, first, last, flags))                                 \
    X(int, dup2, (int oldfd, int newfd), (oldfd, newfd), noexcept, SEALSOCK_NO_RAW)                \
    X(int, dup3, (int oldfd, int newfd, int flags), (oldfd, newfd, flags), noexcept,               \
      SEALSOCK_RAW(SYS_dup3, oldfd, newfd, flags))                                                 \
    X(pid_t, fork, (), (), noexcept, SEALSOCK_NO_RAW)                                              \
    X(int, epoll_ctl, (int epfd, int op, int fd, epoll_event* event), (epfd, op, fd, event),       \
      noexcept, SEALSOCK_RAW(SYS_epoll_ctl, epfd, op, fd, event))                                  \
    X(int, epoll_wait, (int epfd, epoll_event* events, int maxevents, int timeout),                \
      (epfd, events, maxevents, timeout), , SEALSOCK_NO_RAW)                                       \
    X(int, epoll_pwait,                                                                            \
      (int epfd, epoll_event* events, int maxevents, int timeout, const sigset_t* sigmask),        \
      (epfd, events, maxevents, timeout, sigmask), , SEALSOCK_NO_RAW)                              \
    X(int, epoll_pwait2,                                                                           \
      (int epfd, epoll_event* events, int maxevents, const timespec* timeout,                      \
       const sigset_t* sigmask),                                                                   \
      (epfd, events, maxevents, timeout, sigmask), , SEALSOCK_NO_RAW)                              \
    X(int, poll, (pollfd * fds, nfds_t nfds, int timeout), (fds, nfds, timeout), ,                 \
      SEALSOCK_NO_RAW)                                                                             \
    X(int, ppoll, (pollfd * fds, nfds_t nfds, const timespec* timeout, const sigset_t* sigmask),   \
      (fds, nfds, timeout, sigmask), , SEALSOCK_NO_RAW)                                            \
    X(int, posix_spawn,                                                                            \
      (pid_t * pid, const char* path, const posix_spawn_file_actions_t* actions,                   \
       const posix_spawnattr_t* attr, char* const argv[], char* const envp[]),                     \
      (pid, path, actions, attr, argv, envp), , SEALSOCK_NO_RAW)                                   \
    X(int, posix_spawnp,                                                                           \
      (pid_t * pid, const char* file, const posix_spawn_file_actions_t* actions,                   \
       const posix_spawnattr_t* attr, char* const argv[], char* const envp[]),                     \
      (pid, file, actions, attr, argv, envp), , SEALSOCK_NO_RAW)                                   \
    X(int, system, (const char* command), (command), , SEALSOCK_NO_RAW)                            \
    X(FILE*, popen, (const char* command, const char* mode), (command, mode), , SEALSOCK_NO_RAW)   \
    X(int, execve, (const char* path, char* const argv[], char* const envp[]), (path, argv, envp), \
      noexcept, SEALSOCK_RAW(SYS_execve, path, argv, envp))                                        \
    X(int, execv, (const char* path, char* const argv[]), (path, argv), noexcept, SEALSOCK_NO_RAW) \
    X(int, execvp, (const char* file, char* const argv[]), (file, argv), noexcept,                 \
      SEALSOCK_NO_RAW)                                                                             \
    X(int, execvpe, (const char* file, char* const argv[], char* const envp[]),                    \
      (file, argv, envp), noexcept, SEALSOCK_NO_RAW)                                               \
    X(int, fexecve, (int fd, char* const argv[], char* const envp[]), (fd, argv, envp), noexcept,  \
      SEALSOCK_NO_RAW)                                                                             \
    X(int, execveat,                                                                               \
      (int dirfd, const char* path, char* const argv[], char* const envp[], int flags),            \
      (dirfd, path, argv, envp, flags), noexcept,                                                  \
      SEALSOCK_RAW(SYS_execveat, dirfd, path, argv, envp, flags))                                  \
    X(int, getaddrinfo,                                                                            \
      (const char* node, const char* service, const addrinfo* hints, addrinfo** res),              \
      (node, service, hints, res), , SEALSOCK_NO_RAW)

// Real symbols with a variadic or void C signature; their seam wrappers are written by hand in
// shim/sys/real.cc: X(name).
#define SEALSOCK_REAL_VARIADIC(X) X(fcntl) X(fcntl64) X(ioctl) X(syscall) X(closefrom)
