#include <sealsock/agent_protocol.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "support/common.h"

using namespace sealsock;
using namespace sealsock::agent;
using sealsock::test::Bytes;

namespace {

Bytes frame(const Message& m) {
    Bytes out(max_frame + length_size);
    const std::size_t n = encode(m, out);
    REQUIRE(n > 0);
    out.resize(n);
    return out;
}

// Whether the frame of `m` decodes (the agent's checks on the fields included).
bool decode_ok(const Message& m) {
    const Bytes f = frame(m);
    return decode(ByteView(f).subspan(length_size)).ok();
}

Message round_trip(const Message& m) {
    const Bytes f = frame(m);
    auto len = frame_length(ByteView(f).first(length_size));
    REQUIRE(len.ok());
    REQUIRE(len.value() == f.size() - length_size);
    auto decoded = decode(ByteView(f).subspan(length_size));
    REQUIRE_MESSAGE(decoded.ok(), (decoded.ok() ? "" : decoded.error().message));
    CHECK(decoded.value().type == m.type);
    CHECK(decoded.value().request_id == m.request_id);
    return std::move(decoded.value());
}

// A raw body: version, type, request id, then fields given as (tag, bytes).
Bytes body(std::uint8_t type, std::vector<std::pair<std::uint8_t, Bytes>> fields,
           std::uint8_t version = protocol_version) {
    Bytes b = {version, type, 0, 0, 0, 0, 0, 0, 0, 7};
    for (auto& [t, v] : fields) {
        b.push_back(t);
        b.push_back(static_cast<std::uint8_t>(v.size() >> 8));
        b.push_back(static_cast<std::uint8_t>(v.size()));
        b.insert(b.end(), v.begin(), v.end());
    }
    return b;
}

std::string decode_error_of(const Bytes& b) {
    auto r = decode(b);
    REQUIRE_FALSE(r.ok());
    return r.error().message;
}

Bytes str(const std::string& s) {
    return Bytes(s.begin(), s.end());
}

}  // namespace

