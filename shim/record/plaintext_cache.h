// The opened plaintext of one record, handed out to the program in parts.
//
// Used when the program's buffer is smaller than the plaintext a record may carry: the record is
// opened into the cache and the program takes from it across calls. The storage is inline
// (no heap) and wiped when drained.
//
// Two forms. PlaintextCacheState is the shared-memory form: standard-layout, trivially copyable,
// no pointers, all zero is "empty", so it lives inside a session's ReceiveState (DESIGN I5) and
// pages of it that were never written are never touched. PlaintextCache owns one and wipes it
// when destroyed, for callers that keep a cache of their own.
//
// Thread-safety: none; part of one session's receive state.
#pragma once

#include <sealsock/bytes.h>
#include <sodium.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "record/wire.h"

namespace sealsock::record {

// 16,632 bytes.
class PlaintextCacheState {
  public:
    // The counts come first: an empty cache touches these bytes only.
    static constexpr std::size_t kCountsSize = 2 * sizeof(std::uint32_t);

    // The buffer to open a record into; valid only while the cache is empty.
    [[nodiscard]] MutableByteView space() {
        return empty() ? MutableByteView(bytes_) : MutableByteView();
    }
    // Records that `n` bytes of plaintext were opened into space().
    void filled(std::size_t n) {
        begin_ = 0;
        end_ = static_cast<std::uint32_t>(std::min(n, sizeof bytes_));
    }

    [[nodiscard]] bool empty() const { return begin_ == end_; }
    [[nodiscard]] std::size_t available() const { return end_ - begin_; }
    [[nodiscard]] ByteView view() const { return ByteView(bytes_ + begin_, end_ - begin_); }

    // Copies up to out.size() bytes out; removes them unless `peek`. Returns the count.
    std::size_t take(MutableByteView out, bool peek = false) {
        const std::size_t n = std::min(out.size(), available());
        std::copy_n(bytes_ + begin_, n, out.data());
        if (!peek) consume(n);
        return n;
    }

    void consume(std::size_t n) {
        begin_ += static_cast<std::uint32_t>(std::min(n, available()));
        if (empty()) clear();
    }

    // Wipes the plaintext held (only the bytes a record was opened into: untouched pages stay
    // untouched) and empties the cache.
    void clear() {
        sodium_memzero(bytes_, std::min<std::size_t>(end_, sizeof bytes_));
        begin_ = end_ = 0;
    }

  private:
    std::uint32_t begin_;
    std::uint32_t end_;
    std::uint8_t bytes_[max_plaintext_bound];
};
static_assert(std::is_standard_layout_v<PlaintextCacheState> &&
              std::is_trivially_copyable_v<PlaintextCacheState>);
static_assert(sizeof(PlaintextCacheState) <= 16640);

class PlaintextCache : public PlaintextCacheState {
  public:
    PlaintextCache() { filled(0); }
    ~PlaintextCache() { clear(); }
    PlaintextCache(const PlaintextCache&) = delete;
    PlaintextCache& operator=(const PlaintextCache&) = delete;
};

}  // namespace sealsock::record
