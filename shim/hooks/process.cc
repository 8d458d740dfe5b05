// Process hooks: fork, vfork, posix_spawn, posix_spawnp and the exec family.
//
// Today they pass through, telling the session layer (if any) about each fork and before each
// exec or spawn. The exec family keeps the program's environment exactly as given: a caller that
// passes an envp without LD_PRELOAD gets a new image without the shim (the session layer will
// close sealed fds the new image inherits, DESIGN I5; that is its decision, not a re-injection).
//
// vfork is run as fork. A vfork child borrows the parent's stack and memory until it execs or
// exits, so an interposed vfork cannot be an ordinary function that calls the real vfork and
// returns: the child's return pops the frame the suspended parent will resume in. The only
// faithful forwarder is a tail jump in assembly, which leaves the shim no moment to act in the
// child, and a vfork child that runs shim code (an exec hook that prepares sessions, the session
// layer's fork bookkeeping) would scribble on the parent's memory and could deadlock on locks a
// parent thread holds. fork gives the child its own memory and runs the atfork handlers; a
// correct vfork program (the child only calls exec or _exit) behaves the same, at the price of
// copying page tables. Valgrind makes the same substitution.
#include <alloca.h>
#include <spawn.h>
#include <unistd.h>

#include <cstdarg>

#include "hooks/dispatch.h"

namespace sealsock::hooks {
namespace {

// Asks the session layer whether an exec (or spawn) with this environment may proceed.
sys::Ret<int> before_exec(char* const envp[]) noexcept {
    const SessionOps* table = registry::ops();
    if (table == nullptr || table->before_exec == nullptr) return {0, errno};
    return table->before_exec(envp);
}

extern "C" char** environ;

}  // namespace

pid_t fork_process() noexcept {
    sys::Ret<pid_t> r = sys::fork();
    if (r.value >= 0) {
        const SessionOps* table = registry::ops();
        if (table != nullptr && table->after_fork != nullptr) table->after_fork(r.value);
    }
    return finish(r);
}

// Runs one exec once before_exec allowed it; returns only on failure, like exec.
template <typename Exec>
int exec_with(char* const envp[], Exec exec) noexcept {
    sys::Ret<int> gate = before_exec(envp);
    if (gate.value < 0) return finish(gate);
    return finish(exec());
}

// execl-style arguments: counts the words after `first` up to the terminating NULL, then copies
// them into argv (which the hook allocates on its own stack with alloca, as glibc's execl does:
// exec must stay async-signal-safe, so no heap). fill_args leaves `ap` just past the NULL, where
// execle finds its envp.
size_t count_args(va_list& ap) noexcept {
    va_list copy;
    va_copy(copy, ap);
    size_t count = 1;
    while (va_arg(copy, const char*) != nullptr)
        ++count;
    va_end(copy);
    return count;
}

void fill_args(const char* first, va_list& ap, char** argv, size_t count) noexcept {
    argv[0] = const_cast<char*>(first);
    for (size_t i = 1; i <= count; ++i)
        argv[i] = va_arg(ap, char*);  // argv[count] is the NULL
}

}  // namespace sealsock::hooks

namespace hooks = sealsock::hooks;
namespace sys = sealsock::sys;
using sealsock::hooks::environ;

SEALSOCK_HOOK pid_t fork() noexcept {
    return hooks::fork_process();
}

SEALSOCK_HOOK pid_t vfork() noexcept {
    return hooks::fork_process();
}

SEALSOCK_HOOK int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* fa,
                              const posix_spawnattr_t* attr, char* const argv[],
                              char* const envp[]) {
    sys::Ret<int> gate = hooks::before_exec(envp);
    if (gate.value < 0) return gate.err;  // posix_spawn reports the error as its value
    return hooks::finish(sys::posix_spawn(pid, path, fa, attr, argv, envp));
}

SEALSOCK_HOOK int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* fa,
                               const posix_spawnattr_t* attr, char* const argv[],
                               char* const envp[]) {
    sys::Ret<int> gate = hooks::before_exec(envp);
    if (gate.value < 0) return gate.err;
    return hooks::finish(sys::posix_spawnp(pid, file, fa, attr, argv, envp));
}

SEALSOCK_HOOK int execve(const char* path, char* const argv[], char* const envp[]) noexcept {
    return hooks::exec_with(envp, [&] { return sys::execve(path, argv, envp); });
}

SEALSOCK_HOOK int execv(const char* path, char* const argv[]) noexcept {
    return hooks::exec_with(environ, [&] { return sys::execv(path, argv); });
}

SEALSOCK_HOOK int execvp(const char* file, char* const argv[]) noexcept {
    return hooks::exec_with(environ, [&] { return sys::execvp(file, argv); });
}

SEALSOCK_HOOK int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
    return hooks::exec_with(envp, [&] { return sys::execvpe(file, argv, envp); });
}

SEALSOCK_HOOK int fexecve(int fd, char* const argv[], char* const envp[]) noexcept {
    return hooks::exec_with(envp, [&] { return sys::fexecve(fd, argv, envp); });
}

SEALSOCK_HOOK int execveat(int dirfd, const char* path, char* const argv[], char* const envp[],
                           int flags) noexcept {
    return hooks::exec_with(envp, [&] { return sys::execveat(dirfd, path, argv, envp, flags); });
}

// The execl family: glibc's own execl* call execve internally (not through the PLT), so they are
// hooked here and forwarded to the real v-form with the collected argv.
SEALSOCK_HOOK int execl(const char* path, const char* arg, ...) noexcept {
    va_list ap;
    va_start(ap, arg);
    const size_t count = hooks::count_args(ap);
    auto** argv = static_cast<char**>(alloca((count + 1) * sizeof(char*)));
    hooks::fill_args(arg, ap, argv, count);
    va_end(ap);
    return hooks::exec_with(environ, [&] { return sys::execv(path, argv); });
}

SEALSOCK_HOOK int execlp(const char* file, const char* arg, ...) noexcept {
    va_list ap;
    va_start(ap, arg);
    const size_t count = hooks::count_args(ap);
    auto** argv = static_cast<char**>(alloca((count + 1) * sizeof(char*)));
    hooks::fill_args(arg, ap, argv, count);
    va_end(ap);
    return hooks::exec_with(environ, [&] { return sys::execvp(file, argv); });
}

SEALSOCK_HOOK int execle(const char* path, const char* arg, ...) noexcept {
    va_list ap;
    va_start(ap, arg);
    const size_t count = hooks::count_args(ap);
    auto** argv = static_cast<char**>(alloca((count + 1) * sizeof(char*)));
    hooks::fill_args(arg, ap, argv, count);
    char* const* envp = va_arg(ap, char* const*);
    va_end(ap);
    return hooks::exec_with(envp, [&] { return sys::execve(path, argv, envp); });
}
