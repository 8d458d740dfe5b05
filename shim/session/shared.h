// Session state that belongs to the socket, not to one process (DESIGN I5).
//
// Every sealed socket has one slot in shared memory. Every fd that names the socket, in this
// process or in any process forked from it or exec'd by it, reaches that slot: its locks, its
// state, its sequence numbers and buffers. So after fork() whichever process writes seals the next
// record under the next nonce, and a new program image continues the connection where the old
// one stopped.
//
// The memory. Slots live in chunks; each chunk is a memfd mapped MAP_SHARED, so a forked child
// shares them (the mapping is inherited) and a new program image maps the same file again (the
// memfd is inherited across exec and named in the environment, see handoff()). A chunk's pages
// are committed only when touched: a slot's large buffers cost memory only while they hold bytes.
// The memory is excluded from core dumps (it holds traffic secrets).
//
// Position independence. A chunk may be mapped at a different address in each program image, so
// nothing in a slot is a pointer. The locks are process-shared and robust: if a process dies
// holding one, the next taker gets it and the session is failed (its state may be half-written).
//
// Lifetime. `names` counts the program fds that name the socket in all processes; the last
// close (names reaching 0) ends the connection (close_notify). `attached` counts the processes
// that hold a view of the slot; the slot is wiped and freed when it reaches 0. A process that
// exits without closing (or dies) leaves both counts high: the slot stays in use until every
// process holding the chunk is gone, and the peer sees a FIN without close_notify.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <shared_mutex>

#include "record/seal.h"
#include "session/receive.h"
#include "session/send.h"

namespace sealsock {

enum class SessionRole : std::uint8_t { client, server };
enum class SessionState : std::uint8_t { connecting, handshaking, established, failed };

// A process-shared, robust mutex in shared memory (Lockable: works with std::lock_guard,
// std::scoped_lock and std::unique_lock).
class SharedMutex {
  public:
    void init() noexcept;
    void lock() noexcept;
    bool try_lock() noexcept;
    void unlock() noexcept;
    pthread_mutex_t* native() noexcept { return &mu_; }
    // True when the last lock() or try_lock() found the previous owner dead.
    [[nodiscard]] bool owner_died() const noexcept { return owner_died_; }

  private:
    pthread_mutex_t mu_;
    bool owner_died_;
};

// One sealed socket's shared state. The session layer (session.h) reads and writes it under the
// slot's locks; the rules are in session.h.
struct SharedSession {
    static constexpr std::size_t kHeldLimit = 256 * 1024;
    static constexpr std::size_t kTextSize = 96;
    static constexpr std::size_t kPage = 4096;
    // Where the send buffer ends within its page: the small writes sealed at its end, the send
    // fields, the fields below and the receive fields all fit in that one page (the static_assert
    // after the struct), so an idle connection, or one that only exchanges small records, touches
    // that page alone. Slots are page-aligned (shared.cc).
    static constexpr std::size_t kSendEndInPage = 2560;
    static constexpr std::size_t kLead =
        (kSendEndInPage + kPage - SendState::kCapacity % kPage) % kPage;

    // Never touched: places the page boundaries (see kSendEndInPage).
    std::uint8_t lead[kLead];
    // The send half (send.h): its buffer first, its fields last, on the slot's one busy page.
    SendState send;

    std::atomic<std::uint32_t> in_use;   // 0 free, 1 in use (allocation by compare-and-swap)
    std::uint32_t generation;            // bumped at each allocation, for log lines
    std::uint64_t cookie;                // SO_COOKIE of the socket
    std::atomic<int> names;              // program fds naming the socket, all processes
    std::atomic<int> attached;           // processes holding a view
    std::atomic<pid_t> handshake_owner;  // the process whose background thread runs the handshake

    SharedMutex recv_mu;
    SharedMutex send_mu;
    SharedMutex state_mu;
    pthread_cond_t settled;  // state left connecting/handshaking (under state_mu)

    std::atomic<SessionState> state;
    SessionRole role;
    int error;  // the failed state's errno
    bool error_reported;
    std::atomic<bool> failure_logged;
    std::atomic<bool> update_owed;
    std::atomic<bool> flush_armed;
    bool shut_wr_wanted;
    bool shut_wr_done;
    bool write_edge_owed;
    int program_rcvlowat;
    int program_rcvbuf;  // 0: the program never set it
    char rule[kTextSize];
    char peer[kTextSize];

    // For the audit log (session/audit.h): what the handshake established, the bytes each way,
    // and which events were written (0 none, 1 open, 2 the end: refuse or close).
    char local[kTextSize];
    char identity[kTextSize];
    char peer_subject[256];
    char peer_fingerprint[65];
    std::uint16_t suite;
    std::atomic<std::uint8_t> audit_state;
    std::atomic<std::uint64_t> bytes_sent;
    std::atomic<std::uint64_t> bytes_received;

    bool sides_ready;  // receive and send below hold keys (set once, by establish)
    std::size_t held_size;

    // The receive half (receive.h): its fields first, then the cache and staging. The two halves
    // are initialised when the keys arrive; every process reads and writes them through its own
    // views, under recv_mu and send_mu.
    ReceiveState receive;
    std::uint8_t held[kHeldLimit];  // plaintext written before the keys arrived
};

// The one page an idle slot touches: from the small writes at the end of the send buffer to the
// cache's counts in the receive half (the cache's bytes and staging may go on).
static_assert((offsetof(SharedSession, send) + SendState::kCapacity - SendState::kSmallRoom) /
                  SharedSession::kPage ==
              (offsetof(SharedSession, receive) + offsetof(ReceiveState, cache) +
               record::PlaintextCacheState::kCountsSize) /
                  SharedSession::kPage);

namespace shared {

// A new slot for the socket with `cookie`: initialised, attached once, no names yet. Null with
// errno (ENOMEM, EMFILE) when no memory can be had.
SharedSession* allocate(std::uint64_t cookie) noexcept;

// Drops this process's view; the last one wipes the slot and frees it.
void detach(SharedSession& slot) noexcept;

// Wipes the held bytes and gives their pages back.
void drop_held(SharedSession& slot) noexcept;

// Held shared while names are added or dropped in this process (connect, accept, dup, close),
// exclusively across fork(), so the counts the child inherits are the counts fork() copied.
std::shared_mutex& names_lock() noexcept;
// In a forked child: a fresh names lock (the copy belongs to a thread of the parent).
void reset_in_child() noexcept;

// The socket's SO_COOKIE (0 if it has none).
std::uint64_t cookie_of(int fd) noexcept;

// --- exec ---------------------------------------------------------------------------------------
// The environment variable that names the chunks a new program image inherits.
inline constexpr char kHandoffVariable[] = "SEALSOCK_SESSIONS";

// Prepares the chunks to survive exec: clears close-on-exec on each chunk's memfd and writes
// "SEALSOCK_SESSIONS=fd,fd,..." into `out` (NUL-terminated). False if `out` is too small or
// there is nothing to hand off. undo_handoff() restores close-on-exec after a failed exec.
bool handoff(char* out, std::size_t size) noexcept;
void undo_handoff() noexcept;

// In a new program image: maps the chunks named by `value` (the variable's text). Returns the
// number mapped; each slot in use can then be found with find().
int adopt(const char* value) noexcept;

// The slot in use for the socket with `cookie`, or null.
SharedSession* find(std::uint64_t cookie) noexcept;

}  // namespace shared
}  // namespace sealsock
