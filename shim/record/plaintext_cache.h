// The opened plaintext of one record, handed out to the program in parts.
//
// Used when the program's buffer is smaller than the plaintext a record may carry: the record is
// opened into the cache and the program takes from it across calls. The storage is inline
// (no heap) so a cache can live in shared session memory; it is wiped when drained.
//
// Thread-safety: none; part of one session's receive state.
#pragma once

#include <sealsock/bytes.h>
#include <sodium.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "record/wire.h"

namespace sealsock::record {

class PlaintextCache {
  public:
    PlaintextCache() = default;
    ~PlaintextCache() { sodium_memzero(bytes_, sizeof bytes_); }
    PlaintextCache(const PlaintextCache&) = delete;
    PlaintextCache& operator=(const PlaintextCache&) = delete;

    // The buffer to open a record into; valid only while the cache is empty.
    [[nodiscard]] MutableByteView space() {
        return empty() ? MutableByteView(bytes_) : MutableByteView();
    }
    // Records that `n` bytes of plaintext were opened into space().
    void filled(std::size_t n) {
        begin_ = 0;
        end_ = std::min(n, sizeof bytes_);
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
        begin_ += std::min(n, available());
        if (empty()) clear();
    }

    void clear() {
        sodium_memzero(bytes_, end_);
        begin_ = end_ = 0;
    }

  private:
    std::uint8_t bytes_[max_plaintext_bound] = {};
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

}  // namespace sealsock::record
