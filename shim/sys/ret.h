// Ret<T>: what every seam call returns: the C return value and the errno the call left behind.
//
// The seam never reports through errno alone (STYLE 4): a session, or a test that injects
// EAGAIN, EINTR or a short write, deals in values. A hook converts back exactly once (finish()
// in shim/hooks/dispatch.h), so errno after a passthrough hook is exactly what the real call left,
// on success as on failure.
#pragma once

#include <cerrno>
#include <type_traits>

namespace sealsock::sys {

template <typename T>
struct [[nodiscard]] Ret {
    T value;
    int err;  // errno as the call left it; meaningful when value is the failure value
};

// The failure value of a C call returning T: -1 for integers, nullptr for pointers.
template <typename T>
constexpr T failure_value() noexcept {
    if constexpr (std::is_pointer_v<T>) {
        return nullptr;
    } else {
        return static_cast<T>(-1);
    }
}

template <typename T>
constexpr Ret<T> fail(int err) noexcept {
    return Ret<T>{failure_value<T>(), err};
}

}  // namespace sealsock::sys
