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
#include <cstring>

#include "hooks/dispatch.h"

namespace sealsock::hooks {
namespace {

extern "C" char** environ;

// The environment entry the session layer hands a new image (the exec hand-off names its memfds
// and sessions): sized for a few hundred sessions, on the stack (exec must stay
// async-signal-safe, so no heap).
constexpr std::size_t kEntrySize = 8192;

// Asks the session layer whether an exec (or spawn) may proceed and what it must add to the
// environment. Returns -1 (errno in err), 0 (run as is) or 1 (add `entry`).
sys::Ret<int> before_exec(const ExecTarget& target, char* const envp[], char* entry) noexcept {
    const SessionOps* table = registry::ops();
    if (table == nullptr || table->before_exec == nullptr) return {0, errno};
    return table->before_exec(target, envp, entry, kEntrySize);
}

void after_exec(bool started) noexcept {
    const SessionOps* table = registry::ops();
    if (table != nullptr && table->after_exec != nullptr) table->after_exec(started);
}

std::size_t env_count(char* const envp[]) noexcept {
    std::size_t n = 0;
    while (envp != nullptr && envp[n] != nullptr)
        ++n;
    return n;
}

// envp with `entry` added (any entry of the same name dropped), into `out` (count + 2 slots).
void with_entry(char* const envp[], char* entry, char** out) noexcept {
    const char* eq = std::strchr(entry, '=');
    const std::size_t name = eq == nullptr ? 0 : static_cast<std::size_t>(eq - entry) + 1;
    std::size_t n = 0;
    for (char* const* e = envp; e != nullptr && *e != nullptr; ++e)
        if (std::strncmp(*e, entry, name) != 0) out[n++] = *e;
    out[n++] = entry;
    out[n] = nullptr;
}

}  // namespace

pid_t fork_process() noexcept {
    const SessionOps* table = registry::ops();
    if (table != nullptr && table->before_fork != nullptr) table->before_fork();
    sys::Ret<pid_t> r = sys::fork();
    if (table != nullptr && table->after_fork != nullptr) table->after_fork(r.value);
    return finish(r);
}

// Runs one exec or spawn once before_exec allowed it, with the environment it asked for, then
// lets the session layer undo its preparations (an exec returns only on failure). `run` takes
// the environment to pass. The copy of envp lives on this frame (alloca, as glibc's execl does).
template <typename Run>
sys::Ret<int> exec_with(const ExecTarget& target, char* const envp[], Run run) noexcept {
    char entry[kEntrySize];
    const sys::Ret<int> gate = before_exec(target, envp, entry);
    if (gate.value < 0) return gate;
    char* const* env = envp;
    if (gate.value > 0) {
        auto** copy = static_cast<char**>(alloca((env_count(envp) + 2) * sizeof(char*)));
        with_entry(envp, entry, copy);
        env = copy;
    }
    const sys::Ret<int> r = run(env);
    after_exec(!target.replaces && r.value == 0);  // a spawn that returned 0 started its child
    return r;
}

ExecTarget file_target(const char* file, bool search_path) noexcept {
    ExecTarget t;
    t.file = file;
    t.search_path = search_path;
    return t;
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
using sealsock::ExecTarget;
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
    ExecTarget t = hooks::file_target(path, false);
    t.replaces = false;
    t.actions = fa;
    // posix_spawn reports the error as its value.
    const sys::Ret<int> r = hooks::exec_with(t, envp, [&](char* const* env) {
        return sys::posix_spawn(pid, path, fa, attr, argv, env);
    });
    return r.value < 0 ? r.err : hooks::finish(r);
}

SEALSOCK_HOOK int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* fa,
                               const posix_spawnattr_t* attr, char* const argv[],
                               char* const envp[]) {
    ExecTarget t = hooks::file_target(file, true);
    t.replaces = false;
    t.actions = fa;
    const sys::Ret<int> r = hooks::exec_with(t, envp, [&](char* const* env) {
        return sys::posix_spawnp(pid, file, fa, attr, argv, env);
    });
    return r.value < 0 ? r.err : hooks::finish(r);
}

