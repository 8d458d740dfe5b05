// connect, accept and accept4: the calls that create connections. On an fd a session already
// owns they go to that session like every other call; on any other fd the session layer decides
// whether the new connection is sealed (its open_connect / open_accept slots), and without a
// session layer they are the real call.
#include "hooks/dispatch.h"

using sealsock::Session;
using sealsock::SessionOps;
namespace registry = sealsock::registry;
namespace sys = sealsock::sys;
using sealsock::hooks::finish;
using sealsock::hooks::sealed;

SEALSOCK_HOOK int connect(int fd, const sockaddr* addr, socklen_t len) {
    if (Session* session = registry::find(fd)) [[unlikely]]
        return finish(sealed(&SessionOps::connect, *session, fd, addr, len));
    const SessionOps* table = registry::ops();
    if (table != nullptr && table->open_connect != nullptr)
        return finish(table->open_connect(fd, addr, len));
    return finish(sys::connect(fd, addr, len));
}

SEALSOCK_HOOK int accept(int fd, sockaddr* addr, socklen_t* len) {
    if (Session* session = registry::find(fd)) [[unlikely]]
        return finish(sealed(&SessionOps::accept, *session, fd, addr, len));
    const SessionOps* table = registry::ops();
    if (table != nullptr && table->open_accept != nullptr)
        return finish(table->open_accept(fd, addr, len, 0, false));
    return finish(sys::accept(fd, addr, len));
}

SEALSOCK_HOOK int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
    if (Session* session = registry::find(fd)) [[unlikely]]
        return finish(sealed(&SessionOps::accept4, *session, fd, addr, len, flags));
    const SessionOps* table = registry::ops();
    if (table != nullptr && table->open_accept != nullptr)
        return finish(table->open_accept(fd, addr, len, flags, true));
    return finish(sys::accept4(fd, addr, len, flags));
}
