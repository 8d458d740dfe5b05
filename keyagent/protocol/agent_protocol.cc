// Codec for the agent protocol (include/sealsock/agent_protocol.h, docs/agent-protocol.md).
#include <sealsock/agent_protocol.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <string_view>

namespace sealsock::agent {
namespace {

enum class Kind : std::uint8_t { u8, u16, u32, u64, text, bytes };

struct FieldSpec {
    std::uint8_t tag;
    Kind kind;
    bool required;
    bool repeated;
    std::uint16_t min_size;  // for text and bytes
    std::uint16_t max_size;
};

// Field tags, per message type. The tables are the schema: decode() checks every field against
// them before any value is used.
namespace tag {
enum Handshake : std::uint8_t {
    role = 1,
    server_name,
    service,
    identity,
    expect,
    suite,
    allow,
    timeout_ms,
    proxy_connect
};
enum HandshakeOk : std::uint8_t {
    ok_suite = 1,
    write_secret,
    read_secret,
    write_seq,
    read_seq,
    ok_identity,
    peer_subject,
    peer_san,
    peer_fingerprint
};
enum Error : std::uint8_t { code = 1, message };
enum Unlock : std::uint8_t { passphrase = 1 };
enum Status : std::uint8_t { locked = 1, in_flight, status_identity };
}  // namespace tag

constexpr FieldSpec handshake_fields[] = {
    {tag::role, Kind::u8, true, false, 0, 0},
    {tag::server_name, Kind::text, false, false, 1, 255},
    {tag::service, Kind::text, false, false, 1, 255},
    {tag::identity, Kind::text, false, false, 1, 255},
    {tag::expect, Kind::text, false, false, 1, 1024},
    {tag::suite, Kind::u16, false, true, 0, 0},
    {tag::allow, Kind::text, false, true, 1, 1024},
    {tag::timeout_ms, Kind::u32, false, false, 0, 0},
    {tag::proxy_connect, Kind::text, false, false, 3, 262},
};
constexpr FieldSpec handshake_ok_fields[] = {
    {tag::ok_suite, Kind::u16, true, false, 0, 0},
    {tag::write_secret, Kind::bytes, true, false, 32, 48},
    {tag::read_secret, Kind::bytes, true, false, 32, 48},
    {tag::write_seq, Kind::u64, true, false, 0, 0},
    {tag::read_seq, Kind::u64, true, false, 0, 0},
    {tag::ok_identity, Kind::text, false, false, 1, 255},
    {tag::peer_subject, Kind::text, true, false, 0, 4096},
    {tag::peer_san, Kind::text, false, true, 1, 1024},
    {tag::peer_fingerprint, Kind::bytes, true, false, 32, 32},
};
constexpr FieldSpec error_fields[] = {
    {tag::code, Kind::u16, true, false, 0, 0},
    {tag::message, Kind::text, true, false, 1, 2048},
};
constexpr FieldSpec unlock_fields[] = {
    {tag::passphrase, Kind::bytes, true, false, 1, 1024},
};
constexpr FieldSpec status_fields[] = {
    {tag::locked, Kind::u8, true, false, 0, 0},
    {tag::in_flight, Kind::u32, true, false, 0, 0},
    {tag::status_identity, Kind::text, false, true, 1, 2048},
};

struct MessageSpec {
    MessageType type;
    std::span<const FieldSpec> fields;
};

constexpr MessageSpec messages[] = {
    {MessageType::handshake, handshake_fields},
    {MessageType::lock, {}},
    {MessageType::unlock, unlock_fields},
    {MessageType::status, {}},
    {MessageType::stop, {}},
    {MessageType::handshake_ok, handshake_ok_fields},
    {MessageType::error, error_fields},
    {MessageType::ok, {}},
    {MessageType::status_reply, status_fields},
};

const MessageSpec* find_message(std::uint8_t type) {
    for (const auto& m : messages)
        if (static_cast<std::uint8_t>(m.type) == type) return &m;
    return nullptr;
}

std::size_t fixed_size(Kind kind) {
    switch (kind) {
        case Kind::u8:
            return 1;
        case Kind::u16:
            return 2;
        case Kind::u32:
            return 4;
        case Kind::u64:
            return 8;
        case Kind::text:
        case Kind::bytes:
            break;
    }
    return 0;
}

struct Field {
    std::uint8_t tag;
    ByteView value;
};

// Splits the fields and checks each against the schema.
Result<std::vector<Field>> parse_fields(const MessageSpec& spec, Reader& r) {
    std::vector<Field> fields;
    while (!r.empty()) {
        std::uint8_t t = 0;
        ByteView value;
        if (!r.read_u8(t) || !r.read_prefixed(2, value)) return make_error("truncated field");
        const auto it = std::find_if(spec.fields.begin(), spec.fields.end(),
                                     [t](const FieldSpec& f) { return f.tag == t; });
        if (it == spec.fields.end()) return make_error("unknown field " + std::to_string(t));
        if (const std::size_t size = fixed_size(it->kind); size != 0) {
            if (value.size() != size)
                return make_error("field " + std::to_string(t) + " has the wrong size");
        } else if (value.size() < it->min_size || value.size() > it->max_size) {
            return make_error("field " + std::to_string(t) + " has an invalid length");
        }
        if (it->kind == Kind::text &&
            std::find(value.begin(), value.end(), std::uint8_t{0}) != value.end())
            return make_error("text field " + std::to_string(t) + " contains a NUL byte");
        const bool seen =
            std::any_of(fields.begin(), fields.end(), [t](const Field& f) { return f.tag == t; });
        if (seen && !it->repeated) return make_error("field " + std::to_string(t) + " repeated");
        fields.push_back({t, value});
    }
    for (const auto& f : spec.fields) {
        const bool present = std::any_of(fields.begin(), fields.end(),
                                         [&f](const Field& x) { return x.tag == f.tag; });
        if (f.required && !present)
            return make_error("required field " + std::to_string(f.tag) + " missing");
    }
    return fields;
}

std::uint64_t number(ByteView v) {
    std::uint64_t n = 0;
    for (auto b : v)
        n = n << 8 | b;
    return n;
}

std::string text(ByteView v) {
    return std::string(v.begin(), v.end());
}

Result<Body> decode_handshake(const std::vector<Field>& fields) {
    HandshakeRequest req;
    for (const auto& f : fields) {
        switch (f.tag) {
            case tag::role:
                if (f.value[0] != 1 && f.value[0] != 2) return make_error("unknown role");
                req.role = static_cast<Role>(f.value[0]);
                break;
            case tag::server_name:
                req.server_name = text(f.value);
                break;
            case tag::service:
                req.service = text(f.value);
                break;
            case tag::identity:
                req.identity = text(f.value);
                break;
            case tag::expect:
                req.expect = text(f.value);
                break;
            case tag::suite:
                req.suites.push_back(static_cast<std::uint16_t>(number(f.value)));
                break;
            case tag::allow:
                req.allow.push_back(text(f.value));
                break;
            case tag::timeout_ms:
                req.timeout_ms = static_cast<std::uint32_t>(number(f.value));
                break;
            case tag::proxy_connect:
                req.proxy_connect = text(f.value);
                break;
            default:
                break;
        }
    }
    if (req.suites.size() > 8) return make_error("too many suites");
    if (req.allow.size() > 256) return make_error("access list too long");
    if (req.timeout_ms == 0 || req.timeout_ms > 300000)
        return make_error("timeout must be between 1 ms and 5 minutes");
    if (!req.proxy_connect.empty() &&
        (req.role != Role::client ||
         req.proxy_connect.find_first_of(" \r\n\t/@") != std::string::npos ||
         req.proxy_connect.rfind(':') == std::string::npos))
        return make_error("proxy_connect must be HOST:PORT, for a client");
    return Body(std::move(req));
}

Result<Body> decode_handshake_ok(const std::vector<Field>& fields) {
    HandshakeReply rep;
    for (const auto& f : fields) {
        switch (f.tag) {
            case tag::ok_suite:
                rep.suite = static_cast<std::uint16_t>(number(f.value));
                break;
            case tag::write_secret:
                rep.write_secret.assign(f.value);
                break;
            case tag::read_secret:
                rep.read_secret.assign(f.value);
                break;
            case tag::write_seq:
                rep.write_seq = number(f.value);
                break;
            case tag::read_seq:
                rep.read_seq = number(f.value);
                break;
            case tag::ok_identity:
                rep.identity = text(f.value);
                break;
            case tag::peer_subject:
                rep.peer.subject = text(f.value);
                break;
            case tag::peer_san:
                rep.peer.sans.push_back(text(f.value));
                break;
            case tag::peer_fingerprint:
                std::copy(f.value.begin(), f.value.end(), rep.peer.fingerprint.begin());
                break;
            default:
                break;
        }
    }
    if (rep.write_secret.size() != rep.read_secret.size())
        return make_error("secrets of different lengths");
    return Body(std::move(rep));
}

Result<Body> decode_error(const std::vector<Field>& fields) {
    ErrorReply rep;
    for (const auto& f : fields) {
        if (f.tag == tag::code) rep.code = static_cast<ErrorCode>(number(f.value));
        if (f.tag == tag::message) rep.message = text(f.value);
    }
    return Body(std::move(rep));
}

Result<Body> decode_unlock(const std::vector<Field>& fields) {
    UnlockRequest req;
    req.passphrase = SecureBuffer(fields.front().value.size());
    if (!req.passphrase.valid()) return make_error("out of secure memory");
    std::copy(fields.front().value.begin(), fields.front().value.end(), req.passphrase.data());
    return Body(std::move(req));
}

Result<Body> decode_status(const std::vector<Field>& fields) {
    StatusReply rep;
    for (const auto& f : fields) {
        if (f.tag == tag::locked) rep.locked = f.value[0] != 0;
        if (f.tag == tag::in_flight) rep.in_flight = static_cast<std::uint32_t>(number(f.value));
        if (f.tag == tag::status_identity) rep.identities.push_back(text(f.value));
    }
    return Body(std::move(rep));
}

// Writes one field; the Writer records overflow.
void put(Writer& w, std::uint8_t t, ByteView value) {
    if (value.size() > 0xffff) {
        w.fail();
        return;
    }
    w.u8(t);
    w.u16(static_cast<std::uint16_t>(value.size()));
    w.bytes(value);
}
void put_text(Writer& w, std::uint8_t t, const std::string& s) {
    if (!s.empty()) put(w, t, as_bytes(s));
}
template <typename T>
void put_number(Writer& w, std::uint8_t t, T v) {
    std::uint8_t buf[sizeof(T)];
    for (std::size_t i = 0; i < sizeof(T); ++i)
        buf[i] =
            static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * (sizeof(T) - 1 - i)));
    put(w, t, ByteView(buf, sizeof(T)));
}

