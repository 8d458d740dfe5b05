// The fd-keyed hooks, generated from SEALSOCK_IO_ENTRY_POINTS (shim/sys/entry_points.h): the
// read and write families with their fortify variants, sendfile and splice,
// shutdown, dup, get/setsockopt and fdopen. Each one is a single registry lookup per key fd, then
// the real call or the session layer.
#undef _FORTIFY_SOURCE  // we define read, recv, ... ourselves; no inline fortify wrappers here
#include "hooks/dispatch.h"

using sealsock::Session;
using sealsock::SessionOps;
namespace registry = sealsock::registry;
namespace sys = sealsock::sys;
using sealsock::hooks::finish;
using sealsock::hooks::sealed;

#define SEALSOCK_FD_HOOK(ret, name, params, args, keys, nx, raw)                   \
    SEALSOCK_HOOK ret name params nx {                                             \
        Session* session = registry::find_any keys;                                \
        if (session == nullptr) [[likely]] {                                       \
            if (auto* real = sys::real_##name()) [[likely]]                        \
                return real args;                                                  \
            return finish(sys::name args);                                         \
        }                                                                          \
        return finish(sealed(&SessionOps::name, *session, SEALSOCK_UNPAREN args)); \
    }
SEALSOCK_IO_ENTRY_POINTS(SEALSOCK_FD_HOOK)
#undef SEALSOCK_FD_HOOK