TEST_SUITE("agent.protocol") {
    TEST_CASE("a handshake request round-trips with every field") {
        HandshakeRequest req;
        req.role = Role::server;
        req.server_name = "db1.example";
        req.service = "postgres";
        req.identity = "alice";
        req.expect = "sha256:00ff";
        req.suites = {0x1303, 0x1301};
        req.allow = {"cn:alice", "ou:ops"};
        req.timeout_ms = 2500;
        const Message m = round_trip({MessageType::handshake, 42, req});
        const auto& got = std::get<HandshakeRequest>(m.body);
        CHECK(got.role == Role::server);
        CHECK(got.server_name == req.server_name);
        CHECK(got.service == req.service);
        CHECK(got.identity == req.identity);
        CHECK(got.expect == req.expect);
        CHECK(got.suites == req.suites);
        CHECK(got.allow == req.allow);
        CHECK(got.timeout_ms == 2500);
        CHECK(got.proxy_connect.empty());
    }

    TEST_CASE("a client request may name what to ask an HTTP proxy for") {
        HandshakeRequest req;
        req.server_name = "db1.example";
        req.proxy_connect = "db1.example:5432";
        const Message m = round_trip({MessageType::handshake, 7, req});
        CHECK(std::get<HandshakeRequest>(m.body).proxy_connect == "db1.example:5432");
        req.proxy_connect = "[2001:db8::1]:443";
        CHECK(std::get<HandshakeRequest>(round_trip({MessageType::handshake, 8, req}).body)
                  .proxy_connect == "[2001:db8::1]:443");
        for (const char* bad : {"db1.example", "db1 example:5432", "a\r\nX: y:1", "u@h:1"}) {
            req.proxy_connect = bad;
            INFO(bad);
            CHECK_FALSE(decode_ok({MessageType::handshake, 9, req}));
        }
        req.role = Role::server;
        req.proxy_connect = "db1.example:5432";
        CHECK_FALSE(decode_ok({MessageType::handshake, 10, req}));
    }

    TEST_CASE("a handshake reply carries secrets, sequence numbers and the peer") {
        HandshakeReply rep;
        rep.suite = 0x1302;
        const Bytes w(48, 0xaa), r(48, 0xbb);
        rep.write_secret.assign(w);
        rep.read_secret.assign(r);
        rep.write_seq = 0;
        rep.read_seq = 1;
        rep.identity = "web";
        rep.peer.subject = "CN=alice,O=Example";
        rep.peer.sans = {"DNS:alice.example", "email:alice@example"};
        rep.peer.fingerprint.fill(0x5c);
        const Message m = round_trip({MessageType::handshake_ok, 9, std::move(rep)});
        const auto& got = std::get<HandshakeReply>(m.body);
        CHECK(got.suite == 0x1302);
        CHECK(got.write_secret.equals(w));
        CHECK(got.read_secret.equals(r));
        CHECK(got.read_seq == 1);
        CHECK(got.identity == "web");
        CHECK(got.peer.subject == "CN=alice,O=Example");
        CHECK(got.peer.sans.size() == 2);
        CHECK(got.peer.fingerprint[31] == 0x5c);
    }

    TEST_CASE("errors, unlock, status and the empty messages round-trip") {
        Message m = round_trip({MessageType::error, 3, ErrorReply{ErrorCode::access_denied, "no"}});
        CHECK(std::get<ErrorReply>(m.body).code == ErrorCode::access_denied);
        CHECK(std::get<ErrorReply>(m.body).message == "no");

        UnlockRequest u;
        u.passphrase = SecureBuffer(6);
        std::memcpy(u.passphrase.data(), "secret", 6);
        m = round_trip({MessageType::unlock, 4, std::move(u)});
        const auto& p = std::get<UnlockRequest>(m.body).passphrase;
        CHECK(std::string(reinterpret_cast<const char*>(p.data()), p.size()) == "secret");

        m = round_trip({MessageType::status_reply, 5, StatusReply{false, 3, {"alice CN=alice"}}});
        CHECK_FALSE(std::get<StatusReply>(m.body).locked);
        CHECK(std::get<StatusReply>(m.body).in_flight == 3);

        for (auto t : {MessageType::lock, MessageType::status, MessageType::stop, MessageType::ok})
            round_trip({t, 1, Empty{}});
    }

    TEST_CASE("the frame length is checked before the body is read") {
        const Bytes too_big = {0x00, 0x01, 0x00, 0x01};  // 65537
        CHECK_FALSE(frame_length(too_big).ok());
        const Bytes too_small = {0, 0, 0, 9};
        CHECK_FALSE(frame_length(too_small).ok());
        const Bytes truncated = {0, 0, 1};
        CHECK_FALSE(frame_length(truncated).ok());
        const Bytes max = {0x00, 0x01, 0x00, 0x00};
        CHECK(frame_length(max).ok());
    }

    TEST_CASE("malformed bodies are refused with a reason") {
        const std::uint8_t hs = static_cast<std::uint8_t>(MessageType::handshake);
        CHECK(decode_error_of(body(hs, {{1, {1}}}, 2)).find("version") != std::string::npos);
        CHECK(decode_error_of(body(0x7f, {})).find("unknown message type") != std::string::npos);
        CHECK(decode_error_of(Bytes{1, 1, 0, 0}).find("truncated") != std::string::npos);
        CHECK(decode_error_of(body(hs, {})).find("required") != std::string::npos);
        CHECK(decode_error_of(body(hs, {{1, {1}}, {99, {1}}})).find("unknown field") !=
              std::string::npos);
        CHECK(decode_error_of(body(hs, {{1, {1}}, {1, {1}}})).find("repeated") !=
              std::string::npos);
        CHECK(decode_error_of(body(hs, {{1, {1, 0}}})).find("size") != std::string::npos);
        CHECK(decode_error_of(body(hs, {{1, {3}}})).find("role") != std::string::npos);
        CHECK(decode_error_of(body(hs, {{1, {1}}, {2, str(std::string("a\0b", 3))}})).find("NUL") !=
              std::string::npos);
        CHECK(decode_error_of(body(hs, {{1, {1}}, {2, {}}})).find("length") != std::string::npos);
        CHECK(decode_error_of(body(hs, {{1, {1}}, {8, {0, 0, 0, 0}}})).find("timeout") !=
              std::string::npos);
        Bytes cut = body(hs, {{1, {1}}, {2, str("host")}});
        cut.pop_back();
        CHECK(decode_error_of(cut).find("truncated") != std::string::npos);
        const std::uint8_t ok = static_cast<std::uint8_t>(MessageType::handshake_ok);
        CHECK(decode_error_of(body(ok, {{1, {0x13, 0x01}}, {2, Bytes(31, 1)}})).find("length") !=
              std::string::npos);
    }

    TEST_CASE("encode refuses what does not fit") {
        Bytes small(12);
        CHECK(encode({MessageType::status, 1, Empty{}}, small) == 0);
        HandshakeRequest req;
        req.allow.assign(20, std::string(4000, 'x'));  // 80 KB > max_frame
        Bytes big(200000);
        CHECK(encode({MessageType::handshake, 1, req}, big) == 0);
    }
}