struct EncodeBody {
    Writer& w;
    void operator()(const Empty&) const {}
    void operator()(const HandshakeRequest& r) const {
        put_number(w, tag::role, static_cast<std::uint8_t>(r.role));
        put_text(w, tag::server_name, r.server_name);
        put_text(w, tag::service, r.service);
        put_text(w, tag::identity, r.identity);
        put_text(w, tag::expect, r.expect);
        for (auto s : r.suites)
            put_number(w, tag::suite, s);
        for (const auto& a : r.allow)
            put_text(w, tag::allow, a);
        put_number(w, tag::timeout_ms, r.timeout_ms);
        put_text(w, tag::proxy_connect, r.proxy_connect);
    }
    void operator()(const HandshakeReply& r) const {
        put_number(w, tag::ok_suite, r.suite);
        put(w, tag::write_secret, r.write_secret.view());
        put(w, tag::read_secret, r.read_secret.view());
        put_number(w, tag::write_seq, r.write_seq);
        put_number(w, tag::read_seq, r.read_seq);
        put_text(w, tag::ok_identity, r.identity);
        put(w, tag::peer_subject, as_bytes(r.peer.subject));
        for (const auto& s : r.peer.sans)
            put_text(w, tag::peer_san, s);
        put(w, tag::peer_fingerprint, r.peer.fingerprint);
    }
    void operator()(const ErrorReply& r) const {
        put_number(w, tag::code, static_cast<std::uint16_t>(r.code));
        put_text(w, tag::message, r.message.empty() ? std::string("error") : r.message);
    }
    void operator()(const UnlockRequest& r) const { put(w, tag::passphrase, r.passphrase.view()); }
    void operator()(const StatusReply& r) const {
        put_number(w, tag::locked, static_cast<std::uint8_t>(r.locked ? 1 : 0));
        put_number(w, tag::in_flight, r.in_flight);
        for (const auto& s : r.identities)
            put_text(w, tag::status_identity, s);
    }
};

}  // namespace

