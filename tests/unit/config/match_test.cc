// shim/config/match: first match in file order, enabled and mode "off", the global switch,
// programs, host names versus addresses, IPv4-mapped IPv6, /0 /32 /128 and port ranges.
#include "config/match.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <array>
#include <string>
#include <vector>

#include "config/file.h"
#include "config/load.h"

using namespace sealsock;
using namespace sealsock::config;

namespace {

Config config_of(std::string_view text) {
    const Source source{"m.toml", std::string(text)};
    LoadResult r = load(std::span(&source, 1));
    INFO(format(r.errors));
    REQUIRE(r.ok());
    return std::move(r.config);
}

struct Ip {
    std::array<std::uint8_t, 16> bytes{};
    std::size_t size = 0;
    [[nodiscard]] ByteView view() const { return ByteView(bytes.data(), size); }
};

Ip ip(const char* text) {
    Ip a;
    if (inet_pton(AF_INET, text, a.bytes.data()) == 1) {
        a.size = 4;
    } else {
        REQUIRE(inet_pton(AF_INET6, text, a.bytes.data()) == 1);
        a.size = 16;
    }
    return a;
}

// The name of the outbound rule for this connection, or "" for none.
std::string out(const Config& c, std::string_view exe, const char* address, std::uint16_t port,
                std::string_view host = "") {
    const Ip a = ip(address);
    const OutboundRule* r = match_outbound(c, {exe, a.view(), host, port});
    return r == nullptr ? "" : r->name;
}

std::string in(const Config& c, std::string_view exe, std::uint16_t port) {
    const InboundRule* r = match_inbound(c, {exe, port});
    return r == nullptr ? "" : r->name;
}

}  // namespace

