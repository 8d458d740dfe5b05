#include "config/schema.h"

#include <arpa/inet.h>
#include <sealsock/access_list.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>
#include <span>
#include <utility>

namespace sealsock::config {
namespace {

using toml::Member;
using toml::Type;
using toml::Value;

constexpr std::uint64_t max_count = std::uint64_t{1} << 62;

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool has_control(std::string_view s) {
    return std::any_of(s.begin(), s.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// Edit distance, ASCII case-insensitive, for "did you mean" (both strings are short).
std::size_t distance(std::string_view a, std::string_view b) {
    std::array<std::size_t, 65> prev{};
    std::array<std::size_t, 65> cur{};
    for (std::size_t j = 0; j <= b.size(); ++j)
        prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t sub = prev[j - 1] + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
        }
        prev = cur;
    }
    return prev[b.size()];
}

// ---- the checker: collects errors for one file -------------------------------------------------

class Checker {
  public:
    Checker(std::string_view file, Diagnostics& errors) : file_(file), errors_(errors) {}

    [[nodiscard]] const std::string& file() const { return file_; }

    void error(toml::Position p, std::string message) {
        if (errors_.size() >= toml::max_errors) return;
        errors_.push_back({file_, p.line, p.column, std::move(message)});
        if (errors_.size() == toml::max_errors)  // line 0: sorted after the others
            errors_.push_back({file_, 0, 0, "too many errors; fix the ones above and try again"});
    }

    void wrong_type(const Member& m, std::string_view wanted) {
        error(m.value.position, quote(m.key) + " must be " + std::string(wanted) + ", not " +
                                    std::string(toml::type_name(m.value)));
    }

    bool boolean(const Member& m, bool& out) {
        if (m.value.type != Type::boolean) return wrong_type(m, "true or false"), false;
        out = m.value.boolean;
        return true;
    }

    bool string(const Member& m, std::string& out) {
        if (m.value.type != Type::string) return wrong_type(m, "a \"string\""), false;
        out = m.value.string;
        return true;
    }

    // An array; `example` shows the form, for the message when it is something else.
    const std::vector<Value>* array(const Member& m, std::string_view example) {
        if (m.value.type == Type::array) return &m.value.items;
        wrong_type(m, "a list, as in " + m.key + " = " + std::string(example));
        return nullptr;
    }

    // Each item of a list of strings, with its position.
    template <typename F>
    void each_string(const Member& m, std::string_view example, F&& f) {
        const auto* items = array(m, example);
        if (items == nullptr) return;
        for (const Value& item : *items) {
            if (item.type != Type::string) {
                error(item.position, "each item of " + quote(m.key) +
                                         " must be a \"string\", not " +
                                         std::string(toml::type_name(item)));
                continue;
            }
            f(item);
        }
    }