const char* error_code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::bad_request:
            return "bad_request";
        case ErrorCode::unsupported_version:
            return "unsupported_version";
        case ErrorCode::locked:
            return "locked";
        case ErrorCode::no_identity:
            return "no_identity";
        case ErrorCode::program_not_allowed:
            return "program_not_allowed";
        case ErrorCode::not_a_socket:
            return "not_a_socket";
        case ErrorCode::handshake_failed:
            return "handshake_failed";
        case ErrorCode::peer_untrusted:
            return "peer_untrusted";
        case ErrorCode::peer_name_mismatch:
            return "peer_name_mismatch";
        case ErrorCode::peer_expired:
            return "peer_expired";
        case ErrorCode::access_denied:
            return "access_denied";
        case ErrorCode::timeout:
            return "timeout";
        case ErrorCode::peer_closed:
            return "peer_closed";
        case ErrorCode::peer_rejected:
            return "peer_rejected";
        case ErrorCode::busy:
            return "busy";
        case ErrorCode::internal:
            return "internal";
        case ErrorCode::bad_passphrase:
            return "bad_passphrase";
        case ErrorCode::unsafe_handoff:
            return "unsafe_handoff";
    }
    return "unknown";
}

Result<std::uint32_t> frame_length(ByteView prefix) {
    Reader r(prefix);
    std::uint32_t n = 0;
    if (!r.read_u32(n)) return make_error("truncated frame length");
    if (n < body_header_size) return make_error("frame too short");
    if (n > max_frame)
        return make_error("frame longer than " + std::to_string(max_frame) + " bytes");
    return n;
}

