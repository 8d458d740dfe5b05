#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "record/open.h"
#include "record/plaintext_cache.h"
#include "record/seal.h"
#include "support/channel.h"
#include "support/forge.h"

using namespace sealsock;
using namespace sealsock::record;
using sealsock::test::Bytes;
using sealsock::test::make_channel;
using sealsock::test::open_all;
using sealsock::test::seal_all;

namespace {

const std::uint16_t all_suites[] = {0x1301, 0x1302, 0x1303};

Bytes pattern(std::size_t n, std::uint8_t seed = 0) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = static_cast<std::uint8_t>(i * 131 + seed + (i >> 8));
    return b;
}

}  // namespace

TEST_SUITE("record.seal_open") {
    TEST_CASE("data of many sizes round-trips in every suite") {
        for (std::uint16_t code : all_suites) {
            for (std::size_t size : {std::size_t{1}, std::size_t{100}, max_plaintext - 1,
                                     max_plaintext, max_plaintext + 1, std::size_t{100000}}) {
                CAPTURE(code);
                CAPTURE(size);
                auto ch = make_channel(*find_suite(code));
                const Bytes data = pattern(size);
                const Bytes wire = seal_all(ch.sealer, data);
                CHECK(wire.size() == sealed_size(size));
                const auto d = open_all(ch.opener, wire);
                CHECK(d.last.status == OpenStatus::data);
                CHECK(d.data == data);
                CHECK(ch.opener.sequence() == ch.sealer.sequence());
            }
        }
    }

    TEST_CASE("records carry at most 2^14 bytes and seal_data writes whole records only") {
        auto ch = make_channel(*find_suite(std::uint16_t{0x1301}));
        const Bytes data = pattern(3 * max_plaintext);
        Bytes out(max_sealed_record + 100);  // room for one full record and a bit
        SealOutcome r = ch.sealer.seal_data(data, out, 0);
        CHECK(r.ok);
        CHECK(r.consumed == max_plaintext + 100 - record_overhead);
        CHECK(r.written == out.size());
        Bytes tiny(record_overhead);  // no room for even one byte of data
        r = ch.sealer.seal_data(data, tiny, 0);
        CHECK(r.consumed == 0);
        CHECK(r.written == 0);
        CHECK(r.ok);
    }

    TEST_CASE("every prefix of a record asks for exactly the missing bytes") {
        auto ch = make_channel(*find_suite(std::uint16_t{0x1303}));
        const Bytes wire = seal_all(ch.sealer, pattern(300));
        Bytes out(300);
        for (std::size_t k = 0; k < wire.size(); ++k) {
            const OpenOutcome o = ch.opener.open(ByteView(wire).first(k), out);
            REQUIRE(o.status == OpenStatus::need_more);
            CHECK(o.needed == (k < header_size ? header_size - k : wire.size() - k));
        }
        CHECK(ch.opener.open(wire, out).status == OpenStatus::data);
    }

    TEST_CASE(
        "a record larger than the caller's buffer opens into the cache, handed out in "
        "parts") {
        auto ch = make_channel(*find_suite(std::uint16_t{0x1302}));
        const Bytes data = pattern(1000, 9);
        const Bytes wire = seal_all(ch.sealer, data);
        Bytes small(10);
        OpenOutcome o = ch.opener.open(wire, small);
        REQUIRE(o.status == OpenStatus::need_buffer);
        CHECK(o.needed == 1000);
        CHECK(ch.opener.sequence() == 0);  // nothing was opened

        auto cache = std::make_unique<PlaintextCache>();
        o = ch.opener.open(wire, cache->space());
        REQUIRE(o.status == OpenStatus::data);
        cache->filled(o.plaintext);
        CHECK(cache->available() == 1000);
        CHECK(cache->space().empty());  // no second record while the first is handed out
        Bytes peeked(10);
        CHECK(cache->take(peeked, true) == 10);
        Bytes got;
        while (!cache->empty()) {
            const std::size_t n = cache->take(small);
            got.insert(got.end(), small.begin(), small.begin() + n);
        }
        CHECK(Bytes(got.begin(), got.begin() + 10) == peeked);
        CHECK(got == data);
        CHECK_FALSE(cache->space().empty());
    }

    TEST_CASE("a buffer exactly the size of the plaintext is enough (the type byte spills)") {
        auto ch = make_channel(*find_suite(std::uint16_t{0x1301}));
        const Bytes data = pattern(777);
        const Bytes wire = seal_all(ch.sealer, data);
        Bytes out(777);
        const OpenOutcome o = ch.opener.open(wire, out);
        REQUIRE(o.status == OpenStatus::data);
        CHECK(o.plaintext == 777);
        CHECK(out == data);
    }

    TEST_CASE("a scheduled KeyUpdate precedes the data and both sides switch keys") {
        for (std::uint16_t code : all_suites) {
            CAPTURE(code);
            auto ch = make_channel(*find_suite(code));
            const Bytes before = seal_all(ch.sealer, pattern(50, 1));
            ch.sealer.schedule_key_update(false);
            const Bytes after = seal_all(ch.sealer, pattern(50, 2));
            CHECK(ch.sealer.generation() == 1);
            CHECK(ch.sealer.sequence() == 1);  // sequence restarts at 0 under the new key
            CHECK(after.size() == sealed_size(50) + 5 + record_overhead);

            auto d = open_all(ch.opener, before);
            CHECK(d.data == pattern(50, 1));
            d = open_all(ch.opener, after);
            CHECK(d.discarded == 1);
            CHECK(d.data == pattern(50, 2));
            CHECK(ch.opener.generation() == 1);
            CHECK_FALSE(ch.opener.take_update_request());
        }
    }

    TEST_CASE("update_requested is answered once, with update_not_requested") {
        auto a_to_b = make_channel(*find_suite(std::uint16_t{0x1303}), {}, 0, {}, 1);
        auto b_to_a = make_channel(*find_suite(std::uint16_t{0x1303}), {}, 0, {}, 2);
        a_to_b.sealer.schedule_key_update(true);
        a_to_b.sealer.schedule_key_update(true);  // asking twice still sends one KeyUpdate
        auto d = open_all(a_to_b.opener, seal_all(a_to_b.sealer, pattern(10)));
        CHECK(d.discarded == 1);
        REQUIRE(a_to_b.opener.take_update_request());
        CHECK_FALSE(a_to_b.opener.take_update_request());

        b_to_a.sealer.schedule_key_update(false);
        d = open_all(b_to_a.opener, seal_all(b_to_a.sealer, pattern(10)));
        CHECK(d.discarded == 1);
        CHECK(d.data == pattern(10));
        CHECK(b_to_a.opener.generation() == 1);
        CHECK_FALSE(b_to_a.opener.take_update_request());  // the answer asks for nothing
    }

    TEST_CASE("flush_key_update sends a due KeyUpdate without data") {
        auto ch = make_channel(*find_suite(std::uint16_t{0x1301}));
        Bytes out(64);
        CHECK(ch.sealer.flush_key_update(out, 0).written == 0);  // nothing due
        ch.sealer.schedule_key_update(true);
        const SealOutcome r = ch.sealer.flush_key_update(out, 0);
        REQUIRE(r.written == 5 + record_overhead);
        out.resize(r.written);
        const auto d = open_all(ch.opener, out);
        CHECK(d.discarded == 1);
        CHECK(ch.opener.take_update_request());
    }

    TEST_CASE("rotation policy: records, bytes and seconds") {
        SUBCASE("after max_records the KeyUpdate takes the last sequence number of the key") {
            auto ch = make_channel(*find_suite(std::uint16_t{0x1301}), {.max_records = 4});
            Bytes got;
            for (int i = 0; i < 12; ++i) {
                CHECK(ch.sealer.sequence() < 4);
                const auto d = open_all(
                    ch.opener, seal_all(ch.sealer, pattern(1, static_cast<std::uint8_t>(i))));
                got.insert(got.end(), d.data.begin(), d.data.end());
            }
            CHECK(ch.sealer.generation() == 3);  // 3 data records and one KeyUpdate per key
            CHECK(ch.opener.generation() == 3);
            CHECK(got.size() == 12);
        }
        SUBCASE("after max_bytes") {
            auto ch = make_channel(*find_suite(std::uint16_t{0x1302}), {.max_bytes = 1000});
            for (int i = 0; i < 50; ++i) {
                const auto d = open_all(ch.opener, seal_all(ch.sealer, pattern(100)));
                CHECK(d.data == pattern(100));
            }
            CHECK(ch.sealer.generation() == 4);  // 5000 bytes, a new key every 1000
            CHECK(ch.opener.generation() == 4);
        }
        SUBCASE("after max_seconds") {
            auto ch = make_channel(*find_suite(std::uint16_t{0x1303}), {.max_seconds = 10});
            CHECK_FALSE(ch.sealer.key_update_due(9));
            CHECK(ch.sealer.key_update_due(10));
            open_all(ch.opener, seal_all(ch.sealer, pattern(5), 9));
            CHECK(ch.sealer.generation() == 0);
            open_all(ch.opener, seal_all(ch.sealer, pattern(5), 10));
            CHECK(ch.sealer.generation() == 1);
            CHECK(ch.opener.generation() == 1);
            CHECK_FALSE(ch.sealer.key_update_due(19));
        }
    }

    TEST_CASE("AES-GCM keys rotate at 2^24 records by default; ChaCha20 only near its limit") {
        auto aes = make_channel(*find_suite(std::uint16_t{0x1301}), {}, (1u << 24) - 2);
        auto d = open_all(aes.opener, seal_all(aes.sealer, pattern(1)));
        CHECK(aes.sealer.generation() == 0);
        CHECK(aes.sealer.key_update_due(0));
        d = open_all(aes.opener, seal_all(aes.sealer, pattern(1)));
        CHECK(d.discarded == 1);
        CHECK(aes.sealer.generation() == 1);
        CHECK(aes.opener.generation() == 1);

        auto chacha = make_channel(*find_suite(std::uint16_t{0x1303}), {}, (1u << 24) + 5);
        CHECK_FALSE(chacha.sealer.key_update_due(0));
    }

    TEST_CASE("the sealer never wraps a sequence number: it stops instead") {
        const auto max = std::numeric_limits<std::uint64_t>::max();
        auto sealer = RecordSealer::create(*find_suite(std::uint16_t{0x1303}),
                                           test::test_secret(32, 3), max, {}, 0)
                          .value();
        Bytes out(100);
        // Sequence 2^64-1 is past ChaCha20's rotation point, so a KeyUpdate is due; sealing it
        // would need sequence 2^64 afterwards, which does not exist.
        const SealOutcome r = sealer.seal_data(pattern(5), out, 0);
        CHECK_FALSE(r.ok);
        CHECK(sealer.failed());
        CHECK(sealer.seal_record(ContentType::application_data, pattern(5), out) == 0);
        CHECK(sealer.seal_alert(Alert::close_notify, out) == 0);
    }

    TEST_CASE("seal_record takes 2^14 bytes of content and refuses one more") {
        auto ch = make_channel(*find_suite(std::uint16_t{0x1301}));
        Bytes out(max_sealed_record + 10);
        CHECK(ch.sealer.seal_record(ContentType::application_data, pattern(max_plaintext + 1),
                                    out) == 0);
        CHECK_FALSE(ch.sealer.failed());
        CHECK(ch.sealer.seal_record(ContentType::application_data, pattern(max_plaintext), out) ==
              max_sealed_record);
        // Too small an output: nothing written, nothing consumed, nothing failed.
        Bytes small(50);
        CHECK(ch.sealer.seal_record(ContentType::application_data, pattern(40), small) == 0);
        CHECK_FALSE(ch.sealer.failed());
        CHECK(ch.sealer.sequence() == 1);
    }
}
