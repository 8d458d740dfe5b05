// libFuzzer target: the agent protocol decoder, as the agent's dispatcher meets it.
//
// The input is a frame (length prefix, then body). Oracle: nothing crashes; a length the prefix
// check accepts is within the cap; and any body that decodes re-encodes to a frame that decodes
// to the same message type, request id and field values (checked through a second re-encoding,
// which must be byte-identical to the first).
#include <sealsock/agent_protocol.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

using namespace sealsock;
using namespace sealsock::agent;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

std::vector<std::uint8_t> reencode(const Message& m) {
    std::vector<std::uint8_t> out(max_frame + length_size);
    const std::size_t n = encode(m, out);
    out.resize(n);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < length_size) return 0;
    const ByteView input(data, size);
    const auto length = frame_length(input.first(length_size));
    if (!length) return 0;
    check(length.value() <= max_frame && length.value() >= body_header_size);
    const ByteView body =
        input.subspan(length_size).first(std::min<std::size_t>(length.value(), size - length_size));
    auto message = decode(body);
    if (!message) return 0;
    const auto first = reencode(message.value());
    check(!first.empty());
    auto again = decode(ByteView(first).subspan(length_size));
    check(again.ok());
    check(again.value().type == message.value().type);
    check(again.value().request_id == message.value().request_id);
    check(reencode(again.value()) == first);
    return 0;
}
