// One sealed connection as the program sees it: the state machine around ReceiveSide and
// SendSide, the blocking rules, and what the program's socket calls mean on a sealed fd.
//
// States:
//   connecting   nonblocking connect() returned EINPROGRESS; the background thread waits for
//                the kernel to finish it, then asks the agent
//   handshaking  the agent holds the socket and runs TLS 1.3 on it
//   established  keys installed: every byte is sealed and opened here
//   failed       the handshake or the connection failed: every call reports `error()`
// While connecting or handshaking, reads are EAGAIN (nonblocking) or wait for the keys; writes are
// held (nonblocking, up to kHeldLimit) or wait for the keys, and the held bytes are sealed and
// sent, in order, as soon as the keys arrive (DESIGN I4).
//
// Blocking. The shim never changes O_NONBLOCK. When the receive side has nothing to give, a
// blocking read waits in a blocking recv(MSG_PEEK) of one byte: the kernel then applies the
// program's SO_RCVTIMEO, SA_RESTART and signal rules exactly as for a plain recv, and wakes when
// SO_RCVLOWAT (which ReceiveSide keeps at the bytes that complete the head record) is reached,
// at FIN or at RST. On an O_NONBLOCK socket the same peek answers EAGAIN at once, so no fcntl is
// needed to tell the two apart.
//
// Locks: recv_mu_ (the receive side), send_mu_ (the send side and the held bytes), state_mu_ (the
// state and its condition variable). Order: recv_mu_, then send_mu_, then state_mu_. No lock is
// held across a blocking wait except a blocking kernel send() under send_mu_ (a plain socket's
// write blocks the same way).
//
// The anchor. Besides the program's fd the session holds its own duplicate of the socket, a
// close-on-exec fd at a high number (the anchor), registered in the registry so the program cannot
// close it. Everything the shim does on the socket goes through the anchor: the agent receives it,
// the background thread polls and flushes it, the two halves send and receive on it. So the fd
// number the program holds may be closed and reused at any moment without the shim ever touching
// the wrong file, and a close() with a tail still pending keeps the socket alive until the tail
// and close_notify are out; then the background thread closes the anchor and the FIN goes out.
//
// Lifetime: created by the connect/accept path (shim/session/ops.cc), owned by the registry slots
// of its fd and anchor, retired (never deleted at once) by close: the background thread frees it
// once its tail is out and no call is inside it (shim/session/background.h).
#pragma once

#include <sealsock/agent_protocol.h>
#include <sealsock/bytes.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "record/seal.h"
#include "session/io.h"
#include "session/receive.h"
#include "session/send.h"
#include "sys/ret.h"

namespace sealsock {

enum class SessionRole : std::uint8_t { client, server };
enum class SessionState : std::uint8_t { connecting, handshaking, established, failed };

// What the rule decided for this connection, kept for logs and the handshake request.
struct SessionSetup {
    SessionRole role = SessionRole::client;
    std::string rule;  // the rule's name, for log lines
    std::string peer;  // "ADDR:PORT" of the peer, for log lines
    record::RotationPolicy rotation;
    agent::HandshakeRequest request;  // what the agent is asked
};

class Session {
  public:
    // Bytes a nonblocking program may write before the keys arrive; beyond them, EAGAIN.
    static constexpr std::size_t kHeldLimit = 256 * 1024;

    // `fd` is the program's socket, `anchor` the shim's duplicate of it (owned from now on).
    Session(int fd, int anchor, SessionSetup setup, SessionState initial);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    [[nodiscard]] int fd() const { return fd_; }
    [[nodiscard]] int anchor() const { return anchor_; }
    // close() ran: the program's fd is gone; the background thread finishes and frees.
    [[nodiscard]] bool closed() const { return closed_.load(std::memory_order_acquire); }
    [[nodiscard]] SessionState state() const { return state_.load(std::memory_order_acquire); }
    [[nodiscard]] const SessionSetup& setup() const { return setup_; }

