// The fd -> Session table and the shim's own fds (see registry.h).
#include "session/registry.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>

#include "sys/real.h"

namespace sealsock::registry {

std::atomic<detail::Slot*> detail::g_top[detail::kTopSize];

namespace {

using detail::g_top;
using detail::kChunkBits;
using detail::kChunkSize;
using detail::Slot;

std::atomic<long> g_live{0};
std::atomic<const SessionOps*> g_ops{nullptr};

// The shim's own fds, stored as fd + 1 so that zero (static initialisation) means free.
std::atomic<int> g_own[kMaxOwnFds];
std::atomic<int> g_own_count{0};

Slot* chunk_for(long fd) noexcept {
    return g_top[fd >> kChunkBits].load(std::memory_order_acquire);
}

// The chunk for fd, mapping it if needed. Returns null with errno set on mmap failure.
sys::Ret<Slot*> map_chunk(long fd) noexcept {
    std::atomic<Slot*>& top = g_top[fd >> kChunkBits];
    if (Slot* c = top.load(std::memory_order_acquire)) return {c, 0};
    void* mem = mmap(nullptr, kChunkSize * sizeof(Slot), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return {nullptr, errno};
    // Zeroed anonymous memory is a valid array of null atomics (lock-free atomic<T*> has the
    // representation of T*); construct them formally all the same.
    Slot* fresh = static_cast<Slot*>(mem);
    for (long i = 0; i < kChunkSize; ++i)
        new (&fresh[i]) Slot(nullptr);
    Slot* expected = nullptr;
    if (top.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) return {fresh, 0};
    munmap(mem, kChunkSize * sizeof(Slot));  // another thread won the race
    return {expected, 0};
}

}  // namespace

sys::Ret<int> insert(int fd, Session* session) noexcept {
    if (fd < 0) return sys::fail<int>(EBADF);
    if (session == nullptr) return sys::fail<int>(EINVAL);
    sys::Ret<Slot*> c = map_chunk(fd);
    if (c.value == nullptr) return sys::fail<int>(c.err);
    Session* expected = nullptr;
    if (!c.value[fd & (kChunkSize - 1)].compare_exchange_strong(expected, session,
                                                                std::memory_order_acq_rel))
        return sys::fail<int>(EEXIST);
    g_live.fetch_add(1, std::memory_order_relaxed);
    return {0, 0};
}

Session* erase(int fd) noexcept {
    if (fd < 0) return nullptr;
    Slot* c = chunk_for(fd);
    if (c == nullptr) return nullptr;
    Session* old = c[fd & (kChunkSize - 1)].exchange(nullptr, std::memory_order_acq_rel);
    if (old != nullptr) g_live.fetch_sub(1, std::memory_order_relaxed);
    return old;
}

long live_count() noexcept {
    return g_live.load(std::memory_order_relaxed);
}

namespace {
std::atomic<long> g_handshakes{0};
}

void handshake_started() noexcept {
    g_handshakes.fetch_add(1, std::memory_order_acq_rel);
}

void handshake_ended() noexcept {
    g_handshakes.fetch_sub(1, std::memory_order_acq_rel);
}

bool handshakes_running() noexcept {
    return g_handshakes.load(std::memory_order_acquire) > 0;
}

long next_owned(long from, long last) noexcept {
    if (live_count() == 0) return -1;
    if (from < 0) from = 0;
    if (last >= kFdLimit) last = kFdLimit - 1;
    for (long fd = from; fd <= last;) {
        Slot* c = chunk_for(fd);
        const long chunk_end = (fd | (kChunkSize - 1));
        if (c == nullptr) {
            fd = chunk_end + 1;
            continue;
        }
        for (; fd <= chunk_end && fd <= last; ++fd)
            if (c[fd & (kChunkSize - 1)].load(std::memory_order_acquire) != nullptr) return fd;
    }
    return -1;
}

void set_ops(const SessionOps* table) noexcept {
    g_ops.store(table, std::memory_order_release);
}

const SessionOps* ops() noexcept {
    return g_ops.load(std::memory_order_acquire);
}

int protect(int fd) noexcept {
    if (fd < 0) return -1;
    for (int h = 0; h < kMaxOwnFds; ++h) {
        int expected = 0;
        if (g_own[h].compare_exchange_strong(expected, fd + 1, std::memory_order_acq_rel)) {
            g_own_count.fetch_add(1, std::memory_order_relaxed);
            return h;
        }
    }
    return -1;
}

void unprotect(int handle) noexcept {
    if (handle < 0 || handle >= kMaxOwnFds) return;
    if (g_own[handle].exchange(0, std::memory_order_acq_rel) != 0)
        g_own_count.fetch_sub(1, std::memory_order_relaxed);
}

int own_fd(int handle) noexcept {
    if (handle < 0 || handle >= kMaxOwnFds) return -1;
    return g_own[handle].load(std::memory_order_acquire) - 1;
}

bool is_protected(int fd) noexcept {
    return fd >= 0 && next_protected(fd, fd) == fd;
}

long next_protected(long from, long last) noexcept {
    if (g_own_count.load(std::memory_order_relaxed) == 0) [[likely]]
        return -1;
    long best = -1;
    for (const std::atomic<int>& slot : g_own) {
        const long fd = static_cast<long>(slot.load(std::memory_order_acquire)) - 1;
        if (fd >= from && fd <= last && (best < 0 || fd < best)) best = fd;
    }
    return best;
}

sys::Ret<int> move_protected(int fd) noexcept {
    for (std::atomic<int>& slot : g_own) {
        if (slot.load(std::memory_order_acquire) != fd + 1) continue;
        sys::Ret<int> moved = sys::dup_cloexec_high(fd);
        if (moved.value < 0) return moved;
        int expected = fd + 1;
        if (slot.compare_exchange_strong(expected, moved.value + 1, std::memory_order_acq_rel))
            return moved;
        (void)sys::close(moved.value);  // the owner released it meanwhile
        return sys::fail<int>(EBADF);
    }
    return sys::fail<int>(EBADF);
}

namespace {
// Test hook: SEALSOCK_TEST_PROTECT_FD=N makes the already-open fd N one of the shim's own, so
// tests/integration/shim can check close/close_range/closefrom/dup2 against a real protected fd
// before any component opens one. It can only make the shim keep an fd open, never more.
__attribute__((constructor(102))) void protect_test_fd() noexcept {
    const char* v = std::getenv("SEALSOCK_TEST_PROTECT_FD");
    if (v == nullptr || *v == '\0') return;
    long fd = 0;
    for (const char* p = v; *p != '\0'; ++p) {
        if (*p < '0' || *p > '9' || fd > (1L << 30)) return;
        fd = fd * 10 + (*p - '0');
    }
    if (sys::fcntl(static_cast<int>(fd), F_GETFD, nullptr).value < 0) return;
    if (protect(static_cast<int>(fd)) < 0) sys::log_line("SEALSOCK_TEST_PROTECT_FD: table full");
}
}  // namespace

}  // namespace sealsock::registry
