// keyagent/policy: identities read from certificates built in memory, every access-list rule
// (matches and refusals), malformed entries, and the client's `expect`.
#include "keyagent/policy.h"

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

using namespace sealsock;
using namespace sealsock::keyagent;

namespace {

struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using CertPtr = std::unique_ptr<X509, X509Free>;

// A self-signed P-256 certificate with the given subject attributes (in order, outermost first)
// and subjectAltName extensions (each string one extension value, e.g. "DNS:a,IP:192.0.2.1").
CertPtr make_cert(const std::vector<std::pair<std::string, std::string>>& subject,
                  const std::vector<std::string>& san_extensions = {}) {
    static const std::unique_ptr<EVP_PKEY, KeyFree> key(EVP_EC_gen("P-256"));
    REQUIRE(key != nullptr);
    CertPtr cert(X509_new());
    REQUIRE(cert != nullptr);
    REQUIRE(X509_set_version(cert.get(), 2) == 1);
    REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7) == 1);
    X509_NAME* name = X509_get_subject_name(cert.get());
    for (const auto& [field, value] : subject)
        REQUIRE(X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_UTF8,
                                           reinterpret_cast<const unsigned char*>(value.c_str()),
                                           -1, -1, 0) == 1);
    REQUIRE(X509_set_issuer_name(cert.get(), name) == 1);
    REQUIRE(X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0) != nullptr);
    REQUIRE(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600) != nullptr);
    REQUIRE(X509_set_pubkey(cert.get(), key.get()) == 1);
    for (const std::string& value : san_extensions) {
        X509_EXTENSION* ext =
            X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, value.c_str());
        REQUIRE(ext != nullptr);
        REQUIRE(X509_add_ext(cert.get(), ext, -1) == 1);
        X509_EXTENSION_free(ext);
    }
    REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
    return cert;
}

CertificateFacts facts_of(const X509* cert) {
    auto facts = certificate_facts(cert);
    REQUIRE_MESSAGE(facts.ok(), (facts.ok() ? "" : facts.error().message));
    return std::move(facts.value());
}

// SHA-256 of the DER encoding, computed independently of the code under test.
Fingerprint der_sha256(const X509* cert) {
    unsigned char* der = nullptr;
    const int len = i2d_X509(cert, &der);
    REQUIRE(len > 0);
    Fingerprint out{};
    unsigned int n = 0;
    REQUIRE(EVP_Digest(der, static_cast<std::size_t>(len), out.data(), &n, EVP_sha256(), nullptr) ==
            1);
    OPENSSL_free(der);
    REQUIRE(n == out.size());
    return out;
}

std::vector<AccessEntry> access_list(const std::vector<std::string>& entries) {
    auto list = parse_access_list(entries);
    REQUIRE_MESSAGE(list.ok(), (list.ok() ? "" : list.error().message));
    return std::move(list.value());
}

std::string parse_error_of(const std::vector<std::string>& entries) {
    auto list = parse_access_list(entries);
    REQUIRE_FALSE(list.ok());
    return list.error().message;
}

// alice: CN alice, O Example Corp, two OUs, SANs of every supported kind.
const CertificateFacts& alice() {
    static const CertificateFacts facts = [] {
        const CertPtr cert = make_cert(
            {{"C", "DE"}, {"O", "Example Corp"}, {"OU", "ops"}, {"OU", "dba"}, {"CN", "alice"}},
            {"DNS:Alice.Example.org,email:alice@example.org,URI:spiffe://example.org/alice,"
             "IP:192.0.2.7,IP:2001:db8::1"});
        return facts_of(cert.get());
    }();
    return facts;
}

bool allowed(const std::vector<std::string>& entries, const CertificateFacts& peer) {
    return check_access(access_list(entries), peer).outcome == AccessOutcome::allowed;
}

}  // namespace

