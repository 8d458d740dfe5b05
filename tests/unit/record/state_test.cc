// The record layer's state/view split: several views over one SealState or OpenState behave as
// one sealer or opener, a state copied to another address keeps working, a zeroed state is inert,
// wipe() forgets the keys, and failure reasons are codes with sentences.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "record/open.h"
#include "record/plaintext_cache.h"
#include "record/reason.h"
#include "record/seal.h"
#include "support/channel.h"
#include "support/forge.h"

using namespace sealsock;
using namespace sealsock::record;
using sealsock::test::Bytes;
using sealsock::test::open_all;
using sealsock::test::seal_all;
using sealsock::test::test_secret;

namespace {

Bytes pattern(std::size_t n, std::uint8_t seed) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i)
        b[i] = static_cast<std::uint8_t>(i * 7 + seed * 13 + (i >> 9));
    return b;
}

const SuiteParams& chacha() {
    return *find_suite(std::uint16_t{0x1303});
}

// A copy of `state` at another address, as a new program image sees it after exec: bytes only.
template <typename State>
std::unique_ptr<State> copied(const State& state) {
    auto copy = std::make_unique<State>();
    std::memcpy(static_cast<void*>(copy.get()), &state, sizeof state);
    return copy;
}

bool all_zero(const std::uint8_t* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        if (p[i] != 0) return false;
    return true;
}

// A NewSessionTicket message, to be split across records.
Bytes ticket() {
    return {4, 0, 0, 14, 0, 0, 0x1c, 0x20, 1, 2, 3, 4, 0, 0, 1, 0xaa, 0, 0};
}

}  // namespace

