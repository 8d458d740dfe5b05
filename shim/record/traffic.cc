#include "record/traffic.h"

#include <limits>
#include <utility>

#include "record/key_schedule.h"

namespace sealsock::record {

Result<Traffic> Traffic::create(const SuiteParams& suite, ByteView secret, std::uint64_t seq,
                                Aead::Mode mode) {
    if (secret.size() != suite.hash_size)
        return make_error("traffic secret length does not match the suite's hash");
    Traffic t(suite, mode);
    if (!t.install(secret)) return make_error("could not derive traffic keys");
    t.seq_ = seq;
    return t;
}

bool Traffic::install(ByteView secret) {
    TrafficKeys keys;
    if (!derive_traffic_keys(*suite_, secret, keys)) return false;
    auto aead = Aead::create(*suite_, keys.key.view(), mode_);
    if (!aead) return false;
    secret_.assign(secret);
    iv_ = std::move(keys.iv);
    aead_ = std::move(aead.value());
    return true;
}

bool Traffic::update() {
    Secret next;
    if (!next_traffic_secret(*suite_, secret_.view(), next) || !install(next.view())) {
        secret_.wipe();
        iv_.wipe();
        aead_ = Aead();
        return false;
    }
    seq_ = 0;
    ++generation_;
    return true;
}

std::array<std::uint8_t, nonce_size> Traffic::nonce() const {
    std::array<std::uint8_t, nonce_size> n{};
    const auto iv = iv_.view();
    for (std::size_t i = 0; i < nonce_size && i < iv.size(); ++i)
        n[i] = iv[i];
    for (std::size_t i = 0; i < 8; ++i)
        n[nonce_size - 1 - i] ^= static_cast<std::uint8_t>(seq_ >> (8 * i));
    return n;
}

bool Traffic::advance() {
    if (seq_ == std::numeric_limits<std::uint64_t>::max()) return false;
    ++seq_;
    return true;
}

}  // namespace sealsock::record
