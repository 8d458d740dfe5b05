// shim/config/schema: a complete valid file read into rules, and every schema error with its
// file, line and the sentence that says how to fix it.
#include "config/schema.h"

#include <doctest/doctest.h>

#include <string>

using namespace sealsock;
using namespace sealsock::config;

namespace {

FileConfig valid(std::string_view text) {
    FileResult r = parse_file(text, "s.toml");
    INFO(format(r.errors));
    REQUIRE(r.ok());
    return std::move(r.config);
}

// `text` must produce exactly one error, on `line`, containing `words`.
void one_error(std::string_view text, std::uint32_t line, std::string_view words) {
    const FileResult r = parse_file(text, "s.toml");
    INFO(text);
    INFO(format(r.errors));
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].file == "s.toml");
    CHECK(r.errors[0].line == line);
    CHECK(r.errors[0].message.find(words) != std::string::npos);
}

// An [[outbound]] rule at line 1 with `body` starting on line 2.
void outbound_error(std::string_view body, std::string_view words) {
    one_error("[[outbound]]\n" + std::string(body) + "\n", 2, words);
}

void inbound_error(std::string_view body, std::string_view words) {
    one_error("[[inbound]]\nallow = [\"any\"]\n" + std::string(body) + "\n", 3, words);
}

}  // namespace

