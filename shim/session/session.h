// One sealed connection as one process sees it: a view of the socket's shared slot
// (shim/session/shared.h) with the state machine around ReceiveSide and SendSide, the blocking
// rules, and what the program's socket calls mean on a sealed fd.
//
// States:
//   connecting   nonblocking connect() returned EINPROGRESS; the background thread waits for
//                the kernel to finish it, then asks the agent
//   handshaking  the agent holds the socket and runs TLS 1.3 on it
//   established  keys installed: every byte is sealed and opened here
//   failed       the handshake or the connection failed: every call reports the slot's error
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
// Locks (in the slot, process-shared): recv_mu (the receive side), send_mu (the send side and
// the held bytes), state_mu (the state and its condition variable). Order: recv_mu, then
// send_mu, then state_mu. No lock is held across a blocking wait except a blocking kernel send()
// under send_mu (a plain socket's write blocks the same way).
//
// Names. Every program fd that names the socket (the accepted or connected fd, dup, dup2, dup3,
// F_DUPFD, inherited by fork or exec) maps to this process's one view in the registry. Closing a
// name closes only that fd; the last name in this process retires the view; the last name in all
// processes (the slot's count) also ends the TLS stream with close_notify.
//
// The anchor. Besides the program's fds each view holds its own duplicate of the socket, a
// close-on-exec fd at a high number (the anchor), registered in the registry so the program cannot
// close it. Everything the shim does on the socket goes through the anchor: the agent receives it,
// the background thread polls and flushes it, the two halves send and receive on it. So the fd
// numbers the program holds may be closed and reused at any moment without the shim ever touching
// the wrong file, and a close() with a tail still pending keeps the socket alive until the tail
// and close_notify are out; then the background thread closes the anchor.
//
// Lifetime: created by the connect/accept path (shim/session/open.cc) or by the exec hand-off,
// owned by the registry entries of its names and anchor, retired (never deleted at once) by the
// last local close: the background thread frees it once its tail is out and no call is inside it
// (shim/session/background.h).
#pragma once

#include <sealsock/agent_protocol.h>
#include <sealsock/bytes.h>
#include <sealsock/peer.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "record/seal.h"
#include "session/audit.h"
#include "session/io.h"
#include "session/receive.h"
#include "session/send.h"
#include "session/shared.h"
#include "sys/ret.h"

namespace sealsock {

// What the rule decided for this connection, kept for logs and the handshake request. Only the
// process that opened the connection has the request; another process's view (after fork or
// exec) knows the role, rule and peer from the shared slot.
struct SessionSetup {
    SessionRole role = SessionRole::client;
    std::string rule;   // the rule's name, for log lines
    std::string peer;   // "ADDR:PORT" of the peer, for log lines
    std::string local;  // "ADDR:PORT" of this end, for the audit log
    record::RotationPolicy rotation;
    agent::HandshakeRequest request;  // what the agent is asked
};

// Registers, once per process, the exit handler that ends the remaining sessions (close_notify
// for the last names) before OpenSSL's own exit handler frees what sealing needs. Called when
// the first session appears.
void arm_exit_handler() noexcept;

class Session {
  public:
    // Bytes a nonblocking program may write before the keys arrive; beyond them, EAGAIN.
    static constexpr std::size_t kHeldLimit = SharedSession::kHeldLimit;

    // A new session for the program's socket `fd`: `slot` is freshly allocated (attached once),
    // `anchor` the shim's duplicate of the socket (owned from now on). One name (fd).
    Session(SharedSession& slot, int anchor, SessionSetup setup, SessionState initial);
    // This process's view of an existing slot (after exec): no names yet; add_name() each fd.
    Session(SharedSession& slot, int anchor);
    ~Session();  // detaches from the slot
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    [[nodiscard]] int anchor() const { return anchor_; }
    // The anchor was closed: its number may already name another file of the program, so
    // nothing may act on it any more.
    [[nodiscard]] bool anchor_closed() const {
        return anchor_closed_.load(std::memory_order_acquire);
    }
    [[nodiscard]] SharedSession& slot() { return sh_; }
    // This process no longer names the socket: the background thread finishes and frees.
    [[nodiscard]] bool closed() const { return closed_.load(std::memory_order_acquire); }
    [[nodiscard]] SessionState state() const { return sh_.state.load(std::memory_order_acquire); }
    [[nodiscard]] const SessionSetup& setup() const { return setup_; }
    [[nodiscard]] SessionRole role() const { return sh_.role; }

    // --- names: the program fds of this process that name the socket ------------------------
    // `fd` (already registered by the caller) now names the socket too (dup, dup2, F_DUPFD).
    void add_name();
    [[nodiscard]] int local_names() const { return names_.load(std::memory_order_acquire); }
    // fork: before it, the child's names are counted in the slot (so a parent that closes at
    // once never sees itself as the last); after a failed fork they are taken back. In the child
    // the view is attached once more.
    void before_fork();
    void fork_failed();
    void forked_child();

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
    // Who the peer proved to be (include/sealsock/peer.h): waits up to timeout_ms (-1: until the
    // handshake ends) and fills `out`; EAGAIN while the handshake runs, the failure's errno after
    // one.
    sys::Ret<int> peer(struct sealsock_peer_info& out, int timeout_ms);

