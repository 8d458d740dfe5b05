// fcntl, fcntl64 and ioctl: variadic C entry points. The optional third argument is read as one
// pointer-sized word, as glibc's own wrappers read it, and forwarded unchanged (an int flag, a
// long, or a pointer to struct flock / int / ifreq all travel in that word).
#include <cstdarg>

#include "hooks/dispatch.h"

namespace sealsock::hooks {
namespace {

using FcntlSeam = sys::Ret<int> (*)(int, int, void*) noexcept;

int fcntl_hook(FcntlSeam real, int fd, int cmd, void* arg) noexcept {
    Session* session = registry::find(fd);
    if (session == nullptr) [[likely]]
        return finish(real(fd, cmd, arg));
    return finish(sealed(&SessionOps::fcntl, *session, fd, cmd, arg));
}

}  // namespace
}  // namespace sealsock::hooks

using sealsock::Session;
using sealsock::SessionOps;
namespace registry = sealsock::registry;
namespace sys = sealsock::sys;
namespace hooks = sealsock::hooks;

SEALSOCK_HOOK int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void* arg = va_arg(ap, void*);
    va_end(ap);
    return hooks::fcntl_hook(&sys::fcntl, fd, cmd, arg);
}

SEALSOCK_HOOK int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void* arg = va_arg(ap, void*);
    va_end(ap);
    return hooks::fcntl_hook(&sys::fcntl64, fd, cmd, arg);
}

SEALSOCK_HOOK int ioctl(int fd, unsigned long request, ...) noexcept {
    va_list ap;
    va_start(ap, request);
    void* arg = va_arg(ap, void*);
    va_end(ap);
    Session* session = registry::find(fd);
    if (session == nullptr) [[likely]]
        return hooks::finish(sys::ioctl(fd, request, arg));
    return hooks::finish(hooks::sealed(&SessionOps::ioctl, *session, fd, request, arg));
}