TEST_SUITE("config.match") {
    TEST_CASE("no rules, no match") {
        const Config c = config_of("");
        CHECK(out(c, "/usr/bin/psql", "10.0.0.1", 5432).empty());
        CHECK(in(c, "/usr/bin/redis-server", 6379).empty());
    }

    TEST_CASE("first match wins in file order; disabled rules are skipped") {
        const Config c = config_of(R"(
[[outbound]]
name = "disabled"
enabled = false
destinations = ["*"]

[[outbound]]
name = "narrow"
destinations = ["10.1.0.0/16"]
ports = [5432]

[[outbound]]
name = "broad"
destinations = ["10.0.0.0/8"]

[[outbound]]
name = "everything"
)");
        CHECK(out(c, "/usr/bin/psql", "10.1.2.3", 5432) == "narrow");
        CHECK(out(c, "/usr/bin/psql", "10.1.2.3", 5433) == "broad");
        CHECK(out(c, "/usr/bin/psql", "10.200.2.3", 5432) == "broad");
        CHECK(out(c, "/usr/bin/psql", "192.0.2.1", 5432) == "everything");
        CHECK(out(c, "/usr/bin/psql", "2001:db8::1", 1) == "everything");
    }

    TEST_CASE(
        "mode off is returned, so callers can tell it from no rule, and it stops the search") {
        const Config c = config_of(R"(
[[outbound]]
name = "curl stays plain"
programs = ["curl"]
mode = "off"

[[outbound]]
name = "seal"
destinations = ["*.example.com"]
)");
        const Ip a = ip("203.0.113.5");
        const OutboundRule* r =
            match_outbound(c, {"/usr/bin/curl", a.view(), "www.example.com", 443});
        REQUIRE(r != nullptr);
        CHECK(r->mode == Mode::off);
        CHECK(out(c, "/usr/bin/wget", "203.0.113.5", 443, "www.example.com") == "seal");
        CHECK(out(c, "/usr/bin/wget", "203.0.113.5", 443, "example.org").empty());
    }

    TEST_CASE("the global switch turns every rule off") {
        const Config c = config_of(
            "enabled = false\n[[outbound]]\nname = \"all\"\n"
            "[[inbound]]\nname = \"all\"\nallow = [\"any\"]\n");
        CHECK(out(c, "/bin/x", "10.0.0.1", 1).empty());
        CHECK(in(c, "/bin/x", 1).empty());
        Config on = c;
        on.enabled = true;
        CHECK(out(on, "/bin/x", "10.0.0.1", 1) == "all");
        CHECK(in(on, "/bin/x", 1) == "all");
    }

    TEST_CASE("programs: names, paths, globs, unknown executable") {
        const Config c = config_of(R"(
[[outbound]]
name = "by path"
programs = ["/opt/app/bin/*"]
[[outbound]]
name = "by name"
programs = ["psql", "pg_*"]
)");
        CHECK(out(c, "/opt/app/bin/client", "10.0.0.1", 1) == "by path");
        CHECK(out(c, "/opt/app/bin/sub/client", "10.0.0.1", 1).empty());
        CHECK(out(c, "/usr/bin/psql", "10.0.0.1", 1) == "by name");
        CHECK(out(c, "/usr/bin/pg_dump", "10.0.0.1", 1) == "by name");
        CHECK(out(c, "/usr/bin/mysql", "10.0.0.1", 1).empty());
        CHECK(out(c, "", "10.0.0.1", 1).empty());  // unknown program: only rules for any program
    }

    TEST_CASE("host patterns compare with the looked-up name; networks with the address") {
        const Config c = config_of(R"(
[[outbound]]
name = "db"
destinations = ["db?.example.com:5432", "10.9.0.0/16:5432"]
)");
        CHECK(out(c, "/bin/x", "192.0.2.1", 5432, "db1.example.com") == "db");
        CHECK(out(c, "/bin/x", "192.0.2.1", 5432, "DB1.Example.Com.") == "db");
        CHECK(out(c, "/bin/x", "192.0.2.1", 5432, "db10.example.com").empty());
        CHECK(out(c, "/bin/x", "192.0.2.1", 5432).empty());  // by address, outside the network
        CHECK(out(c, "/bin/x", "10.9.1.1", 5432) == "db");   // by address, inside
        CHECK(out(c, "/bin/x", "10.9.1.1", 5433).empty());
        CHECK(out(c, "/bin/x", "192.0.2.1", 5433, "db1.example.com").empty());
    }

    TEST_CASE("IPv4 networks match IPv4-mapped IPv6 addresses; /0, /32, /128") {
        const Config c = config_of(R"(
[[outbound]]
name = "one v4"
destinations = ["192.0.2.7/32"]
[[outbound]]
name = "one v6"
destinations = ["::1/128"]
[[outbound]]
name = "all v4"
destinations = ["0.0.0.0/0:443"]
[[outbound]]
name = "all v6"
destinations = ["[::/0]:443"]
)");
        CHECK(out(c, "/bin/x", "192.0.2.7", 1) == "one v4");
        CHECK(out(c, "/bin/x", "::ffff:192.0.2.7", 1) == "one v4");
        CHECK(out(c, "/bin/x", "192.0.2.8", 1).empty());
        CHECK(out(c, "/bin/x", "::1", 1) == "one v6");
        CHECK(out(c, "/bin/x", "::2", 1).empty());
        CHECK(out(c, "/bin/x", "198.51.100.1", 443) == "all v4");
        CHECK(out(c, "/bin/x", "::ffff:198.51.100.1", 443) == "all v4");
        CHECK(out(c, "/bin/x", "2001:db8::5", 443) == "all v6");
        CHECK(out(c, "/bin/x", "2001:db8::5", 444).empty());
    }

    TEST_CASE("an address of a size that is neither IPv4 nor IPv6 matches only name and any") {
        const Config c = config_of(R"(
[[outbound]]
name = "net"
destinations = ["0.0.0.0/0", "::/0"]
[[outbound]]
name = "any"
destinations = ["*:7"]
)");
        const std::array<std::uint8_t, 3> odd{};
        const OutboundRule* r = match_outbound(c, {"/bin/x", odd, "", 7});
        REQUIRE(r != nullptr);
        CHECK(r->name == "any");
        CHECK(match_outbound(c, {"/bin/x", odd, "", 8}) == nullptr);
    }

    TEST_CASE(
        "ports: a destination's own ports win over the rule's `ports`; ranges are inclusive") {
        const Config c = config_of(R"(
[[outbound]]
name = "r"
destinations = ["a.example:22", "b.example"]
ports = ["8000-8099"]
)");
        CHECK(out(c, "/bin/x", "192.0.2.1", 22, "a.example") == "r");
        CHECK(out(c, "/bin/x", "192.0.2.1", 8000, "a.example").empty());
        CHECK(out(c, "/bin/x", "192.0.2.1", 8000, "b.example") == "r");
        CHECK(out(c, "/bin/x", "192.0.2.1", 8099, "b.example") == "r");
        CHECK(out(c, "/bin/x", "192.0.2.1", 8100, "b.example").empty());
        CHECK(out(c, "/bin/x", "192.0.2.1", 7999, "b.example").empty());
        CHECK(out(c, "/bin/x", "192.0.2.1", 22, "b.example").empty());

        const Config only_ports = config_of("[[outbound]]\nname = \"p\"\nports = [5432]\n");
        CHECK(out(only_ports, "/bin/x", "192.0.2.1", 5432) == "p");
        CHECK(out(only_ports, "/bin/x", "192.0.2.1", 5431).empty());
    }

    TEST_CASE("inbound: programs and listening ports, first match, off, disabled") {
        const Config c = config_of(R"(
[[inbound]]
name = "test instance"
programs = ["redis-server"]
ports = [6380]
mode = "off"
[[inbound]]
name = "old"
enabled = false
ports = [6379]
allow = ["any"]
[[inbound]]
name = "redis"
programs = ["redis-server"]
ports = [6379, "7000-7005"]
allow = ["ou:ops"]
[[inbound]]
name = "any port of sshd"
programs = ["/usr/sbin/sshd"]
allow = ["any"]
)");
        const InboundRule* off = match_inbound(c, {"/usr/bin/redis-server", 6380});
        REQUIRE(off != nullptr);
        CHECK(off->mode == Mode::off);
        CHECK(in(c, "/usr/bin/redis-server", 6379) == "redis");
        CHECK(in(c, "/usr/bin/redis-server", 7005) == "redis");
        CHECK(in(c, "/usr/bin/redis-server", 7006).empty());
        CHECK(in(c, "/usr/bin/nc", 6379).empty());
        CHECK(in(c, "/usr/sbin/sshd", 22) == "any port of sshd");
        CHECK(in(c, "/usr/sbin/sshd", 2222) == "any port of sshd");
        CHECK(match_inbound(c, {"/usr/bin/redis-server", 6379})->allow[0] == "ou:ops");
    }

    TEST_CASE("a program matches by its executable or by the name it was started as") {
        // Debian's /usr/bin/redis-server is a link to redis-check-rdb: /proc/self/exe says the
        // latter, argv[0] the former. Either name selects the rule.
        const Config c = config_of(R"(
[[inbound]]
name = "by name"
programs = ["redis-server"]
ports = [6379]
allow = ["any"]
[[inbound]]
name = "by path"
programs = ["/usr/bin/redis-server"]
ports = [6380]
allow = ["any"]
)");
        const auto rule = [&](std::string_view exe, std::string_view invoked, std::uint16_t port) {
            const InboundRule* r = match_inbound(c, {exe, port, invoked});
            return r == nullptr ? std::string() : r->name;
        };
        CHECK(rule("/usr/bin/redis-check-rdb", "redis-server", 6379) == "by name");
        CHECK(rule("/usr/bin/redis-check-rdb", "/usr/bin/redis-server", 6379) == "by name");
        CHECK(rule("/usr/bin/redis-check-rdb", "", 6379).empty());
        CHECK(rule("/usr/bin/redis-check-rdb", "/usr/bin/redis-server", 6380) == "by path");
        // A path pattern needs an absolute argv[0]: a bare name says nothing of the directory.
        CHECK(rule("/usr/bin/redis-check-rdb", "redis-server", 6380).empty());
        CHECK(rule("/usr/bin/redis-check-rdb", "/opt/redis-server", 6380).empty());
        const Ip a = ip("10.0.0.1");
        const Config o = config_of(R"(
[[outbound]]
name = "cli"
programs = ["redis-cli"]
expect = "name:db"
)");
        CHECK(match_outbound(o, {"/usr/bin/redis-cli", a.view(), "", 1, "rcli"}) != nullptr);
        CHECK(match_outbound(o, {"/usr/bin/python3.11", a.view(), "", 1, "redis-cli"}) != nullptr);
        CHECK(match_outbound(o, {"/usr/bin/python3.11", a.view(), "", 1, "python3"}) == nullptr);
    }

    TEST_CASE("the complete example in docs/config.md is valid and does what the text says") {
        const std::string path = std::string(SEALSOCK_VECTOR_DIR) + "/../../docs/config.md";
        auto doc = read_config_file(path);
        REQUIRE(doc.ok());
        REQUIRE(doc.value().has_value());
        const std::string& md = *doc.value();
        const std::size_t start = md.find("```toml\n");
        REQUIRE(start != std::string::npos);
        const std::size_t end = md.find("\n```", start + 8);
        REQUIRE(end != std::string::npos);
        const Config c = config_of(md.substr(start + 8, end - start - 8));
        CHECK(c.enabled);
        CHECK(c.audit_log == "/var/log/sealsock/audit.jsonl");
        const Ip db = ip("192.0.2.10");
        const OutboundRule* pg =
            match_outbound(c, {"/usr/bin/psql", db.view(), "db1.example.com", 5432});
        REQUIRE(pg != nullptr);
        CHECK(pg->name == "postgres");
        CHECK(pg->identity == "alice");
        CHECK(pg->mode == Mode::require);
        CHECK(out(c, "/usr/bin/psql", "10.20.3.4", 5432) == "postgres");
        CHECK(out(c, "/opt/vendor/bin/backup-agent", "10.20.3.4", 5432) ==
              "backup tool stays plain");
        CHECK(out(c, "/usr/bin/psql", "10.20.3.4", 5433).empty());
        CHECK(out(c, "/usr/bin/curl", "10.20.3.4", 5432).empty());
        CHECK(out(c, "/usr/bin/curl", "192.0.2.1", 9090, "metrics.example.com").empty());
        const InboundRule* redis = match_inbound(c, {"/usr/bin/redis-server", 6379});
        REQUIRE(redis != nullptr);
        CHECK(redis->service == "cache");
        CHECK(redis->allow == std::vector<std::string>{"ou:ops"});
        CHECK(in(c, "/usr/bin/redis-server", 6380).empty());
    }
}
