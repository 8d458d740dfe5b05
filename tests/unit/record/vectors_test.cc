// Published TLS 1.3 traces, opened and re-sealed byte for byte: RFC 8448 section 3
// (TLS_AES_128_GCM_SHA256) and The Illustrated TLS 1.3 Connection (TLS_AES_256_GCM_SHA384).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "record/open.h"
#include "record/seal.h"
#include "support/vectors.h"

using namespace sealsock;
using namespace sealsock::record;
using sealsock::test::Bytes;
using sealsock::test::load_vectors;

namespace {

struct Trace {
    const char* file;
    std::uint16_t suite;
    // Records of each direction in sequence order.
    std::vector<std::string> server_records;
    std::vector<std::string> client_records;
};

const Trace traces[] = {
    {"rfc8448-simple-1rtt.txt",
     0x1301,
     {"server-new-session-ticket", "server-application-data", "server-close-notify"},
     {"client-application-data", "client-close-notify"}},
    {"aes-256-gcm-sha384-trace.txt",
     0x1302,
     {"server-new-session-ticket-1", "server-new-session-ticket-2", "server-application-data"},
     {"client-application-data"}},
};

ContentType type_of(const std::string& name) {
    if (name.find("ticket") != std::string::npos) return ContentType::handshake;
    if (name.find("close-notify") != std::string::npos) return ContentType::alert;
    return ContentType::application_data;
}

OpenStatus expected_status(ContentType type) {
    switch (type) {
        case ContentType::handshake:
            return OpenStatus::discarded;
        case ContentType::alert:
            return OpenStatus::close_notify;
        default:
            return OpenStatus::data;
    }
}

void open_direction(const test::VectorFile& vf, const SuiteParams& suite, const char* traffic,
                    const std::vector<std::string>& records) {
    auto opener = RecordOpener::create(suite, vf[traffic]["secret"], 0).value();
    for (const auto& name : records) {
        CAPTURE(name);
        const auto& c = vf[name];
        REQUIRE(opener.sequence() == c.number("seq"));
        Bytes out(c["record"].size());
        const OpenOutcome o = opener.open(c["record"], out);
        CHECK(o.status == expected_status(type_of(name)));
        CHECK(o.consumed == c["record"].size());
        if (o.status == OpenStatus::data) {
            out.resize(o.plaintext);
            CHECK(out == c["plaintext"]);
        }
    }
}

void reseal(const test::VectorFile& vf, const SuiteParams& suite, const char* traffic,
            const std::vector<std::string>& records) {
    for (const auto& name : records) {
        CAPTURE(name);
        const auto& c = vf[name];
        auto sealer = RecordSealer::create(suite, vf[traffic]["secret"], c.number("seq"), {}, 0);
        REQUIRE(sealer.ok());
        Bytes out(c["record"].size() + 32);
        const std::size_t n = sealer.value().seal_record(type_of(name), c["plaintext"], out);
        out.resize(n);
        CHECK(out == c["record"]);
    }
}

}  // namespace

TEST_SUITE("record.vectors") {
    TEST_CASE("published records open in sequence: tickets discarded, data exact, close_notify") {
        for (const Trace& t : traces) {
            CAPTURE(t.file);
            const auto vf = load_vectors(t.file);
            const SuiteParams& suite = *find_suite(t.suite);
            open_direction(vf, suite, "server-application-traffic", t.server_records);
            open_direction(vf, suite, "client-application-traffic", t.client_records);
        }
    }

    TEST_CASE("published records re-seal byte for byte") {
        for (const Trace& t : traces) {
            CAPTURE(t.file);
            const auto vf = load_vectors(t.file);
            const SuiteParams& suite = *find_suite(t.suite);
            reseal(vf, suite, "server-application-traffic", t.server_records);
            reseal(vf, suite, "client-application-traffic", t.client_records);
        }
    }

    TEST_CASE(
        "RFC 8448 application data re-seals through seal_data and close_notify through "
        "seal_alert") {
        const auto vf = load_vectors("rfc8448-simple-1rtt.txt");
        const SuiteParams& suite = *find_suite(std::uint16_t{0x1301});
        auto sealer =
            RecordSealer::create(suite, vf["client-application-traffic"]["secret"], 0, {}, 0)
                .value();
        Bytes wire(200);
        const SealOutcome r = sealer.seal_data(vf["client-application-data"]["plaintext"], wire, 0);
        REQUIRE(r.ok);
        const std::size_t n =
            sealer.seal_alert(Alert::close_notify, MutableByteView(wire).subspan(r.written));
        Bytes expect = vf["client-application-data"]["record"];
        const Bytes& close = vf["client-close-notify"]["record"];
        expect.insert(expect.end(), close.begin(), close.end());
        wire.resize(r.written + n);
        CHECK(wire == expect);
    }

    TEST_CASE("a coalesced stream of the server's records opens record by record") {
        const auto vf = load_vectors("rfc8448-simple-1rtt.txt");
        const SuiteParams& suite = *find_suite(std::uint16_t{0x1301});
        Bytes stream;
        for (const char* name :
             {"server-new-session-ticket", "server-application-data", "server-close-notify"}) {
            const Bytes& r = vf[name]["record"];
            stream.insert(stream.end(), r.begin(), r.end());
        }
        auto opener =
            RecordOpener::create(suite, vf["server-application-traffic"]["secret"], 0).value();
        Bytes out(max_plaintext);
        ByteView in(stream);
        OpenOutcome o = opener.open(in, out);
        CHECK(o.status == OpenStatus::discarded);
        in = in.subspan(o.consumed);
        o = opener.open(in, out);
        REQUIRE(o.status == OpenStatus::data);
        CHECK(Bytes(out.begin(), out.begin() + o.plaintext) ==
              vf["server-application-data"]["plaintext"]);
        in = in.subspan(o.consumed);
        o = opener.open(in, out);
        CHECK(o.status == OpenStatus::close_notify);
        CHECK(o.consumed == in.size());
    }
}
