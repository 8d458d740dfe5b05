#include "config/match.h"

namespace sealsock::config {
namespace {

bool program_allowed(const Rule& rule, std::string_view exe) {
    if (rule.programs.empty()) return true;
    for (const std::string& pattern : rule.programs)
        if (program_matches(pattern, exe)) return true;
    return false;
}

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
        if (!rule.enabled || !program_allowed(rule, query.exe)) continue;
        if (destination_allowed(rule, known, query)) return &rule;
    }
    return nullptr;
}

const InboundRule* match_inbound(const Config& config, const InboundQuery& query) {
    if (!config.enabled) return nullptr;
    for (const InboundRule& rule : config.inbound) {
        if (!rule.enabled || !program_allowed(rule, query.exe)) continue;
        if (rule.ports.empty() || contains_port(rule.ports, query.port)) return &rule;
    }
    return nullptr;
}

}  // namespace sealsock::config
