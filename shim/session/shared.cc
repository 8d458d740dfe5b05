#include "session/shared.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "session/registry.h"
#include "sys/real.h"

namespace sealsock {

// --- SharedMutex ---------------------------------------------------------------------------------

void SharedMutex::init() noexcept {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&mu_, &attr);
    pthread_mutexattr_destroy(&attr);
    owner_died_ = false;
}

void SharedMutex::lock() noexcept {
    if (pthread_mutex_lock(&mu_) == EOWNERDEAD) {
        pthread_mutex_consistent(&mu_);
        owner_died_ = true;
    }
}

bool SharedMutex::try_lock() noexcept {
    const int rc = pthread_mutex_trylock(&mu_);
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&mu_);
        owner_died_ = true;
        return true;
    }
    return rc == 0;
}

void SharedMutex::unlock() noexcept {
    pthread_mutex_unlock(&mu_);
}

namespace shared {
namespace {

constexpr std::uint64_t kMagic = 0x73656c73736f636bULL;  // "sealssock", format 1
constexpr std::uint32_t kVersion = 2;  // 2: the send half first, one busy page per slot
constexpr std::size_t kPage = 4096;
constexpr std::size_t kSlotSize = (sizeof(SharedSession) + kPage - 1) / kPage * kPage;
constexpr std::size_t kSlotsPerChunk = 256;  // each chunk is one of the shim's own fds
constexpr std::size_t kChunkSize = kPage + kSlotsPerChunk * kSlotSize;
constexpr int kMaxChunks = 512;

// The first page of a chunk: what a new program image checks before trusting the rest.
struct ChunkHeader {
    std::uint64_t magic;
    std::uint32_t version;
    std::uint32_t slots;
    std::uint64_t slot_size;
    std::uint64_t chunk_size;
};

struct Chunk {
    int handle = -1;  // registry::protect handle of the memfd
    std::uint8_t* base = nullptr;
};

// This process's chunks. Appended under `grow`, read without it (count is published last).
Chunk g_chunks[kMaxChunks];
std::atomic<int> g_count{0};
std::mutex g_grow;

SharedSession& slot_at(const Chunk& c, std::size_t i) {
    return *reinterpret_cast<SharedSession*>(c.base + kPage + i * kSlotSize);
}

bool header_ok(const std::uint8_t* base) {
    const auto* h = reinterpret_cast<const ChunkHeader*>(base);
    return h->magic == kMagic && h->version == kVersion && h->slots == kSlotsPerChunk &&
           h->slot_size == kSlotSize && h->chunk_size == kChunkSize;
}

std::uint8_t* map_chunk(int fd) {
    void* p = mmap(nullptr, kChunkSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return nullptr;
    (void)madvise(p, kChunkSize, MADV_DONTDUMP);  // traffic secrets stay out of core dumps
    return static_cast<std::uint8_t*>(p);
}

// Keeps fd as a protected, close-on-exec, high-numbered fd of the shim. Returns the handle.
int keep(int fd) {
    const sys::Ret<int> high = sys::dup_cloexec_high(fd);
    if (high.value < 0) return -1;
    (void)sys::close(fd);
    const int handle = registry::protect(high.value);
    if (handle < 0) (void)sys::close(high.value);
    return handle;
}

bool add_chunk(int handle, std::uint8_t* base) {
    const int n = g_count.load(std::memory_order_acquire);
    if (n == kMaxChunks) return false;
    g_chunks[n] = {handle, base};
    g_count.store(n + 1, std::memory_order_release);
    return true;
}

SharedSession* claim(const Chunk& c) {
    for (std::size_t i = 0; i < kSlotsPerChunk; ++i) {
        SharedSession& s = slot_at(c, i);
        std::uint32_t expected = 0;
        if (s.in_use.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return &s;
    }
    return nullptr;
}

SharedSession* claim_anywhere() {
    const int n = g_count.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i)
        if (SharedSession* s = claim(g_chunks[i])) return s;
    return nullptr;
}

SharedSession* grow_and_claim() {
    std::lock_guard lock(g_grow);
    if (SharedSession* s = claim_anywhere()) return s;  // another thread grew meanwhile
    const int fd = memfd_create("sealsock-sessions", MFD_CLOEXEC);
    if (fd < 0) return nullptr;
    if (ftruncate(fd, static_cast<off_t>(kChunkSize)) != 0) {
        const int err = errno;
        (void)sys::close(fd);
        errno = err;
        return nullptr;
    }
    std::uint8_t* base = map_chunk(fd);
    const int handle = base != nullptr ? keep(fd) : -1;
    if (handle < 0 || !add_chunk(handle, base)) {
        if (base != nullptr) munmap(base, kChunkSize);
        if (handle >= 0) {
            (void)sys::close(registry::own_fd(handle));
            registry::unprotect(handle);
        } else if (base == nullptr) {
            (void)sys::close(fd);
        }
        errno = ENOMEM;
        return nullptr;
    }
    auto* h = reinterpret_cast<ChunkHeader*>(base);
    *h = {kMagic, kVersion, kSlotsPerChunk, kSlotSize, kChunkSize};
    return claim(g_chunks[g_count.load() - 1]);
}

void init_slot(SharedSession& s, std::uint64_t cookie) {
    // The fields between the two halves; the halves are initialised when the keys arrive and
    // their buffers touched only when used.
    std::memset(reinterpret_cast<std::uint8_t*>(&s) + offsetof(SharedSession, cookie), 0,
                offsetof(SharedSession, receive) - offsetof(SharedSession, cookie));
    s.generation += 1;
    s.cookie = cookie;
    s.attached.store(1);
    s.recv_mu.init();
    s.send_mu.init();
    s.state_mu.init();
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s.settled, &attr);
    pthread_condattr_destroy(&attr);
    s.program_rcvlowat = 1;
}

// Gives back the pages wholly inside [p, p + n).
void release_pages(void* p, std::size_t n) {
    auto begin = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t end = (begin + n) & ~(kPage - 1);
    begin = (begin + kPage - 1) & ~(kPage - 1);
    if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_REMOVE);
}

}  // namespace

