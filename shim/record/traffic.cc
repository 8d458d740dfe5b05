#include "record/traffic.h"

#include <sodium.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "record/key_schedule.h"

namespace sealsock::record {
namespace {

// The IV is a PRF output of the secret, so its first 8 bytes name the key (two keys share them
// with probability 2^-64); the suite is mixed in because two suites with the same hash derive the
// same IV from the same secret.
std::uint64_t key_id_of(const TrafficState& state) {
    std::uint64_t id = state.suite;
    for (std::size_t i = 0; i < 8; ++i)
        id ^= std::uint64_t{state.iv[i]} << (8 * i);
    return id != 0 ? id : 1;  // 0 means "no key"
}

ByteView secret_of(const TrafficState& state) {
    return ByteView(state.secret, std::min<std::size_t>(state.secret_size, sizeof state.secret));
}

// Forgets the key (secret, IV, key_id) but keeps the suite, sequence number and generation.
void wipe_key(TrafficState& state) {
    sodium_memzero(state.secret, sizeof state.secret);
    sodium_memzero(state.iv, sizeof state.iv);
    state.secret_size = 0;
    state.key_id = 0;
}

// Writes `secret` and the IV derived from it into `state`; the key goes to `keys.key` for the
// caller's Aead. `secret` must not alias state.secret.
bool install(TrafficState& state, const SuiteParams& suite, ByteView secret, TrafficKeys& keys) {
    if (secret.size() != suite.hash_size || secret.size() > sizeof state.secret ||
        !derive_traffic_keys(suite, secret, keys) || keys.iv.size() != sizeof state.iv)
        return false;
    wipe_key(state);
    std::copy(secret.begin(), secret.end(), state.secret);
    state.secret_size = static_cast<std::uint8_t>(secret.size());
    std::copy(keys.iv.view().begin(), keys.iv.view().end(), state.iv);
    state.suite = static_cast<std::uint16_t>(suite.id);
    state.key_id = key_id_of(state);
    return true;
}

}  // namespace

Status Traffic::init(TrafficState& state, const SuiteParams& suite, ByteView secret,
                     std::uint64_t seq) {
    wipe(state);
    if (secret.size() != suite.hash_size)
        return make_error("traffic secret length does not match the suite's hash");
    TrafficKeys keys;
    if (!install(state, suite, secret, keys)) {
        wipe(state);
        return make_error("could not derive traffic keys");
    }
    state.seq = seq;
    return {};
}

void Traffic::wipe(TrafficState& state) {
    wipe_key(state);
    state.suite = 0;
    state.seq = 0;
    state.generation = 0;
}

void Traffic::Wipe::operator()(TrafficState* state) const {
    wipe(*state);
    delete state;
}

Traffic::Traffic(TrafficState& state, Aead::Mode mode) : state_(&state), mode_(mode) {}

Result<Traffic> Traffic::create(const SuiteParams& suite, ByteView secret, std::uint64_t seq,
                                Aead::Mode mode) {
    std::unique_ptr<TrafficState, Wipe> owned(new TrafficState);
    if (Status s = init(*owned, suite, secret, seq); !s) return s.error();
    Traffic t(*owned, mode);
    t.owned_ = std::move(owned);
    // Build the cipher context now, so that a suite OpenSSL cannot run fails here.
    if (!t.aead().valid()) return make_error("could not derive traffic keys");
    return t;
}

void Traffic::rebind(TrafficState& state) {
    if (&state == state_) return;
    owned_.reset();
    state_ = &state;
    // aead_ and key_id_ stay: aead() rebuilds them only if `state` holds another key.
}

void Traffic::refresh() {
    aead_ = Aead();
    key_id_ = state_->key_id;
    const SuiteParams* suite = this->suite();
    TrafficKeys keys;
    if (key_id_ == 0 || suite == nullptr || !derive_traffic_keys(*suite, secret_of(*state_), keys))
        return;
    if (auto aead = Aead::create(*suite, keys.key.view(), mode_)) aead_ = std::move(aead.value());
}

bool Traffic::update() {
    const SuiteParams* suite = this->suite();
    Secret next;
    TrafficKeys keys;
    if (suite != nullptr && state_->key_id != 0 &&
        next_traffic_secret(*suite, secret_of(*state_), next) &&
        install(*state_, *suite, next.view(), keys)) {
        if (auto aead = Aead::create(*suite, keys.key.view(), mode_)) {
            state_->seq = 0;
            ++state_->generation;
            aead_ = std::move(aead.value());
            key_id_ = state_->key_id;
            return true;
        }
    }
    wipe_key(*state_);
    aead_ = Aead();
    key_id_ = 0;
    return false;
}

std::array<std::uint8_t, nonce_size> Traffic::nonce() const {
    std::array<std::uint8_t, nonce_size> n{};
    std::copy(state_->iv, state_->iv + nonce_size, n.begin());
    for (std::size_t i = 0; i < 8; ++i)
        n[nonce_size - 1 - i] ^= static_cast<std::uint8_t>(state_->seq >> (8 * i));
    return n;
}

bool Traffic::advance() {
    if (state_->seq == std::numeric_limits<std::uint64_t>::max()) return false;
    ++state_->seq;
    return true;
}

}  // namespace sealsock::record