TEST_SUITE("config.schema") {
    TEST_CASE("an empty file is valid and sets nothing") {
        const FileConfig c = valid("");
        CHECK_FALSE(c.enabled.has_value());
        CHECK_FALSE(c.audit_log.has_value());
        CHECK(c.outbound.empty());
        CHECK(c.inbound.empty());
    }

    TEST_CASE("every key, read into rules") {
        const FileConfig c = valid(R"(
enabled = false
audit_log = "/var/log/sealsock.jsonl"
agent_socket = "/run/user/1000/sealsock/agent.sock"

[[outbound]]
name = "postgres"
programs = ["psql", "/usr/lib/postgresql/*/bin/pg_dump"]
destinations = ["*.db.example.com", "10.20.0.0/16", "[2001:db8::/32]:6432"]
ports = [5432, "5433-5439"]
identity = "alice"
suites = ["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384"]
server_name = "DB.example.com"
expect = "name:db.example.com"
rotate_bytes = "64 MiB"
rotate_seconds = "1h"
rotate_records = 1000

[[outbound]]
programs = ["curl"]
mode = "off"
enabled = false

[[inbound]]
name = "redis"
programs = ["redis-server"]
ports = [6379]
mode = "allow-plaintext"
identity = "redis-host"
service = "cache"
allow = ["ou:ops", "cn:alice", "sha256:AB:CD:ef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", "dns:x.example", "email:a@example.com", "uri:spiffe://x/y", "o:Example"]
rotate_bytes = 1048576
rotate_seconds = 30

[[inbound]]
mode = "off"
)");
        CHECK(c.enabled == false);
        CHECK(c.audit_log == "/var/log/sealsock.jsonl");
        CHECK(c.agent_socket == "/run/user/1000/sealsock/agent.sock");
        REQUIRE(c.outbound.size() == 2);
        const OutboundRule& pg = c.outbound[0];
        CHECK(pg.name == "postgres");
        CHECK(pg.origin.file == "s.toml");
        CHECK(pg.origin.line == 6);
        CHECK(pg.enabled);
        CHECK(pg.mode == Mode::require);
        CHECK(pg.programs.size() == 2);
        REQUIRE(pg.destinations.size() == 3);
        CHECK(pg.destinations[0].host == "*.db.example.com");
        CHECK(pg.destinations[1].network.prefix == 16);
        CHECK(pg.destinations[2].ports[0].low == 6432);
        REQUIRE(pg.ports.size() == 2);
        CHECK(pg.ports[1].high == 5439);
        CHECK(pg.identity == "alice");
        CHECK(pg.suites == std::vector<std::uint16_t>{0x1303, 0x1302});
        CHECK(pg.server_name == "db.example.com");
        CHECK(pg.expect == "name:db.example.com");
        CHECK(pg.rotation.bytes == 64ull << 20);
        CHECK(pg.rotation.seconds == 3600);
        CHECK(pg.rotation.records == 1000);
        const OutboundRule& off = c.outbound[1];
        CHECK(off.name == "outbound #2");
        CHECK(off.mode == Mode::off);
        CHECK_FALSE(off.enabled);
        CHECK(off.destinations.empty());
        REQUIRE(c.inbound.size() == 2);
        const InboundRule& redis = c.inbound[0];
        CHECK(redis.name == "redis");
        CHECK(redis.service == "cache");
        CHECK(redis.mode == Mode::allow_plaintext);
        CHECK(redis.ports[0].low == 6379);
        CHECK(redis.allow.size() == 7);
        CHECK(redis.rotation.bytes == 1048576);
        CHECK(redis.rotation.seconds == 30);
        CHECK(c.inbound[1].name == "inbound #2");
        CHECK(c.inbound[1].service == "inbound #2");  // service defaults to the rule name
        CHECK(c.inbound[1].mode == Mode::off);        // off needs no allow list
    }

    TEST_CASE("via: the proxy's host and port") {
        const auto via = [](std::string_view value) {
            const FileConfig c = valid("[[outbound]]\nvia = \"" + std::string(value) + "\"\n");
            REQUIRE(c.outbound.size() == 1);
            return c.outbound[0].via_host + " " + std::to_string(c.outbound[0].via_port);
        };
        CHECK(via("http://proxy.example.com:3128") == "proxy.example.com 3128");
        CHECK(via("http://proxy.example.com:3128/") == "proxy.example.com 3128");
        CHECK(via("http://127.0.0.1:8080") == "127.0.0.1 8080");
        CHECK(via("http://[::1]:3128") == "::1 3128");
        CHECK(valid("[[outbound]]\n").outbound[0].via_port == 0);
    }

    TEST_CASE("rules may also be written as inline tables") {
        const FileConfig c = valid("outbound = [{ name = \"a\", destinations = [\"*:443\"] }]\n");
        REQUIRE(c.outbound.size() == 1);
        CHECK(c.outbound[0].destinations[0].ports[0].low == 443);
    }

    TEST_CASE("TOML errors are reported alone, before the schema is checked") {
        const FileResult r = parse_file("bogus = 1\nx = \"open\n", "s.toml");
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].line == 2);
    }

    TEST_CASE("top-level errors") {
        one_error("enabeld = true\n", 1,
                  "unknown top-level key `enabeld`; did you mean `enabled`?");
        one_error("audit-log = \"stderr\"\n", 1, "did you mean `audit_log`?");
        one_error("frobnicate = 1\n", 1, "the top level takes enabled, audit_log, agent_socket");
        one_error("\n\nenabled = \"no\"\n", 3, "`enabled` must be true or false, not a string");
        one_error("audit_log = \"log.txt\"\n", 1,
                  "\"syslog\", \"stderr\" or an absolute file path");
        one_error("audit_log = 1\n", 1, "`audit_log` must be a \"string\", not an integer");
        one_error("agent_socket = \"~/agent.sock\"\n", 1, "absolute path");
        one_error("agent_socket = \"/" + std::string(120, 'a') + "\"\n", 1, "107 bytes");
        one_error("mode = \"require\"\n", 1, "`mode` is a key of rules; put it under an");
        one_error("[outbound]\nname = \"x\"\n", 1, "write each rule as [[outbound]]");
        one_error("inbound = 3\n", 1, "must be a list of rules written as [[inbound]]");
        one_error("outbound = [1]\n", 1, "each entry of `outbound` must be a rule");
        one_error("[tls]\n", 1, "unknown top-level key `tls`");
    }

    TEST_CASE("unknown keys in rules name the nearest key, or where the key belongs") {
        outbound_error("destination = [\"*\"]",
                       "unknown key `destination` in an [[outbound]] "
                       "rule; did you mean `destinations`?");
        outbound_error("sutes = []", "did you mean `suites`?");
        outbound_error("Mode = \"off\"", "did you mean `mode`?");
        outbound_error("allow = [\"any\"]", "`allow` belongs in [[inbound]] rules");
        inbound_error("destinations = [\"*\"]", "`destinations` belongs in [[outbound]] rules");
        inbound_error("expect = \"name:x\"", "belongs in [[outbound]] rules");
        outbound_error("audit_log = \"stderr\"", "is a top-level key: move it above the first");
        outbound_error("colour = \"blue\"", "a rule takes name, enabled, programs");
        outbound_error("[outbound.tls]", "unknown key `tls`");
    }

    TEST_CASE("rule value errors") {
        outbound_error("name = \"\"", "1 to 64 printable characters");
        outbound_error("name = \" x\"", "without leading or trailing spaces");
        outbound_error("name = 5", "`name` must be a \"string\", not an integer");
        outbound_error("enabled = 1", "`enabled` must be true or false");
        outbound_error("programs = \"psql\"", "`programs` must be a list, as in programs = ");
        outbound_error("programs = [1]", "each item of `programs` must be a \"string\"");
        outbound_error("programs = [\"bin/psql\"]", "relative path");
        outbound_error("destinations = [\"10.0.0.1/8\"]", "write the network address, 10.0.0.0/8");
        outbound_error("destinations = [\"db:99999\"]", "1 to 65535");
        outbound_error("destinations = [\"*.ex ample.com\"]", "not a host name");
        outbound_error("ports = [0]", "0 is not a port");
        outbound_error("ports = [\"10-1\"]", "runs backwards");
        outbound_error("ports = [true]", "a port (5432) or a range");
        outbound_error("ports = 5432", "as in ports = [5432");
        outbound_error("mode = \"allow-plaintext\"", "is for [[inbound]] rules only");
        outbound_error("mode = \"on\"", "`on` is not a mode of an [[outbound]] rule");
        outbound_error("identity = \"\"", "`identity` must name one of the agent's identities");
        outbound_error("identity = \"../key\"", "no /");
        outbound_error("suites = []", "an empty `suites` list allows no suite");
        outbound_error("suites = [\"TLS_AES_128_CCM_SHA256\"]",
                       "not a cipher suite sealsock speaks; choose from TLS_AES_128_GCM_SHA256");
        outbound_error("suites = [\"tls_aes_128_gcm_sha256\"]", "not a cipher suite");
        outbound_error("suites = [\"TLS_AES_128_GCM_SHA256\", \"TLS_AES_128_GCM_SHA256\"]",
                       "listed twice");
        outbound_error("server_name = \"10.0.0.1\"", "carries a DNS name, not an address");
        outbound_error("server_name = \"::1\"", "not an address");
        outbound_error("server_name = \"*.example.com\"", "is not a host name");
        outbound_error("expect = \"db.example.com\"", "write \"name:HOST\"");
        outbound_error("expect = \"name:\"", "after name:");
        outbound_error("expect = \"sha256:abcd\"", "64 hexadecimal digits");
        outbound_error("rotate_bytes = 0", "`rotate_bytes` must be a number of bytes");
        outbound_error("rotate_bytes = -5", "from 1 to 2^62");
        outbound_error("rotate_bytes = \"64 MB\"", "units are KiB, MiB, GiB and TiB");
        outbound_error("rotate_bytes = \"99999999999 TiB\"", "is not a size");
        outbound_error("rotate_bytes = true", "`rotate_bytes` must be");
        outbound_error("rotate_seconds = \"soon\"", "units are s, m, h and d");
        outbound_error("rotate_seconds = \"0s\"", "is not a duration");
        outbound_error("rotate_records = \"1000\"", "a whole number of records");
        outbound_error("via = \"proxy:3128\"", "only HTTP proxies (CONNECT)");
        outbound_error("via = \"socks5://proxy:1080\"", "only HTTP proxies");
        outbound_error("via = \"http://proxy\"", "the port is missing");
        outbound_error("via = \"http://proxy:0\"", "the port must be 1 to 65535");
        outbound_error("via = \"http://proxy:65536\"", "the port must be 1 to 65535");
        outbound_error("via = \"http://proxy:31x8\"", "the port must be 1 to 65535");
        outbound_error("via = \"http://user:pw@proxy:3128\"", "no path, no credentials");
        outbound_error("via = \"http://proxy:3128/x\"", "no path, no credentials");
        outbound_error("via = \"http://[10.0.0.1]:3128\"", "is not IPv6");
        outbound_error("via = \"http://[::1]3128\"", "[ADDRESS]:PORT");
        outbound_error("via = \"http://*.example:3128\"", "not a DNS name");
        outbound_error("via = \"http://:3128\"", "not a DNS name");
        outbound_error("via = 3128", "`via` must be a \"string\"");
        outbound_error("rotate_records = 4611686018427387905", "from 1 to 2^62");
        inbound_error("mode = \"permissive\"", "\"require\", \"allow-plaintext\" or \"off\"");
        inbound_error("service = \"\"", "`service` must be 1 to 64");
        inbound_error("ports = [65536]", "not a port");
    }

    TEST_CASE("access-list entries are checked for form") {
        const auto allow_error = [](std::string_view list, std::string_view words) {
            one_error("[[inbound]]\nallow = " + std::string(list) + "\n", 2, words);
        };
        allow_error("[\"any\", \"group:ops\"]", "`group:ops` is not an access-list entry");
        allow_error("[\"cn:\"]", "names nobody");
        allow_error("[\"ANY\"]", "not an access-list entry");
        allow_error("[\"sha256:xyz\"]", "64 hexadecimal digits");
        allow_error("[\"ou:ops\", 3]", "each item of `allow` must be a \"string\"");
        allow_error("\"any\"", "`allow` must be a list");
        CHECK(check_access_entry("any").ok());
        CHECK(check_access_entry("uri:spiffe://example.org/svc").ok());
        CHECK_FALSE(check_access_entry("any:thing").ok());
        CHECK_FALSE(check_access_entry("cn").ok());
    }

    TEST_CASE("an inbound rule that seals with an empty access list is an error") {
        one_error("[[inbound]]\nname = \"redis\"\nports = [6379]\n", 1,
                  "inbound rule `redis` seals (mode \"require\") but its `allow` list is empty: "
                  "nobody could connect; say allow = [\"any\"] to accept any certificate from "
                  "your trust anchors");
        one_error("[[inbound]]\nmode = \"allow-plaintext\"\nallow = []\n", 3,
                  "mode \"allow-plaintext\") but its `allow` list is empty");
        valid("[[inbound]]\nmode = \"off\"\n");
    }

    TEST_CASE("`ports` that no destination uses is an error") {
        one_error("[[outbound]]\ndestinations = [\"a:1\", \"b:2\"]\nports = [3]\n", 3,
                  "`ports` has no effect");
        valid("[[outbound]]\ndestinations = [\"a:1\", \"b\"]\nports = [3]\n");
    }

    TEST_CASE("rule names are unique per direction") {
        one_error("[[outbound]]\nname = \"a\"\n[[outbound]]\nname = \"a\"\n", 3,
                  "a second [[outbound]] rule is named `a` (the first is on line 1)");
        valid("[[outbound]]\nname = \"a\"\n[[inbound]]\nname = \"a\"\nallow = [\"any\"]\n");
    }

    TEST_CASE("all errors are collected, in line order") {
        const FileResult r = parse_file(
            "[[inbound]]\n"       // 1: empty allow (reported at the rule)
            "ports = [0]\n"       // 2
            "[[outbound]]\n"      // 3
            "mode = \"maybe\"\n"  // 4
            "suites = [\"x\"]\n"  // 5
            "colour = 1\n",       // 6
            "s.toml");
        REQUIRE(r.errors.size() == 5);
        for (std::size_t i = 0; i < r.errors.size(); ++i)
            CHECK(r.errors[i].line == std::vector<std::uint32_t>{1, 2, 4, 5, 6}[i]);
        CHECK(format(r.errors[1]) == "s.toml:2:10: 0 is not a port (ports are 1 to 65535)");
    }

    TEST_CASE("sizes and durations") {
        CHECK(parse_size("1").value() == 1);
        CHECK(parse_size("2KiB").value() == 2048);
        CHECK(parse_size("1 GiB").value() == 1ull << 30);
        CHECK(parse_size("3 TiB").value() == 3ull << 40);
        CHECK(parse_size("10 B").value() == 10);
        CHECK_FALSE(parse_size("").ok());
        CHECK_FALSE(parse_size("GiB").ok());
        CHECK_FALSE(parse_size("1.5 GiB").ok());
        CHECK_FALSE(parse_size("1  GiB").ok());
        CHECK_FALSE(parse_size("-1").ok());
        CHECK(parse_size("4194304 TiB").value() == std::uint64_t{1} << 62);
        CHECK_FALSE(parse_size("4194305 TiB").ok());
        CHECK(parse_duration("90s").value() == 90);
        CHECK(parse_duration("15 m").value() == 900);
        CHECK(parse_duration("2h").value() == 7200);
        CHECK(parse_duration("1d").value() == 86400);
        CHECK_FALSE(parse_duration("5").ok());
        CHECK_FALSE(parse_duration("1w").ok());
    }
}
