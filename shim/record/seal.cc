#include "record/seal.h"

#include <algorithm>
#include <array>
#include <utility>

namespace sealsock::record {

std::size_t sealed_size(std::size_t plaintext) {
    const std::size_t records = (plaintext + max_plaintext - 1) / max_plaintext;
    return plaintext + records * record_overhead;
}

Result<RecordSealer> RecordSealer::create(const SuiteParams& suite, ByteView secret,
                                          std::uint64_t seq, RotationPolicy policy,
                                          std::uint64_t now) {
    auto traffic = Traffic::create(suite, secret, seq, Aead::Mode::seal);
    if (!traffic) return traffic.error();
    return RecordSealer(std::move(traffic.value()), policy, now);
}

RecordSealer::RecordSealer(Traffic traffic, RotationPolicy policy, std::uint64_t now)
    : traffic_(std::move(traffic)), policy_(policy), key_since_(now) {
    const std::uint64_t suite_limit = traffic_.suite().record_limit;
    record_limit_ =
        policy_.max_records != 0 ? std::min(policy_.max_records, suite_limit) : suite_limit;
    // The KeyUpdate itself needs a sequence number under the old key.
    record_limit_ = std::max<std::uint64_t>(record_limit_, 2);
}

void RecordSealer::schedule_key_update(bool ask_peer) {
    update_scheduled_ = true;
    ask_peer_ = ask_peer_ || ask_peer;
}

bool RecordSealer::key_update_due(std::uint64_t now) const {
    // The last sequence number under a key is kept for the KeyUpdate that retires it.
    return update_scheduled_ || traffic_.sequence() >= record_limit_ - 1 ||
           (policy_.max_bytes != 0 && key_bytes_ >= policy_.max_bytes) ||
           (policy_.max_seconds != 0 && now >= key_since_ + policy_.max_seconds);
}

std::size_t RecordSealer::seal_record(ContentType type, ByteView content, MutableByteView out) {
    if (failed_ || content.size() > max_plaintext) return 0;
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
        failed_ = true;
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
        static_cast<std::uint8_t>(ask_peer_ ? 1 : 0)};
    // RFC 8446 4.6.3: "After sending a KeyUpdate message, the sender SHALL send all its traffic
    // using the next generation of keys": the KeyUpdate is the last record under the old key.
    const std::size_t n = seal_record(ContentType::handshake, message, out);
    if (n == 0) return 0;
    if (!traffic_.update()) {
        failed_ = true;
        return 0;
    }
    update_scheduled_ = false;
    ask_peer_ = false;
    key_bytes_ = 0;
    key_since_ = now;
    return n;
}

SealOutcome RecordSealer::flush_key_update(MutableByteView out, std::uint64_t now) {
    SealOutcome r;
    if (!failed_ && key_update_due(now)) r.written = send_key_update(out, now);
    r.ok = !failed_;
    return r;
}

SealOutcome RecordSealer::seal_data(ByteView data, MutableByteView out, std::uint64_t now) {
    SealOutcome r;
    while (!failed_ && r.consumed < data.size()) {
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
        key_bytes_ += chunk;
    }
    r.ok = !failed_;
    return r;
}

}  // namespace sealsock::record
