#include "support/forge.h"

#include <stdexcept>

namespace sealsock::test {
namespace {

record::Traffic make_traffic(const record::SuiteParams& suite, ByteView secret, std::uint64_t seq) {
    auto t = record::Traffic::create(suite, secret, seq, record::Aead::Mode::seal);
    if (!t) throw std::runtime_error(t.error().message);
    return std::move(t.value());
}

}  // namespace

Forge::Forge(const record::SuiteParams& suite, ByteView secret, std::uint64_t seq)
    : traffic_(make_traffic(suite, secret, seq)) {}

std::vector<std::uint8_t> Forge::record(std::uint8_t inner_type, ByteView content,
                                        ForgeOptions options) {
    std::vector<std::uint8_t> inner(content.begin(), content.end());
    if (!options.omit_inner_type) inner.push_back(inner_type);
    inner.resize(inner.size() + options.padding, 0);
    const std::size_t length = inner.size() + record::tag_size;
    if (length > 0xffff) throw std::invalid_argument("forged record too long for its header");
    std::vector<std::uint8_t> out(record::header_size + length);
    Writer w(out);
    w.u8(options.outer_type);
    w.u16(options.version);
    w.u16(static_cast<std::uint16_t>(length));
    const MutableByteView body = w.claim(inner.size());
    const MutableByteView tag = w.claim(record::tag_size);
    const auto nonce = traffic_.nonce();
    if (!w.ok() || !traffic_.aead().seal(nonce, ByteView(out).first(record::header_size), inner, {},
                                         body, tag))
        throw std::runtime_error("forge could not seal");
    static_cast<void>(traffic_.advance());  // a forge may sit at the last sequence number
    return out;
}

void Forge::update() {
    if (!traffic_.update()) throw std::runtime_error("forge could not update its key");
}

std::vector<std::uint8_t> test_secret(std::size_t size, std::uint8_t salt) {
    std::vector<std::uint8_t> s(size);
    for (std::size_t i = 0; i < size; ++i)
        s[i] = static_cast<std::uint8_t>(salt * 31 + i * 7 + 1);
    return s;
}

}  // namespace sealsock::test
