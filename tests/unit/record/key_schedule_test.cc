#include "record/key_schedule.h"

#include <doctest/doctest.h>

#include <string>

#include "record/suite.h"
#include "support/vectors.h"

using namespace sealsock;
using namespace sealsock::record;
using sealsock::test::load_vectors;

TEST_SUITE("record.key_schedule") {
    TEST_CASE("the three suites are known by code and by name, others are not") {
        for (std::uint16_t code : {0x1301, 0x1302, 0x1303}) {
            const SuiteParams* s = find_suite(code);
            REQUIRE(s != nullptr);
            CHECK(find_suite(s->name) == s);
        }
        CHECK(find_suite(std::uint16_t{0x1304}) == nullptr);  // TLS_AES_128_CCM_SHA256
        CHECK(find_suite(std::uint16_t{0x0000}) == nullptr);
        CHECK(find_suite("TLS_AES_128_CCM_SHA256") == nullptr);
        CHECK(find_suite(std::uint16_t{0x1302})->hash_size == 48);
    }

    TEST_CASE("application traffic secrets derive the listed key and iv") {
        struct Source {
            const char* file;
            std::uint16_t suite;
        };
        for (const Source src : {Source{"rfc8448-simple-1rtt.txt", 0x1301},
                                 Source{"aes-256-gcm-sha384-trace.txt", 0x1302}}) {
            const auto vf = load_vectors(src.file);
            for (const char* name : {"client-application-traffic", "server-application-traffic"}) {
                CAPTURE(src.file);
                CAPTURE(name);
                const auto& c = vf[name];
                TrafficKeys keys;
                REQUIRE(derive_traffic_keys(*find_suite(src.suite), c["secret"], keys));
                CHECK(keys.key.equals(c["key"]));
                CHECK(keys.iv.equals(c["iv"]));
            }
        }
    }

    TEST_CASE("traffic upd step matches the SHA-384 vector") {
        const auto vf = load_vectors("traffic-update.txt");
        const auto& c = vf["sha384-s2n-key-update"];
        const SuiteParams* suite = find_suite(static_cast<std::uint16_t>(c.number("suite")));
        REQUIRE(suite != nullptr);
        Secret next;
        REQUIRE(next_traffic_secret(*suite, c["secret"], next));
        CHECK(next.equals(c["next_secret"]));
        // Updating in place (the secret is a view of the output) gives the same result.
        Secret in_place(c["secret"]);
        REQUIRE(next_traffic_secret(*suite, in_place.view(), in_place));
        CHECK(in_place.equals(c["next_secret"]));
    }

    TEST_CASE("HKDF-Expand-Label refuses what HkdfLabel cannot encode") {
        const SuiteParams& suite = *find_suite(std::uint16_t{0x1301});
        const auto secret = test::hex(std::string(64, 'a'));
        std::uint8_t out[16];
        CHECK(hkdf_expand_label(suite, secret, "key", {}, out));
        const std::string long_label(250, 'x');  // "tls13 " + 250 > 255
        CHECK_FALSE(hkdf_expand_label(suite, secret, long_label, {}, out));
        const std::vector<std::uint8_t> long_context(256, 1);
        CHECK_FALSE(hkdf_expand_label(suite, secret, "key", long_context, out));
    }

    TEST_CASE("next_traffic_secret refuses a secret of the wrong length") {
        const SuiteParams& suite = *find_suite(std::uint16_t{0x1302});
        const std::vector<std::uint8_t> short_secret(32, 7);
        Secret out;
        CHECK_FALSE(next_traffic_secret(suite, short_secret, out));
        CHECK(out.empty());
    }
}
