// Bounds-checked reading and writing of wire bytes.
//
// Every parser in sealsock reads through a Reader and every encoder writes through a Writer, so
// that a parser reads like the schema it implements and no code indexes a buffer by hand. A read
// past the end does not throw and does not touch memory: it returns false (or an empty span) and
// leaves the reader where it was.
//
// Thread-safety: none; a Reader or Writer is a cursor owned by one caller. Both are safe to use
// from a hook and from a signal handler (no allocation, no locks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace sealsock {

using ByteView = std::span<const std::uint8_t>;
using MutableByteView = std::span<std::uint8_t>;

class Reader {
  public:
    explicit Reader(ByteView bytes) : bytes_(bytes) {}

    [[nodiscard]] std::size_t remaining() const { return bytes_.size() - pos_; }
    [[nodiscard]] bool empty() const { return remaining() == 0; }
    [[nodiscard]] std::size_t position() const { return pos_; }

    [[nodiscard]] bool read_u8(std::uint8_t& out) { return read_uint(1, out); }
    [[nodiscard]] bool read_u16(std::uint16_t& out) { return read_uint(2, out); }
    [[nodiscard]] bool read_u24(std::uint32_t& out) { return read_uint(3, out); }
    [[nodiscard]] bool read_u32(std::uint32_t& out) { return read_uint(4, out); }
    [[nodiscard]] bool read_u64(std::uint64_t& out) { return read_uint(8, out); }

    // Takes the next n bytes; false (reader unchanged) when fewer remain.
    [[nodiscard]] bool read_bytes(std::size_t n, ByteView& out) {
        if (n > remaining()) return false;
        out = bytes_.subspan(pos_, n);
        pos_ += n;
        return true;
    }

    // Takes a vector with a big-endian length prefix of prefix_len (1, 2, 3 or 4) bytes.
    [[nodiscard]] bool read_prefixed(std::size_t prefix_len, ByteView& out) {
        const std::size_t start = pos_;
        std::uint64_t n = 0;
        if (!read_uint(prefix_len, n) || !read_bytes(n, out)) {
            pos_ = start;
            return false;
        }
        return true;
    }

    [[nodiscard]] bool skip(std::size_t n) {
        ByteView ignored;
        return read_bytes(n, ignored);
    }

  private:
    template <typename T>
    [[nodiscard]] bool read_uint(std::size_t width, T& out) {
        if (width > remaining() || width > sizeof(std::uint64_t)) return false;
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < width; ++i)
            v = (v << 8) | bytes_[pos_ + i];
        pos_ += width;
        out = static_cast<T>(v);
        return true;
    }

    ByteView bytes_;
    std::size_t pos_ = 0;
};

class Writer {
  public:
    explicit Writer(MutableByteView out) : out_(out) {}

    [[nodiscard]] std::size_t written() const { return pos_; }
    [[nodiscard]] std::size_t remaining() const { return out_.size() - pos_; }
    // False once any write did not fit; the writer then refuses everything after it.
    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] ByteView view() const { return ByteView(out_.data(), pos_); }

    void u8(std::uint8_t v) { uint(1, v); }
    void u16(std::uint16_t v) { uint(2, v); }
    void u24(std::uint32_t v) { uint(3, v); }
    void u32(std::uint32_t v) { uint(4, v); }
    void u64(std::uint64_t v) { uint(8, v); }

    void bytes(ByteView b) {
        if (!reserve(b.size())) return;
        for (std::size_t i = 0; i < b.size(); ++i)
            out_[pos_ + i] = b[i];
        pos_ += b.size();
    }

    // Marks the output as failed (for a value that cannot be encoded at all).
    void fail() { ok_ = false; }

    // Reserves n bytes to be filled later (for example by an AEAD) and returns them.
    [[nodiscard]] MutableByteView claim(std::size_t n) {
        if (!reserve(n)) return {};
        MutableByteView r = out_.subspan(pos_, n);
        pos_ += n;
        return r;
    }

  private:
    bool reserve(std::size_t n) {
        if (!ok_ || n > remaining()) {
            ok_ = false;
            return false;
        }
        return true;
    }

    void uint(std::size_t width, std::uint64_t v) {
        if (!reserve(width)) return;
        for (std::size_t i = 0; i < width; ++i)
            out_[pos_ + i] = static_cast<std::uint8_t>(v >> (8 * (width - 1 - i)));
        pos_ += width;
    }

    MutableByteView out_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

inline ByteView as_bytes(std::string_view s) {
    return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

}  // namespace sealsock