  private:
    std::string file_;
    Diagnostics& errors_;
};

// ---- value checks shared by several keys -----------------------------------------------------

// A rule or service name: short, printable, no surrounding spaces.
bool check_name(Checker& c, const Member& m, std::string& out) {
    if (!c.string(m, out)) return false;
    if (out.empty() || out.size() > 64 || has_control(out) || out.front() == ' ' ||
        out.back() == ' ') {
        c.error(m.value.position, quote(m.key) +
                                      " must be 1 to 64 printable characters without leading or "
                                      "trailing spaces");
        return false;
    }
    return true;
}

bool check_absolute_path(Checker& c, const Member& m, std::string& out) {
    if (!c.string(m, out)) return false;
    if (out.empty() || out[0] != '/' || has_control(out)) {
        c.error(m.value.position, quote(m.key) +
                                      " must be an absolute path (no ~ expansion), "
                                      "such as \"/run/user/1000/sealsock/agent.sock\"");
        return false;
    }
    return true;
}

std::vector<PortRange> port_list(Checker& c, const Member& m) {
    std::vector<PortRange> out;
    const auto* items = c.array(m, "[5432, \"8000-8099\"]");
    if (items == nullptr) return out;
    for (const Value& item : *items) {
        Result<PortRange> r = make_error("");
        if (item.type == Type::integer) {
            r = port_from_integer(item.integer);
        } else if (item.type == Type::string) {
            r = parse_port_range(item.string);
        } else {
            r = make_error("each item of " + quote(m.key) + " must be a port (5432) or a range " +
                           "(\"8000-8099\"), not " + std::string(toml::type_name(item)));
        }
        if (r)
            out.push_back(r.value());
        else
            c.error(item.position, r.error().message);
    }
    return out;
}

// A positive count written as an integer, or as a string `parse` understands.
bool positive(Checker& c, const Member& m, std::uint64_t& out,
              Result<std::uint64_t> (*parse)(std::string_view), std::string_view form) {
    Result<std::uint64_t> r = make_error("");
    if (m.value.type == Type::integer && m.value.integer >= 1 &&
        static_cast<std::uint64_t>(m.value.integer) <= max_count)
        r = static_cast<std::uint64_t>(m.value.integer);
    else if (m.value.type == Type::string && parse != nullptr)
        r = parse(m.value.string);
    if (!r) {
        const std::string why = r.error().message.empty() ? "" : r.error().message + "; ";
        c.error(m.value.position,
                why + quote(m.key) + " must be " + std::string(form) + ", from 1 to 2^62");
        return false;
    }
    out = r.value();
    return true;
}

std::string_view suite_names =
    "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, "
    "TLS_CHACHA20_POLY1305_SHA256";

// ---- keys of a rule ----------------------------------------------------------------------------

template <typename R>
using Setter = void (*)(Checker&, const Member&, R&);

template <typename R>
struct KeySpec {
    std::string_view key;
    Setter<R> set;
};

template <typename R>
void set_name(Checker& c, const Member& m, R& r) {
    std::string s;
    if (check_name(c, m, s)) r.name = std::move(s);
}

template <typename R>
void set_enabled(Checker& c, const Member& m, R& r) {
    (void)c.boolean(m, r.enabled);
}

template <typename R>
void set_programs(Checker& c, const Member& m, R& r) {
    c.each_string(m, "[\"psql\", \"/usr/bin/redis-*\"]", [&](const Value& item) {
        auto p = parse_program_pattern(item.string);
        if (p)
            r.programs.push_back(std::move(p.value()));
        else
            c.error(item.position, p.error().message);
    });
}

template <typename R>
void set_identity(Checker& c, const Member& m, R& r) {
    std::string s;
    if (!c.string(m, s)) return;
    if (s.empty() || s.size() > 255 || has_control(s) || s.find('/') != std::string::npos)
        return c.error(m.value.position,
                       "`identity` must name one of the agent's identities "
                       "(the NAME of NAME.crt / NAME.key, no /), or be left out "
                       "for the agent's default");
    r.identity = std::move(s);
}

template <typename R>
void set_suites(Checker& c, const Member& m, R& r) {
    const auto* items = c.array(m, "[\"TLS_AES_256_GCM_SHA384\"]");
    if (items == nullptr) return;
    if (items->empty())
        return c.error(m.value.position,
                       "an empty `suites` list allows no suite at all; leave "
                       "`suites` out to allow all three");
    c.each_string(m, "", [&](const Value& item) {
        const std::uint16_t code = suite_code(item.string);
        if (code == 0)
            return c.error(item.position, quote(item.string) +
                                              " is not a cipher suite sealsock speaks; choose "
                                              "from " +
                                              std::string(suite_names));
        if (std::find(r.suites.begin(), r.suites.end(), code) != r.suites.end())
            return c.error(item.position, quote(item.string) + " is listed twice in `suites`");
        r.suites.push_back(code);
    });
}

template <typename R>
void set_rotate_bytes(Checker& c, const Member& m, R& r) {
    (void)positive(c, m, r.rotation.bytes, parse_size,
                   "a number of bytes (1073741824) or a size (\"1 GiB\"; units KiB, MiB, GiB, "
                   "TiB)");
}

template <typename R>
void set_rotate_seconds(Checker& c, const Member& m, R& r) {
    (void)positive(c, m, r.rotation.seconds, parse_duration,
                   "a number of seconds (3600) or a duration (\"1h\"; units s, m, h, d)");
}

template <typename R>
void set_rotate_records(Checker& c, const Member& m, R& r) {
    (void)positive(c, m, r.rotation.records, nullptr, "a whole number of records");
}

void set_outbound_mode(Checker& c, const Member& m, OutboundRule& r) {
    std::string s;
    if (!c.string(m, s)) return;
    if (s == "require") {
        r.mode = Mode::require;
    } else if (s == "off") {
        r.mode = Mode::off;
    } else if (s == "allow-plaintext") {
        c.error(m.value.position,
                "mode \"allow-plaintext\" is for [[inbound]] rules only (a "
                "client cannot tell a downgrade from a plaintext server); an "
                "[[outbound]] rule takes \"require\" or \"off\"");
    } else {
        c.error(m.value.position,
                quote(s) + " is not a mode of an [[outbound]] rule; write \"require\" or \"off\"");
    }
}

void set_inbound_mode(Checker& c, const Member& m, InboundRule& r) {
    std::string s;
    if (!c.string(m, s)) return;
    if (s == "require")
        r.mode = Mode::require;
    else if (s == "allow-plaintext")
        r.mode = Mode::allow_plaintext;
    else if (s == "off")
        r.mode = Mode::off;
    else
        c.error(m.value.position, quote(s) +
                                      " is not a mode of an [[inbound]] rule; write "
                                      "\"require\", \"allow-plaintext\" or \"off\"");
}

void set_destinations(Checker& c, const Member& m, OutboundRule& r) {
    c.each_string(m, "[\"*.db.example.com:5432\", \"10.0.0.0/8\"]", [&](const Value& item) {
        auto d = parse_destination(item.string);
        if (d)
            r.destinations.push_back(std::move(d.value()));
        else
            c.error(item.position, d.error().message);
    });
}

void set_outbound_ports(Checker& c, const Member& m, OutboundRule& r) {
    r.ports = port_list(c, m);
}

void set_server_name(Checker& c, const Member& m, OutboundRule& r) {
    std::string s;
    if (!c.string(m, s)) return;
    const bool address = s.find(':') != std::string::npos ||
                         (!s.empty() && s.find_first_not_of("0123456789.") == std::string::npos);
    if (address)
        return c.error(m.value.position,
                       "`server_name` is sent as SNI, which carries a DNS name, not an address; "
                       "to check a server by address write expect = \"name:" +
                           s.substr(0, 60) + "\"");
    auto host = parse_host_pattern(s);
    if (!host || host.value().find_first_of("*?") != std::string::npos)
        return c.error(m.value.position, quote(s) +
                                             " is not a host name; `server_name` is one "
                                             "DNS name such as \"db1.example.com\"");
    r.server_name = std::move(host.value());
}

void set_expect(Checker& c, const Member& m, OutboundRule& r) {
    std::string s;
    if (!c.string(m, s)) return;
    if (Status st = check_expect(s); !st) return c.error(m.value.position, st.error().message);
    r.expect = std::move(s);
}

// "http://HOST:PORT" (HOST a DNS name, an IPv4 address or a bracketed IPv6 address; PORT
// required): the proxy a CONNECT goes through.
void set_via(Checker& c, const Member& m, OutboundRule& r) {
    std::string s;
    if (!c.string(m, s)) return;
    const auto bad = [&](const std::string& why) {
        c.error(m.value.position, quote(s.substr(0, 80)) + " is not a proxy: " + why +
                                      "; write `via = \"http://proxy.example.com:3128\"`");
    };
    constexpr std::string_view scheme = "http://";
    if (s.compare(0, scheme.size(), scheme) != 0)
        return bad("only HTTP proxies (CONNECT) are supported, as http://HOST:PORT");
    std::string_view rest = std::string_view(s).substr(scheme.size());
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    if (rest.find_first_of("/@?#") != std::string_view::npos)
        return bad("it may hold a host and a port only (no path, no credentials)");
    std::string_view host;
    std::string_view port;
    if (!rest.empty() && rest.front() == '[') {
        const std::size_t close = rest.find(']');
        if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
            return bad("an IPv6 proxy is written [ADDRESS]:PORT");
        host = rest.substr(1, close - 1);
        port = rest.substr(close + 2);
        in6_addr a6{};
        if (inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1)
            return bad("the address in brackets is not IPv6");
    } else {
        const std::size_t colon = rest.rfind(':');
        if (colon == std::string_view::npos) return bad("the port is missing");
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        in_addr a4{};
        const bool address = inet_pton(AF_INET, std::string(host).c_str(), &a4) == 1;
        auto name = parse_host_pattern(std::string(host));
        if (!address &&
            (host.empty() || !name || name.value().find_first_of("*?") != std::string::npos))
            return bad("the host is not a DNS name or an IPv4 address");
    }
    unsigned long value = 0;
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos ||
        (value = std::stoul(std::string(port))) == 0 || value > 65535)
        return bad("the port must be 1 to 65535");
    r.via_host = std::string(host);
    r.via_port = static_cast<std::uint16_t>(value);
}

void set_inbound_ports(Checker& c, const Member& m, InboundRule& r) {
    r.ports = port_list(c, m);
}

void set_service(Checker& c, const Member& m, InboundRule& r) {
    std::string s;
    if (check_name(c, m, s)) r.service = std::move(s);
}

void set_allow(Checker& c, const Member& m, InboundRule& r) {
    c.each_string(m, "[\"ou:ops\", \"cn:alice\"]", [&](const Value& item) {
        if (Status st = check_access_entry(item.string); !st)
            return c.error(item.position, st.error().message);
        r.allow.push_back(item.string);
    });
}

constexpr KeySpec<OutboundRule> outbound_keys[] = {
    {"name", set_name<OutboundRule>},
    {"enabled", set_enabled<OutboundRule>},
    {"programs", set_programs<OutboundRule>},
    {"destinations", set_destinations},
    {"ports", set_outbound_ports},
    {"mode", set_outbound_mode},
    {"identity", set_identity<OutboundRule>},
    {"suites", set_suites<OutboundRule>},
    {"server_name", set_server_name},
    {"expect", set_expect},
    {"via", set_via},
    {"rotate_bytes", set_rotate_bytes<OutboundRule>},
    {"rotate_seconds", set_rotate_seconds<OutboundRule>},
    {"rotate_records", set_rotate_records<OutboundRule>},
};

constexpr KeySpec<InboundRule> inbound_keys[] = {
    {"name", set_name<InboundRule>},
    {"enabled", set_enabled<InboundRule>},
    {"programs", set_programs<InboundRule>},
    {"ports", set_inbound_ports},
    {"mode", set_inbound_mode},
    {"identity", set_identity<InboundRule>},
    {"suites", set_suites<InboundRule>},
    {"service", set_service},
    {"allow", set_allow},
    {"rotate_bytes", set_rotate_bytes<InboundRule>},
    {"rotate_seconds", set_rotate_seconds<InboundRule>},
    {"rotate_records", set_rotate_records<InboundRule>},
};

constexpr std::string_view top_keys[] = {"enabled", "audit_log", "agent_socket", "outbound",
                                         "inbound"};

std::string_view key_of(std::string_view k) {
    return k;
}

template <typename R>
std::string_view key_of(const KeySpec<R>& k) {
    return k.key;
}

template <typename Keys>
bool known(const Keys& keys, std::string_view key) {
    return std::any_of(std::begin(keys), std::end(keys),
                       [&](const auto& k) { return key_of(k) == key; });
}

// "did you mean `x`?" or the list of keys that `where` takes.
template <typename Keys>
std::string suggestion(const Keys& keys, std::string_view key, std::string_view where) {
    std::string_view best;
    std::size_t best_distance = 3;
    std::string list;
    for (const auto& k : keys) {
        const std::string_view name = key_of(k);
        if (!list.empty()) list += ", ";
        list += name;
        if (key.size() > 64) continue;
        const std::size_t d = distance(key, name);
        const std::size_t limit = std::max<std::size_t>(2, name.size() / 3);
        if (d <= limit && d < best_distance) best = name, best_distance = d;
    }
    if (!best.empty()) return "; did you mean `" + std::string(best) + "`?";
    return "; " + std::string(where) + " takes " + list;
}

template <typename Keys>
void unknown_rule_key(Checker& c, const Member& m, const Keys& keys, std::string_view section,
                      std::string_view other_section, bool other) {
    std::string message =
        "unknown key " + quote(m.key) + " in an " + std::string(section) + " rule";
    if (other)
        message += "; " + quote(m.key) + " belongs in " + std::string(other_section) + " rules";
    else if (known(top_keys, m.key))
        message += "; " + quote(m.key) +
                   " is a top-level key: move it above the first [[...]] "
                   "header (keys after a header belong to that table)";
    else
        message += suggestion(keys, m.key, "a rule");
    c.error(m.position, message);
}

template <typename R, std::size_t N, typename OtherKeys>
void check_rule_keys(Checker& c, const Value& table, const KeySpec<R> (&keys)[N],
                     const OtherKeys& other_keys, std::string_view section,
                     std::string_view other_section, R& rule) {
    for (const Member& m : table.members) {
        const auto spec = std::find_if(std::begin(keys), std::end(keys),
                                       [&](const KeySpec<R>& k) { return k.key == m.key; });
        if (spec != std::end(keys))
            spec->set(c, m, rule);
        else
            unknown_rule_key(c, m, keys, section, other_section, known(other_keys, m.key));
    }
}

void start_rule(Checker& c, const Value& table, std::string_view kind, std::size_t index,
                Rule& rule) {
    rule.name = std::string(kind) + " #" + std::to_string(index + 1);
    rule.origin = Origin{c.file(), table.position.line};
}

OutboundRule check_outbound(Checker& c, const Value& table, std::size_t index) {
    OutboundRule rule;
    start_rule(c, table, "outbound", index, rule);
    check_rule_keys(c, table, outbound_keys, inbound_keys, "[[outbound]]", "[[inbound]]", rule);
    const Member* ports = table.find("ports");
    const bool all_own = !rule.destinations.empty() &&
                         std::all_of(rule.destinations.begin(), rule.destinations.end(),
                                     [](const Destination& d) { return !d.ports.empty(); });
    if (ports != nullptr && !rule.ports.empty() && all_own)
        c.error(ports->position,
                "`ports` has no effect: every destination of this rule names "
                "its own port; remove `ports`, or the ports in `destinations`");
    return rule;
}

InboundRule check_inbound(Checker& c, const Value& table, std::size_t index) {
    InboundRule rule;
    start_rule(c, table, "inbound", index, rule);
    check_rule_keys(c, table, inbound_keys, outbound_keys, "[[inbound]]", "[[outbound]]", rule);
    if (rule.service.empty()) rule.service = rule.name;
    const Member* allow = table.find("allow");
    const bool allow_ok = allow == nullptr || allow->value.type == Type::array;
    if (rule.mode != Mode::off && rule.allow.empty() && allow_ok &&
        (allow == nullptr || allow->value.items.empty()))
        c.error(allow != nullptr ? allow->position : table.position,
                "inbound rule " + quote(rule.name) + " seals (mode \"" +
                    (rule.mode == Mode::require ? "require" : "allow-plaintext") +
                    "\") but its `allow` list is empty: nobody could connect; say allow = "
                    "[\"any\"] to accept any certificate from your trust anchors, or list who "
                    "may connect (cn:, o:, ou:, dns:, email:, uri:, sha256:)");
    return rule;
}

// The tables of an [[outbound]] / [[inbound]] array, each passed to `check`.
template <typename F>
void each_rule(Checker& c, const Member& m, F&& check) {
    if (m.value.type == Type::table)
        return c.error(m.position, "write each rule as [[" + m.key + "]] (double brackets): " +
                                       quote(m.key) + " is a list of rules");
    if (m.value.type != Type::array)
        return c.error(m.position, quote(m.key) + " must be a list of rules written as [[" + m.key +
                                       "]] sections, not " + std::string(toml::type_name(m.value)));
    for (std::size_t i = 0; i < m.value.items.size(); ++i) {
        const Value& item = m.value.items[i];
        if (item.type != Type::table) {
            c.error(item.position, "each entry of " + quote(m.key) +
                                       " must be a rule (a table), "
                                       "not " +
                                       std::string(toml::type_name(item)));
            continue;
        }
        check(item, i);
    }
}

template <typename R>
void unique_names(Checker& c, const std::vector<R>& rules, const char* kind) {
    for (std::size_t i = 0; i < rules.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (rules[i].name == rules[j].name) {
                c.error({rules[i].origin.line, 1},
                        "a second [[" + std::string(kind) + "]] rule is named " +
                            quote(rules[i].name) + " (the first is on line " +
                            std::to_string(rules[j].origin.line) +
                            "); give each rule its own name so logs can tell them apart");
                break;
            }
}

void check_top(Checker& c, const Member& m, FileConfig& out) {
    std::string s;
    if (m.key == "enabled") {
        bool b = true;
        if (c.boolean(m, b)) out.enabled = b;
    } else if (m.key == "audit_log") {
        if (!c.string(m, s)) return;
        if (s != "syslog" && s != "stderr" && (s.empty() || s[0] != '/' || has_control(s)))
            return c.error(m.value.position,
                           "`audit_log` must be \"syslog\", \"stderr\" or an absolute file path "
                           "(no ~ expansion)");
        out.audit_log = s;
    } else if (m.key == "agent_socket") {
        if (!check_absolute_path(c, m, s)) return;
        if (s.size() > 107)
            return c.error(m.value.position,
                           "`agent_socket` is longer than a Unix socket path "
                           "can be (107 bytes)");
        out.agent_socket = s;
    } else if (m.key == "outbound") {
        each_rule(c, m, [&](const Value& t, std::size_t i) {
            out.outbound.push_back(check_outbound(c, t, i));
        });
    } else if (m.key == "inbound") {
        each_rule(c, m, [&](const Value& t, std::size_t i) {
            out.inbound.push_back(check_inbound(c, t, i));
        });
    } else if (known(outbound_keys, m.key) || known(inbound_keys, m.key)) {
        c.error(m.position, quote(m.key) +
                                " is a key of rules; put it under an [[outbound]] or "
                                "[[inbound]] header");
    } else {
        c.error(m.position, "unknown top-level key " + quote(m.key) +
                                suggestion(top_keys, m.key, "the top level"));
    }
}

Result<std::uint64_t> scaled(std::string_view text, std::string_view number, std::uint64_t unit,
                             std::string_view what) {
    std::uint64_t v = 0;
    bool ok = !number.empty() && number.size() <= 19;
    for (const char ch : number) {
        if (ch < '0' || ch > '9') ok = false;
        if (ok) v = v * 10 + static_cast<std::uint64_t>(ch - '0');
    }
    if (!ok || v == 0 || v > max_count / unit)
        return make_error(quote(text) + " is not " + std::string(what));
    return v * unit;
}

// Splits "64 MiB" into "64" and "MiB".
std::pair<std::string_view, std::string_view> number_and_unit(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9')
        ++i;
    std::string_view unit = text.substr(i);
    if (!unit.empty() && unit[0] == ' ') unit.remove_prefix(1);
    return {text.substr(0, i), unit};
}

}  // namespace

std::uint16_t suite_code(std::string_view iana_name) {
    if (iana_name == "TLS_AES_128_GCM_SHA256") return 0x1301;
    if (iana_name == "TLS_AES_256_GCM_SHA384") return 0x1302;
    if (iana_name == "TLS_CHACHA20_POLY1305_SHA256") return 0x1303;
    return 0;
}

Result<std::uint64_t> parse_size(std::string_view text) {
    constexpr std::pair<std::string_view, std::uint64_t> units[] = {{"", 1},
                                                                    {"B", 1},
                                                                    {"KiB", 1ull << 10},
                                                                    {"MiB", 1ull << 20},
                                                                    {"GiB", 1ull << 30},
                                                                    {"TiB", 1ull << 40}};
    const auto [number, unit] = number_and_unit(text);
    for (const auto& [name, scale] : units)
        if (unit == name) return scaled(text, number, scale, "a size");
    return make_error(quote(text) + " is not a size (units are KiB, MiB, GiB and TiB)");
}

Result<std::uint64_t> parse_duration(std::string_view text) {
    constexpr std::pair<std::string_view, std::uint64_t> units[] = {
        {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    const auto [number, unit] = number_and_unit(text);
    for (const auto& [name, scale] : units)
        if (unit == name) return scaled(text, number, scale, "a duration");
    return make_error(quote(text) + " is not a duration (units are s, m, h and d)");
}

// The syntax of access-list entries and of `expect` is the agent's own
// (<sealsock/access_list.h>): the config accepts exactly what the agent will.
Status check_access_entry(std::string_view entry) {
    const std::string text(entry);
    if (auto parsed = agent::parse_access_list(std::span(&text, 1)); !parsed) return parsed.error();
    if (has_control(entry)) return make_error(quote(entry) + " contains a control character");
    return {};
}

Status check_expect(std::string_view expect) {
    if (auto parsed = agent::parse_expect(expect, {}); !parsed) return parsed.error();
    if (has_control(expect) || expect.find(' ') != std::string_view::npos)
        return make_error(quote(expect) +
                          ": write the server's host name or address after name:, as in "
                          "\"name:db1.example.com\"");
    return {};
}

FileResult check_document(const Value& root, std::string_view file) {
    FileResult result;
    Checker c(file, result.errors);
    for (const Member& m : root.members)
        check_top(c, m, result.config);
    unique_names(c, result.config.outbound, "outbound");
    unique_names(c, result.config.inbound, "inbound");
    // By position; a diagnostic about the whole file (line 0) goes last.
    const auto key = [](const Diagnostic& d) {
        return std::pair(d.line == 0 ? UINT32_MAX : d.line, d.column);
    };
    std::stable_sort(result.errors.begin(), result.errors.end(),
                     [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
    return result;
}

FileResult parse_file(std::string_view text, std::string_view file) {
    toml::Document doc = toml::parse(text, file);
    if (!doc.ok()) {
        FileResult result;
        result.errors = std::move(doc.errors);
        return result;
    }
    return check_document(doc.root, file);
}

}  // namespace sealsock::config
