// Malformed, tampered, truncated, replayed and reordered input: every case ends in a fatal outcome
// with the right alert (or a request for more bytes), never in plaintext.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "record/open.h"
#include "record/seal.h"
#include "support/channel.h"
#include "support/forge.h"

using namespace sealsock;
using namespace sealsock::record;
using sealsock::test::Bytes;
using sealsock::test::Forge;
using sealsock::test::ForgeOptions;
using sealsock::test::test_secret;

namespace {

constexpr std::uint8_t t_alert = 21, t_handshake = 22, t_data = 23;

struct Peer {
    Forge forge;
    RecordOpener opener;
};

Peer make_peer(std::uint16_t code = 0x1301, OpenLimits limits = {}) {
    const SuiteParams& suite = *find_suite(code);
    const auto secret = test_secret(suite.hash_size, 5);
    return Peer{Forge(suite, secret), RecordOpener::create(suite, secret, 0, limits).value()};
}

OpenOutcome open_one(RecordOpener& opener, const Bytes& record) {
    Bytes out(max_plaintext_bound);
    return opener.open(record, out);
}

void expect_fatal(const OpenOutcome& o, Alert alert) {
    CHECK(o.status == OpenStatus::fatal);
    CHECK(static_cast<int>(o.alert) == static_cast<int>(alert));
    CHECK(o.plaintext == 0);
}

bool all_zero(const Bytes& b) {
    return std::all_of(b.begin(), b.end(), [](auto x) { return x == 0; });
}

// A NewSessionTicket: lifetime, age_add, nonce<0..255>, ticket<1..2^16-1>, extensions.
Bytes ticket(std::size_t ticket_size = 32, const Bytes& extensions = {}) {
    const Bytes nonce = {0xaa, 0xbb};
    const std::size_t body = 4 + 4 + 1 + nonce.size() + 2 + ticket_size + 2 + extensions.size();
    Bytes msg(4 + body);
    Writer w(msg);
    w.u8(4);
    w.u24(static_cast<std::uint32_t>(body));
    w.u32(7200);
    w.u32(0x01020304);
    w.u8(static_cast<std::uint8_t>(nonce.size()));
    w.bytes(nonce);
    w.u16(static_cast<std::uint16_t>(ticket_size));
    w.bytes(Bytes(ticket_size, 0x5a));
    w.u16(static_cast<std::uint16_t>(extensions.size()));
    w.bytes(extensions);
    REQUIRE(w.ok());
    return msg;
}

const Bytes key_update_not_requested = {24, 0, 0, 1, 0};
const Bytes some_data = {'h', 'e', 'l', 'l', 'o'};

}  // namespace

