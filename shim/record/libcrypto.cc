#include "record/libcrypto.h"

#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cstdio>

namespace sealsock::record {
namespace {

constexpr const char* kSoname = "libcrypto.so.3";

std::atomic<const Libcrypto*> g_loaded{nullptr};
pthread_mutex_t g_load_mu = PTHREAD_MUTEX_INITIALIZER;
Libcrypto g_table;       // filled once, under g_load_mu, before g_loaded publishes it
char g_error[256] = "";  // under g_load_mu

// Fills g_table from `lib`; false (with g_error set) if a function is missing.
bool resolve(void* lib) noexcept {
#define SEALSOCK_LIBCRYPTO_RESOLVE(name)                                                        \
    g_table.name = reinterpret_cast<decltype(g_table.name)>(dlsym(lib, #name));                 \
    if (g_table.name == nullptr) {                                                              \
        std::snprintf(g_error, sizeof g_error, "%s has no %s (OpenSSL 3 is required)", kSoname, \
                      #name);                                                                   \
        return false;                                                                           \
    }
    SEALSOCK_LIBCRYPTO_FUNCTIONS(SEALSOCK_LIBCRYPTO_RESOLVE)
#undef SEALSOCK_LIBCRYPTO_RESOLVE
    return true;
}

}  // namespace

const Libcrypto* libcrypto() noexcept {
    if (const Libcrypto* t = g_loaded.load(std::memory_order_acquire)) [[likely]]
        return t;
    pthread_mutex_lock(&g_load_mu);
    const Libcrypto* t = g_loaded.load(std::memory_order_acquire);
    if (t == nullptr) {
        // A failed load is tried again at the next key: the cause (no descriptor left, say) may
        // be gone by then. The handle is never closed: sessions use it until the process ends.
        void* lib = dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
        if (lib == nullptr) {
            const char* why = dlerror();
            std::snprintf(g_error, sizeof g_error, "%s", why != nullptr ? why : kSoname);
        } else if (resolve(lib)) {
            g_error[0] = '\0';
            t = &g_table;
            g_loaded.store(t, std::memory_order_release);
        }
    }
    pthread_mutex_unlock(&g_load_mu);
    return t;
}

const Libcrypto* libcrypto_if_loaded() noexcept {
    return g_loaded.load(std::memory_order_acquire);
}

std::string libcrypto_error() {
    pthread_mutex_lock(&g_load_mu);
    std::string why = g_error;
    pthread_mutex_unlock(&g_load_mu);
    return why;
}

}  // namespace sealsock::record