// system() and popen() spawn /bin/sh through the C library's internal posix_spawn, past every
// hook: no hand-off can reach the shell, so sealed fds are close-on-exec for it (the session
// layer's rule for a program without the shim) and are restored when the call returns.
SEALSOCK_HOOK int system(const char* command) {
    if (command == nullptr) return sys::system(command).value;  // "is there a shell?"
    ExecTarget t = hooks::file_target("/bin/sh", false);
    t.replaces = false;
    t.in_libc = true;
    int status = -1;
    const sys::Ret<int> r = hooks::exec_with(t, environ, [&](char* const*) {
        const sys::Ret<int> s = sys::system(command);
        status = s.value;
        return sys::Ret<int>{s.value == -1 ? -1 : 1, s.err};  // never "a spawn that started"
    });
    if (r.value < 0 && status == -1) errno = r.err;
    return status;
}

SEALSOCK_HOOK FILE* popen(const char* command, const char* mode) {
    ExecTarget t = hooks::file_target("/bin/sh", false);
    t.replaces = false;
    t.in_libc = true;
    FILE* f = nullptr;
    const sys::Ret<int> r = hooks::exec_with(t, environ, [&](char* const*) {
        const sys::Ret<FILE*> p = sys::popen(command, mode);
        f = p.value;
        return sys::Ret<int>{f == nullptr ? -1 : 1, p.err};
    });
    if (f == nullptr) errno = r.err;
    return f;
}

SEALSOCK_HOOK int execve(const char* path, char* const argv[], char* const envp[]) noexcept {
    return hooks::finish(
        hooks::exec_with(hooks::file_target(path, false), envp,
                         [&](char* const* env) { return sys::execve(path, argv, env); }));
}

SEALSOCK_HOOK int execv(const char* path, char* const argv[]) noexcept {
    return hooks::finish(
        hooks::exec_with(hooks::file_target(path, false), environ,
                         [&](char* const* env) { return sys::execve(path, argv, env); }));
}

SEALSOCK_HOOK int execvp(const char* file, char* const argv[]) noexcept {
    return hooks::finish(
        hooks::exec_with(hooks::file_target(file, true), environ,
                         [&](char* const* env) { return sys::execvpe(file, argv, env); }));
}

SEALSOCK_HOOK int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
    return hooks::finish(
        hooks::exec_with(hooks::file_target(file, true), envp,
                         [&](char* const* env) { return sys::execvpe(file, argv, env); }));
}

SEALSOCK_HOOK int fexecve(int fd, char* const argv[], char* const envp[]) noexcept {
    ExecTarget t;
    t.fd = fd;
    return hooks::finish(
        hooks::exec_with(t, envp, [&](char* const* env) { return sys::fexecve(fd, argv, env); }));
}

SEALSOCK_HOOK int execveat(int dirfd, const char* path, char* const argv[], char* const envp[],
                           int flags) noexcept {
    ExecTarget t;
    t.file = path;
    t.fd = dirfd;
    return hooks::finish(hooks::exec_with(
        t, envp, [&](char* const* env) { return sys::execveat(dirfd, path, argv, env, flags); }));
}

// The execl family: glibc's own execl* call execve internally (not through the PLT), so they are
// hooked here and forwarded to the real e-form with the collected argv.
SEALSOCK_HOOK int execl(const char* path, const char* arg, ...) noexcept {
    va_list ap;
    va_start(ap, arg);
    const size_t count = hooks::count_args(ap);
    auto** argv = static_cast<char**>(alloca((count + 1) * sizeof(char*)));
    hooks::fill_args(arg, ap, argv, count);
    va_end(ap);
    return hooks::finish(
        hooks::exec_with(hooks::file_target(path, false), environ,
                         [&](char* const* env) { return sys::execve(path, argv, env); }));
}

SEALSOCK_HOOK int execlp(const char* file, const char* arg, ...) noexcept {
    va_list ap;
    va_start(ap, arg);
    const size_t count = hooks::count_args(ap);
    auto** argv = static_cast<char**>(alloca((count + 1) * sizeof(char*)));
    hooks::fill_args(arg, ap, argv, count);
    va_end(ap);
    return hooks::finish(
        hooks::exec_with(hooks::file_target(file, true), environ,
                         [&](char* const* env) { return sys::execvpe(file, argv, env); }));
}

SEALSOCK_HOOK int execle(const char* path, const char* arg, ...) noexcept {
    va_list ap;
    va_start(ap, arg);
    const size_t count = hooks::count_args(ap);
    auto** argv = static_cast<char**>(alloca((count + 1) * sizeof(char*)));
    hooks::fill_args(arg, ap, argv, count);
    char* const* envp = va_arg(ap, char* const*);
    va_end(ap);
    return hooks::finish(
        hooks::exec_with(hooks::file_target(path, false), envp,
                         [&](char* const* env) { return sys::execve(path, argv, env); }));
}