TEST_SUITE("record.bad_input") {
    TEST_CASE("every byte of a record flipped: fatal, never plaintext, output wiped") {
        for (std::uint16_t code : {0x1301, 0x1302, 0x1303}) {
            CAPTURE(code);
            Peer base = make_peer(code);
            const Bytes good = base.forge.record(t_data, Bytes(64, 0x41));
            for (std::size_t i = 0; i < good.size(); ++i) {
                CAPTURE(i);
                Peer p = make_peer(code);
                Bytes bad = good;
                bad[i] ^= 0x01;
                Bytes out(max_plaintext_bound);
                OpenOutcome o = p.opener.open(bad, out);
                if (o.status == OpenStatus::need_more) {  // the length grew: feed the rest
                    bad.resize(bad.size() + o.needed, 0);
                    o = p.opener.open(bad, out);
                }
                REQUIRE(o.status == OpenStatus::fatal);
                CHECK(all_zero(out));
                if (i == 0) CHECK(o.alert == Alert::unexpected_message);
                if (i == 1 || i == 2) CHECK(o.alert == Alert::decode_error);
                if (i >= header_size) CHECK(o.alert == Alert::bad_record_mac);
                // Once failed, the opener refuses even the genuine record.
                CHECK(p.opener.open(good, out).status == OpenStatus::fatal);
            }
        }
    }

    TEST_CASE("truncated, replayed, reordered and dropped records") {
        Peer p = make_peer();
        const Bytes r0 = p.forge.record(t_data, some_data);
        const Bytes r1 = p.forge.record(t_data, some_data);
        SUBCASE("truncated: waits for the rest, opens nothing") {
            const OpenOutcome o = open_one(p.opener, Bytes(r0.begin(), r0.end() - 1));
            CHECK(o.status == OpenStatus::need_more);
            CHECK(o.needed == 1);
            CHECK(p.opener.sequence() == 0);
        }
        SUBCASE("replayed") {
            CHECK(open_one(p.opener, r0).status == OpenStatus::data);
            expect_fatal(open_one(p.opener, r0), Alert::bad_record_mac);
        }
        SUBCASE("reordered or dropped") {
            expect_fatal(open_one(p.opener, r1), Alert::bad_record_mac);
        }
        SUBCASE("a record from another connection (other key)") {
            Peer other = make_peer(0x1302);
            expect_fatal(open_one(p.opener, other.forge.record(t_data, some_data)),
                         Alert::bad_record_mac);
        }
    }

    TEST_CASE("length limits from both sides") {
        SUBCASE("header: 2^14 + 256 is a valid length, 2^14 + 257 is record_overflow at once") {
            Bytes header = {t_data, 3, 3, 0x41, 0x00};  // 2^14 + 256 = 0x4100
            RecordHead h = RecordOpener::inspect(header);
            CHECK(h.status == OpenStatus::data);
            CHECK(h.record_size == header_size + max_ciphertext);
            header[4] = 0x01;
            h = RecordOpener::inspect(header);
            CHECK(h.status == OpenStatus::fatal);
            CHECK(h.alert == Alert::record_overflow);
            Peer p = make_peer();
            expect_fatal(open_one(p.opener, header), Alert::record_overflow);
        }
        SUBCASE("inner plaintext: 2^14 + 1 bytes opens, one more is record_overflow") {
            Peer p = make_peer();
            const OpenOutcome o =
                open_one(p.opener, p.forge.record(t_data, Bytes(max_plaintext, 7)));
            CHECK(o.status == OpenStatus::data);
            CHECK(o.plaintext == max_plaintext);
            Peer q = make_peer();
            expect_fatal(open_one(q.opener, q.forge.record(t_data, Bytes(max_plaintext, 7),
                                                           ForgeOptions{.padding = 1})),
                         Alert::record_overflow);
        }
        SUBCASE("a record of the largest length passes the header but not the 2^14 + 1 limit") {
            Peer p = make_peer();
            const Bytes rec = p.forge.record(
                t_data, some_data,
                ForgeOptions{.padding = max_ciphertext - tag_size - 1 - some_data.size()});
            REQUIRE(rec.size() == header_size + max_ciphertext);
            expect_fatal(open_one(p.opener, rec), Alert::record_overflow);
        }
        SUBCASE("padding up to the limit is accepted and removed") {
            Peer p = make_peer();
            const OpenOutcome o = open_one(
                p.opener,
                p.forge.record(t_data, some_data, ForgeOptions{.padding = max_plaintext - 5}));
            CHECK(o.status == OpenStatus::data);
            CHECK(o.plaintext == some_data.size());
        }
        SUBCASE("a body shorter than the tag cannot be authentic") {
            Peer p = make_peer();
            Bytes rec(header_size + 10, 0x33);  // header announcing 10 bytes, then 10 bytes
            const Bytes header = {t_data, 3, 3, 0, 10};
            std::copy(header.begin(), header.end(), rec.begin());
            expect_fatal(open_one(p.opener, rec), Alert::bad_record_mac);
        }
    }

    TEST_CASE("outer record types and versions other than TLS 1.3 application_data") {
        Peer p = make_peer();
        SUBCASE("ChangeCipherSpec after the handshake") {
            expect_fatal(open_one(p.opener, Bytes{20, 3, 3, 0, 1, 1}), Alert::unexpected_message);
        }
        SUBCASE("an unprotected alert") {
            expect_fatal(open_one(p.opener, Bytes{21, 3, 3, 0, 2, 2, 40}),
                         Alert::unexpected_message);
        }
        SUBCASE("an unprotected handshake record") {
            expect_fatal(open_one(p.opener, Bytes{22, 3, 1, 0, 4, 1, 0, 0, 0}),
                         Alert::unexpected_message);
        }
        SUBCASE("plaintext where a record was due") {
            const Bytes text = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P'};
            expect_fatal(open_one(p.opener, text), Alert::unexpected_message);
        }
        SUBCASE("legacy_record_version 0x0301 or 0x0304") {
            expect_fatal(open_one(p.opener, p.forge.record(t_data, some_data, {.version = 0x0301})),
                         Alert::decode_error);
            Peer q = make_peer();
            expect_fatal(open_one(q.opener, q.forge.record(t_data, some_data, {.version = 0x0304})),
                         Alert::decode_error);
        }
    }

    TEST_CASE("inner content: padding only, types not allowed, empty handshake") {
        Peer p = make_peer();
        SUBCASE("all-zero inner plaintext") {
            expect_fatal(
                open_one(p.opener, p.forge.record(0, {}, {.padding = 10, .omit_inner_type = true})),
                Alert::unexpected_message);
        }
        SUBCASE("empty inner plaintext (tag only)") {
            expect_fatal(open_one(p.opener, p.forge.record(0, {}, {.omit_inner_type = true})),
                         Alert::unexpected_message);
        }
        SUBCASE("protected ChangeCipherSpec") {
            expect_fatal(open_one(p.opener, p.forge.record(20, Bytes{1})),
                         Alert::unexpected_message);
        }
        SUBCASE("unknown inner type") {
            expect_fatal(open_one(p.opener, p.forge.record(99, some_data)),
                         Alert::unexpected_message);
        }
        SUBCASE("zero-length handshake record, even padded") {
            expect_fatal(open_one(p.opener, p.forge.record(t_handshake, {}, {.padding = 3})),
                         Alert::unexpected_message);
        }
        SUBCASE("empty application data is discarded") {
            CHECK(open_one(p.opener, p.forge.record(t_data, {})).status == OpenStatus::discarded);
            CHECK(open_one(p.opener, p.forge.record(t_data, some_data)).status == OpenStatus::data);
        }
    }

    TEST_CASE("alerts") {
        Peer p = make_peer();
        SUBCASE("close_notify is end of file, and stays so") {
            const OpenOutcome o = open_one(p.opener, p.forge.record(t_alert, Bytes{1, 0}));
            CHECK(o.status == OpenStatus::close_notify);
            CHECK(p.opener.closed());
            // "Any data received after a closure alert has been received MUST be ignored."
            CHECK(open_one(p.opener, p.forge.record(t_data, some_data)).status ==
                  OpenStatus::close_notify);
        }
        SUBCASE("user_canceled is ignored") {
            CHECK(open_one(p.opener, p.forge.record(t_alert, Bytes{1, 90})).status ==
                  OpenStatus::discarded);
            CHECK(open_one(p.opener, p.forge.record(t_data, some_data)).status == OpenStatus::data);
        }
        SUBCASE("any other alert ends the connection, whatever its level") {
            for (const Bytes& alert : {Bytes{2, 48}, Bytes{1, 49}, Bytes{2, 200}}) {
                Peer q = make_peer();
                const OpenOutcome o = open_one(q.opener, q.forge.record(t_alert, alert));
                CHECK(o.status == OpenStatus::fatal);
                CHECK(o.peer_ended);
                CHECK(o.peer_alert == alert[1]);
                CHECK(o.alert == Alert::none);  // nothing to answer
            }
        }
        SUBCASE("an alert record must hold exactly one alert") {
            expect_fatal(open_one(p.opener, p.forge.record(t_alert, Bytes{1})),
                         Alert::decode_error);
            Peer q = make_peer();
            expect_fatal(open_one(q.opener, q.forge.record(t_alert, Bytes{1, 0, 1, 0})),
                         Alert::decode_error);
        }
    }

    TEST_CASE("post-handshake messages") {
        Peer p = make_peer();
        SUBCASE("tickets: coalesced in one record, or split across three") {
            Bytes two = ticket(40);
            const Bytes second = ticket(7, Bytes{0, 42, 0, 4, 0, 0, 0x40, 0});
            two.insert(two.end(), second.begin(), second.end());
            CHECK(open_one(p.opener, p.forge.record(t_handshake, two)).status ==
                  OpenStatus::discarded);
            const Bytes t = ticket(300);
            for (auto [from, to] : {std::pair{0, 2}, std::pair{2, 100}, std::pair{100, -1}}) {
                const Bytes part(t.begin() + from, to < 0 ? t.end() : t.begin() + to);
                CHECK(open_one(p.opener, p.forge.record(t_handshake, part)).status ==
                      OpenStatus::discarded);
            }
            CHECK(open_one(p.opener, p.forge.record(t_data, some_data)).status == OpenStatus::data);
        }
        SUBCASE("a split ticket interrupted by data") {
            const Bytes t = ticket(300);
            CHECK(open_one(p.opener, p.forge.record(t_handshake, Bytes(t.begin(), t.begin() + 50)))
                      .status == OpenStatus::discarded);
            expect_fatal(open_one(p.opener, p.forge.record(t_data, some_data)),
                         Alert::unexpected_message);
        }
        SUBCASE("malformed tickets") {
            Bytes trailing = ticket(10);
            trailing[3] = static_cast<std::uint8_t>(trailing[3] + 1);
            trailing.push_back(0);
            Bytes empty_ticket = ticket(0);
            Bytes short_body = ticket(10);
            short_body[3] = static_cast<std::uint8_t>(short_body[3] - 3);
            short_body.resize(short_body.size() - 3);
            const Bytes too_short = {4, 0, 0, 3, 0, 0, 0};
            for (const Bytes& bad : {trailing, empty_ticket, short_body, too_short}) {
                Peer q = make_peer();
                expect_fatal(open_one(q.opener, q.forge.record(t_handshake, bad)),
                             Alert::decode_error);
            }
        }
        SUBCASE("handshake messages not allowed after the handshake") {
            for (std::uint8_t type : {1, 2, 8, 11, 13, 15, 20, 99}) {
                Peer q = make_peer();
                expect_fatal(open_one(q.opener, q.forge.record(t_handshake, Bytes{type, 0, 0, 0})),
                             Alert::unexpected_message);
            }
        }
        SUBCASE("KeyUpdate: bad value, bad length, not at the end of its record") {
            expect_fatal(open_one(p.opener, p.forge.record(t_handshake, Bytes{24, 0, 0, 1, 2})),
                         Alert::illegal_parameter);
            Peer q = make_peer();
            expect_fatal(open_one(q.opener, q.forge.record(t_handshake, Bytes{24, 0, 0, 2, 0, 0})),
                         Alert::decode_error);
            Peer r = make_peer();
            Bytes ku_then_ticket = key_update_not_requested;
            const Bytes t = ticket();
            ku_then_ticket.insert(ku_then_ticket.end(), t.begin(), t.end());
            expect_fatal(open_one(r.opener, r.forge.record(t_handshake, ku_then_ticket)),
                         Alert::unexpected_message);
        }
        SUBCASE("a KeyUpdate split over two records is fine if it ends the second") {
            CHECK(open_one(p.opener, p.forge.record(t_handshake, Bytes{24, 0})).status ==
                  OpenStatus::discarded);
            CHECK(open_one(p.opener, p.forge.record(t_handshake, Bytes{0, 1, 1})).status ==
                  OpenStatus::discarded);
            p.forge.update();
            CHECK(p.opener.take_update_request());
            CHECK(open_one(p.opener, p.forge.record(t_data, some_data)).status == OpenStatus::data);
        }
        SUBCASE("data sealed under the old key after a KeyUpdate is refused") {
            CHECK(
                open_one(p.opener, p.forge.record(t_handshake, key_update_not_requested)).status ==
                OpenStatus::discarded);
            expect_fatal(open_one(p.opener, p.forge.record(t_data, some_data)),
                         Alert::bad_record_mac);
        }
    }

    TEST_CASE("runs of records without data are capped") {
        Peer p = make_peer(0x1303, {.max_nondata_run = 8});
        for (int i = 0; i < 8; ++i)
            CHECK(open_one(p.opener, p.forge.record(t_alert, Bytes{1, 90})).status ==
                  OpenStatus::discarded);
        CHECK(open_one(p.opener, p.forge.record(t_data, some_data)).status == OpenStatus::data);
        for (int i = 0; i < 8; ++i) {
            CHECK(
                open_one(p.opener, p.forge.record(t_handshake, key_update_not_requested)).status ==
                OpenStatus::discarded);
            p.forge.update();
        }
        expect_fatal(open_one(p.opener, p.forge.record(t_data, {})), Alert::unexpected_message);
    }

    TEST_CASE("the opener refuses to wrap the peer's sequence number") {
        const auto max = std::numeric_limits<std::uint64_t>::max();
        const SuiteParams& suite = *find_suite(std::uint16_t{0x1303});
        const auto secret = test_secret(32, 8);
        Forge forge(suite, secret, max);
        auto opener = RecordOpener::create(suite, secret, max).value();
        expect_fatal(open_one(opener, forge.record(t_data, some_data)), Alert::internal_error);
    }

    TEST_CASE("random garbage never opens") {
        std::mt19937 rng(20261121);
        for (int round = 0; round < 2000; ++round) {
            Peer p = make_peer(static_cast<std::uint16_t>(0x1301 + round % 3));
            Bytes junk(rng() % 200);
            for (auto& b : junk)
                b = static_cast<std::uint8_t>(rng());
            if (round % 2 == 0 && junk.size() >= header_size) {  // plausible header
                junk[0] = t_data;
                junk[1] = 3;
                junk[2] = 3;
                junk[3] = 0;
                junk[4] = static_cast<std::uint8_t>(junk.size() - header_size);
            }
            const OpenOutcome o = open_one(p.opener, junk);
            CHECK((o.status == OpenStatus::fatal || o.status == OpenStatus::need_more));
        }
    }

    TEST_CASE("secrets of the wrong size are refused at creation") {
        const SuiteParams& suite = *find_suite(std::uint16_t{0x1301});
        CHECK_FALSE(RecordOpener::create(suite, test_secret(48, 1), 0).ok());
        CHECK_FALSE(RecordSealer::create(suite, test_secret(31, 1), 0, {}, 0).ok());
    }
}
