// The protocol between the shim (or any client) and sealsock-agent, version 1.
//
// Specified in docs/agent-protocol.md; this header is its single implementation, used by the
// agent's dispatcher and by the shim's client so the two cannot drift apart.
//
//   frame   = length:u32 body              length = size of body, 10 .. max_frame (checked
//                                           before any byte of the body is read)
//   body    = version:u8 type:u8 request_id:u64 field*
//   field   = tag:u8 size:u16 value[size]  tags are defined per message type; unknown tags,
//                                           repeated single fields, missing required fields and
//                                           values of the wrong size are errors
//
// A handshake request carries the socket as SCM_RIGHTS ancillary data on its first byte.
//
// Thread-safety: the codec is pure (no state). decode() allocates (strings); secrets decoded from
// a reply go straight into Secret. encode() writes into a caller's buffer so a reply with secrets
// never touches the heap; the caller wipes that buffer after sending.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>
#include <sealsock/secret.h>

#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace sealsock::agent {

inline constexpr std::uint8_t protocol_version = 1;
inline constexpr std::size_t length_size = 4;
inline constexpr std::size_t body_header_size = 1 + 1 + 8;
inline constexpr std::size_t max_frame = 64 * 1024;

enum class MessageType : std::uint8_t {
    // requests
    handshake = 0x01,
    lock = 0x02,
    unlock = 0x03,
    status = 0x04,
    stop = 0x05,
    // replies
    handshake_ok = 0x81,
    error = 0x82,
    ok = 0x83,
    status_reply = 0x84,
};

enum class Role : std::uint8_t { client = 1, server = 2 };

// Why the agent refused. Stable numbers: they are part of the protocol.
enum class ErrorCode : std::uint16_t {
    bad_request = 1,          // malformed or unknown request
    unsupported_version = 2,  // protocol version the agent does not speak
    locked = 3,               // keys are locked: run `sealsock agent unlock`
    no_identity = 4,          // no such identity, or none configured
    program_not_allowed = 5,  // the calling program may not use this identity
    not_a_socket = 6,         // the passed fd is missing or not a connected TCP socket
    handshake_failed = 7,     // TLS handshake failed (protocol, suites, I/O)
    peer_untrusted = 8,       // peer's certificate chain is not trusted
    peer_name_mismatch = 9,   // peer's certificate does not match the expected name or pin
    peer_expired = 10,        // peer's certificate is expired or not yet valid
    access_denied = 11,       // peer authenticated but not in the service's access list
    timeout = 12,             // handshake did not finish in time
    peer_closed = 13,         // peer closed or reset the connection during the handshake
    peer_rejected = 14,       // peer sent an alert (it refused us)
    busy = 15,                // too many handshakes in flight
    internal = 16,            // bug or resource exhaustion in the agent
    bad_passphrase = 17,      // unlock: wrong passphrase
    unsafe_handoff = 18,      // OpenSSL buffered bytes past the handshake: refused
};

const char* error_code_name(ErrorCode code);

struct HandshakeRequest {
    Role role = Role::client;
    std::string server_name;            // client: SNI and the name to verify (optional)
    std::string service;                // server: the local service, for access list and logs
    std::string identity;               // identity to present; empty: the agent's default
    std::string expect;                 // client: "name:HOST" or "sha256:HEX" pin; default name
    std::vector<std::uint16_t> suites;  // preference order; empty: all three
    std::vector<std::string> allow;     // server: access list entries (docs/agent-protocol.md)
    std::uint32_t timeout_ms = 10000;
    // client: "HOST:PORT" to ask an HTTP proxy for (CONNECT) before the handshake; the socket is
    // connected to the proxy. Empty: the socket is connected to the server itself.
    std::string proxy_connect;
};

struct PeerIdentity {
    std::string subject;                         // RFC 2253 form
    std::vector<std::string> sans;               // "DNS:...", "email:...", "URI:...", "IP:..."
    std::array<std::uint8_t, 32> fingerprint{};  // SHA-256 of the DER certificate
};

struct HandshakeReply {
    std::uint16_t suite = 0;
    Secret write_secret;  // this side's application traffic secret
    Secret read_secret;   // the peer's
    std::uint64_t write_seq = 0;
    std::uint64_t read_seq = 0;
    std::string identity;  // the identity that was presented
    PeerIdentity peer;
};

struct ErrorReply {
    ErrorCode code = ErrorCode::internal;
    std::string message;  // one sentence for a person
};

struct UnlockRequest {
    SecureBuffer passphrase;
};

struct StatusReply {
    bool locked = true;
    std::uint32_t in_flight = 0;
    std::vector<std::string> identities;  // "NAME SUBJECT (valid until DATE)"
};

struct Empty {};

using Body =
    std::variant<Empty, HandshakeRequest, HandshakeReply, ErrorReply, UnlockRequest, StatusReply>;

struct Message {
    MessageType type = MessageType::ok;
    std::uint64_t request_id = 0;
    Body body;
};

// Reads the 4-byte length prefix; fails when the frame would be shorter than a body header or
// longer than max_frame. Call this before reading (or allocating for) the body.
Result<std::uint32_t> frame_length(ByteView prefix);

// Decodes a frame body (the bytes after the length prefix).
Result<Message> decode(ByteView body);

// Encodes a whole frame (length prefix included) into `out`. Returns the frame size, or 0 when
// it does not fit or a field is too long to encode.
std::size_t encode(const Message& message, MutableByteView out);

}  // namespace sealsock::agent