Result<Message> decode(ByteView body) {
    if (body.size() > max_frame) return make_error("frame too long");
    Reader r(body);
    std::uint8_t version = 0, type = 0;
    Message m;
    if (!r.read_u8(version) || !r.read_u8(type) || !r.read_u64(m.request_id))
        return make_error("truncated message header");
    if (version != protocol_version)
        return make_error("unsupported protocol version " + std::to_string(version));
    const MessageSpec* spec = find_message(type);
    if (spec == nullptr) return make_error("unknown message type " + std::to_string(type));
    m.type = spec->type;
    auto fields = parse_fields(*spec, r);
    if (!fields) return fields.error();
    Result<Body> body_or = Body(Empty{});
    switch (m.type) {
        case MessageType::handshake:
            body_or = decode_handshake(fields.value());
            break;
        case MessageType::handshake_ok:
            body_or = decode_handshake_ok(fields.value());
            break;
        case MessageType::error:
            body_or = decode_error(fields.value());
            break;
        case MessageType::unlock:
            body_or = decode_unlock(fields.value());
            break;
        case MessageType::status_reply:
            body_or = decode_status(fields.value());
            break;
        case MessageType::lock:
        case MessageType::status:
        case MessageType::stop:
        case MessageType::ok:
            break;
    }
    if (!body_or) return body_or.error();
    m.body = std::move(body_or.value());
    return m;
}

std::size_t encode(const Message& message, MutableByteView out) {
    Writer w(out);
    const MutableByteView length = w.claim(length_size);
    w.u8(protocol_version);
    w.u8(static_cast<std::uint8_t>(message.type));
    w.u64(message.request_id);
    std::visit(EncodeBody{w}, message.body);
    if (!w.ok() || w.written() - length_size > max_frame) return 0;
    Writer(length).u32(static_cast<std::uint32_t>(w.written() - length_size));
    return w.written();
}

}  // namespace sealsock::agent
