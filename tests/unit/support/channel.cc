#include "support/channel.h"

#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>

#include "record/plaintext_cache.h"
#include "support/forge.h"

namespace sealsock::test {

using namespace record;

Channel make_channel(const SuiteParams& suite, RotationPolicy policy, std::uint64_t seq,
                     OpenLimits limits, std::uint8_t salt) {
    const auto secret = test_secret(suite.hash_size, salt);
    auto sealer = RecordSealer::create(suite, secret, seq, policy, 0);
    auto opener = RecordOpener::create(suite, secret, seq, limits);
    if (!sealer || !opener) throw std::runtime_error("cannot create channel");
    return Channel{std::move(sealer.value()), std::move(opener.value())};
}

std::vector<std::uint8_t> seal_all(RecordSealer& sealer, ByteView data, std::uint64_t now) {
    std::vector<std::uint8_t> wire(sealed_size(data.size()) + 64);
    const SealOutcome r = sealer.seal_data(data, wire, now);
    REQUIRE(r.ok);
    REQUIRE(r.consumed == data.size());
    wire.resize(r.written);
    return wire;
}

Drained open_all(RecordOpener& opener, ByteView wire, std::size_t buffer_size) {
    Drained d;
    std::vector<std::uint8_t> buffer(buffer_size);
    auto cache = std::make_unique<PlaintextCache>();
    while (true) {
        d.last = opener.open(wire, buffer);
        if (d.last.status == OpenStatus::need_buffer) {
            d.last = opener.open(wire, cache->space());
            if (d.last.status == OpenStatus::data) {
                cache->filled(d.last.plaintext);
                while (!cache->empty()) {
                    const std::size_t n = cache->take(buffer);
                    d.data.insert(d.data.end(), buffer.begin(), buffer.begin() + n);
                }
            }
        } else if (d.last.status == OpenStatus::data) {
            d.data.insert(d.data.end(), buffer.begin(), buffer.begin() + d.last.plaintext);
        }
        if (d.last.status == OpenStatus::discarded) ++d.discarded;
        if (d.last.status != OpenStatus::data && d.last.status != OpenStatus::discarded) break;
        wire = wire.subspan(d.last.consumed);
        if (wire.empty()) break;
    }
    return d;
}

}  // namespace sealsock::test