SharedSession* allocate(std::uint64_t cookie) noexcept {
    try {
        SharedSession* s = claim_anywhere();
        if (s == nullptr) s = grow_and_claim();
        if (s != nullptr) init_slot(*s, cookie);
        return s;
    } catch (...) {
        errno = ENOMEM;
        return nullptr;
    }
}

void drop_held(SharedSession& s) noexcept {
    if (s.held_size == 0) return;
    sodium_memzero(s.held, s.held_size);
    release_pages(s.held, s.held_size);
    s.held_size = 0;
}

void detach(SharedSession& s) noexcept {
    if (s.attached.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    drop_held(s);
    if (s.sides_ready) {  // keys and buffers wiped, pages given back
        ReceiveSide::wipe(s.receive);
        SendSide::wipe(s.send);
        release_pages(s.send.buffer, sizeof s.send.buffer);
        release_pages(&s.receive.cache, sizeof s.receive - offsetof(ReceiveState, cache));
        s.sides_ready = false;
    }
    pthread_cond_destroy(&s.settled);
    s.cookie = 0;
    s.in_use.store(0, std::memory_order_release);
}

namespace {
std::shared_mutex* g_names = new std::shared_mutex;  // never destroyed: used until the end
std::shared_mutex* g_abandoned_names = nullptr;
}  // namespace

std::shared_mutex& names_lock() noexcept {
    return *g_names;
}

void reset_in_child() noexcept {
    g_abandoned_names = g_names;  // kept reachable: left as fork copied it
    g_names = new (std::nothrow) std::shared_mutex;
}

std::uint64_t cookie_of(int fd) noexcept {
    std::uint64_t cookie = 0;
    socklen_t len = sizeof cookie;
    if (sys::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len).value != 0) return 0;
    return cookie;
}

bool handoff(char* out, std::size_t size) noexcept {
    const int n = g_count.load(std::memory_order_acquire);
    if (n == 0) return false;
    int used = std::snprintf(out, size, "%s=", kHandoffVariable);
    for (int i = 0; i < n && used > 0 && static_cast<std::size_t>(used) < size; ++i) {
        const int fd = registry::own_fd(g_chunks[i].handle);
        used += std::snprintf(out + used, size - static_cast<std::size_t>(used), "%s%d",
                              i == 0 ? "" : ",", fd);
    }
    if (used <= 0 || static_cast<std::size_t>(used) >= size) return false;
    for (int i = 0; i < n; ++i)
        (void)sys::fcntl(registry::own_fd(g_chunks[i].handle), F_SETFD, nullptr);
    return true;
}

void undo_handoff() noexcept {
    const int n = g_count.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i)
        (void)sys::fcntl(registry::own_fd(g_chunks[i].handle), F_SETFD,
                         reinterpret_cast<void*>(static_cast<long>(FD_CLOEXEC)));
}

int adopt(const char* value) noexcept {
    int mapped = 0;
    for (const char* p = value; p != nullptr && *p != '\0';) {
        char* end = nullptr;
        const long fd = std::strtol(p, &end, 10);
        if (end == p || fd < 0 || fd > INT32_MAX) break;
        p = *end == ',' ? end + 1 : nullptr;
        struct stat st {};
        if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISREG(st.st_mode) ||
            static_cast<std::size_t>(st.st_size) != kChunkSize)
            continue;
        std::uint8_t* base = map_chunk(static_cast<int>(fd));
        if (base == nullptr) continue;
        if (!header_ok(base)) {
            munmap(base, kChunkSize);
            continue;
        }
        std::lock_guard lock(g_grow);
        const int handle = keep(static_cast<int>(fd));
        if (handle < 0 || !add_chunk(handle, base)) {
            munmap(base, kChunkSize);
            continue;
        }
        ++mapped;
    }
    return mapped;
}

SharedSession* find(std::uint64_t cookie) noexcept {
    if (cookie == 0) return nullptr;
    const int n = g_count.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i)
        for (std::size_t j = 0; j < kSlotsPerChunk; ++j) {
            SharedSession& s = slot_at(g_chunks[i], j);
            if (s.in_use.load(std::memory_order_acquire) != 0 && s.cookie == cookie) return &s;
        }
    return nullptr;
}

}  // namespace shared
}  // namespace sealsock
