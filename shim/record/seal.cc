#include "record/seal.h"

#include <algorithm>
#include <array>
#include <utility>

namespace sealsock::record {

std::size_t sealed_size(std::size_t plaintext) {
    const std::size_t records = (plaintext + max_plaintext - 1) / max_plaintext;
    return plaintext + records * record_overhead;
}

Status RecordSealer::init(SealState& state, const SuiteParams& suite, ByteView secret,
                          std::uint64_t seq, RotationPolicy policy, std::uint64_t now) {
    Status traffic = Traffic::init(state.traffic, suite, secret, seq);
    state.policy = policy;
    const std::uint64_t suite_limit = suite.record_limit;
    state.record_limit =
        policy.max_records != 0 ? std::min(policy.max_records, suite_limit) : suite_limit;
    // The KeyUpdate itself needs a sequence number under the old key.
    state.record_limit = std::max<std::uint64_t>(state.record_limit, 2);
    state.key_bytes = 0;
    state.key_since = now;
    state.update_scheduled = false;
    state.ask_peer = false;
    state.failed = !traffic.ok();
    return traffic;
}

void RecordSealer::wipe(SealState& state) {
    Traffic::wipe(state.traffic);
    state.failed = true;
}

void RecordSealer::Wipe::operator()(SealState* state) const {
    wipe(*state);
    delete state;
}

RecordSealer::RecordSealer(SealState& state)
    : state_(&state), traffic_(state.traffic, Aead::Mode::seal) {}

Result<RecordSealer> RecordSealer::create(const SuiteParams& suite, ByteView secret,
                                          std::uint64_t seq, RotationPolicy policy,
                                          std::uint64_t now) {
    std::unique_ptr<SealState, Wipe> owned(new SealState);
    if (Status s = init(*owned, suite, secret, seq, policy, now); !s) return s.error();
    RecordSealer sealer(*owned);
    sealer.owned_ = std::move(owned);
    // Build the cipher context now, so that a suite OpenSSL cannot run fails here.
    if (!sealer.traffic_.aead().valid()) return make_error("could not derive traffic keys");
    return sealer;
}

void RecordSealer::move_to(SealState& target) {
    if (&target == state_) return;
    target = *state_;
    owned_.reset();
    state_ = &target;
    traffic_.rebind(target.traffic);
}

void RecordSealer::schedule_key_update(bool ask_peer) {
    state_->update_scheduled = true;
    state_->ask_peer = state_->ask_peer || ask_peer;
}

bool RecordSealer::key_update_due(std::uint64_t now) const {
    // The last sequence number under a key is kept for the KeyUpdate that retires it.
    const SealState& s = *state_;
    return s.update_scheduled || s.traffic.seq >= s.record_limit - 1 ||
           (s.policy.max_bytes != 0 && s.key_bytes >= s.policy.max_bytes) ||
           (s.policy.max_seconds != 0 && now >= s.key_since + s.policy.max_seconds);
}

std::size_t RecordSealer::seal_record(ContentType type, ByteView content, MutableByteView out) {
    if (state_->failed || content.size() > max_plaintext) return 0;
    const std::size_t size = content.size() + record_overhead;
    if (out.size() < size) return 0;

    // RFC 8446 5.2: TLSCiphertext.opaque_type = application_data (23), legacy_record_version =
    // 0x0303, length = TLSInnerPlaintext length plus the AEAD expansion; the inner plaintext is
    // the content followed by its real ContentType (no padding is added).
    Writer w(out.first(size));
    w.u8(static_cast<std::uint8_t>(ContentType::application_data));
    w.u16(legacy_record_version);
    w.u16(static_cast<std::uint16_t>(size - header_size));
    const MutableByteView body = w.claim(content.size() + 1);
    const MutableByteView tag = w.claim(tag_size);
    const std::uint8_t inner_type = static_cast<std::uint8_t>(type);
    const auto nonce = traffic_.nonce();
    if (!w.ok() ||
        !traffic_.aead().seal(nonce, out.first(header_size), content, ByteView(&inner_type, 1),
                              body, tag) ||
        !traffic_.advance()) {
        state_->failed = true;
        return 0;
    }
    return size;
}

std::size_t RecordSealer::seal_alert(Alert alert, MutableByteView out) {
    // RFC 8446 6: "In TLS 1.3, the severity is implicit in the type of alert being sent, and the
    // "level" field can safely be ignored." Levels are still sent as TLS 1.2 peers expect them:
    // warning for close_notify and user_canceled, fatal for everything else.
    const bool warning = alert == Alert::close_notify || alert == Alert::user_canceled;
    const std::array<std::uint8_t, 2> message = {static_cast<std::uint8_t>(warning ? 1 : 2),
                                                 static_cast<std::uint8_t>(alert)};
    return seal_record(ContentType::alert, message, out);
}

std::size_t RecordSealer::send_key_update(MutableByteView out, std::uint64_t now) {
    // RFC 8446 4.6.3: struct { KeyUpdateRequest request_update; } KeyUpdate, in a Handshake
    // message of type key_update (24) with a 3-byte length.
    const std::array<std::uint8_t, 5> message = {
        static_cast<std::uint8_t>(HandshakeType::key_update), 0, 0, 1,
        static_cast<std::uint8_t>(state_->ask_peer ? 1 : 0)};
    // RFC 8446 4.6.3: "After sending a KeyUpdate message, the sender SHALL send all its traffic
    // using the next generation of keys": the KeyUpdate is the last record under the old key.
    const std::size_t n = seal_record(ContentType::handshake, message, out);
    if (n == 0) return 0;
    if (!traffic_.update()) {
        state_->failed = true;
        return 0;
    }
    state_->update_scheduled = false;
    state_->ask_peer = false;
    state_->key_bytes = 0;
    state_->key_since = now;
    return n;
}

SealOutcome RecordSealer::flush_key_update(MutableByteView out, std::uint64_t now) {
    SealOutcome r;
    if (!state_->failed && key_update_due(now)) r.written = send_key_update(out, now);
    r.ok = !state_->failed;
    return r;
}

SealOutcome RecordSealer::seal_data(ByteView data, MutableByteView out, std::uint64_t now) {
    SealOutcome r;
    while (!state_->failed && r.consumed < data.size()) {
        if (key_update_due(now)) {
            const std::size_t n = send_key_update(out.subspan(r.written), now);
            if (n == 0) break;
            r.written += n;
        }
        const std::size_t room = out.size() - r.written;
        if (room <= record_overhead) break;
        const std::size_t chunk =
            std::min({data.size() - r.consumed, max_plaintext, room - record_overhead});
        const std::size_t n = seal_record(ContentType::application_data,
                                          data.subspan(r.consumed, chunk), out.subspan(r.written));
        if (n == 0) break;
        r.consumed += chunk;
        r.written += n;
        state_->key_bytes += chunk;
    }
    r.ok = !state_->failed;
    return r;
}

}  // namespace sealsock::record
