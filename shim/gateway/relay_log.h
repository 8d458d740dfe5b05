// The gateway's own audit line: one JSON object per relayed (or refused) connection, for the
// plaintext side the shim does not see (docs/gateway.md, "The relay log"). The shim's audit log
// already has the sealed side (handshake, peer certificate, suite, bytes).
//
// Thread-safety: write() may be called from every worker at once (one write(2) or syslog(3) call
// per line, so lines never interleave). Not for signal handlers.
#pragma once

#include <cstdint>
#include <string>

namespace sealsock::gateway {

struct RelayRecord {
    std::string listener;      // the listener's name
    std::string direction;     // "inbound" or "outbound"
    std::string client;        // ADDR:PORT of the connection the gateway accepted
    std::string local;         // the listening address
    std::string target;        // the backend or destination, as configured
    std::string peer_subject;  // the sealed peer's subject, when known
    std::string peer_fingerprint;
    std::uint64_t bytes_up = 0;    // client -> target
    std::uint64_t bytes_down = 0;  // target -> client
    std::uint64_t duration_ms = 0;
    std::string outcome;  // "closed", "failed", "refused", "timeout"
    std::string reason;
};

class RelayLog {
  public:
    // "syslog", "stderr" or an absolute path (opened once, O_APPEND, created 0600).
    explicit RelayLog(const std::string& destination);
    ~RelayLog();
    RelayLog(const RelayLog&) = delete;
    RelayLog& operator=(const RelayLog&) = delete;

    void write(const RelayRecord& r);

  private:
    int fd_ = -1;  // -1 with syslog_ false: stderr
    bool syslog_ = false;
};

}  // namespace sealsock::gateway
