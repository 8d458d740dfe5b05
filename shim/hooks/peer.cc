// sealsock_peer(): the one call libsealsock.so offers programs that know it is there
// (include/sealsock/peer.h). It is not a hook: no C library function of that name exists.
#include <sealsock/peer.h>

#include "hooks/dispatch.h"

using sealsock::Session;
using sealsock::SessionOps;
namespace registry = sealsock::registry;
namespace hooks = sealsock::hooks;

SEALSOCK_HOOK int sealsock_peer(int fd, struct sealsock_peer_info* out, int timeout_ms) {
    if (out == nullptr) {
        errno = EFAULT;
        return -1;
    }
    Session* session = registry::find(fd);
    if (session == nullptr) {
        errno = fd < 0 ? EBADF : ENOTCONN;
        return -1;
    }
    return hooks::finish(hooks::sealed(&SessionOps::peer, *session, out, timeout_ms));
}
