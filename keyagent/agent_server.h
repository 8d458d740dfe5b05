// sealsock-agent's server: the Unix socket, the event loop, the dispatcher and the workers.
//
// One event loop thread owns all state: the listening socket, client connections, the identity
// store, and every handshake's bookkeeping. Handshake steps (where OpenSSL does its public-key
// work) run on worker threads, one step at a time per handshake, so a slow or silent peer only
// ever occupies its own timer, never a thread. Every client connection is checked with
// SO_PEERCRED: only the agent's own uid is served; others are logged and dropped before a byte
// is read.
//
// Thread-safety: run() is the event loop; stop() may be called from any thread or a signal
// handler (it writes to an eventfd).
#pragma once

#include <sealsock/result.h>

#include <cstdint>
#include <memory>
#include <string>

#include "keyagent/identity.h"

namespace sealsock::keyagent {

struct ServerOptions {
    std::string socket_path;
    std::uint64_t lifetime_seconds = 0;  // forget unlocked keys after this long; 0: never
    unsigned workers = 0;                // handshake threads; 0: one per core
    std::uint32_t max_in_flight = 1024;  // handshakes at once, over all clients
    std::uint32_t max_clients = 4096;
    std::uint32_t reload_interval_ms = 2000;
};

class AgentServer {
  public:
    // Binds the socket (its directory is created 0700 and must belong to the agent's user).
    // Starts no thread, so the caller may fork afterwards.
    static Result<std::unique_ptr<AgentServer>> create(ServerOptions options,
                                                       std::unique_ptr<IdentityStore> store);
    ~AgentServer();
    AgentServer(const AgentServer&) = delete;
    AgentServer& operator=(const AgentServer&) = delete;

    // Serves until stop() or a `stop` request; removes the socket. Returns 0 on a clean stop.
    int run();
    // Async-signal-safe.
    void stop();

    // The unlock deadline starts at unlock (or at start, if keys were unlocked then).
    void note_unlocked();

  private:
    struct Impl;
    explicit AgentServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace sealsock::keyagent
