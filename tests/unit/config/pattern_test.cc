// shim/config/pattern: globs, host and program patterns, networks (IPv4, IPv6, mapped), ports
// and destinations: parsing, refusals and matching edge cases.
#include "config/pattern.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <array>
#include <string>

using namespace sealsock;
using namespace sealsock::config;

namespace {

Address v4(const char* text) {
    std::array<std::uint8_t, 4> raw{};
    REQUIRE(inet_pton(AF_INET, text, raw.data()) == 1);
    Address a;
    REQUIRE(canonical_address(raw, a));
    return a;
}

Address v6(const char* text) {
    std::array<std::uint8_t, 16> raw{};
    REQUIRE(inet_pton(AF_INET6, text, raw.data()) == 1);
    Address a;
    REQUIRE(canonical_address(raw, a));
    return a;
}

Network net(const char* text) {
    auto n = parse_network(text);
    INFO(text, " ", (n ? "" : n.error().message));
    REQUIRE(n.ok());
    return n.value();
}

std::string net_error(const char* text) {
    auto n = parse_network(text);
    REQUIRE_FALSE(n.ok());
    return n.error().message;
}

Destination dest(const char* text) {
    auto d = parse_destination(text);
    INFO(text, " ", (d ? "" : d.error().message));
    REQUIRE(d.ok());
    return d.value();
}

std::string dest_error(const char* text) {
    auto d = parse_destination(text);
    INFO(text);
    REQUIRE_FALSE(d.ok());
    return d.error().message;
}

bool has(const std::string& s, const char* words) {
    return s.find(words) != std::string::npos;
}

}  // namespace

