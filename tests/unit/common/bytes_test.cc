#include <sealsock/bytes.h>

#include <doctest/doctest.h>

#include <array>
#include <cstdint>

using namespace sealsock;

TEST_SUITE("common.bytes") {
    TEST_CASE("Reader reads big-endian fields and refuses to read past the end") {
        const std::array<std::uint8_t, 11> data = {1, 2, 3, 4, 5, 6, 7, 3, 'a', 'b', 'c'};
        Reader r(data);
        std::uint8_t a = 0;
        std::uint16_t b = 0;
        std::uint32_t c = 0;
        REQUIRE(r.read_u8(a));
        REQUIRE(r.read_u16(b));
        REQUIRE(r.read_u24(c));
        CHECK(a == 1);
        CHECK(b == 0x0203);
        CHECK(c == 0x040506);
        ByteView v;
        CHECK_FALSE(r.read_prefixed(1, v));  // prefix 7 > 4 bytes left: reader unchanged
        CHECK(r.remaining() == 5);
        CHECK(r.skip(1));
        REQUIRE(r.read_prefixed(1, v));
        CHECK(v.size() == 3);
        CHECK(r.empty());
        CHECK_FALSE(r.read_u8(a));
        CHECK_FALSE(r.read_bytes(1, v));
    }

    TEST_CASE("Writer refuses everything after the first write that does not fit") {
        std::array<std::uint8_t, 5> buf{};
        Writer w(buf);
        w.u16(0xabcd);
        w.u24(0x010203);
        CHECK(w.ok());
        CHECK(w.written() == 5);
        CHECK(buf == std::array<std::uint8_t, 5>{0xab, 0xcd, 1, 2, 3});
        w.u8(9);
        CHECK_FALSE(w.ok());
        CHECK(w.written() == 5);
        CHECK(w.claim(0).empty());
        Writer w2(buf);
        CHECK(w2.claim(6).empty());
        CHECK_FALSE(w2.ok());
    }
}