    // --- the program's calls --------------------------------------------------------------------
    // recv(2) into one buffer; flags as the program gave them.
    sys::Ret<ssize_t> receive(MutableByteView out, int flags);
    // send(2) of one buffer.
    sys::Ret<ssize_t> send(ByteView data, int flags);
    // FIONREAD/SIOCINQ: plaintext bytes ready.
    int readable_bytes();
    // shutdown(2) on `fd`: SHUT_WR seals close_notify first (then FIN once the tail is out).
    sys::Ret<int> shutdown(int fd, int how);
    // close(2) of one of the program's fds: erases it from the registry and closes it. The last
    // name in all processes seals close_notify; the last name in this process retires the view:
    // the background thread sends what is left on the anchor, closes the anchor and frees the
    // view. Closing the anchor's number answers EBADF.
    sys::Ret<int> close(int fd);
    // The program replaced `fd` (dup2/dup3 onto it): it no longer names the socket. The caller
    // has erased it from the registry; the rest is close() without closing the fd.
    void drop_name();
    // exit(): this process's names end without close() (the fds die with the process).
    void at_exit();
    // At exit: waits (bounded) for a handshake this process runs for a socket that other
    // processes still name.
    void finish_own_handshake();
    // Closes the anchor once (the FIN, when no other fd names the socket). Idempotent.
    void close_anchor();
    // SO_ERROR as the program sees it: the failure's errno once, then the kernel's.
    int take_socket_error();
    // The program's own SO_RCVLOWAT / SO_RCVBUF values (the shim manages the kernel's).
    [[nodiscard]] int program_rcvlowat() const { return sh_.program_rcvlowat; }
    void set_program_rcvlowat(int v) { sh_.program_rcvlowat = v; }
    [[nodiscard]] int program_rcvbuf() const { return sh_.program_rcvbuf; }
    void set_program_rcvbuf(int v) { sh_.program_rcvbuf = v; }

    // --- a sandboxed process (sys/confined.h) ------------------------------------------------
    // Before the filter: remembers what later needs a call the filter may refuse (the file
    // status flags; fcntl(F_SETFL) keeps them current through note_status_flags).
    void before_confinement();
    void note_status_flags(int flags) { status_flags_.store(flags, std::memory_order_release); }
    // Opened plaintext, an end of file or a failure the kernel's readiness no longer shows.
    bool plaintext_ready();

    // --- background thread ------------------------------------------------------------------
    // Sends the tail and held bytes without blocking; completes a pending shutdown. Returns true
    // while something is still waiting for the socket to turn writable.
    bool pump();

    // Calls currently inside this view (hooks hold a reference while they run).
    std::atomic<int> users{0};

  private:
    sys::Ret<ssize_t> receive_established(MutableByteView out, int flags);
    sys::Ret<ssize_t> send_established(ByteView data, int flags);
    sys::Ret<ssize_t> send_established_locked(ByteView data, int flags);  // under send_mu
    bool drain_confined_locked();                                         // under send_mu
    sys::Ret<ssize_t> send_checked(ByteView data, int flags);
    sys::Ret<ssize_t> hold(ByteView data, int flags);
    void after_receive();  // KeyUpdate owed, fatal alert owed, failure logged
    bool pump_locked();    // under send_mu
    [[nodiscard]] bool nonblocking(int flags) const;
    [[nodiscard]] bool last_name() const { return sh_.names.load(std::memory_order_acquire) == 0; }
    void fire_write_edge();
    void log_failure(const char* reason);
    // Audit events (session/audit.h), each at most once per connection across processes.
    [[nodiscard]] audit::Record audit_record() const;
    void record_peer(const agent::HandshakeReply& reply);
    void audit_open(std::string_view suite);
    void audit_end(std::string_view outcome, std::string_view reason);
    void notify_settled();
    ReceiveSide& rx();
    SendSide& tx();
    void check_locks();  // a process died holding a lock: fail the session

    SharedSession& sh_;
    const int anchor_;
    std::atomic<int> names_{0};
    std::atomic<bool> closed_{false};
    std::atomic<bool> anchor_closed_{false};
    std::atomic<int> status_flags_{-1};  // F_GETFL, kept for a sandboxed process (-1: unknown)
    // This view counts in registry::handshakes_running() (a new session, until it settles).
    std::atomic<bool> in_handshake_count_{false};
    void handshake_settled() noexcept;
    SessionSetup setup_;

    std::unique_ptr<ReceiveSide> receive_;  // this process's views, made on first use
    std::unique_ptr<SendSide> send_;
};

// The Io the shim uses: the syscall seam.
Io& seam_io();

// Seconds on a monotonic clock, for time-based key rotation.
std::uint64_t monotonic_seconds();

}  // namespace sealsock