TEST_SUITE("config.pattern") {
    TEST_CASE("glob: * and ?") {
        CHECK(glob_match("*", "", false));
        CHECK(glob_match("*", "anything", false));
        CHECK(glob_match("", "", false));
        CHECK_FALSE(glob_match("", "x", false));
        CHECK(glob_match("a?c", "abc", false));
        CHECK_FALSE(glob_match("a?c", "ac", false));
        CHECK(glob_match("a*c", "ac", false));
        CHECK(glob_match("a*c", "abbbc", false));
        CHECK_FALSE(glob_match("a*c", "abbbd", false));
        CHECK(glob_match("*.example.com", "a.b.example.com", false));
        CHECK_FALSE(glob_match("*.example.com", "example.com", false));
        CHECK(glob_match("**a", "xyza", false));
        CHECK(glob_match("a*b*c", "aXbYbZc", false));
        CHECK_FALSE(glob_match("a*b*c", "aXbYbZ", false));
        CHECK(glob_match("?*", "x", false));
        CHECK_FALSE(glob_match("?*", "", false));
        CHECK_FALSE(glob_match("ABC", "abc", false));
        CHECK(glob_match("ABC", "abc", true));
        // Pathological pattern stays fast (one backtrack point).
        const std::string text(5000, 'a');
        CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*b", text, false));
    }

    TEST_CASE("program patterns: names match the file name, paths match part by part") {
        CHECK(program_matches("psql", "/usr/bin/psql"));
        CHECK_FALSE(program_matches("psql", "/usr/bin/psql15"));
        CHECK(program_matches("python3*", "/usr/bin/python3.11"));
        CHECK(program_matches("redis-??????", "/usr/bin/redis-server"));
        CHECK(program_matches("/usr/bin/psql", "/usr/bin/psql"));
        CHECK_FALSE(program_matches("/usr/bin/psql", "/usr/local/bin/psql"));
        CHECK(program_matches("/usr/bin/*", "/usr/bin/psql"));
        CHECK_FALSE(program_matches("/usr/bin/*", "/usr/bin/sub/psql"));
        CHECK_FALSE(program_matches("/usr/*", "/usr/bin/psql"));
        CHECK(program_matches("/opt/*/bin/tool", "/opt/app/bin/tool"));
        CHECK_FALSE(program_matches("/opt/*/bin/tool", "/opt/a/b/bin/tool"));
        CHECK_FALSE(program_matches("Psql", "/usr/bin/psql"));  // case-sensitive
        CHECK_FALSE(program_matches("psql", ""));
        CHECK(program_matches("*", ""));

        CHECK(parse_program_pattern("psql").ok());
        CHECK(parse_program_pattern("/usr/bin/*").ok());
        CHECK(has(parse_program_pattern("").error().message, "empty program pattern"));
        CHECK(has(parse_program_pattern("bin/psql").error().message, "relative path"));
        CHECK(has(parse_program_pattern("/usr/bin/").error().message, "ends with /"));
        CHECK(has(parse_program_pattern("/usr//bin/x").error().message, "canonical"));
        CHECK(has(parse_program_pattern("/usr/../bin/x").error().message, "canonical"));
        CHECK(has(parse_program_pattern("/usr/./x").error().message, "canonical"));
        CHECK(has(parse_program_pattern("ps\tql").error().message, "control character"));
    }

    TEST_CASE("host patterns: lower-cased, case-insensitive, one trailing dot ignored") {
        CHECK(parse_host_pattern("DB1.Example.COM.").value() == "db1.example.com");
        CHECK(host_matches("*.example.com", "DB1.EXAMPLE.COM."));
        CHECK(host_matches("db?.example.com", "db7.example.com"));
        CHECK_FALSE(host_matches("db?.example.com", "db10.example.com"));
        CHECK_FALSE(host_matches("*.example.com", "example.com"));
        CHECK_FALSE(host_matches("*", ""));  // no name known: a host pattern never matches
        CHECK(has(parse_host_pattern("a..b").error().message, "empty label"));
        CHECK(has(parse_host_pattern(".a").error().message, "empty label"));
        CHECK(has(parse_host_pattern("a b").error().message, "not a host name"));
        CHECK(has(parse_host_pattern("a/b").error().message, "not a host name"));
        CHECK(has(parse_host_pattern("10.0.0.*").error().message, "networks"));
        CHECK(has(parse_host_pattern("10.0.0.300").error().message, "not a valid IPv4"));
        CHECK(has(parse_host_pattern(std::string(254, 'a')).error().message, "longer"));
    }

    TEST_CASE("networks: IPv4 /0, /32, host bits, prefix ranges") {
        CHECK(net("0.0.0.0/0").contains(v4("203.0.113.9")));
        CHECK_FALSE(net("0.0.0.0/0").contains(v6("2001:db8::1")));
        CHECK(net("10.0.0.0/8").contains(v4("10.255.1.2")));
        CHECK_FALSE(net("10.0.0.0/8").contains(v4("11.0.0.0")));
        CHECK(net("192.0.2.7/32").contains(v4("192.0.2.7")));
        CHECK_FALSE(net("192.0.2.7/32").contains(v4("192.0.2.6")));
        CHECK(net("192.0.2.7").prefix == 32);
        CHECK(net("172.16.0.0/12").contains(v4("172.31.255.255")));
        CHECK_FALSE(net("172.16.0.0/12").contains(v4("172.32.0.0")));
        CHECK(has(net_error("10.1.2.3/8"), "write the network address, 10.0.0.0/8"));
        CHECK(has(net_error("10.0.0.0/33"), "0 to 32 for IPv4"));
        CHECK(has(net_error("10.0.0.0/"), "0 to 32"));
        CHECK(has(net_error("10.0.0.0/-1"), "0 to 32"));
        CHECK(has(net_error("10.0.0/8"), "not an IPv4 address"));
        CHECK(has(net_error("010.0.0.0/8"), "not an IPv4 address"));
        CHECK(has(net_error("256.0.0.0"), "not an IPv4 address"));
    }

    TEST_CASE("networks: IPv6 /0, /128, and IPv4-mapped addresses") {
        CHECK(net("::/0").contains(v6("2001:db8::1")));
        CHECK_FALSE(net("::/0").contains(v6("::ffff:10.0.0.1")));  // mapped: that is IPv4
        CHECK(net("::1/128").contains(v6("::1")));
        CHECK_FALSE(net("::1/128").contains(v6("::2")));
        CHECK(net("::1").prefix == 128);
        CHECK(net("2001:db8::/32").contains(v6("2001:db8:ffff::1")));
        CHECK_FALSE(net("2001:db8::/32").contains(v6("2001:db9::1")));
        CHECK(net("2001:db8::/33").contains(v6("2001:db8:7fff::")));
        CHECK_FALSE(net("2001:db8::/33").contains(v6("2001:db8:8000::")));
        // An IPv4 network matches the IPv4-mapped form of its addresses, and back.
        CHECK(net("10.0.0.0/8").contains(v6("::ffff:10.1.2.3")));
        CHECK_FALSE(net("10.0.0.0/8").contains(v6("::ffff:11.1.2.3")));
        const Network mapped = net("::ffff:10.0.0.0/104");
        CHECK(mapped.family == Family::ipv4);
        CHECK(mapped.prefix == 8);
        CHECK(mapped.contains(v4("10.9.9.9")));
        CHECK(net("::ffff:0:0/96").contains(v4("198.51.100.1")));
        CHECK(net("::ffff:192.0.2.1").contains(v4("192.0.2.1")));
        CHECK(has(net_error("::1/129"), "0 to 128 for IPv6"));
        CHECK(has(net_error("2001:db8::1/32"), "write the network address, 2001:db8::/32"));
        CHECK(has(net_error("2001:db8:::1"), "not an IPv6 address"));
        CHECK(has(net_error("fe80::1%eth0"), "not an IPv6 address"));
        Address a;
        CHECK_FALSE(canonical_address(ByteView(), a));
        const std::array<std::uint8_t, 5> five{};
        CHECK_FALSE(canonical_address(five, a));
    }

    TEST_CASE("ports and port ranges") {
        CHECK(parse_port_range("1").value().low == 1);
        CHECK(parse_port_range("65535").value().high == 65535);
        const PortRange r = parse_port_range("8000-8099").value();
        CHECK(r.contains(8000));
        CHECK(r.contains(8099));
        CHECK_FALSE(r.contains(7999));
        CHECK_FALSE(r.contains(8100));
        CHECK(parse_port_range("5-5").value().contains(5));
        CHECK(has(parse_port_range("0").error().message, "1 to 65535"));
        CHECK(has(parse_port_range("65536").error().message, "1 to 65535"));
        CHECK(has(parse_port_range("").error().message, "not a port"));
        CHECK(has(parse_port_range("80-").error().message, "not a port"));
        CHECK(has(parse_port_range("-80").error().message, "not a port"));
        CHECK(has(parse_port_range("http").error().message, "not a port"));
        CHECK(has(parse_port_range("9000-8000").error().message, "write 8000-9000"));
        CHECK(has(port_from_integer(0).error().message, "1 to 65535"));
        CHECK(has(port_from_integer(70000).error().message, "1 to 65535"));
        CHECK(port_from_integer(443).value().contains(443));
        const PortRange list[] = {{22, 22}, {8000, 8100}};
        CHECK(contains_port(list, 22));
        CHECK(contains_port(list, 8050));
        CHECK_FALSE(contains_port(list, 23));
        CHECK_FALSE(contains_port(std::span<const PortRange>(), 22));
    }

    TEST_CASE("destinations: every form") {
        const Destination any = dest("*");
        CHECK(any.kind == Destination::Kind::any);
        CHECK(any.ports.empty());
        CHECK(any.matches(nullptr, ""));

        const Destination any_port = dest("*:5432");
        CHECK(any_port.kind == Destination::Kind::any);
        REQUIRE(any_port.ports.size() == 1);
        CHECK(any_port.ports[0].low == 5432);

        const Destination host = dest("*.DB.example.com:5432");
        CHECK(host.kind == Destination::Kind::host);
        CHECK(host.host == "*.db.example.com");
        CHECK(host.matches(nullptr, "pg1.db.example.com"));
        const Address a = v4("10.1.2.3");
        CHECK_FALSE(host.matches(&a, ""));  // connected by address: no name to compare

        const Destination cidr = dest("10.0.0.0/8:5000-5010");
        CHECK(cidr.kind == Destination::Kind::network);
        CHECK(cidr.ports[0].high == 5010);
        CHECK(cidr.matches(&a, ""));
        CHECK_FALSE(cidr.matches(nullptr, "anything"));

        CHECK(dest("192.0.2.1").network.prefix == 32);
        CHECK(dest("::1/128").network.family == Family::ipv6);
        CHECK(dest("2001:db8::1").network.prefix == 128);
        const Destination bracket = dest("[::1]:5432");
        CHECK(bracket.network.prefix == 128);
        CHECK(bracket.ports[0].low == 5432);
        CHECK(dest("[2001:db8::/32]:443").network.prefix == 32);
        CHECK(dest("[::1]").ports.empty());
        CHECK(dest("localhost").host == "localhost");

        CHECK(has(dest_error(""), "empty destination"));
        CHECK(has(dest_error("db:"), "names no port"));
        CHECK(has(dest_error("db:0"), "1 to 65535"));
        CHECK(has(dest_error("db:https"), "not a port"));
        CHECK(has(dest_error("[::1"), "without ]"));
        CHECK(has(dest_error("[::1]5432"), "after ]"));
        CHECK(has(dest_error("[db]:80"), "only for IPv6"));
        CHECK(has(dest_error("10.0.0.0/40"), "0 to 32"));
        CHECK(has(dest_error("10.0.0.*"), "networks"));
        CHECK(has(dest_error("10.0.0.1/8"), "10.0.0.0/8"));
        CHECK(has(dest_error("db_*.ex ample"), "not a host name"));
    }
}
