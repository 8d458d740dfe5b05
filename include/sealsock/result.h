// Result<T>: a value or an error with a human sentence, never both, never silently ignored.
//
// Used where failure is an ordinary outcome (setting up a cipher, parsing a config, talking to the
// agent). The hot record path reports through its own outcome enums instead and never allocates.
// No exception crosses this type: callers test ok() and convert to -1/errno once, at the hook.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace sealsock {

struct Error {
    std::string message;
};

template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
    Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool ok() const { return std::holds_alternative<T>(v_); }
    explicit operator bool() const { return ok(); }

    [[nodiscard]] T& value() & { return std::get<T>(v_); }
    [[nodiscard]] T&& value() && { return std::get<T>(std::move(v_)); }
    [[nodiscard]] const T& value() const& { return std::get<T>(v_); }
    [[nodiscard]] const Error& error() const { return std::get<Error>(v_); }

  private:
    std::variant<T, Error> v_;
};

// Result of an operation that returns nothing but may fail.
class [[nodiscard]] Status {
  public:
    Status() = default;
    Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

    [[nodiscard]] bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    [[nodiscard]] const Error& error() const { return error_; }

  private:
    Error error_;
    bool ok_ = true;
};

inline Error make_error(std::string message) {
    return Error{std::move(message)};
}

}  // namespace sealsock
