// libFuzzer target: the config file, as `sealsock run` and the shim meet it.
//
// The input is the text of one config file. Oracle: nothing crashes (ASan/UBSan); every
// diagnostic names the file, has a message, and points at a line that exists (or at the file as a
// whole, line 0); and a config that loads is matched against a few fixed connections, each
// answer being a rule of that config (or none) that is enabled and that a second lookup returns
// again. The same text merged twice (as user and system file) must load exactly when it loads
// alone, with twice the rules.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "config/load.h"
#include "config/match.h"

using namespace sealsock;
using namespace sealsock::config;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

template <typename R>
void check_member(const R* rule, const std::vector<R>& rules) {
    if (rule == nullptr) return;
    check(rule >= rules.data() && rule < rules.data() + rules.size());
    check(rule->enabled);
}

void query(const Config& c) {
    static const std::uint8_t v4[4] = {10, 1, 2, 3};
    static const std::uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
    static const std::uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    const OutboundQuery outbound[] = {
        {"/usr/bin/psql", ByteView(v4), "db1.example.com", 5432},
        {"/usr/bin/psql", ByteView(mapped), "", 5432},
        {"/opt/app/bin/client", ByteView(v6), "DB.EXAMPLE.COM.", 443},
        {"", ByteView(), "", 1},
        {"curl", ByteView(v4, 3), "x", 65535},
    };
    for (const OutboundQuery& q : outbound) {
        const OutboundRule* r = match_outbound(c, q);
        check_member(r, c.outbound);
        check(match_outbound(c, q) == r);
        if (!c.enabled) check(r == nullptr);
    }
    const InboundQuery inbound[] = {
        {"/usr/bin/redis-server", 6379}, {"/usr/sbin/sshd", 22}, {"", 65535}, {"x", 1}};
    for (const InboundQuery& q : inbound) {
        const InboundRule* r = match_inbound(c, q);
        check_member(r, c.inbound);
        if (!c.enabled) check(r == nullptr);
        if (r != nullptr && r->mode != Mode::off) check(!r->allow.empty());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::size_t lines = 1;
    for (const char c : text)
        lines += c == '\n' ? 1 : 0;

    const Source one[] = {{"fuzz.toml", text}};
    const LoadResult r = load(one);
    for (const Diagnostic& d : r.errors) {
        check(d.file == "fuzz.toml");
        check(!d.message.empty());
        check(d.line <= lines);
        check(!format(d).empty());
    }
    if (r.ok()) query(r.config);

    const Source two[] = {{"user.toml", text}, {"system.toml", text}};
    const LoadResult merged = load(two);
    check(merged.ok() == r.ok());
    if (merged.ok()) {
        check(merged.config.outbound.size() == 2 * r.config.outbound.size());
        check(merged.config.inbound.size() == 2 * r.config.inbound.size());
        check(merged.config.enabled == r.config.enabled);
        query(merged.config);
    }
    return 0;
}
