// The one log line of a sealed call with no session layer behind it (see dispatch.h).
#include "hooks/dispatch.h"

#include <atomic>

namespace sealsock::hooks {

void log_no_session_op() noexcept {
    static std::atomic<bool> logged{false};  // constant-initialised: no guard, signal-safe
    if (!logged.exchange(true, std::memory_order_relaxed))
        sys::log_line(
            "a sealed fd reached a call with no session layer behind it: failing it "
            "with EIO (fail closed)");
}

}  // namespace sealsock::hooks
