// The agent's decisions about a peer, as pure functions: who a certificate names, whether an
// access list lets that identity in, and what a client expects of its server.
//
// Nothing here touches a socket, a file or a clock; the certificate has already been verified
// (chain, validity, purpose) by OpenSSL when these run.
//
// The syntax of access-list entries and of `expect` is in <sealsock/access_list.h>.
//
// Thread-safety: all functions are pure and may be called from any thread.
#pragma once

#include <sealsock/access_list.h>
#include <sealsock/agent_protocol.h>
#include <sealsock/result.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

using X509 = struct x509_st;

namespace sealsock::keyagent {

using agent::AccessEntry;
using agent::AccessKind;
using agent::Expectation;
using agent::Fingerprint;
using agent::fingerprint_hex;
using agent::parse_access_list;
using agent::parse_expect;
using agent::parse_fingerprint;

// What the reply and the access list need to know about a peer's leaf certificate.
struct CertificateFacts {
    agent::PeerIdentity identity;            // subject (RFC 2253), SANs, SHA-256 fingerprint
    std::vector<std::string> common_names;   // every CN of the subject, UTF-8
    std::vector<std::string> organizations;  // every O
    std::vector<std::string> org_units;      // every OU
};

// Reads the identity out of `cert` (borrowed; not modified). Fails for a certificate whose
// subject or subjectAltName cannot be decoded, or that has more than one subjectAltName
// extension (RFC 5280 4.2: "A certificate MUST NOT include more than one instance of a particular
// extension"). Subject strings keep UTF-8 unescaped; SANs are "DNS:x", "email:x", "URI:x",
// "IP:addr" in certificate order (other name forms are left out).
Result<CertificateFacts> certificate_facts(const X509* cert);

enum class AccessOutcome : std::uint8_t {
    allowed,     // `entry` says which entry let the peer in
    not_listed,  // no entry matches the peer
    empty_list,  // the list is empty: nobody may connect
};

struct AccessDecision {
    AccessOutcome outcome = AccessOutcome::not_listed;
    std::string entry;  // allowed: the matching entry as written
};

// Checks a verified peer against a parsed access list (first match wins).
AccessDecision check_access(std::span<const AccessEntry> list, const CertificateFacts& peer);

}  // namespace sealsock::keyagent