    // --- transitions (background thread and the connect path) ---------------------------------
    // The nonblocking connect completed: the agent is asked next.
    void connected();
    // The agent's keys: installs both sides, seals and sends the held bytes, fires a readiness
    // edge if records are already queued (DESIGN I2, catch 1). Returns false (and fails the
    // session) if the reply cannot be used.
    bool establish(agent::HandshakeReply& reply);
    // Fails the session with `err` (what reads and writes report) and logs `reason` once. The
    // socket is shut down both ways (FIN to the peer, wakes the program's pollers); the fd stays
    // valid.
    void fail(int err, const std::string& reason);
    // Waits until the state leaves connecting/handshaking. Returns the state then.
    SessionState wait_settled();

    // --- the program's calls --------------------------------------------------------------------
    // recv(2) into one buffer; flags as the program gave them.
    sys::Ret<ssize_t> receive(MutableByteView out, int flags);
    // send(2) of one buffer.
    sys::Ret<ssize_t> send(ByteView data, int flags);
    // FIONREAD/SIOCINQ: plaintext bytes ready.
    int readable_bytes();
    // shutdown(2): SHUT_WR seals close_notify first (then FIN once the tail is out).
    sys::Ret<int> shutdown(int how);
    // close(2) of the program's fd: seals close_notify, erases the fd from the registry and
    // closes it; the background thread sends what is left on the anchor, closes the anchor (the
    // FIN) and frees the session. Closing the anchor's number answers EBADF.
    sys::Ret<int> close(int fd);
    // Closes the anchor once (the FIN, when the program's fd is closed too). Idempotent.
    void close_anchor();
    // SO_ERROR as the program sees it: the failure's errno once, then the kernel's.
    int take_socket_error();
    // The program's own SO_RCVLOWAT / SO_RCVBUF values (the shim manages the kernel's).
    [[nodiscard]] int program_rcvlowat() const { return program_rcvlowat_; }
    void set_program_rcvlowat(int v) { program_rcvlowat_ = v; }
    [[nodiscard]] int program_rcvbuf() const { return program_rcvbuf_; }
    void set_program_rcvbuf(int v) { program_rcvbuf_ = v; }

    // --- background thread
    // ------------------------------------------------------------------------ Sends the tail and
    // held bytes without blocking; completes a pending shutdown. Returns true while something is
    // still waiting for the socket to turn writable.
    bool pump();

    // Calls currently inside this session (hooks hold a reference while they run).
    std::atomic<int> users{0};

  private:
    sys::Ret<ssize_t> receive_established(MutableByteView out, int flags);
    sys::Ret<ssize_t> send_established(ByteView data, int flags);
    sys::Ret<ssize_t> send_checked(ByteView data, int flags);
    sys::Ret<ssize_t> hold(ByteView data, int flags);
    void after_receive();  // KeyUpdate owed, fatal alert owed, failure logged
    bool pump_locked();    // under send_mu_
    [[nodiscard]] bool nonblocking(int flags) const;
    void fire_write_edge();
    void log_failure(const char* reason);

    const int fd_;
    const int anchor_;
    std::atomic<bool> closed_{false};
    std::atomic<bool> anchor_closed_{false};
    SessionSetup setup_;
    std::atomic<SessionState> state_;

    std::mutex recv_mu_;
    std::mutex send_mu_;
    std::mutex state_mu_;
    std::condition_variable settled_;

    std::unique_ptr<ReceiveSide> receive_;  // set once established
    std::unique_ptr<SendSide> send_;
    std::vector<std::uint8_t> held_;  // plaintext written before the keys arrived
    bool shut_wr_wanted_ = false;     // shutdown(SHUT_WR) asked before the tail was out
    bool shut_wr_done_ = false;
    bool write_edge_owed_ = false;  // hold() answered EAGAIN: the program waits for EPOLLOUT
    std::atomic<bool> update_owed_{false};
    std::atomic<bool> flush_armed_{false};  // the flusher has been asked and not yet run
    std::atomic<bool> failure_logged_{false};
    int error_ = 0;                // the failed state's errno
    bool error_reported_ = false;  // SO_ERROR reported it once
    int program_rcvlowat_ = 1;
    int program_rcvbuf_ = 0;  // 0: the program never set it
};

// The Io the shim uses: the syscall seam.
Io& seam_io();

// Seconds on a monotonic clock, for time-based key rotation.
std::uint64_t monotonic_seconds();

}  // namespace sealsock
