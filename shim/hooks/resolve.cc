// getaddrinfo: passes through, then tells the session layer the name and the addresses it
// resolved to (SNI and host-name rules need the name the program asked for).
#include <netdb.h>

#include "hooks/dispatch.h"

SEALSOCK_HOOK int getaddrinfo(const char* node, const char* service, const addrinfo* hints,
                              addrinfo** res) {
    namespace sys = sealsock::sys;
    sys::Ret<int> r = sys::getaddrinfo(node, service, hints, res);
    if (r.value == 0 && node != nullptr) {
        const sealsock::SessionOps* table = sealsock::registry::ops();
        if (table != nullptr && table->name_resolved != nullptr) table->name_resolved(node, *res);
    }
    return sealsock::hooks::finish(r);
}
