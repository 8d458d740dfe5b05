// Secret: key material with one owner that wipes itself.
//
// Traffic secrets, AEAD keys and IVs live in a Secret: fixed capacity, stored inline (no heap),
// wiped with sodium_memzero when destroyed, overwritten or moved from. It is inline on purpose:
// the shim keeps session state in shared memory so that a forked child and its parent advance the
// same sequence numbers (DESIGN I5), and a pointer to a private allocation (sodium_malloc included)
// would not be shared. Copying is explicit (clone) so a secret never duplicates by accident.
// Comparison is constant-time.
//
// Thread-safety: none (owned by one session). No allocation: safe in a hook.
#pragma once

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace sealsock {

class Secret {
  public:
    // Large enough for the largest TLS 1.3 hash in use (SHA-384: 48 bytes).
    static constexpr std::size_t capacity = 64;

    Secret() = default;
    // Copies `bytes` in; bytes beyond capacity are a programming error and yield an empty secret.
    explicit Secret(std::span<const std::uint8_t> bytes) { assign(bytes); }
    ~Secret() { wipe(); }

    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;
    Secret(Secret&& other) noexcept { take(other); }
    Secret& operator=(Secret&& other) noexcept {
        if (this != &other) take(other);
        return *this;
    }

    [[nodiscard]] Secret clone() const { return Secret(view()); }

    void assign(std::span<const std::uint8_t> bytes) {
        wipe();
        if (bytes.size() > capacity) return;
        for (std::size_t i = 0; i < bytes.size(); ++i)
            bytes_[i] = bytes[i];
        size_ = bytes.size();
    }

    // Makes the secret n bytes long (contents unspecified) so a KDF can write into it.
    [[nodiscard]] std::span<std::uint8_t> resize_for_write(std::size_t n) {
        wipe();
        if (n > capacity) return {};
        size_ = n;
        return {bytes_, n};
    }

    void wipe() {
        sodium_memzero(bytes_, sizeof bytes_);
        size_ = 0;
    }

    [[nodiscard]] std::span<const std::uint8_t> view() const { return {bytes_, size_}; }
    [[nodiscard]] std::size_t size() const { return size_; }
    [[nodiscard]] bool empty() const { return size_ == 0; }

    [[nodiscard]] bool equals(std::span<const std::uint8_t> other) const {
        return other.size() == size_ && sodium_memcmp(bytes_, other.data(), size_) == 0;
    }

  private:
    void take(Secret& other) {
        assign(other.view());
        other.wipe();
    }

    std::uint8_t bytes_[capacity] = {};
    std::size_t size_ = 0;
};

}  // namespace sealsock

namespace sealsock {

// SecureBuffer: variable-size secret storage in libsodium guarded, locked memory, for material
// that is large or long-lived and private to one process: passphrases, private-key PEM text in
// the agent. Wiped and unmapped on destruction. Allocation may fail (empty buffer); callers test
// valid(). Initialises libsodium itself if nobody has (sodium_malloc aborts otherwise).
class SecureBuffer {
  public:
    SecureBuffer() = default;
    explicit SecureBuffer(std::size_t size) {
        if (size == 0 || sodium_init() < 0) return;
        data_ = sodium_malloc(size);
        size_ = data_ != nullptr ? size : 0;
    }
    ~SecureBuffer() { sodium_free(data_); }
    SecureBuffer(const SecureBuffer&) = delete;
    SecureBuffer& operator=(const SecureBuffer&) = delete;
    SecureBuffer(SecureBuffer&& other) noexcept : data_(other.data_), size_(other.size_) {
        other.data_ = nullptr;
        other.size_ = 0;
    }
    SecureBuffer& operator=(SecureBuffer&& other) noexcept {
        if (this != &other) {
            sodium_free(data_);
            data_ = other.data_;
            size_ = other.size_;
            other.data_ = nullptr;
            other.size_ = 0;
        }
        return *this;
    }

    [[nodiscard]] bool valid() const { return data_ != nullptr; }
    [[nodiscard]] std::size_t size() const { return size_; }
    [[nodiscard]] std::uint8_t* data() { return static_cast<std::uint8_t*>(data_); }
    [[nodiscard]] const std::uint8_t* data() const {
        return static_cast<const std::uint8_t*>(data_);
    }
    [[nodiscard]] std::span<std::uint8_t> span() { return {data(), size_}; }
    [[nodiscard]] std::span<const std::uint8_t> view() const { return {data(), size_}; }

  private:
    void* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace sealsock
