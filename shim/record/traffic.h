// The keys of one direction of a connection: traffic secret, AEAD, static IV, sequence number.
//
// State and view. Everything that changes as records go by (the secret, the static IV, the
// sequence number, the generation) lives in a TrafficState: standard-layout, trivially copyable,
// no pointers, so it can sit in MAP_SHARED memory that a forked child shares and that a new
// program image maps at another address after exec (DESIGN I5). A Traffic is a view over one
// state. Its only private part is the OpenSSL cipher context (Aead), a per-process cache that
// holds the key identified by the state's key_id: before each use aead() compares the two (one
// integer compare) and, when another view or another process has changed the key (KeyUpdate) or
// the view is new, derives the key from the secret in the state and rebuilds the context.
//
// Ownership. Traffic::create() makes an owning Traffic (its state on the heap, wiped when it
// goes); the constructor over a TrafficState makes a view that owns nothing. Several views over
// one state behave as one object when used one at a time.
//
// Thread-safety: none; a state belongs to one direction of one session and is used under that
// direction's lock, whichever view and whichever process uses it.
#pragma once

#include <sealsock/bytes.h>
#include <sealsock/result.h>
#include <sealsock/secret.h>

#include <array>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "record/aead.h"
#include "record/suite.h"
#include "record/wire.h"

namespace sealsock::record {

// One direction's keys in shared-memory form: 104 bytes. All zero is "no key".
struct TrafficState {
    std::uint64_t seq;
    std::uint64_t generation;  // KeyUpdates this direction has gone through
    // Names the key in force: derived from its IV and suite, so it changes with every KeyUpdate
    // and differs between connections; 0 while no key is installed. Views keep the key_id of
    // the key their Aead holds.
    std::uint64_t key_id;
    std::uint16_t suite;  // IANA code (find_suite); 0 when wiped
    std::uint8_t secret_size;
    std::uint8_t secret[Secret::capacity];
    std::uint8_t iv[nonce_size];
};
static_assert(std::is_standard_layout_v<TrafficState> &&
              std::is_trivially_copyable_v<TrafficState>);
static_assert(sizeof(TrafficState) <= 104);

class Traffic {
  public:
    // Installs `secret` (suite.hash_size bytes) with sequence number `seq` into `state`, which
    // may hold anything before (zeroed memory included). Fails (state wiped) on a wrong length
    // or when the keys cannot be derived.
    static Status init(TrafficState& state, const SuiteParams& suite, ByteView secret,
                       std::uint64_t seq);
    // Wipes the secret and IV (sodium_memzero) and leaves the all-zero "no key" state.
    static void wipe(TrafficState& state);

    // A view over `state`, sealing or opening. Keeps a reference: `state` must outlive the view.
    Traffic(TrafficState& state, Aead::Mode mode);

    // An owning Traffic: init() into a state of its own.
    static Result<Traffic> create(const SuiteParams& suite, ByteView secret, std::uint64_t seq,
                                  Aead::Mode mode);

    // Points this view at `state` instead. The cached Aead is kept when `state` holds the same
    // key (a copy of the old state), so moving a state costs no key derivation. An owned state is
    // wiped and freed.
    void rebind(TrafficState& state);

    // KeyUpdate (RFC 8446 7.2): the next application traffic secret, its key and IV, and
    // sequence number 0 (5.3: "Each sequence number is set to zero at the beginning of a
    // connection and whenever the key is changed"). False on failure; the old key is then gone
    // too, so a failed update can never lead to reuse.
    [[nodiscard]] bool update();

    // RFC 8446 5.3: "The 64-bit record sequence number is encoded in network byte order and
    // padded to the left with zeros to iv_length. The padded sequence number is XORed with either
    // the static client_write_iv or server_write_iv (depending on the role)."
    [[nodiscard]] std::array<std::uint8_t, nonce_size> nonce() const;

    // Moves to the next sequence number. RFC 8446 5.3: "If a TLS implementation would need to
    // wrap a sequence number, it MUST either rekey (Section 4.6.3) or terminate the connection."
    // False when the sequence number would wrap; the caller must then stop.
    [[nodiscard]] bool advance();

    // The suite of the key in force; nullptr when no key is installed (wiped, failed update).
    [[nodiscard]] const SuiteParams* suite() const { return find_suite(state_->suite); }
    [[nodiscard]] std::uint64_t sequence() const { return state_->seq; }
    // How many KeyUpdates this direction has gone through.
    [[nodiscard]] std::uint64_t generation() const { return state_->generation; }
    // The cipher context for the key in force, rebuilt first if the state's key changed since
    // this view last used it. Invalid (every seal/open fails) when no key is installed.
    [[nodiscard]] Aead& aead() {
        if (state_->key_id != key_id_) [[unlikely]]
            refresh();
        return aead_;
    }
    [[nodiscard]] TrafficState& state() { return *state_; }

  private:
    struct Wipe {
        void operator()(TrafficState* state) const;
    };

    void refresh();

    std::unique_ptr<TrafficState, Wipe> owned_;  // set for an owning Traffic only
    TrafficState* state_;
    Aead aead_;  // per process: holds the key named by key_id_
    std::uint64_t key_id_ = 0;
    Aead::Mode mode_;
};

}  // namespace sealsock::record
