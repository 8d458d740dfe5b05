#include "config/load.h"

#include <utility>

#include "config/schema.h"

namespace sealsock::config {

std::vector<Location> config_locations(const Environment& env) {
    if (!env.sealsock_config.empty()) return {Location{std::string(env.sealsock_config), true}};
    std::vector<Location> out;
    if (!env.xdg_config_home.empty() && env.xdg_config_home[0] == '/')
        out.push_back({std::string(env.xdg_config_home) + "/sealsock/sealsock.toml", false});
    else if (!env.home.empty() && env.home[0] == '/')
        out.push_back({std::string(env.home) + "/.config/sealsock/sealsock.toml", false});
    out.push_back({std::string(system_config_path), false});
    return out;
}

LoadResult load(std::span<const Source> sources) {
    LoadResult result;
    Config& config = result.config;
    bool enabled_set = false;
    bool audit_set = false;
    bool socket_set = false;
    for (const Source& source : sources) {
        FileResult file = parse_file(source.text, source.file);
        config.files.push_back(source.file);
        if (!file.ok()) {
            for (Diagnostic& d : file.errors)
                result.errors.push_back(std::move(d));
            continue;
        }
        FileConfig& fc = file.config;
        if (fc.enabled && !enabled_set) config.enabled = *fc.enabled, enabled_set = true;
        if (fc.audit_log && !audit_set) config.audit_log = *fc.audit_log, audit_set = true;
        if (fc.agent_socket && !socket_set)
            config.agent_socket = *fc.agent_socket, socket_set = true;
        for (OutboundRule& r : fc.outbound)
            config.outbound.push_back(std::move(r));
        for (InboundRule& r : fc.inbound)
            config.inbound.push_back(std::move(r));
    }
    return result;
}

}  // namespace sealsock::config
