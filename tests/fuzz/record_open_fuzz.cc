// libFuzzer target: the record opener against arbitrary input.
//
// The first byte picks the suite, the caller's buffer size and one of two modes:
//  - raw: the rest is a byte stream handed to the opener as received from a peer;
//  - forged: the rest describes records (inner type, padding, content) that are sealed with the
//    real key, so the fuzzer reaches the post-handshake parser, alerts and padding rules behind
//    the AEAD; then one byte may be flipped.
// Oracle: nothing crashes (ASan/UBSan watch memory and arithmetic), a record that was tampered
// with never yields data, and every byte of data returned is the content of a genuine
// application-data record at that place in the stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "record/open.h"
#include "record/plaintext_cache.h"
#include "support/forge.h"

using namespace sealsock;
using namespace sealsock::record;

namespace {

struct Forged {
    std::vector<std::uint8_t> wire;
    std::vector<std::size_t> starts;              // where each record begins in `wire`
    std::vector<std::vector<std::uint8_t>> data;  // content of application-data records, else empty
    std::vector<bool> is_data;
};

void check(bool ok) {
    if (!ok) std::abort();
}

Forged forge_records(const SuiteParams& suite, ByteView secret, Reader in) {
    Forged f;
    test::Forge forge(suite, secret);
    std::uint8_t type = 0, padding = 0, size = 0;
    while (f.starts.size() < 64 && in.read_u8(type) && in.read_u8(padding) && in.read_u8(size)) {
        ByteView content;
        if (!in.read_bytes(std::min<std::size_t>(size, in.remaining()), content)) break;
        // Mostly meaningful inner types, sometimes anything.
        static constexpr std::uint8_t types[] = {21, 22, 23, 23, 22, 20, 0};
        const std::uint8_t inner = type < 224 ? types[type % 7] : type;
        // What a receiver sees (RFC 8446 5.4): the last non-zero byte of content || type is the
        // type, so a forged type of 0 makes the content's own last non-zero byte the type.
        std::vector<std::uint8_t> seen(content.begin(), content.end());
        seen.push_back(inner);
        while (!seen.empty() && seen.back() == 0)
            seen.pop_back();
        const std::uint8_t seen_type = seen.empty() ? 0 : seen.back();
        if (!seen.empty()) seen.pop_back();
        const auto rec = forge.record(inner, content, {.padding = padding % 32u});
        f.starts.push_back(f.wire.size());
        f.is_data.push_back(seen_type == 23);
        f.wire.insert(f.wire.end(), rec.begin(), rec.end());
        // A KeyUpdate alone in its record switches the forge's key after it, as a peer would.
        static const std::vector<std::uint8_t> key_update[] = {{24, 0, 0, 1, 0}, {24, 0, 0, 1, 1}};
        if (seen_type == 22 && (seen == key_update[0] || seen == key_update[1])) forge.update();
        f.data.push_back(std::move(seen));
    }
    return f;
}

// Opens `wire` as the shim would, with a caller buffer of `buffer_size` bytes.
void open_stream(RecordOpener& opener, ByteView wire, std::size_t buffer_size, const Forged* truth,
                 std::size_t tampered_at) {
    std::vector<std::uint8_t> buffer(buffer_size);
    auto cache = std::make_unique<PlaintextCache>();
    std::size_t pos = 0;
    for (int guard = 0; guard < 1000 && pos < wire.size(); ++guard) {
        OpenOutcome o = opener.open(wire.subspan(pos), buffer);
        ByteView got(buffer.data(), o.plaintext);
        if (o.status == OpenStatus::need_buffer) {
            check(o.needed > buffer.size() && o.needed <= max_plaintext_bound);
            o = opener.open(wire.subspan(pos), cache->space());
            got = ByteView(cache->space().data(), o.plaintext);
        }
        if (o.status == OpenStatus::data) {
            check(o.plaintext > 0 && o.plaintext <= max_plaintext && o.consumed > 0);
            if (truth != nullptr) {
                std::size_t index = 0;
                while (index + 1 < truth->starts.size() && truth->starts[index + 1] <= pos)
                    ++index;
                check(truth->starts[index] == pos && truth->is_data[index]);
                check(pos + o.consumed <= tampered_at);  // a tampered record never opens
                check(std::equal(got.begin(), got.end(), truth->data[index].begin(),
                                 truth->data[index].end()));
            }
        }
        if (o.status != OpenStatus::data && o.status != OpenStatus::discarded) break;
        check(o.consumed > 0);
        pos += o.consumed;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    Reader in(ByteView(bytes, size));
    std::uint8_t control = 0, buffer_choice = 0;
    if (!in.read_u8(control) || !in.read_u8(buffer_choice)) return 0;
    const SuiteParams& suite = *find_suite(static_cast<std::uint16_t>(0x1301 + control % 3));
    const std::vector<std::uint8_t> secret = test::test_secret(suite.hash_size, 42);
    auto opener = RecordOpener::create(suite, secret, 0, {.max_nondata_run = 16}).value();
    const std::size_t buffer_size = 1 + std::size_t{buffer_choice} * 64;
    ByteView rest;
    static_cast<void>(in.read_bytes(in.remaining(), rest));

    if ((control & 0x80) == 0) {
        open_stream(opener, rest, buffer_size, nullptr, SIZE_MAX);
        return 0;
    }
    Reader description(rest);
    std::uint8_t flip_hi = 0, flip_lo = 0;
    static_cast<void>(description.read_u8(flip_hi) && description.read_u8(flip_lo));
    Forged f = forge_records(suite, secret, description);
    std::size_t tampered_at = SIZE_MAX;
    if ((control & 0x40) != 0 && !f.wire.empty()) {
        tampered_at = (std::size_t{flip_hi} << 8 | flip_lo) % f.wire.size();
        f.wire[tampered_at] ^= static_cast<std::uint8_t>(1u << (control >> 3 & 7));
    }
    open_stream(opener, f.wire, buffer_size, &f, tampered_at);
    return 0;
}
