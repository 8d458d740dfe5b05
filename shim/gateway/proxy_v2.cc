#include "gateway/proxy_v2.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace sealsock::gateway::proxy_v2 {
namespace {

constexpr std::uint8_t signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::uint8_t client_ssl = 0x01;        // PP2_CLIENT_SSL
constexpr std::uint8_t client_cert_conn = 0x02;  // PP2_CLIENT_CERT_CONN
constexpr std::uint8_t client_cert_sess = 0x04;  // PP2_CLIENT_CERT_SESS

void put16(std::vector<std::uint8_t>& out, std::size_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}

// A TLV's value is at most 65535 bytes; longer values are cut (subjects are far shorter).
void tlv(std::vector<std::uint8_t>& out, std::uint8_t type, std::string_view value) {
    value = value.substr(0, 0xffff);
    out.push_back(type);
    put16(out, value.size());
    out.insert(out.end(), value.begin(), value.end());
}

// The address as IPv4 (4 bytes) when it is IPv4 or IPv4-mapped, else IPv6 (16 bytes).
bool address_of(const sockaddr_storage& ss, std::vector<std::uint8_t>& addr, std::uint16_t& port) {
    if (ss.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
        const auto* b = reinterpret_cast<const std::uint8_t*>(&a.sin_addr);
        addr.assign(b, b + 4);
        port = ntohs(a.sin_port);
        return true;
    }
    if (ss.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
        const auto* b = reinterpret_cast<const std::uint8_t*>(&a.sin6_addr);
        if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr))
            addr.assign(b + 12, b + 16);
        else
            addr.assign(b, b + 16);
        port = ntohs(a.sin6_port);
        return true;
    }
    return false;
}

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string_view suite_name(std::uint16_t suite) {
    switch (suite) {
        case 0x1301:
            return "TLS_AES_128_GCM_SHA256";
        case 0x1302:
            return "TLS_AES_256_GCM_SHA384";
        case 0x1303:
            return "TLS_CHACHA20_POLY1305_SHA256";
        default:
            return {};
    }
}

std::string common_name(std::string_view subject) {
    // RFC 2253: RDNs separated by ',' (or '+' inside one RDN), "type=value", special characters
    // escaped with '\' or as \XX.
    std::size_t i = 0;
    while (i < subject.size()) {
        std::string type, value;
        bool in_value = false;
        for (; i < subject.size(); ++i) {
            const char c = subject[i];
            if (c == '\\' && i + 1 < subject.size()) {
                const int h = hex(subject[i + 1]);
                const int l = i + 2 < subject.size() ? hex(subject[i + 2]) : -1;
                char out = subject[i + 1];
                if (h >= 0 && l >= 0) {
                    out = static_cast<char>(h * 16 + l);
                    i += 2;
                } else {
                    i += 1;
                }
                (in_value ? value : type) += out;
            } else if (!in_value && c == '=') {
                in_value = true;
            } else if (c == ',' || c == '+') {
                ++i;
                break;
            } else {
                (in_value ? value : type) += c;
            }
        }
        if (type == "CN" || type == "cn" || type == "2.5.4.3") return value;
    }
    return {};
}

std::vector<std::uint8_t> header(const sockaddr_storage& client, const sockaddr_storage& local,
                                 const Identity& id) {
    std::vector<std::uint8_t> src, dst;
    std::uint16_t sport = 0, dport = 0;
    if (!address_of(client, src, sport) || !address_of(local, dst, dport)) return {};
    if (src.size() != dst.size()) {  // one side mapped, the other not: send both as IPv6
        auto widen = [](std::vector<std::uint8_t>& a) {
            if (a.size() == 16) return;
            std::vector<std::uint8_t> w(10, 0);
            w.push_back(0xff);
            w.push_back(0xff);
            w.insert(w.end(), a.begin(), a.end());
            a = w;
        };
        widen(src);
        widen(dst);
    }
    std::vector<std::uint8_t> ssl;
    ssl.push_back(client_ssl | client_cert_conn | client_cert_sess);
    ssl.insert(ssl.end(), 4, 0);  // verify: 0, the certificate was verified
    std::vector<std::uint8_t> sub;
    tlv(sub, subtype_version, "TLSv1.3");
    const std::string cn = common_name(id.subject);
    if (!cn.empty()) tlv(sub, subtype_cn, cn);
    if (!suite_name(id.suite).empty()) tlv(sub, subtype_cipher, suite_name(id.suite));
    ssl.insert(ssl.end(), sub.begin(), sub.end());

    std::vector<std::uint8_t> body;
    body.insert(body.end(), src.begin(), src.end());
    body.insert(body.end(), dst.begin(), dst.end());
    put16(body, sport);
    put16(body, dport);
    tlv(body, tlv_ssl, std::string_view(reinterpret_cast<const char*>(ssl.data()), ssl.size()));
    tlv(body, tlv_subject, id.subject);
    tlv(body, tlv_fingerprint, id.fingerprint);
    tlv(body, tlv_rule, id.rule);

    std::vector<std::uint8_t> out(std::begin(signature), std::end(signature));
    out.push_back(0x21);                           // version 2, command PROXY
    out.push_back(src.size() == 4 ? 0x11 : 0x21);  // TCP over IPv4 / IPv6
    put16(out, body.size());
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

}  // namespace sealsock::gateway::proxy_v2
