// The relay: one event loop per worker thread (epoll, nonblocking sockets, edge-triggered).
//
// Every worker waits on every listening socket (EPOLLEXCLUSIVE: one worker wakes per new
// connection) and owns the connections it accepted until they end. A connection is two sockets
// and two bounded buffers; bytes move as fast as both sides take them, and an end of file on one
// side becomes shutdown(SHUT_WR) on the other once its buffer is flushed (half-close).
//
//   inbound listener:  accept a sealed connection (the shim authenticates the peer and applies
//       the access list) -> wait for the handshake's result through sealsock_peer() without
//       blocking the loop (retried on a short backoff and on every event of the socket) -> only
//       then connect to the backend; with proxy_protocol = "v2" the header is the first thing
//       written to it. A refused peer never causes a backend connection.
//   outbound listener: accept a plaintext connection, check its source address, connect to the
//       destination (sealed by the shim under the generated rule), relay.
//
// Thread-safety: a Worker's methods other than stop_accepting()/finish() run on its own thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <sealsock/peer.h>

#include "gateway/relay_log.h"
#include "gateway/settings.h"

namespace sealsock::gateway {

struct ListenSocket {
    const Listener* listener = nullptr;
    int fd = -1;
};

struct Shared {
    const Settings* settings = nullptr;
    std::vector<ListenSocket> listeners;
    RelayLog* log = nullptr;
    sealsock_peer_fn peer = nullptr;  // the shim's sealsock_peer
    std::atomic<std::uint64_t> live{0};
};

class Worker {
  public:
    explicit Worker(Shared& shared);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // The loop; returns once finish() was called, or after stop_accepting() when the last of
    // this worker's connections ended.
    void run();

    // From any thread: stop taking new connections (a reload's successor has the listeners);
    // the connections in progress run to their end (or to drain_timeout).
    void stop_accepting();
    // From any thread: close every connection now and return from run().
    void finish();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sealsock::gateway