TEST_SUITE("agent.policy") {
    TEST_CASE("the subject is read in RFC 2253 form, most specific first") {
        const CertPtr cert = make_cert(
            {{"C", "DE"}, {"O", "Example Corp"}, {"OU", "ops"}, {"OU", "dba"}, {"CN", "alice"}});
        CHECK(facts_of(cert.get()).identity.subject ==
              "CN=alice,OU=dba,OU=ops,O=Example Corp,C=DE");
    }

    TEST_CASE("subject values keep UTF-8 and escape RFC 2253 specials") {
        const CertPtr cert = make_cert({{"O", "a,b+c"}, {"CN", "Zo\xc3\xab"}});
        CHECK(facts_of(cert.get()).identity.subject == "CN=Zo\xc3\xab,O=a\\,b\\+c");
        CHECK(facts_of(cert.get()).common_names == std::vector<std::string>{"Zo\xc3\xab"});
        CHECK(facts_of(cert.get()).organizations == std::vector<std::string>{"a,b+c"});
    }

    TEST_CASE("every CN, O and OU of the subject is collected") {
        const CertificateFacts& f = alice();
        CHECK(f.common_names == std::vector<std::string>{"alice"});
        CHECK(f.organizations == std::vector<std::string>{"Example Corp"});
        CHECK(f.org_units == std::vector<std::string>{"ops", "dba"});
    }

    TEST_CASE("subjectAltNames of every supported kind, in certificate order") {
        CHECK(alice().identity.sans == std::vector<std::string>{"DNS:Alice.Example.org",
                                                                "email:alice@example.org",
                                                                "URI:spiffe://example.org/alice",
                                                                "IP:192.0.2.7", "IP:2001:db8::1"});
    }

    TEST_CASE("other SAN forms are left out; no SAN extension means no SANs") {
        const CertPtr other = make_cert({{"CN", "x"}}, {"RID:1.2.3.4,DNS:x.example"});
        CHECK(facts_of(other.get()).identity.sans == std::vector<std::string>{"DNS:x.example"});
        const CertPtr none = make_cert({{"CN", "x"}});
        CHECK(facts_of(none.get()).identity.sans.empty());
    }

    TEST_CASE("a repeated subjectAltName extension is refused") {
        const CertPtr cert = make_cert({{"CN", "x"}}, {"DNS:a.example", "DNS:b.example"});
        auto facts = certificate_facts(cert.get());
        REQUIRE_FALSE(facts.ok());
        CHECK(facts.error().message.find("subjectAltName") != std::string::npos);
        CHECK_FALSE(certificate_facts(nullptr).ok());
    }

    TEST_CASE("the fingerprint is the SHA-256 of the DER certificate") {
        const CertPtr cert = make_cert({{"CN", "fp"}}, {"DNS:fp.example"});
        CHECK(facts_of(cert.get()).identity.fingerprint == der_sha256(cert.get()));
        const CertPtr other = make_cert({{"CN", "fp2"}});
        CHECK(facts_of(other.get()).identity.fingerprint != der_sha256(cert.get()));
    }

    TEST_CASE("fingerprints parse in either case, with or without colons, and only whole") {
        const std::string hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        const auto plain = parse_fingerprint(hex);
        REQUIRE(plain.has_value());
        CHECK((*plain)[0] == 0x00);
        CHECK((*plain)[5] == 0x55);
        CHECK((*plain)[31] == 0xff);
        CHECK(fingerprint_hex(*plain) ==
              "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
        std::string colons;
        for (std::size_t i = 0; i < hex.size(); i += 2)
            colons.append(i == 0 ? "" : ":").append(hex, i, 2);
        CHECK(parse_fingerprint(colons) == plain);
        CHECK_FALSE(parse_fingerprint(hex.substr(2)).has_value());  // 31 bytes
        CHECK_FALSE(parse_fingerprint(hex + "00").has_value());     // 33 bytes
        CHECK_FALSE(parse_fingerprint(hex.substr(1)).has_value());  // odd digit count
        std::string bad_digit = hex;
        bad_digit[0] = 'g';
        CHECK_FALSE(parse_fingerprint(bad_digit).has_value());
        CHECK_FALSE(parse_fingerprint("").has_value());
    }

    TEST_CASE("any admits every verified certificate") {
        CHECK(allowed({"any"}, alice()));
    }

    TEST_CASE("cn: matches a commonName exactly") {
        CHECK(allowed({"cn:alice"}, alice()));
        CHECK_FALSE(allowed({"cn:Alice"}, alice()));
        CHECK_FALSE(allowed({"cn:alic"}, alice()));
        CHECK_FALSE(allowed({"cn:bob"}, alice()));
        CHECK_FALSE(allowed({"cn:ops"}, alice()));  // an OU is not a CN
    }

    TEST_CASE("o: and ou: match any attribute of that type, not other types") {
        CHECK(allowed({"o:Example Corp"}, alice()));
        CHECK_FALSE(allowed({"o:Example"}, alice()));
        CHECK(allowed({"ou:ops"}, alice()));
        CHECK(allowed({"ou:dba"}, alice()));
        CHECK_FALSE(allowed({"ou:dev"}, alice()));
        CHECK_FALSE(allowed({"o:ops"}, alice()));     // an OU is not an O
        CHECK_FALSE(allowed({"ou:alice"}, alice()));  // a CN is not an OU
    }

    TEST_CASE("dns: matches a DNS SAN ignoring ASCII case, without wildcard expansion") {
        CHECK(allowed({"dns:alice.example.org"}, alice()));
        CHECK(allowed({"dns:ALICE.example.ORG"}, alice()));
        CHECK_FALSE(allowed({"dns:*.example.org"}, alice()));
        CHECK_FALSE(allowed({"dns:example.org"}, alice()));
        CHECK_FALSE(allowed({"dns:alice"}, alice()));  // a CN is not a DNS name
        const CertPtr wildcard = make_cert({{"CN", "w"}}, {"DNS:*.example.org"});
        CHECK(allowed({"dns:*.example.org"}, facts_of(wildcard.get())));
        CHECK_FALSE(allowed({"dns:alice.example.org"}, facts_of(wildcard.get())));
    }

    TEST_CASE("email: and uri: match their SAN exactly") {
        CHECK(allowed({"email:alice@example.org"}, alice()));
        CHECK_FALSE(allowed({"email:Alice@example.org"}, alice()));
        CHECK_FALSE(allowed({"email:alice.example.org"}, alice()));
        CHECK(allowed({"uri:spiffe://example.org/alice"}, alice()));
        CHECK_FALSE(allowed({"uri:spiffe://example.org/alice/"}, alice()));
        CHECK_FALSE(allowed({"uri:spiffe://example.org"}, alice()));
        CHECK_FALSE(allowed({"email:spiffe://example.org/alice"}, alice()));  // kinds differ
    }

    TEST_CASE("sha256: matches the certificate's fingerprint in any spelling") {
        const CertPtr cert = make_cert({{"CN", "pinned"}});
        const Fingerprint fp = der_sha256(cert.get());
        std::string upper_colons;
        for (const char c : fingerprint_hex(fp)) {
            if (!upper_colons.empty() && upper_colons.size() % 3 == 2) upper_colons += ':';
            upper_colons += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        CHECK(allowed({"sha256:" + fingerprint_hex(fp)}, facts_of(cert.get())));
        CHECK(allowed({"sha256:" + upper_colons}, facts_of(cert.get())));
        CHECK_FALSE(allowed({"sha256:" + fingerprint_hex(fp)}, alice()));
    }

    TEST_CASE("the first matching entry is reported") {
        const auto list = access_list({"cn:bob", "ou:dba", "any", "cn:alice"});
        const AccessDecision d = check_access(list, alice());
        CHECK(d.outcome == AccessOutcome::allowed);
        CHECK(d.entry == "ou:dba");
    }

    TEST_CASE("a peer no entry names is refused") {
        const AccessDecision d = check_access(access_list({"cn:bob", "ou:dev"}), alice());
        CHECK(d.outcome == AccessOutcome::not_listed);
        CHECK(d.entry.empty());
    }

    TEST_CASE("an empty access list allows nobody") {
        const AccessDecision d = check_access(access_list({}), alice());
        CHECK(d.outcome == AccessOutcome::empty_list);
    }

    TEST_CASE("values may contain colons") {
        const CertPtr cert = make_cert({{"CN", "a:b"}}, {"URI:urn:x:y"});
        CHECK(allowed({"cn:a:b"}, facts_of(cert.get())));
        CHECK(allowed({"uri:urn:x:y"}, facts_of(cert.get())));
    }

    TEST_CASE("malformed entries are configuration errors naming the entry") {
        const std::vector<std::string> bad_entries = {
            "CN:alice", "foo:bar", "ip:192.0.2.7", "cn",
            "cn:",      "any:x",   "anyone",       "",
            ":alice",   "sha256:", "sha256:zz",    "sha256:" + std::string(62, 'a')};
        for (const std::string& bad : bad_entries) {
            CAPTURE(bad);
            const std::string message = parse_error_of({"cn:alice", bad});
            const std::string quoted = std::string("`").append(bad).append("`");
            CHECK(message.find(quoted) != std::string::npos);
        }
        CHECK(parse_error_of({"foo:bar"}).find("cn:NAME") != std::string::npos);  // says what works
    }

    TEST_CASE("expect: the default verifies the server name") {
        auto e = parse_expect("", "db1.example");
        REQUIRE(e.ok());
        CHECK(e.value().kind == Expectation::Kind::name);
        CHECK(e.value().name == "db1.example");
    }

    TEST_CASE("expect: name:HOST overrides the server name") {
        auto e = parse_expect("name:db.internal", "10.0.0.5");
        REQUIRE(e.ok());
        CHECK(e.value().kind == Expectation::Kind::name);
        CHECK(e.value().name == "db.internal");
    }

    TEST_CASE("expect: sha256:HEX is a pin") {
        const std::string hex(64, 'A');
        auto e = parse_expect("sha256:" + hex, "");
        REQUIRE(e.ok());
        CHECK(e.value().kind == Expectation::Kind::pin);
        CHECK(e.value().pin == *parse_fingerprint(hex));
    }

    TEST_CASE("expect: malformed or missing expectations are refused") {
        CHECK_FALSE(parse_expect("", "").ok());  // nothing to check the server against
        CHECK_FALSE(parse_expect("name:", "db1").ok());
        CHECK_FALSE(parse_expect("sha256:", "db1").ok());
        CHECK_FALSE(parse_expect("sha256:1234", "db1").ok());
        CHECK_FALSE(parse_expect("pin:" + std::string(64, 'a'), "db1").ok());
        CHECK_FALSE(parse_expect("db1.example", "db1").ok());
        auto e = parse_expect("cn:db1", "db1");
        REQUIRE_FALSE(e.ok());
        CHECK(e.error().message.find("write \"name:HOST\"") !=
              std::string::npos);  // says what works
    }
}
