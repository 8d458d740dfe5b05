#include "config/match.h"

namespace sealsock::config {

// The executable, or the name the program was started as: a path pattern needs an absolute one.
bool program_applies(const Rule& rule, std::string_view exe, std::string_view invoked) {
    if (rule.programs.empty()) return true;
    const bool by_invoked = !invoked.empty() && invoked != exe;
    for (const std::string& pattern : rule.programs) {
        if (program_matches(pattern, exe)) return true;
        const bool path_pattern = pattern.find('/') != std::string::npos;
        if (by_invoked && (!path_pattern || invoked.front() == '/') &&
            program_matches(pattern, invoked))
            return true;
    }
    return false;
}

namespace {

bool port_allowed(const OutboundRule& rule, const Destination* d, std::uint16_t port) {
    if (d != nullptr && !d->ports.empty()) return contains_port(d->ports, port);
    return rule.ports.empty() || contains_port(rule.ports, port);
}

bool destination_allowed(const OutboundRule& rule, const Address* address, const OutboundQuery& q) {
    if (rule.destinations.empty()) return port_allowed(rule, nullptr, q.port);
    for (const Destination& d : rule.destinations)
        if (d.matches(address, q.host) && port_allowed(rule, &d, q.port)) return true;
    return false;
}

}  // namespace

const OutboundRule* match_outbound(const Config& config, const OutboundQuery& query) {
    if (!config.enabled) return nullptr;
    Address address;
    const Address* known = canonical_address(query.address, address) ? &address : nullptr;
    for (const OutboundRule& rule : config.outbound) {
        if (!rule.enabled || !program_applies(rule, query.exe, query.invoked)) continue;
        if (destination_allowed(rule, known, query)) return &rule;
    }
    return nullptr;
}

const InboundRule* match_inbound(const Config& config, const InboundQuery& query) {
    if (!config.enabled) return nullptr;
    for (const InboundRule& rule : config.inbound) {
        if (!rule.enabled || !program_applies(rule, query.exe, query.invoked)) continue;
        if (rule.ports.empty() || contains_port(rule.ports, query.port)) return &rule;
    }
    return nullptr;
}

}  // namespace sealsock::config
