#include "keyagent/policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>
#include <utility>

namespace sealsock::keyagent {
namespace {

// ------------------------------------------------------------------------------------------------
// Certificate facts

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct GeneralNamesFree {
    void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};

// The subject in RFC 2253 form ("CN=alice,OU=ops,O=Example"), UTF-8 left unescaped.
std::optional<std::string> subject_text(const X509_NAME* name) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    const unsigned long flags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
    if (bio == nullptr || X509_NAME_print_ex(bio.get(), name, 0, flags) < 0) return std::nullopt;
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    if (size < 0) return std::nullopt;
    return std::string(data, static_cast<std::size_t>(size));
}

std::optional<std::string> utf8_of(const ASN1_STRING* value) {
    unsigned char* out = nullptr;
    const int n = ASN1_STRING_to_UTF8(&out, value);
    if (n < 0) return std::nullopt;
    std::string s(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
    OPENSSL_free(out);
    return s;
}

// Collects the CN, O and OU values of the subject. False if one cannot be decoded.
bool collect_attributes(const X509_NAME* name, CertificateFacts& facts) {
    for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
        const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
        const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
        std::vector<std::string>* target = nid == NID_commonName         ? &facts.common_names
                                           : nid == NID_organizationName ? &facts.organizations
                                           : nid == NID_organizationalUnitName ? &facts.org_units
                                                                               : nullptr;
        if (target == nullptr) continue;
        auto value = utf8_of(X509_NAME_ENTRY_get_data(entry));
        if (!value) return false;
        target->push_back(std::move(*value));
    }
    return true;
}

std::string ia5_text(const ASN1_IA5STRING* s) {
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<std::size_t>(ASN1_STRING_length(s)));
}

// "IP:192.0.2.1" or "IP:2001:db8::1"; nothing for an address of another length.
std::optional<std::string> ip_text(const ASN1_OCTET_STRING* ip) {
    const int length = ASN1_STRING_length(ip);
    const int family = length == 4 ? AF_INET : length == 16 ? AF_INET6 : AF_UNSPEC;
    char text[INET6_ADDRSTRLEN] = {};
    if (family == AF_UNSPEC ||
        inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text) == nullptr)
        return std::nullopt;
    return std::string("IP:") + text;
}

std::optional<std::string> san_text(const GENERAL_NAME* name) {
    switch (name->type) {
        case GEN_DNS:
            return "DNS:" + ia5_text(name->d.dNSName);
        case GEN_EMAIL:
            return "email:" + ia5_text(name->d.rfc822Name);
        case GEN_URI:
            return "URI:" + ia5_text(name->d.uniformResourceIdentifier);
        case GEN_IPADD:
            return ip_text(name->d.iPAddress);
        default:
            return std::nullopt;
    }
}

// Appends the subjectAltNames. False for a SAN extension that does not decode or appears twice.
bool collect_sans(const X509* cert, std::vector<std::string>& sans) {
    int critical = 0;
    std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, &critical, nullptr)));
    if (names == nullptr) return critical == -1;  // -1: absent; -2: repeated; else undecodable
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
        if (auto text = san_text(sk_GENERAL_NAME_value(names.get(), i))) sans.push_back(*text);
    }
    return true;
}

// ------------------------------------------------------------------------------------------------
// Matching helpers

char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equal_ignoring_ascii_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

bool contains(const std::vector<std::string>& values, std::string_view wanted) {
    return std::find(values.begin(), values.end(), wanted) != values.end();
}

// True if the peer has a SAN "PREFIX:value" for which `same(value, wanted)` holds.
template <typename Same>
bool has_san(const CertificateFacts& peer, std::string_view prefix, std::string_view wanted,
             Same same) {
    return std::any_of(peer.identity.sans.begin(), peer.identity.sans.end(),
                       [&](const std::string& san) {
                           return san.size() > prefix.size() && san.starts_with(prefix) &&
                                  same(std::string_view(san).substr(prefix.size()), wanted);
                       });
}

bool exact(std::string_view a, std::string_view b) {
    return a == b;
}

bool matches(const AccessEntry& entry, const CertificateFacts& peer) {
    switch (entry.kind) {
        case AccessKind::any:
            return true;
        case AccessKind::cn:
            return contains(peer.common_names, entry.value);
        case AccessKind::o:
            return contains(peer.organizations, entry.value);
        case AccessKind::ou:
            return contains(peer.org_units, entry.value);
        case AccessKind::dns:
            return has_san(peer, "DNS:", entry.value, equal_ignoring_ascii_case);
        case AccessKind::email:
            return has_san(peer, "email:", entry.value, exact);
        case AccessKind::uri:
            return has_san(peer, "URI:", entry.value, exact);
        case AccessKind::sha256:
            return entry.fingerprint == peer.identity.fingerprint;
    }
    return false;
}

// ------------------------------------------------------------------------------------------------
// Access-list entries

}  // namespace

Result<CertificateFacts> certificate_facts(const X509* cert) {
    if (cert == nullptr) return make_error("no certificate to read an identity from");
    CertificateFacts facts;
    const X509_NAME* subject = X509_get_subject_name(cert);
    auto text = subject_text(subject);
    if (!text || !collect_attributes(subject, facts))
        return make_error("the certificate's subject cannot be decoded");
    facts.identity.subject = std::move(*text);
    if (!collect_sans(cert, facts.identity.sans))
        return make_error("the certificate's subjectAltName extension is malformed or repeated");
    unsigned int size = 0;
    if (X509_digest(cert, EVP_sha256(), facts.identity.fingerprint.data(), &size) != 1 ||
        size != facts.identity.fingerprint.size())
        return make_error("the certificate's SHA-256 fingerprint cannot be computed");
    return facts;
}

AccessDecision check_access(std::span<const AccessEntry> list, const CertificateFacts& peer) {
    if (list.empty()) return {AccessOutcome::empty_list, {}};
    for (const AccessEntry& entry : list) {
        if (matches(entry, peer)) return {AccessOutcome::allowed, entry.text};
    }
    return {AccessOutcome::not_listed, {}};
}

}  // namespace sealsock::keyagent
