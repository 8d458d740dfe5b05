#include "record/aead.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "record/suite.h"
#include "record/wire.h"
#include "support/vectors.h"

using namespace sealsock;
using namespace sealsock::record;
using sealsock::test::Bytes;
using sealsock::test::load_vectors;

namespace {

const SuiteParams& suite_for_key(const Bytes& key, bool chacha) {
    if (chacha) return *find_suite(std::uint16_t{0x1303});
    return *find_suite(static_cast<std::uint16_t>(key.size() == 16 ? 0x1301 : 0x1302));
}

bool all_zero(const Bytes& b) {
    return std::all_of(b.begin(), b.end(), [](auto x) { return x == 0; });
}

void check_vector(const test::VectorCase& c, bool chacha) {
    CAPTURE(c.name);
    const SuiteParams& suite = suite_for_key(c["key"], chacha);
    const bool valid = !c.has("valid") || c.number("valid") == 1;
    if (valid) {
        auto sealer = Aead::create(suite, c["key"], Aead::Mode::seal);
        REQUIRE(sealer.ok());
        Bytes ct(c["plaintext"].size()), tag(tag_size);
        REQUIRE(sealer.value().seal(c["nonce"], c["aad"], c["plaintext"], {}, ct, tag));
        CHECK(ct == c["ciphertext"]);
        CHECK(tag == c["tag"]);
    }
    auto opener = Aead::create(suite, c["key"], Aead::Mode::open);
    REQUIRE(opener.ok());
    Bytes pt(c["ciphertext"].size());
    const bool opened =
        opener.value().open(c["nonce"], c["aad"], c["ciphertext"], c["tag"], pt, {});
    CHECK(opened == valid);
    if (valid) CHECK(pt == c["plaintext"]);
    if (!valid) CHECK(all_zero(pt));
}

}  // namespace

TEST_SUITE("record.aead") {
    TEST_CASE("RFC 8439 ChaCha20-Poly1305 vectors seal and open") {
        const auto vf = load_vectors("rfc8439-chacha20-poly1305.txt");
        REQUIRE(vf.cases.size() == 2);
        for (const auto& c : vf.cases)
            check_vector(c, true);
    }

    TEST_CASE("Wycheproof AES-GCM vectors, valid and forged") {
        const auto vf = load_vectors("aes-gcm-wycheproof.txt");
        REQUIRE(vf.cases.size() >= 4);
        for (const auto& c : vf.cases)
            check_vector(c, false);
    }

    TEST_CASE("one context serves many records, in order, with different nonces") {
        const auto vf = load_vectors("rfc8439-chacha20-poly1305.txt");
        const auto& c = vf["rfc8439-2-8-2"];
        const SuiteParams& suite = *find_suite(std::uint16_t{0x1303});
        auto sealer = Aead::create(suite, c["key"], Aead::Mode::seal).value();
        auto opener = Aead::create(suite, c["key"], Aead::Mode::open).value();
        for (int round = 0; round < 3; ++round) {
            Bytes nonce = c["nonce"];
            nonce[11] = static_cast<std::uint8_t>(nonce[11] ^ round);
            Bytes ct(c["plaintext"].size()), tag(tag_size), pt(ct.size());
            REQUIRE(sealer.seal(nonce, c["aad"], c["plaintext"], {}, ct, tag));
            CHECK((round == 0) == (ct == c["ciphertext"]));
            REQUIRE(opener.open(nonce, c["aad"], ct, tag, pt, {}));
            CHECK(pt == c["plaintext"]);
        }
    }

    TEST_CASE("open splits its output between the buffer and the overflow") {
        const auto vf = load_vectors("rfc8439-chacha20-poly1305.txt");
        const auto& c = vf["rfc8439-2-8-2"];
        const SuiteParams& suite = *find_suite(std::uint16_t{0x1303});
        auto opener = Aead::create(suite, c["key"], Aead::Mode::open).value();
        const Bytes& expect = c["plaintext"];
        Bytes head(expect.size() - 3), tail(3);
        REQUIRE(opener.open(c["nonce"], c["aad"], c["ciphertext"], c["tag"], head, tail));
        Bytes joined = head;
        joined.insert(joined.end(), tail.begin(), tail.end());
        CHECK(joined == expect);
        // Too little room in total: refused before anything is written.
        Bytes small(expect.size() - 1, 0);
        CHECK_FALSE(opener.open(c["nonce"], c["aad"], c["ciphertext"], c["tag"], small, {}));
        CHECK(all_zero(small));
    }

    TEST_CASE("a key of the wrong length is refused") {
        const SuiteParams& suite = *find_suite(std::uint16_t{0x1302});
        const Bytes key(16, 1);
        CHECK_FALSE(Aead::create(suite, key, Aead::Mode::seal).ok());
    }
}
