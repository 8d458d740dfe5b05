// prctl(PR_SET_SECCOMP) and seccomp(2) (the latter through syscall(), glibc has no wrapper): a
// program putting itself under a filter. The shim prepares while every call is still allowed,
// then confines itself in this process (shim/sys/confined.h), whatever the filter says.
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cstdarg>

#include "hooks/dispatch.h"
#include "sys/confined.h"

namespace sealsock::hooks {

bool confines(long number, const long (&a)[6]) noexcept {
    if (number == SYS_prctl) return a[0] == PR_SET_SECCOMP;
    if (number == SYS_seccomp)
        return a[0] == SECCOMP_SET_MODE_STRICT || a[0] == SECCOMP_SET_MODE_FILTER;
    return false;
}

long confining_call(long number, const long (&a)[6]) noexcept {
    const bool was = confined::active();
    const SessionOps* table = registry::ops();
    if (!was && table != nullptr && table->before_confinement != nullptr)
        table->before_confinement();
    confined::set(true);
    const sys::Ret<long> r = sys::syscall(number, a);
    if (r.value < 0) confined::set(was);
    return finish(r);
}

}  // namespace sealsock::hooks

// glibc reads four argument words whatever the option; so does this hook.
SEALSOCK_HOOK int prctl(int option, ...) noexcept {
    va_list ap;
    va_start(ap, option);
    long a[6] = {option, 0, 0, 0, 0, 0};
    for (int i = 1; i < 5; ++i)
        a[i] = static_cast<long>(va_arg(ap, unsigned long));
    va_end(ap);
    if (sealsock::hooks::confines(SYS_prctl, a))
        return static_cast<int>(sealsock::hooks::confining_call(SYS_prctl, a));
    return static_cast<int>(sealsock::hooks::finish(sealsock::sys::syscall(SYS_prctl, a)));
}