TEST_SUITE("record.state") {
    TEST_CASE("two sealer views over one state seal one stream, across KeyUpdates") {
        for (const std::uint16_t code : {std::uint16_t{0x1301}, std::uint16_t{0x1302}}) {
            for (const RotationPolicy policy : {RotationPolicy{}, RotationPolicy{3, 0, 0}}) {
                CAPTURE(code);
                CAPTURE(policy.max_records);
                const SuiteParams& suite = *find_suite(code);
                const Bytes secret = test_secret(suite.hash_size, 1);
                SealState state;
                REQUIRE(RecordSealer::init(state, suite, secret, 7, policy, 0).ok());
                RecordSealer a(state);
                RecordSealer b(state);
                auto opener = RecordOpener::create(suite, secret, 7).value();
                Bytes data;
                Bytes wire;
                for (std::size_t i = 0; i < 30; ++i) {
                    const Bytes part = pattern(100 + 1000 * (i % 4), static_cast<std::uint8_t>(i));
                    const Bytes records = seal_all(i % 2 == 0 ? a : b, part);
                    data.insert(data.end(), part.begin(), part.end());
                    wire.insert(wire.end(), records.begin(), records.end());
                    CHECK(a.sequence() == b.sequence());
                    CHECK(a.generation() == b.generation());
                }
                const auto d = open_all(opener, wire);
                CHECK(d.last.status == OpenStatus::data);
                CHECK(d.data == data);
                CHECK(opener.sequence() == a.sequence());
                CHECK(opener.generation() == a.generation());
                if (policy.max_records != 0) CHECK(a.generation() >= 10);
            }
        }
    }

    TEST_CASE("two opener views over one state: a split message and a KeyUpdate cross views") {
        const Bytes secret = test_secret(chacha().hash_size, 2);
        auto sealer = RecordSealer::create(chacha(), secret, 0, {}, 0).value();
        OpenState state;
        REQUIRE(RecordOpener::init(state, chacha(), secret, 0).ok());
        RecordOpener a(state);
        RecordOpener b(state);

        // The ticket's first half through one view, its second half through the other.
        const Bytes t = ticket();
        Bytes first(64);
        Bytes second(64);
        first.resize(sealer.seal_record(ContentType::handshake, ByteView(t).first(6), first));
        second.resize(sealer.seal_record(ContentType::handshake, ByteView(t).subspan(6), second));
        Bytes out(1024);
        CHECK(a.open(first, out).status == OpenStatus::discarded);
        CHECK(state.handshake.mid_message());
        CHECK(b.open(second, out).status == OpenStatus::discarded);
        CHECK_FALSE(state.handshake.mid_message());

        // A KeyUpdate opened by one view; the next record, under the new key, by the other.
        sealer.schedule_key_update(true);
        const Bytes wire = seal_all(sealer, pattern(500, 3));
        OpenOutcome o = a.open(wire, out);
        REQUIRE(o.status == OpenStatus::discarded);
        CHECK(b.generation() == 1);
        o = b.open(ByteView(wire).subspan(o.consumed), out);
        REQUIRE(o.status == OpenStatus::data);
        CHECK(Bytes(out.begin(), out.begin() + 500) == pattern(500, 3));
        CHECK(b.take_update_request());
        CHECK_FALSE(a.take_update_request());  // taken once, through either view

        // Back to the first view, which must rebuild its cipher context for the new key.
        o = a.open(seal_all(sealer, pattern(20, 4)), out);
        REQUIRE(o.status == OpenStatus::data);
        CHECK(Bytes(out.begin(), out.begin() + 20) == pattern(20, 4));
    }

    TEST_CASE("a record interrupting a split message is caught through another view") {
        const Bytes secret = test_secret(chacha().hash_size, 3);
        auto sealer = RecordSealer::create(chacha(), secret, 0, {}, 0).value();
        OpenState state;
        REQUIRE(RecordOpener::init(state, chacha(), secret, 0).ok());
        RecordOpener a(state);
        RecordOpener b(state);
        Bytes first(64);
        first.resize(
            sealer.seal_record(ContentType::handshake, ByteView(ticket()).first(6), first));
        Bytes out(1024);
        CHECK(a.open(first, out).status == OpenStatus::discarded);
        const OpenOutcome o = b.open(seal_all(sealer, pattern(10, 1)), out);
        CHECK(o.status == OpenStatus::fatal);
        CHECK(o.code == Reason::split_handshake_interrupted);
        CHECK(a.failed());
    }

    TEST_CASE("states copied to another address continue through new views") {
        const Bytes secret = test_secret(chacha().hash_size, 4);
        SealState seal;
        OpenState open;
        REQUIRE(RecordSealer::init(seal, chacha(), secret, 0, RotationPolicy{4, 0, 0}, 0).ok());
        REQUIRE(RecordOpener::init(open, chacha(), secret, 0).ok());
        Bytes data;
        Bytes got;
        {
            RecordSealer sealer(seal);
            RecordOpener opener(open);
            for (std::uint8_t i = 0; i < 5; ++i) {
                const Bytes part = pattern(3000, i);
                data.insert(data.end(), part.begin(), part.end());
                const auto d = open_all(opener, seal_all(sealer, part));
                got.insert(got.end(), d.data.begin(), d.data.end());
            }
            REQUIRE(sealer.generation() > 0);
        }
        const auto seal_copy = copied(seal);
        const auto open_copy = copied(open);
        RecordSealer::wipe(seal);  // the old image's memory is gone
        RecordOpener::wipe(open);
        CHECK(all_zero(seal.traffic.secret, sizeof seal.traffic.secret));
        CHECK(all_zero(open.traffic.iv, sizeof open.traffic.iv));

        RecordSealer sealer(*seal_copy);
        RecordOpener opener(*open_copy);
        for (std::uint8_t i = 5; i < 10; ++i) {
            const Bytes part = pattern(3000, i);
            data.insert(data.end(), part.begin(), part.end());
            const auto d = open_all(opener, seal_all(sealer, part));
            CHECK(d.last.status == OpenStatus::data);
            got.insert(got.end(), d.data.begin(), d.data.end());
        }
        CHECK(got == data);
        CHECK(opener.generation() == sealer.generation());
    }

    TEST_CASE("move_to() carries an owning sealer's and opener's state into shared storage") {
        auto ch = test::make_channel(chacha());
        const Bytes before = seal_all(ch.sealer, pattern(100, 1));
        SealState seal;
        OpenState open;
        ch.sealer.move_to(seal);
        ch.opener.move_to(open);
        RecordSealer other(seal);
        const Bytes after = seal_all(other, pattern(100, 2));
        CHECK(open_all(ch.opener, before).data == pattern(100, 1));
        CHECK(open_all(ch.opener, after).data == pattern(100, 2));
        CHECK(open.traffic.seq == 2);
    }

    TEST_CASE("a zeroed state is inert, wipe() stops a view, init() again moves views on") {
        SealState zero{};
        RecordSealer inert(zero);
        Bytes out(256);
        CHECK(inert.seal_record(ContentType::application_data, pattern(5, 1), out) == 0);
        CHECK(inert.failed());
        CHECK(inert.suite() == nullptr);

        OpenState zero_open{};
        RecordOpener inert_opener(zero_open);
        auto ch = test::make_channel(chacha());
        const Bytes junk = seal_all(ch.sealer, pattern(5, 1));
        CHECK(inert_opener.open(junk, out).status == OpenStatus::fatal);

        const Bytes secret = test_secret(chacha().hash_size, 5);
        SealState state;
        REQUIRE(RecordSealer::init(state, chacha(), secret, 0, {}, 0).ok());
        RecordSealer view(state);
        CHECK(view.seal_record(ContentType::application_data, pattern(5, 1), out) > 0);
        RecordSealer::wipe(state);
        CHECK(all_zero(state.traffic.secret, sizeof state.traffic.secret));
        CHECK(view.seal_record(ContentType::application_data, pattern(5, 1), out) == 0);
        CHECK(view.failed());

        // The same memory, a new connection: the old view follows the new key.
        const Bytes secret2 = test_secret(chacha().hash_size, 6);
        REQUIRE(RecordSealer::init(state, chacha(), secret2, 0, {}, 0).ok());
        CHECK_FALSE(view.failed());
        auto opener = RecordOpener::create(chacha(), secret2, 0).value();
        const auto d = open_all(opener, seal_all(view, pattern(300, 7)));
        CHECK(d.last.status == OpenStatus::data);
        CHECK(d.data == pattern(300, 7));

        CHECK_FALSE(RecordSealer::init(state, chacha(), test_secret(48, 1), 0, {}, 0).ok());
        CHECK(state.failed);
        CHECK(state.traffic.key_id == 0);
    }

    TEST_CASE("a zeroed plaintext cache is empty") {
        auto cache = std::make_unique<PlaintextCacheState>();
        std::memset(static_cast<void*>(cache.get()), 0, sizeof *cache);
        CHECK(cache->empty());
        CHECK(cache->space().size() == max_plaintext_bound);
    }

    TEST_CASE("every failure code has its own sentence; unknown codes say so") {
        std::set<std::string> seen;
        CHECK(std::string(reason_text(Reason::none)).empty());
        for (std::size_t i = 1; i <= static_cast<std::size_t>(Reason::fin_inside_record); ++i) {
            const std::string text = reason_text(static_cast<Reason>(i));
            CHECK_FALSE(text.empty());
            CHECK(seen.insert(text).second);
        }
        CHECK(std::string(reason_text(static_cast<Reason>(250))) == "unknown failure");

        auto ch = test::make_channel(chacha());
        Bytes wire = seal_all(ch.sealer, pattern(10, 1));
        wire.back() ^= 1;
        Bytes out(64);
        const OpenOutcome o = ch.opener.open(wire, out);
        CHECK(o.code == Reason::bad_record_mac);
        CHECK(std::string(o.reason) == reason_text(Reason::bad_record_mac));
    }
}
