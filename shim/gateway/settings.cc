#include "gateway/settings.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <utility>

#include "config/schema.h"
#include "config/toml.h"
#include "gateway/quote.h"

namespace sealsock::gateway {
namespace {

using config::quote;
using config::toml::Member;
using config::toml::Position;
using config::toml::Type;
using config::toml::Value;

// Keys the gateway hands to the shim's rule unchanged (the shim's schema validates them).
constexpr std::array inbound_passed = {"identity",     "suites",         "allow",         "service",
                                       "rotate_bytes", "rotate_seconds", "rotate_records"};
constexpr std::array outbound_passed = {"identity",       "suites",        "expect",
                                        "server_name",    "via",           "rotate_bytes",
                                        "rotate_seconds", "rotate_records"};
constexpr std::array top_passed = {"agent_socket", "audit_log"};

template <typename Keys>
bool among(const Keys& keys, std::string_view key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// The generated sealsock config, with the gateway-file position each line came from.
class Generated {
  public:
    void line(std::string text, Position from) {
        text_ += text;
        text_ += '\n';
        origin_.push_back(from);
    }
    [[nodiscard]] const std::string& text() const { return text_; }
    [[nodiscard]] Position origin(std::uint32_t line) const {
        return (line >= 1 && line <= origin_.size()) ? origin_[line - 1] : Position{};
    }

  private:
    std::string text_;
    std::vector<Position> origin_;
};

// A value the shim's rules can hold (strings, integers, booleans, arrays of them) as TOML text.
bool toml_value(const Value& v, std::string& out) {
    switch (v.type) {
        case Type::string:
            out += quoted(v.string);
            return true;
        case Type::integer:
            out += std::to_string(v.integer);
            return true;
        case Type::boolean:
            out += v.boolean ? "true" : "false";
            return true;
        case Type::array:
            out += '[';
            for (std::size_t i = 0; i < v.items.size(); ++i) {
                if (i != 0) out += ", ";
                if (!toml_value(v.items[i], out)) return false;
            }
            out += ']';
            return true;
        case Type::table:
            return false;
    }
    return false;
}

class Parser {
  public:
    Parser(std::string_view file, ParseResult& result)
        : file_(file), result_(result), s_(result.settings) {}

    void run(const Value& root);

  private:
    void error(Position p, std::string message) {
        result_.errors.push_back({file_, p.line, p.column, std::move(message)});
    }
    bool want(const Member& m, Type t, std::string_view what) {
        if (m.value.type == t) return true;
        error(m.value.position, quote(m.key) + " must be " + std::string(what) + ", not " +
                                    std::string(config::toml::type_name(m.value)));
        return false;
    }
    void top_key(const Member& m);
    std::uint64_t duration_ms(const Member& m);
    void listener(const Value& table, Direction d, std::size_t index);
    void listener_key(const Member& m, Listener& l);
    void check_listeners();
    void generate();
    void validate_generated();

    std::string file_;
    ParseResult& result_;
    Settings& s_;
    std::vector<const Member*> top_;                  // keys for the generated top level
    std::vector<std::vector<const Member*>> passed_;  // per listener
    std::vector<Position> headers_;                   // per listener
    std::vector<Position> target_at_;                 // per listener: its backend/destination key
    Generated out_;
};

std::uint64_t Parser::duration_ms(const Member& m) {
    if (m.value.type == Type::integer && m.value.integer > 0 && m.value.integer < (1LL << 40))
        return static_cast<std::uint64_t>(m.value.integer) * 1000;
    if (m.value.type == Type::string) {
        auto d = config::parse_duration(m.value.string);
        if (d && d.value() < (1ULL << 40)) return d.value() * 1000;
        error(m.value.position, quote(m.key) + ": " + (d ? "too long" : d.error().message));
        return 0;
    }
    error(m.value.position,
          quote(m.key) + " must be a number of seconds or a duration such as \"30s\"");
    return 0;
}

void Parser::top_key(const Member& m) {
    const Position p = m.value.position;
    if (among(top_passed, m.key)) {
        top_.push_back(&m);
        if (m.key == "audit_log" && m.value.type == Type::string) s_.audit_log = m.value.string;
    } else if (m.key == "relay_log") {
        if (want(m, Type::string, "a string")) s_.relay_log = m.value.string;
        if (s_.relay_log != "syslog" && s_.relay_log != "stderr" &&
            (s_.relay_log.empty() || s_.relay_log[0] != '/'))
            error(p, "`relay_log` must be \"syslog\", \"stderr\" or an absolute file path");
    } else if (m.key == "workers") {
        if (want(m, Type::integer, "an integer") && (m.value.integer < 1 || m.value.integer > 256))
            error(p, "`workers` must be 1 to 256 (leave it out for one per core)");
        else
            s_.workers = static_cast<unsigned>(m.value.integer);
    } else if (m.key == "connect_timeout") {
        s_.connect_timeout_ms = duration_ms(m);
    } else if (m.key == "handshake_timeout") {
        s_.handshake_timeout_ms = duration_ms(m);
    } else if (m.key == "idle_timeout") {
        s_.idle_timeout_ms = duration_ms(m);
    } else if (m.key == "drain_timeout") {
        s_.drain_timeout_ms = duration_ms(m);
    } else {
        error(m.position, "unknown key " + quote(m.key) +
                              " at the top of a gateway config; it takes agent_socket, audit_log, "
                              "relay_log, workers, connect_timeout, handshake_timeout, "
                              "idle_timeout, drain_timeout, [[inbound]] and [[outbound]]");
    }
}

void Parser::run(const Value& root) {
    std::size_t in = 0, outn = 0;
    for (const Member& m : root.members) {
        if (m.key != "inbound" && m.key != "outbound") {
            top_key(m);
            continue;
        }
        const Direction d = m.key == "inbound" ? Direction::inbound : Direction::outbound;
        if (!want(m, Type::array, "an array of tables ([[" + m.key + "]])")) continue;
        for (const Value& t : m.value.items) {
            if (t.type != Type::table) {
                error(t.position, "each " + m.key + " listener must be a table");
                continue;
            }
            listener(t, d, d == Direction::inbound ? ++in : ++outn);
        }
    }
    if (s_.listeners.empty() && result_.errors.empty())
        error({}, "no listeners: add an [[inbound]] or an [[outbound]] table");
    if (s_.relay_log.empty()) s_.relay_log = s_.audit_log;
    // Every check runs, so one pass reports every problem; a listener without an address or
    // target (already reported) is left out of the checks that need them.
    check_listeners();
    generate();
    validate_generated();
}

void Parser::listener_key(const Member& m, Listener& l) {
    const bool in = l.direction == Direction::inbound;
    std::string why;
    if (m.key == "name") {
        if (want(m, Type::string, "a string")) l.name = m.value.string;
    } else if (m.key == "listen") {
        if (want(m, Type::string, "a string") &&
            !parse_endpoint(m.value.string, false, l.listen, why))
            error(m.value.position, "`listen`: " + why);
        in6_addr a6{};
        if (why.empty() && !l.listen.text.empty() &&
            inet_pton(AF_INET, l.listen.host.c_str(), &a6) != 1 &&
            inet_pton(AF_INET6, l.listen.host.c_str(), &a6) != 1) {
            error(m.value.position,
                  "`listen` must name an address (\"0.0.0.0:8443\", "
                  "\"[::]:8443\", \"127.0.0.1:8443\"), not a host name");
            l.listen = Endpoint{};
        }
    } else if (in ? m.key == "backend" : m.key == "destination") {
        target_at_.back() = m.value.position;
        if (want(m, Type::string, "a string") && !parse_endpoint(m.value.string, in, l.target, why))
            error(m.value.position, quote(m.key) + ": " + why);
    } else if (in && m.key == "proxy_protocol") {
        if (want(m, Type::string, "a string")) {
            if (m.value.string == "v2")
                l.proxy_v2 = true;
            else if (m.value.string != "off")
                error(m.value.position, "`proxy_protocol` is \"v2\" or \"off\"");
        }
    } else if (!in && m.key == "sources") {
        if (!want(m, Type::array, "an array of networks")) return;
        for (const Value& v : m.value.items) {
            auto n = v.type == Type::string ? config::parse_network(v.string)
                                            : Result<config::Network>(make_error("not a string"));
            if (!n) {
                error(v.position, "`sources`: " + n.error().message);
                continue;
            }
            l.sources.push_back(n.value());
            l.source_texts.push_back(v.string);
        }
    } else if (among(in ? std::span<const char* const>(inbound_passed)
                        : std::span<const char* const>(outbound_passed),
                     m.key)) {
        passed_.back().push_back(&m);
    } else {
        error(m.position,
              "unknown key " + quote(m.key) + " in an [[" + (in ? "inbound" : "outbound") +
                  "]] listener; it takes name, listen, " +
                  (in ? "backend, proxy_protocol, identity, allow, service, suites, rotate_*"
                      : "sources, destination, identity, expect, server_name, via, suites, "
                        "rotate_*"));
    }
}

void Parser::listener(const Value& table, Direction d, std::size_t index) {
    Listener l;
    l.direction = d;
    const bool in = d == Direction::inbound;
    l.name = std::string(in ? "inbound #" : "outbound #") + std::to_string(index);
    passed_.emplace_back();
    headers_.push_back(table.position);
    target_at_.push_back(table.position);
    for (const Member& m : table.members)
        listener_key(m, l);
    if (l.listen.text.empty())
        error(table.position, "listener " + quote(l.name) + " has no `listen`");
    if (l.target.text.empty())
        error(table.position,
              "listener " + quote(l.name) + " has no `" + (in ? "backend" : "destination") + "`");
    if (!in && l.sources.empty()) {  // the default: this machine only
        for (const char* n : {"127.0.0.0/8", "::1"}) {
            l.sources.push_back(config::parse_network(n).value());
            l.source_texts.emplace_back(n);
        }
    }
    s_.listeners.push_back(std::move(l));
}

bool complete(const Listener& l) {
    return !l.listen.text.empty() && !l.target.text.empty();
}

bool same_tcp(const Endpoint& a, const Endpoint& b) {
    return !a.is_unix && !b.is_unix && a.port == b.port && a.host == b.host;
}

void Parser::check_listeners() {
    const auto& ls = s_.listeners;
    for (std::size_t i = 0; i < ls.size(); ++i) {
        if (!complete(ls[i])) continue;
        for (std::size_t j = 0; j < i; ++j) {
            if (!complete(ls[j])) continue;
            if (ls[i].name == ls[j].name)
                error(headers_[i], "two listeners are named " + quote(ls[i].name));
            // The shim tells inbound rules apart by local port only.
            if (ls[i].listen.port == ls[j].listen.port)
                error(headers_[i], "listeners " + quote(ls[j].name) + " and " + quote(ls[i].name) +
                                       " both listen on port " + std::to_string(ls[i].listen.port) +
                                       ": sealing rules tell listeners apart by port, give each "
                                       "its own");
            const Listener* in = ls[i].direction == Direction::inbound ? &ls[i] : &ls[j];
            const Listener* out = ls[i].direction == Direction::inbound ? &ls[j] : &ls[i];
            if (in->direction != out->direction && same_tcp(in->target, out->target))
                error(target_at_[i], "backend " + quote(in->target.text) + " of " +
                                         quote(in->name) + " is also the sealed destination of " +
                                         quote(out->name) + ": one address cannot be both");
        }
        if (ls[i].listen.port == 0)
            error(headers_[i], "listener " + quote(ls[i].name) + " needs a port other than 0");
    }
}

void Parser::generate() {
    Generated& g = out_;
    g.line("# generated by sealsock-gateway from " + file_, {});
    for (const Member* m : top_) {
        std::string v;
        (void)toml_value(m->value, v);
        g.line(m->key + " = " + v, m->value.position);
    }
    const auto& ls = s_.listeners;
    std::vector<bool> skip;
    for (const Listener& l : ls)
        skip.push_back(!complete(l));
    auto rule_keys = [&](std::size_t i) {
        for (const Member* m : passed_[i]) {
            std::string v;
            if (!toml_value(m->value, v)) {
                error(m->value.position, quote(m->key) + " cannot be a table");
                continue;
            }
            g.line(m->key + " = " + v, m->value.position);
        }
    };
    // Backends are plaintext on a trusted link: explicitly not sealed, before any sealing rule.
    for (std::size_t i = 0; i < ls.size(); ++i) {
        if (skip[i] || ls[i].direction != Direction::inbound || ls[i].target.is_unix) continue;
        g.line("[[outbound]]", target_at_[i]);
        g.line("name = " + quoted("gateway backend " + std::to_string(i + 1)), target_at_[i]);
        g.line("mode = \"off\"", target_at_[i]);
        g.line("destinations = [" + quoted(ls[i].target.host) + "]", target_at_[i]);
        g.line("ports = [" + std::to_string(ls[i].target.port) + "]", target_at_[i]);
    }
    for (std::size_t i = 0; i < ls.size(); ++i) {
        if (skip[i] || ls[i].direction != Direction::outbound) continue;
        g.line("[[outbound]]", headers_[i]);
        g.line("name = " + quoted(ls[i].name), headers_[i]);
        g.line("destinations = [" + quoted(ls[i].target.host) + "]", target_at_[i]);
        g.line("ports = [" + std::to_string(ls[i].target.port) + "]", target_at_[i]);
        rule_keys(i);
    }
    // Plaintext listeners: explicitly not sealed.
    for (std::size_t i = 0; i < ls.size(); ++i) {
        if (skip[i] || ls[i].direction != Direction::outbound) continue;
        g.line("[[inbound]]", headers_[i]);
        g.line("name = " + quoted("gateway plaintext listener " + std::to_string(i + 1)),
               headers_[i]);
        g.line("mode = \"off\"", headers_[i]);
        g.line("ports = [" + std::to_string(ls[i].listen.port) + "]", headers_[i]);
    }
    for (std::size_t i = 0; i < ls.size(); ++i) {
        if (skip[i] || ls[i].direction != Direction::inbound) continue;
        g.line("[[inbound]]", headers_[i]);
        g.line("name = " + quoted(ls[i].name), headers_[i]);
        g.line("ports = [" + std::to_string(ls[i].listen.port) + "]", headers_[i]);
        rule_keys(i);
    }
    s_.shim_config = g.text();
}

void Parser::validate_generated() {
    const config::FileResult r = config::parse_file(out_.text(), file_);
    for (const config::Diagnostic& d : r.errors) {
        const Position p = out_.origin(d.line);
        result_.errors.push_back({file_, p.line, p.column, d.message});
    }
}

bool port_of(std::string_view text, std::uint16_t& port) {
    unsigned v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v == 0 || v > 65535) return false;
    port = static_cast<std::uint16_t>(v);
    return true;
}

}  // namespace

namespace {

bool endpoint(std::string_view text, bool unix_ok, Endpoint& out, std::string& why) {
    out.text = std::string(text);
    if (text.starts_with("unix:")) {
        out.path = std::string(text.substr(5));
        out.is_unix = true;
        if (!unix_ok)
            why = "a Unix socket is not possible here";
        else if (out.path.empty() || out.path[0] != '/' || out.path.size() > 107)
            why = "write unix: and an absolute path of at most 107 bytes";
        return why.empty();
    }
    std::string_view host, port;
    if (text.starts_with("[")) {
        const auto close = text.find("]:");
        if (close == std::string_view::npos) {
            why = quote(text) + ": write [ADDRESS]:PORT for IPv6";
            return false;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            why = quote(text) + ": write HOST:PORT (IPv6 as [ADDRESS]:PORT)";
            return false;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    const bool bad_host = host.empty() || std::any_of(host.begin(), host.end(), [](char c) {
                              return c <= ' ' || c == '*' || c == '?' || c == '"' || c == 0x7f;
                          });
    if (bad_host) {
        why = quote(text) + ": the host is empty or has a space, a control character or a wildcard";
        return false;
    }
    if (!port_of(port, out.port)) {
        why = quote(text) + ": the port must be 1 to 65535";
        return false;
    }
    out.host = std::string(host);
    return true;
}

}  // namespace

bool parse_endpoint(std::string_view text, bool unix_ok, Endpoint& out, std::string& why) {
    out = Endpoint{};
    if (endpoint(text, unix_ok, out, why)) return true;
    out = Endpoint{};
    return false;
}

ParseResult parse(std::string_view text, std::string_view file) {
    ParseResult result;
    config::toml::Document doc = config::toml::parse(text, file);
    if (!doc.ok()) {
        result.errors = std::move(doc.errors);
        return result;
    }
    Parser(file, result).run(doc.root);
    std::stable_sort(
        result.errors.begin(), result.errors.end(),
        [](const config::Diagnostic& a, const config::Diagnostic& b) { return a.line < b.line; });
    return result;
}

}  // namespace sealsock::gateway
