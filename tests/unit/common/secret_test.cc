#include <sealsock/secret.h>

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <utility>

using namespace sealsock;

TEST_SUITE("common.secret") {
    TEST_CASE("a moved-from secret is wiped; clones are explicit and equal") {
        const std::array<std::uint8_t, 4> k = {1, 2, 3, 4};
        Secret a(k);
        CHECK(a.equals(k));
        Secret b = a.clone();
        CHECK(b.equals(k));
        Secret c = std::move(a);
        CHECK(c.equals(k));
        CHECK(a.empty());  // NOLINT(bugprone-use-after-move): the point of the test
        CHECK_FALSE(a.equals(k));
        c.wipe();
        CHECK(c.empty());
    }

    TEST_CASE("comparison needs equal length and equal bytes") {
        const std::array<std::uint8_t, 3> x = {9, 9, 9};
        const std::array<std::uint8_t, 3> y = {9, 9, 8};
        Secret s(x);
        CHECK(s.equals(x));
        CHECK_FALSE(s.equals(y));
        CHECK_FALSE(s.equals(std::span<const std::uint8_t>(x).first(2)));
    }

    TEST_CASE("more than the capacity is refused, not truncated") {
        std::array<std::uint8_t, Secret::capacity + 1> big{};
        Secret s(big);
        CHECK(s.empty());
        CHECK(s.resize_for_write(Secret::capacity + 1).empty());
        CHECK(s.resize_for_write(48).size() == 48);
    }
}

TEST_SUITE("common.secret") {
    TEST_CASE("SecureBuffer: guarded memory, moved not copied") {
        SecureBuffer a(32);
        REQUIRE(a.valid());
        CHECK(a.size() == 32);
        a.data()[0] = 7;
        SecureBuffer b = std::move(a);
        CHECK_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
        CHECK(b.data()[0] == 7);
        CHECK_FALSE(SecureBuffer(0).valid());
    }
}
