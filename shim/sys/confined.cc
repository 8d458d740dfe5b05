#include "sys/confined.h"

#include <atomic>

namespace sealsock::confined {
namespace {
std::atomic<bool> g_active{false};
}  // namespace

bool active() noexcept {
    return g_active.load(std::memory_order_acquire);
}

void set(bool on) noexcept {
    g_active.store(on, std::memory_order_release);
}

}  // namespace sealsock::confined
