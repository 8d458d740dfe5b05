// A blocking client for sealsock-agent: one connection, one request at a time.
//
// Used by the `sealsock agent` subcommands and the tests; the shim drives the same frames
// asynchronously. A reply carrying secrets is received into guarded memory and wiped after
// decoding.
//
// Thread-safety: none; one AgentClient per thread. Not for signal handlers.
#pragma once

#include <sealsock/agent_protocol.h>
#include <sealsock/result.h>

#include <string>

namespace sealsock::agent {

// Where the agent listens: $SEALSOCK_AGENT_SOCK, else $XDG_RUNTIME_DIR/sealsock/agent.sock,
// else /tmp/sealsock-UID/agent.sock.
std::string default_socket_path();

class AgentClient {
  public:
    // Connects to the agent at `path`. The error names the path and what to do.
    static Result<AgentClient> connect(const std::string& path);
    AgentClient(AgentClient&& other) noexcept;
    AgentClient& operator=(AgentClient&& other) noexcept;
    AgentClient(const AgentClient&) = delete;
    AgentClient& operator=(const AgentClient&) = delete;
    ~AgentClient();

    // Sends `request` (passing `fd` along when it is >= 0) and waits up to `timeout_ms` for the
    // reply with the same request id.
    Result<Message> call(const Message& request, int fd = -1, int timeout_ms = 30000);

  private:
    explicit AgentClient(int fd) : fd_(fd) {}
    Status send_frame(const Message& request, int fd);
    Result<Message> receive_frame(int timeout_ms);
    int fd_ = -1;
};

}  // namespace sealsock::agent
