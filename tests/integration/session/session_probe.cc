// session_probe: a plain TCP client and server for the sealed-connection scenarios
// (tests/integration/session/50-sealed.sh).
//
// It knows nothing about sealing: it uses POSIX sockets only, so it runs unchanged between two
// plain processes (the script's baseline) and, under LD_PRELOAD=libsealsock.so, is sealed by the
// shim without knowing it. Every scenario checks itself and prints machine-checkable lines:
//
//   sent SIZE SHA256          everything this side wrote on one connection
//   received SIZE SHA256      everything this side read on one connection
//   error: CALL: STRERROR (errno NAME)     a call failed (exit 1)
//   error: verify: WHAT       the bytes or the socket's behaviour were not what the scenario
//                             expects (exit 2)
//   totals: sent N received M printed last for every connection, also after an error, so the
//                             fail-closed checks can see how far a connection got
//
// Default protocol: the client sends SIZE pseudo-random bytes (from --seed, with --marker written
// every 512 bytes) and shuts down its write side; the server reads to EOF and replies with the
// SHA-256 of what it read followed by --reply-size bytes of its own payload (seed + 1), then
// closes; the client checks both parts byte for byte. The --mode flag picks how each side does
// its I/O (both sides are given the same mode; see usage()).
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sealsock/peer.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Bytes = std::vector<std::uint8_t>;

// --- output and failures -------------------------------------------------------------------------

std::mutex output_mutex;

// One line on stdout, whole, even when 64 connections report from several threads.
void say(const char* format, ...) __attribute__((format(printf, 1, 2)));
void say(const char* format, ...) {
    std::lock_guard lock(output_mutex);
    va_list args;
    va_start(args, format);
    std::vprintf(format, args);
    va_end(args);
    std::putchar('\n');
    std::fflush(stdout);
}

// errno's symbolic name (ECONNRESET), which the script matches.
const char* errno_name(int err) {
    const char* name = strerrorname_np(err);
    return name != nullptr ? name : "?";
}

// A call failed: printed as `error: CALL: STRERROR (errno NAME)`.
struct SysError {
    std::string call;
    int err;
};
// The peer's bytes or the socket's behaviour were wrong: printed as `error: verify: WHAT`.
struct Mismatch {
    std::string what;
};

[[noreturn]] void fail(const std::string& call, int err = errno) {
    throw SysError{call, err};
}
[[noreturn]] void mismatch(const std::string& what) {
    throw Mismatch{what};
}

// Runs body and turns a failure into its line; returns the exit status (0, 1 or 2).
int reported(const std::function<void()>& body) {
    try {
        body();
        return 0;
    } catch (const SysError& e) {
        say("error: %s: %s (errno %s)", e.call.c_str(), std::strerror(e.err), errno_name(e.err));
        return 1;
    } catch (const Mismatch& e) {
        say("error: verify: %s", e.what.c_str());
        return 2;
    }
}

// --- payload and digests -------------------------------------------------------------------------

// Deterministic bytes: byte p is byte p%8 of splitmix64(seed, p/8), except that `marker` is
// written at every multiple of 512 so a capture of the wire can be searched for plaintext. Any
// slice can be produced on its own, so 256 MiB never has to be held in memory.
class Payload {
  public:
    Payload(std::uint64_t seed, std::uint64_t size, std::string marker = {})
        : seed_(seed), size_(size), marker_(std::move(marker)) {}

    std::uint64_t size() const { return size_; }

    void fill(std::uint64_t offset, std::span<std::uint8_t> out) const {
        for (std::size_t i = 0; i < out.size(); ++i) {
            const std::uint64_t p = offset + i;
            const std::uint64_t in_block = p % 512;
            if (in_block < marker_.size()) {
                out[i] = static_cast<std::uint8_t>(marker_[in_block]);
            } else {
                out[i] = static_cast<std::uint8_t>(mix(seed_ + p / 8) >> (8 * (p % 8)));
            }
        }
    }

  private:
    static std::uint64_t mix(std::uint64_t x) {
        x += 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
    }

    std::uint64_t seed_;
    std::uint64_t size_;
    std::string marker_;
};

class Sha256 {
  public:
    Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
        if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) std::abort();
    }
    void update(std::span<const std::uint8_t> data) {
        if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) std::abort();
    }
    // The digest so far; the running state is kept, so it may be asked again later.
    Bytes digest() const {
        std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> copy(EVP_MD_CTX_new(),
                                                                     EVP_MD_CTX_free);
        Bytes out(32);
        unsigned int len = 0;
        if (!copy || EVP_MD_CTX_copy_ex(copy.get(), ctx_.get()) != 1 ||
            EVP_DigestFinal_ex(copy.get(), out.data(), &len) != 1 || len != out.size())
            std::abort();
        return out;
    }
    std::string hex() const {
        std::string s;
        for (std::uint8_t b : digest()) {
            static constexpr char kDigits[] = "0123456789abcdef";
            s += kDigits[b >> 4];
            s += kDigits[b & 15];
        }
        return s;
    }

  private:
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

// --- the two directions of a connection ----------------------------------------------------------

// What one side sends: queued bytes (the server's digest, an HTTP header, an echo) then a
// payload. Bytes are hashed when the kernel (or the shim) has taken them, so `sent` is exactly
// what was written.
class Outgoing {
  public:
    Outgoing() : body_(0, 0) {}
    Outgoing(Bytes head, Payload body) : head_(std::move(head)), body_(std::move(body)) {}

    void queue(std::span<const std::uint8_t> bytes) {
        head_.insert(head_.end(), bytes.begin(), bytes.end());
    }
    std::uint64_t offset() const { return offset_; }
    bool done() const { return head_at_ == head_.size() && body_at_ == body_.size(); }

    // The next at most `max` unsent bytes; valid until the next call.
    std::span<const std::uint8_t> pending(std::size_t max) {
        const std::size_t from_head = std::min(max, head_.size() - head_at_);
        const std::size_t from_body = static_cast<std::size_t>(
            std::min<std::uint64_t>(max - from_head, body_.size() - body_at_));
        buffer_.resize(from_head + from_body);
        std::copy_n(head_.begin() + static_cast<std::ptrdiff_t>(head_at_), from_head,
                    buffer_.begin());
        body_.fill(body_at_, std::span(buffer_).subspan(from_head));
        return buffer_;
    }
    // The first n bytes of the last pending() were written.
    void advance(std::size_t n) {
        sha_.update(std::span(buffer_).first(n));
        offset_ += n;
        const std::size_t from_head = std::min(n, head_.size() - head_at_);
        head_at_ += from_head;
        body_at_ += n - from_head;
        if (head_at_ == head_.size()) {
            head_.clear();
            head_at_ = 0;
        }
    }
    std::string hex() const { return sha_.hex(); }
    Bytes digest() const { return sha_.digest(); }

  private:
    Bytes head_;
    std::size_t head_at_ = 0;
    Payload body_;
    std::uint64_t body_at_ = 0;
    std::uint64_t offset_ = 0;
    Bytes buffer_;
    Sha256 sha_;
};

// What one side reads: hashed, counted, optionally appended to a dump file and, when the side
// knows what must arrive, compared byte for byte as it arrives (the first wrong byte is an error).
class Incoming {
  public:
    // Expect `head` bytes kept aside for a later check (the peer's digest), then `body`.
    void expect(std::size_t head, Payload body) {
        head_size_ = head;
        body_.emplace(std::move(body));
    }
    void dump_to(int fd) { dump_fd_ = fd; }

    void take(std::span<const std::uint8_t> data) {
        if (dump_fd_ >= 0 && ::write(dump_fd_, data.data(), data.size()) < 0) fail("write(dump)");
        sha_.update(data);
        for (std::uint8_t b : data) {
            if (body_) check(b);
            ++count_;
        }
    }
    std::uint64_t count() const { return count_; }
    std::string hex() const { return sha_.hex(); }
    Bytes digest() const { return sha_.digest(); }
    const Bytes& head() const { return head_; }

    // At EOF: everything expected arrived, nothing more.
    void check_complete() const {
        if (body_ && count_ != head_size_ + body_->size())
            mismatch("expected " + std::to_string(head_size_ + body_->size()) +
                     " bytes before EOF, got " + std::to_string(count_));
    }

  private:
    void check(std::uint8_t b) {
        if (count_ < head_size_) {
            head_.push_back(b);
            return;
        }
        const std::uint64_t at = count_ - head_size_;
        if (at >= body_->size())
            mismatch("more than the expected " + std::to_string(head_size_ + body_->size()) +
                     " bytes arrived");
        std::uint8_t want = 0;
        body_->fill(at, std::span(&want, 1));
        if (b != want) mismatch("byte " + std::to_string(count_) + " differs from the expected");
    }

    Sha256 sha_;
    std::uint64_t count_ = 0;
    std::size_t head_size_ = 0;
    Bytes head_;
    std::optional<Payload> body_;
    int dump_fd_ = -1;
};

// --- options -------------------------------------------------------------------------------------

struct Options {
    std::string role;
    std::string mode = "blocking";
    std::string listen = "127.0.0.1";
    std::uint16_t port = 0;
    std::string port_file;
    std::string connect;
    int connections = 1;
    std::uint64_t size = 1 << 20;
    std::uint64_t seed = 1;
    std::uint64_t reply_size = 4096;
    std::uint64_t banner_size = 3000;
    std::string marker;
    std::string dump;
    int lines = 40;
    bool clear_env = false;  // clearenv() first, as nginx does for its workers
    bool peer = false;       // ask the shim who the peer is (sealsock_peer), once connected
};

[[noreturn]] void usage() {
    std::fputs(
        "usage: session_probe server --mode M [--listen 127.0.0.1|::1] [--port N] --port-file F\n"
        "                            [--connections N] [--seed S] [--reply-size R]\n"
        "                            [--banner-size B] [--dump FILE]\n"
        "       session_probe client --mode M --connect HOST:PORT [--size N] [--seed S]\n"
        "                            [--reply-size R] [--banner-size B] [--marker TEXT]\n"
        "                            [--connections N] [--lines N]\n"
        "       both roles: [--clearenv yes]   (clearenv() before any socket call)\n"
        "                   [--peer yes]       (print what sealsock_peer() says once connected;\n"
        "                                       the client only in the blocking modes)\n"
        "       session_probe payload --size N --seed S [--marker TEXT]   (the bytes, to stdout)\n"
        "Options of the other role are accepted and ignored, so both sides can get one list.\n"
        "modes (both sides): blocking, poll, epoll-lt, epoll-et, bytewise (one write, 1-byte\n"
        "  reads, FIONREAD), peek, waitall, iov (64 iovecs: readv/writev, recvmsg/sendmsg),\n"
        "  halfclose, banner (server writes first), threads (a reader blocked while another\n"
        "  thread writes; the server echoes), many (--connections at once), rev (lines\n"
        "  reversed, like openssl s_server -rev), http (server only: a response for curl,\n"
        "  its body ending at close), sandboxed (server: a forked child under a seccomp\n"
        "  filter like OpenSSH's serves the default protocol; client: blocking)\n",
        stderr);
    std::exit(64);
}

std::uint64_t number(const char* text) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0') usage();
    return v;
}

Options parse(int argc, char** argv) {
    if (argc < 2) usage();
    Options o;
    o.role = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        if (a == "--mode")
            o.mode = v;
        else if (a == "--listen")
            o.listen = v;
        else if (a == "--port")
            o.port = static_cast<std::uint16_t>(number(v));
        else if (a == "--port-file")
            o.port_file = v;
        else if (a == "--connect")
            o.connect = v;
        else if (a == "--connections")
            o.connections = static_cast<int>(number(v));
        else if (a == "--size")
            o.size = number(v);
        else if (a == "--seed")
            o.seed = number(v);
        else if (a == "--reply-size")
            o.reply_size = number(v);
        else if (a == "--banner-size")
            o.banner_size = number(v);
        else if (a == "--marker")
            o.marker = v;
        else if (a == "--dump")
            o.dump = v;
        else if (a == "--lines")
            o.lines = static_cast<int>(number(v));
        else if (a == "--clearenv")
            o.clear_env = std::string_view(v) == "yes";
        else if (a == "--peer")
            o.peer = std::string_view(v) == "yes";
        else
            usage();
    }
    return o;
}

// --- sockets -------------------------------------------------------------------------------------

// Owns a descriptor; closing it is part of the protocol, so it is explicit and checked.
class Fd {
  public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        std::swap(fd_, o.fd_);
        return *this;
    }
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }
    void close() {
        if (::close(std::exchange(fd_, -1)) != 0) fail("close");
    }

  private:
    int fd_;
};

struct Address {
    sockaddr_storage storage{};
    socklen_t len = 0;
    int family = AF_INET;
};

Address address(const std::string& host, std::uint16_t port) {
    Address a;
    if (auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
        inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a.len = sizeof(sockaddr_in);
        a.family = AF_INET;
    } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
               inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a.len = sizeof(sockaddr_in6);
        a.family = AF_INET6;
    } else {
        usage();
    }
    return a;
}

// HOST:PORT or [V6]:PORT.
Address peer_address(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) usage();
    std::string host = text.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    return address(host, static_cast<std::uint16_t>(number(text.substr(colon + 1).c_str())));
}

void set_nonblocking(int fd, bool with_ioctl) {
    // Programs use both ways; the shim must leave O_NONBLOCK to them either way (DESIGN I4).
    if (with_ioctl) {
        int on = 1;
        if (::ioctl(fd, FIONBIO, &on) != 0) fail("ioctl(FIONBIO)");
        return;
    }
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) fail("fcntl(O_NONBLOCK)");
}

Fd new_socket(int family) {
    Fd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) fail("socket");
    return fd;
}

Fd connect_blocking(const Address& to) {
    Fd fd = new_socket(to.family);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to.storage), to.len) != 0)
        fail("connect");
    say("connected");
    return fd;
}

void shutdown_write(int fd) {
    if (::shutdown(fd, SHUT_WR) != 0) fail("shutdown");
}

// Read and write sizes cycle through these, so records are split and joined at every kind of
// boundary (1 byte, exactly one 16 KiB record, one byte more, several records).
constexpr std::array<std::size_t, 8> kWriteSizes = {1, 7, 1000, 16383, 16384, 16385, 65536, 100003};
constexpr std::array<std::size_t, 8> kReadSizes = {1, 5, 16384, 16385, 65536, 131072, 2, 4093};

constexpr std::size_t kMaxRead = *std::max_element(kReadSizes.begin(), kReadSizes.end());

ssize_t retry(const std::function<ssize_t()>& call) {
    for (;;) {
        const ssize_t n = call();
        if (n >= 0 || errno != EINTR) return n;
    }
}

void write_all(int fd, Outgoing& out) {
    for (std::size_t turn = 0; !out.done(); ++turn) {
        auto chunk = out.pending(kWriteSizes[turn % kWriteSizes.size()]);
        const ssize_t n = retry([&] { return ::write(fd, chunk.data(), chunk.size()); });
        if (n < 0) fail("write");
        out.advance(static_cast<std::size_t>(n));
    }
}

void read_to_eof(int fd, Incoming& in) {
    Bytes buf(kMaxRead);
    for (std::size_t turn = 0;; ++turn) {
        const std::size_t want = kReadSizes[turn % kReadSizes.size()];
        const ssize_t n = retry([&] { return ::read(fd, buf.data(), want); });
        if (n < 0) fail("read");
        if (n == 0) return;
        in.take(std::span(buf).first(static_cast<std::size_t>(n)));
    }
}

// --- 64 odd-sized iovecs -------------------------------------------------------------------------

constexpr int kIovecs = 64;

// Odd sizes from 1 to 499, about 16 KB in all, so one call spans record boundaries.
std::array<std::size_t, kIovecs> iovec_sizes() {
    std::array<std::size_t, kIovecs> sizes{};
    for (std::size_t i = 0; i < sizes.size(); ++i)
        sizes[i] = ((i * 37 + 11) % 500) | 1;
    return sizes;
}

// Cuts buf into up to 64 iovecs of the odd sizes above; returns how many.
int make_iovecs(std::span<std::uint8_t> buf, std::array<iovec, kIovecs>& iov) {
    std::size_t at = 0;
    int n = 0;
    for (std::size_t size : iovec_sizes()) {
        if (at == buf.size()) break;
        const std::size_t len = std::min(size, buf.size() - at);
        iov[static_cast<std::size_t>(n++)] = {buf.data() + at, len};
        at += len;
    }
    return n;
}

std::size_t iovec_total() {
    std::size_t total = 0;
    for (std::size_t s : iovec_sizes())
        total += s;
    return total;
}

// Alternates writev and sendmsg.
void write_all_iov(int fd, Outgoing& out) {
    for (std::size_t turn = 0; !out.done(); ++turn) {
        auto chunk = out.pending(iovec_total());
        Bytes copy(chunk.begin(), chunk.end());  // iovec wants non-const pointers
        std::array<iovec, kIovecs> iov{};
        const int count = make_iovecs(copy, iov);
        ssize_t n = 0;
        if (turn % 2 == 0) {
            n = retry([&] { return ::writev(fd, iov.data(), count); });
            if (n < 0) fail("writev");
        } else {
            msghdr msg{};
            msg.msg_iov = iov.data();
            msg.msg_iovlen = static_cast<std::size_t>(count);
            n = retry([&] { return ::sendmsg(fd, &msg, MSG_NOSIGNAL); });
            if (n < 0) fail("sendmsg");
        }
        out.advance(static_cast<std::size_t>(n));
    }
}

// Alternates readv and recvmsg.
void read_to_eof_iov(int fd, Incoming& in) {
    Bytes buf(iovec_total());
    for (std::size_t turn = 0;; ++turn) {
        std::array<iovec, kIovecs> iov{};
        const int count = make_iovecs(buf, iov);
        ssize_t n = 0;
        if (turn % 2 == 0) {
            n = retry([&] { return ::readv(fd, iov.data(), count); });
            if (n < 0) fail("readv");
        } else {
            msghdr msg{};
            msg.msg_iov = iov.data();
            msg.msg_iovlen = static_cast<std::size_t>(count);
            n = retry([&] { return ::recvmsg(fd, &msg, 0); });
            if (n < 0) fail("recvmsg");
            if ((msg.msg_flags & MSG_TRUNC) != 0) mismatch("recvmsg set MSG_TRUNC on a stream");
        }
        if (n == 0) return;
        in.take(std::span(buf).first(static_cast<std::size_t>(n)));
    }
}

// --- readiness-driven connections (poll, epoll level- and edge-triggered) ------------------------

enum class Wait { poll, epoll_lt, epoll_et };

// One connection: its socket, both directions, and what readiness-driven modes need. There the
// client has its payload to send from the start and shuts down its write side after it; the
// server gets something to send only at EOF (on_eof). Blocking modes use fd, out and in alone.
struct Flow {
    Fd fd;
    bool connecting = false;
    Outgoing out;
    bool sending = false;
    bool shutdown_after = false;
    bool out_done = false;
    Incoming in;
    bool eof = false;
    std::function<void(Flow&)> on_eof;
    std::function<void(Flow&)> on_sent;
    std::size_t read_turn = 0;
    std::size_t write_turn = 0;
    int idle_wakes = 0;
    std::chrono::steady_clock::time_point idle_since;
    // Bytes of an earlier phase (the banner), for the totals line.
    std::uint64_t sent_before = 0;
    std::uint64_t received_before = 0;

    bool finished() const { return eof && out_done; }
};

void finish_connect(Flow& f) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(f.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) fail("getsockopt");
    if (err != 0) fail("connect (SO_ERROR)", err);
    f.connecting = false;
    say("connected");
    // Ask again the way hiredis does: connect() to the same peer reports the connection made (0
    // on Linux), and once more EISCONN. The caller's line must be the same sealed and plain.
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    if (::getpeername(f.fd.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
        fail("getpeername");
    std::string answers;
    for (int i = 0; i < 2; ++i) {
        const int r = ::connect(f.fd.get(), reinterpret_cast<sockaddr*>(&peer), peer_len);
        answers += r == 0 ? " 0" : std::string(" ") + errno_name(errno);
    }
    say("connect again:%s", answers.c_str());
}

// Reads once, or until EAGAIN when edge-triggered (an edge is not repeated). Returns whether
// anything happened.
// Reads the socket reported readable whose very first read answered EAGAIN: allowed by the
// kernel, but some programs (wrk) take it for a dead connection, so the shim keeps it from
// happening during a handshake. Printed as "spurious reads N" by the event modes.
std::atomic<int> g_spurious_reads{0};

bool read_some(Flow& f, bool drain) {
    static thread_local Bytes buf(kMaxRead);
    bool progress = false;
    for (;;) {
        const std::size_t want = kReadSizes[f.read_turn++ % kReadSizes.size()];
        const ssize_t n = retry([&] { return ::read(f.fd.get(), buf.data(), want); });
        if (n < 0 && errno == EAGAIN) {
            if (!progress) g_spurious_reads.fetch_add(1, std::memory_order_relaxed);
            return progress;
        }
        if (n < 0) fail("read");
        progress = true;
        if (n == 0) {
            f.eof = true;
            if (f.on_eof) f.on_eof(f);
            return true;
        }
        f.in.take(std::span(buf).first(static_cast<std::size_t>(n)));
        if (!drain) return true;
    }
}

bool write_some(Flow& f, bool drain) {
    bool progress = false;
    while (!f.out.done()) {
        auto chunk = f.out.pending(kWriteSizes[f.write_turn++ % kWriteSizes.size()]);
        const ssize_t n = retry([&] { return ::write(f.fd.get(), chunk.data(), chunk.size()); });
        if (n < 0 && errno == EAGAIN) return progress;
        if (n < 0) fail("write");
        f.out.advance(static_cast<std::size_t>(n));
        progress = true;
        if (!drain) break;
    }
    if (f.out.done()) {
        if (f.shutdown_after) shutdown_write(f.fd.get());
        f.out_done = true;
        if (f.on_sent) f.on_sent(f);
        progress = true;
    }
    return progress;
}

// One readiness report for f. Edge-triggered flows also try to write after reading: the reply
// that EOF made ready will get no new EPOLLOUT edge on a socket that has been writable all along.
void step(Flow& f, bool readable, bool writable, bool edge) {
    bool progress = false;
    if (f.connecting) {
        if (!writable) return;
        finish_connect(f);
        progress = true;
    }
    if (readable && !f.eof) progress |= read_some(f, edge);
    if (f.sending && !f.out_done && (writable || edge)) progress |= write_some(f, edge);
    // Readiness must be truthful (DESIGN I2): a spurious wake now and then is allowed, a socket
    // reported ready again and again for seconds with nothing to read or write is a busy loop.
    const auto now = std::chrono::steady_clock::now();
    if (progress)
        f.idle_wakes = 0;
    else if (f.idle_wakes++ == 0)
        f.idle_since = now;
    if (f.idle_wakes > 1000 && now - f.idle_since > std::chrono::seconds(2))
        mismatch("readiness reported " + std::to_string(f.idle_wakes) +
                 " times in 2 s with nothing to read or write");
}

std::uint32_t epoll_interest(const Flow& f) {
    std::uint32_t ev = 0;
    if (!f.eof) ev |= EPOLLIN | EPOLLRDHUP;
    if (f.connecting || (f.sending && !f.out_done)) ev |= EPOLLOUT;
    return ev;
}

constexpr int kWaitMs = 20000;

// Drives every flow until each has read EOF and sent everything, then closes it.
void drive(std::vector<Flow*> flows, Wait wait) {
    const bool edge = wait == Wait::epoll_et;
    Fd ep;
    if (wait != Wait::poll) {
        ep = Fd(::epoll_create1(EPOLL_CLOEXEC));
        if (ep.get() < 0) fail("epoll_create1");
        for (Flow* f : flows) {
            epoll_event ev{};
            ev.events = edge ? (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) : epoll_interest(*f);
            ev.data.ptr = f;
            if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, f->fd.get(), &ev) != 0) fail("epoll_ctl");
        }
    }
    auto done = [&](Flow& f) {
        if (wait != Wait::poll && ::epoll_ctl(ep.get(), EPOLL_CTL_DEL, f.fd.get(), nullptr) != 0)
            fail("epoll_ctl(DEL)");
        f.fd.close();
    };
    std::size_t open = flows.size();
    while (open > 0) {
        if (wait == Wait::poll) {
            std::vector<pollfd> fds;
            std::vector<Flow*> who;
            for (Flow* f : flows) {
                if (f->fd.get() < 0) continue;
                short ev = 0;
                if (!f->eof) ev |= POLLIN;
                if (f->connecting || (f->sending && !f->out_done)) ev |= POLLOUT;
                fds.push_back({f->fd.get(), ev, 0});
                who.push_back(f);
            }
            const int n = ::poll(fds.data(), fds.size(), kWaitMs);
            if (n < 0 && errno != EINTR) fail("poll");
            if (n == 0) fail("poll", ETIMEDOUT);
            for (std::size_t i = 0; i < fds.size(); ++i) {
                const short r = fds[i].revents;
                if (r == 0) continue;
                Flow& f = *who[i];
                step(f, (r & (POLLIN | POLLHUP | POLLERR)) != 0,
                     (r & (POLLOUT | POLLHUP | POLLERR)) != 0, false);
                if (f.finished()) {
                    done(f);
                    --open;
                }
            }
            continue;
        }
        std::array<epoll_event, 64> events{};
        const int n =
            ::epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), kWaitMs);
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        if (n == 0) fail("epoll_wait", ETIMEDOUT);
        for (int i = 0; i < n; ++i) {
            const epoll_event& e = events[static_cast<std::size_t>(i)];
            Flow& f = *static_cast<Flow*>(e.data.ptr);
            step(f, (e.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0,
                 (e.events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0, edge);
            if (f.finished()) {
                done(f);
                --open;
            } else if (!edge) {
                epoll_event ev{};
                ev.events = epoll_interest(f);
                ev.data.ptr = &f;
                if (::epoll_ctl(ep.get(), EPOLL_CTL_MOD, f.fd.get(), &ev) != 0)
                    fail("epoll_ctl(MOD)");
            }
        }
    }
}

Wait wait_kind(const std::string& mode) {
    if (mode == "poll") return Wait::poll;
    if (mode == "epoll-lt") return Wait::epoll_lt;
    return Wait::epoll_et;
}

bool event_mode(const std::string& mode) {
    return mode == "poll" || mode == "epoll-lt" || mode == "epoll-et";
}

// --- lines (the rev mode, compatible with openssl s_server -rev) ---------------------------------

// Splits what a socket delivers into lines; every byte read is also given to `in`.
class LineReader {
  public:
    // The next line without its "\n" (and "\r"), or nothing at EOF. A last line without "\n" is
    // returned as a line.
    std::optional<std::string> next(int fd, Incoming& in) {
        for (;;) {
            if (auto nl = std::find(pending_.begin(), pending_.end(), '\n'); nl != pending_.end()) {
                std::string line(pending_.begin(), nl);
                pending_.erase(pending_.begin(), nl + 1);
                if (!line.empty() && line.back() == '\r') line.pop_back();
                return line;
            }
            std::array<std::uint8_t, 4096> buf{};
            const ssize_t n = retry([&] { return ::read(fd, buf.data(), buf.size()); });
            if (n < 0) fail("read");
            if (n == 0) {
                if (pending_.empty()) return std::nullopt;
                std::string line(pending_.begin(), pending_.end());
                pending_.clear();
                return line;
            }
            const auto got = std::span(buf).first(static_cast<std::size_t>(n));
            in.take(got);
            pending_.insert(pending_.end(), got.begin(), got.end());
        }
    }

  private:
    std::vector<char> pending_;
};

Bytes line_bytes(std::string line) {
    line += '\n';
    return Bytes(line.begin(), line.end());
}

// Line i of the rev scenario: 1 to 3000 letters and digits from the payload generator.
std::string rev_line(const Options& o, int i) {
    static constexpr char kAlphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    Bytes raw(1 + static_cast<std::size_t>(i) * 997 % 3000);
    Payload(o.seed + static_cast<std::uint64_t>(i), raw.size()).fill(0, raw);
    std::string line;
    for (std::uint8_t b : raw)
        line += kAlphabet[b % (sizeof kAlphabet - 1)];
    return line;
}

// --- server --------------------------------------------------------------------------------------

void say_received(const char* what, const Incoming& in) {
    say("%s %llu %s", what, static_cast<unsigned long long>(in.count()), in.hex().c_str());
}
void say_sent(const char* what, const Outgoing& out) {
    say("%s %llu %s", what, static_cast<unsigned long long>(out.offset()), out.hex().c_str());
}

// The default reply: the digest of what was received, then the server's own payload.
Outgoing reply_for(const Incoming& in, const Options& o) {
    return Outgoing(in.digest(), Payload(o.seed + 1, o.reply_size));
}

// A 64 KiB record read one byte at a time. After the first byte FIONREAD must report the
// plaintext still waiting: more than nothing, and never more than the rest of the write.
void read_bytewise(Flow& f) {
    bool first = true;
    for (;;) {
        std::uint8_t b = 0;
        const ssize_t n = retry([&] { return ::read(f.fd.get(), &b, 1); });
        if (n < 0) fail("read");
        if (n == 0) return;
        f.in.take(std::span(&b, 1));
        if (std::exchange(first, false)) {
            int ready = 0;
            if (::ioctl(f.fd.get(), FIONREAD, &ready) != 0) fail("ioctl(FIONREAD)");
            say("fionread %d", ready);
            if (ready <= 0)
                mismatch("FIONREAD reported " + std::to_string(ready) + " after 1 byte");
        }
    }
}

// Peeks k bytes, then a read of as many must return the same bytes.
void read_peeking(Flow& f) {
    static constexpr std::array<std::size_t, 7> kPeek = {1, 7, 100, 5000, 16384, 20000, 3};
    Bytes peeked(20000);
    Bytes got(20000);
    int peeks = 0;
    for (std::size_t turn = 0;; ++turn) {
        const std::size_t k = kPeek[turn % kPeek.size()];
        const ssize_t p = retry([&] { return ::recv(f.fd.get(), peeked.data(), k, MSG_PEEK); });
        if (p < 0) fail("recv(MSG_PEEK)");
        const auto want = static_cast<std::size_t>(p);
        const ssize_t n =
            retry([&] { return ::read(f.fd.get(), got.data(), std::max<std::size_t>(want, 1)); });
        if (n < 0) fail("read");
        if (static_cast<std::size_t>(n) != want)
            mismatch("a peek of " + std::to_string(k) + " returned " + std::to_string(p) +
                     " bytes, the read after it " + std::to_string(n));
        if (n == 0) break;
        if (std::memcmp(peeked.data(), got.data(), want) != 0)
            mismatch("the read after a peek returned other bytes than the peek");
        f.in.take(std::span(got).first(want));
        ++peeks;
    }
    say("peeks %d", peeks);
}

// MSG_WAITALL fills every buffer completely; only the last one before EOF may be short.
void read_waitall(Flow& f) {
    constexpr std::size_t kChunk = 20000;
    Bytes buf(kChunk);
    bool short_seen = false;
    for (;;) {
        const ssize_t n =
            retry([&] { return ::recv(f.fd.get(), buf.data(), kChunk, MSG_WAITALL); });
        if (n < 0) fail("recv(MSG_WAITALL)");
        if (n == 0) return;
        if (short_seen) mismatch("MSG_WAITALL returned a short count before EOF");
        short_seen = static_cast<std::size_t>(n) < kChunk;
        f.in.take(std::span(buf).first(static_cast<std::size_t>(n)));
    }
}

// After shutdown(SHUT_WR) a write fails with EPIPE, as on any socket.
void check_write_after_shutdown(int fd) {
    const ssize_t n = ::send(fd, "x", 1, MSG_NOSIGNAL);
    if (n >= 0) mismatch("a write after shutdown(SHUT_WR) succeeded");
    if (errno != EPIPE)
        mismatch(std::string("a write after shutdown(SHUT_WR) failed with ") + errno_name(errno) +
                 ", not EPIPE");
    say("write after shutdown: EPIPE");
}

// A read after EOF is EOF again.
void check_eof_again(int fd) {
    char c = 0;
    const ssize_t n = retry([&] { return ::read(fd, &c, 1); });
    if (n < 0) fail("read after EOF");
    if (n != 0) mismatch("a read after EOF returned data");
    say("eof again");
}

// The default protocol, reading and writing as the mode says.
void serve_default(Flow& f, const Options& o) {
    const int fd = f.fd.get();
    if (o.mode == "banner") {
        f.out = Outgoing({}, Payload(o.seed + 2, o.banner_size));
        write_all(fd, f.out);
        say_sent("sent-banner", f.out);
        f.sent_before = f.out.offset();
    }
    if (o.mode == "bytewise")
        read_bytewise(f);
    else if (o.mode == "peek")
        read_peeking(f);
    else if (o.mode == "waitall")
        read_waitall(f);
    else if (o.mode == "iov")
        read_to_eof_iov(fd, f.in);
    else
        read_to_eof(fd, f.in);
    say_received("received", f.in);
    if (o.mode == "halfclose") say("eof");
    f.out = reply_for(f.in, o);
    if (o.mode == "iov")
        write_all_iov(fd, f.out);
    else
        write_all(fd, f.out);
    say_sent("sent", f.out);
    if (o.mode == "halfclose") {
        shutdown_write(fd);
        say("shutdown");
        check_write_after_shutdown(fd);
        check_eof_again(fd);
    }
    f.fd.close();
}

// Echoes every byte as it arrives, while the client's writer is still writing.
void serve_echo(Flow& f) {
    Bytes buf(65536);
    for (;;) {
        const ssize_t n = retry([&] { return ::read(f.fd.get(), buf.data(), buf.size()); });
        if (n < 0) fail("read");
        if (n == 0) break;
        const auto got = std::span(buf).first(static_cast<std::size_t>(n));
        f.in.take(got);
        f.out.queue(got);
        write_all(f.fd.get(), f.out);
    }
    say_received("received", f.in);
    say_sent("sent", f.out);
    f.fd.close();
}

void serve_rev(Flow& f) {
    LineReader lines;
    while (auto line = lines.next(f.fd.get(), f.in)) {
        if (*line == "CLOSE") break;
        std::reverse(line->begin(), line->end());
        f.out.queue(line_bytes(*line));
        write_all(f.fd.get(), f.out);
    }
    say_received("received", f.in);
    say_sent("sent", f.out);
    shutdown_write(f.fd.get());
    f.fd.close();
}

// A minimal HTTP/1.0 server: one request, a response of --reply-size payload bytes, close. The
// response has no Content-Length: the body ends where the connection does, so a TLS client (curl)
// can tell a complete body from a cut one only by the close_notify.
void serve_http(Flow& f, const Options& o) {
    std::string request;
    Bytes buf(4096);
    while (request.find("\r\n\r\n") == std::string::npos) {
        if (request.size() > 65536) mismatch("no end of the HTTP request header in 64 KiB");
        const ssize_t n = retry([&] { return ::read(f.fd.get(), buf.data(), buf.size()); });
        if (n < 0) fail("read");
        if (n == 0) mismatch("EOF inside the HTTP request header");
        const auto got = std::span(buf).first(static_cast<std::size_t>(n));
        f.in.take(got);
        request.append(got.begin(), got.end());
    }
    say("request %s", request.substr(0, request.find("\r\n")).c_str());
    const std::string header =
        "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
    f.out = Outgoing(Bytes(header.begin(), header.end()), Payload(o.seed + 1, o.reply_size));
    write_all(f.fd.get(), f.out);
    say_sent("sent", f.out);
    f.fd.close();
}

void serve_event(Flow& f, const Options& o) {
    if (o.mode != "epoll-et") set_nonblocking(f.fd.get(), false);  // epoll-et: accept4 did it
    f.on_eof = [&o](Flow& g) {
        say_received("received", g.in);
        g.out = reply_for(g.in, o);
        g.sending = true;
    };
    f.on_sent = [](Flow& g) { say_sent("sent", g.out); };
    drive({&f}, wait_kind(o.mode));
}

// "peer: ..." with what the shim says of the connection on fd (include/sealsock/peer.h), looked
// up at run time as any program would: without the shim there is no such function.
void say_peer(int fd) {
    const auto query = reinterpret_cast<sealsock_peer_fn>(dlsym(RTLD_DEFAULT, "sealsock_peer"));
    if (query == nullptr) {
        say("peer: no sealsock_peer (the shim is not loaded)");
        return;
    }
    sealsock_peer_info info{};
    if (query(fd, &info, -1) != 0) {
        say("peer: error %s", errno_name(errno));
        return;
    }
    say("peer: subject=%s fingerprint=%s identity=%s rule=%s suite=0x%04x server=%d", info.subject,
        info.fingerprint, info.identity, info.rule, info.suite, info.server);
}

// Puts this process under a seccomp filter shaped like OpenSSH's privilege-separated child: the
// calls a program makes on an established socket (read, write, poll) and for memory, time and
// exit are allowed; opening and stat-ing files fail with EACCES; anything else kills the process
// (sendto, recvfrom, fcntl, getsockopt, ioctl, clone, socket, kill among them).
void sandbox_self() {
#if defined(__x86_64__)
    constexpr std::uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    constexpr std::uint32_t kArch = AUDIT_ARCH_AARCH64;
#endif
    const long allowed[] = {
        SYS_read,
        SYS_write,
        SYS_readv,
        SYS_writev,
        SYS_ppoll,
        SYS_close,
        SYS_exit,
        SYS_exit_group,
        SYS_futex,
        SYS_getpid,
        SYS_gettid,
        SYS_getrandom,
        SYS_clock_gettime,
        SYS_clock_nanosleep,
        SYS_nanosleep,
        SYS_brk,
        SYS_mmap,
        SYS_munmap,
        SYS_mremap,
        SYS_madvise,
        SYS_mprotect,
        SYS_rt_sigprocmask,
        SYS_rt_sigreturn,
        SYS_sched_yield,
        SYS_shutdown,
        // The sanitizers' runtime in the ASan tree: sigaltstack at exit, and a pipe through which
        // UBSan's vptr check probes whether memory is readable. The shim uses neither.
        SYS_sigaltstack,
        SYS_pipe2,
#ifdef SYS_poll
        SYS_poll,
#endif
    };
    const long refused[] = {SYS_openat, SYS_newfstatat, SYS_fstat};
    std::vector<sock_filter> prog = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
    };
    for (const long nr : allowed) {
        prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(nr), 0, 1));
        prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    }
    for (const long nr : refused) {
        prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(nr), 0, 1));
        prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES));
    }
    prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    const sock_fprog program{static_cast<unsigned short>(prog.size()), prog.data()};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("prctl(PR_SET_NO_NEW_PRIVS)");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) fail("prctl(PR_SET_SECCOMP)");
}

// The sandboxed mode: OpenSSH's pattern. A forked child puts itself under the filter and runs
// the default protocol on the connection; the parent keeps its copy of the socket, waits, and
// closes it last (so close_notify comes from the unconfined process).
int serve_sandboxed(Flow& f, const Options& o) {
    say("sandbox: a forked child under a seccomp filter serves the connection");
    const pid_t child = fork();
    if (child < 0) fail("fork");
    if (child == 0) {
        const int status = reported([&] {
            sandbox_self();
            serve_default(f, o);
        });
        say("totals: sent %llu received %llu", static_cast<unsigned long long>(f.out.offset()),
            static_cast<unsigned long long>(f.in.count()));
        _exit(status);
    }
    int ws = 0;
    while (waitpid(child, &ws, 0) < 0)
        if (errno != EINTR) fail("waitpid");
    if (WIFSIGNALED(ws)) {
        say("error: the sandboxed child was killed by signal %d (%s)", WTERMSIG(ws),
            strsignal(WTERMSIG(ws)));
        return 1;
    }
    f.fd.close();
    say("sandbox: the child exited %d", WEXITSTATUS(ws));
    return WEXITSTATUS(ws);
}

// One accepted connection: its scenario, then the totals line whatever happened.
int serve_one(Fd fd, const Options& o, int dump_fd) {
    Flow f;
    f.fd = std::move(fd);
    f.in.dump_to(dump_fd);
    if (o.peer) say_peer(f.fd.get());
    if (o.mode == "sandboxed") {
        int status = 1;
        (void)reported([&] { status = serve_sandboxed(f, o); });
        return status;
    }
    const int status = reported([&] {
        if (event_mode(o.mode))
            serve_event(f, o);
        else if (o.mode == "threads")
            serve_echo(f);
        else if (o.mode == "rev")
            serve_rev(f);
        else if (o.mode == "http")
            serve_http(f, o);
        else
            serve_default(f, o);
    });
    say("totals: sent %llu received %llu",
        static_cast<unsigned long long>(f.sent_before + f.out.offset()),
        static_cast<unsigned long long>(f.received_before + f.in.count()));
    return status;
}

Fd listen_on(const Options& o) {
    const Address a = address(o.listen, o.port);
    Fd fd = new_socket(a.family);
    const int on = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) fail("setsockopt");
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a.storage), a.len) != 0) fail("bind");
    if (::listen(fd.get(), 128) != 0) fail("listen");
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0)
        fail("getsockname");
    const std::uint16_t port =
        ntohs(a.family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                  : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    say("listening %u", port);
    if (!o.port_file.empty()) {
        // Written whole and renamed, so a script polling for the file never reads half of it.
        const std::string tmp = o.port_file + ".tmp";
        std::FILE* file = std::fopen(tmp.c_str(), "w");
        if (file == nullptr) fail("fopen(" + tmp + ")");
        std::fprintf(file, "%u\n", port);
        if (std::fclose(file) != 0) fail("fclose(" + tmp + ")");
        if (std::rename(tmp.c_str(), o.port_file.c_str()) != 0) fail("rename(" + o.port_file + ")");
    }
    return fd;
}

Fd accept_one(int listener, const Options& o) {
    // epoll-et takes its nonblocking socket from accept4, the other modes set it with fcntl.
    const int fd = o.mode == "epoll-et"
                       ? ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)
                       : ::accept(listener, nullptr, nullptr);
    if (fd < 0) fail("accept");
    say("accepted");
    return Fd(fd);
}

int run_server(const Options& o) {
    Fd listener;
    Fd dump;
    if (int status = reported([&] {
            listener = listen_on(o);
            if (!o.dump.empty()) {
                dump = Fd(::open(o.dump.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
                if (dump.get() < 0) fail("open(" + o.dump + ")");
            }
        });
        status != 0)
        return status;
    int worst = 0;
    std::mutex worst_mutex;
    std::vector<std::thread> threads;
    for (int i = 0; i < o.connections; ++i) {
        Fd fd;
        if (int status = reported([&] { fd = accept_one(listener.get(), o); }); status != 0)
            return status;
        // many: every connection at once, each in its own thread; the rest one after another.
        auto serve = [&o, &worst, &worst_mutex, dump_fd = dump.get()](Fd conn) {
            const int status = serve_one(std::move(conn), o, dump_fd);
            std::lock_guard lock(worst_mutex);
            worst = std::max(worst, status);
        };
        if (o.mode == "many")
            threads.emplace_back(serve, std::move(fd));
        else
            serve(std::move(fd));
    }
    for (auto& t : threads)
        t.join();
    return worst;
}

// --- client --------------------------------------------------------------------------------------

// Sets up the default protocol: the client's payload out, the server's digest and payload back.
void default_flow(Flow& f, const Options& o, std::uint64_t seed, std::uint64_t size) {
    f.out = Outgoing({}, Payload(seed, size, o.marker));
    f.in.expect(32, Payload(o.seed + 1, o.reply_size));
}

// The reply is complete and its head is the digest of exactly what this side sent.
void check_reply(const Flow& f) {
    say_received("received", f.in);
    f.in.check_complete();
    if (f.in.head() != f.out.digest())
        mismatch("the server's digest of our bytes differs from ours");
    say("verified");
}

void send_payload(Flow& f, const Options& o) {
    const int fd = f.fd.get();
    if (o.mode == "bytewise") {
        auto all = f.out.pending(static_cast<std::size_t>(o.size));
        const ssize_t n = retry([&] { return ::write(fd, all.data(), all.size()); });
        if (n < 0) fail("write");
        f.out.advance(static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) != all.size())
            mismatch("one blocking write of " + std::to_string(all.size()) + " bytes took only " +
                     std::to_string(n));
    } else if (o.mode == "iov") {
        write_all_iov(fd, f.out);
    } else {
        write_all(fd, f.out);
    }
    shutdown_write(fd);
    say_sent("sent", f.out);
}

void read_reply(Flow& f, const Options& o) {
    const int fd = f.fd.get();
    if (o.mode == "iov") {
        read_to_eof_iov(fd, f.in);
    } else if (o.mode == "waitall") {
        const std::size_t total = 32 + static_cast<std::size_t>(o.reply_size);
        Bytes buf(total);
        const ssize_t n = retry([&] { return ::recv(fd, buf.data(), total, MSG_WAITALL); });
        if (n < 0) fail("recv(MSG_WAITALL)");
        f.in.take(std::span(buf).first(static_cast<std::size_t>(n)));
        if (static_cast<std::size_t>(n) != total)
            mismatch("MSG_WAITALL for " + std::to_string(total) + " bytes returned " +
                     std::to_string(n));
        read_to_eof(fd, f.in);
    } else {
        read_to_eof(fd, f.in);
    }
}

void client_default(Flow& f, const Options& o) {
    default_flow(f, o, o.seed, o.size);
    f.fd = connect_blocking(peer_address(o.connect));
    if (o.peer) say_peer(f.fd.get());
    if (o.mode == "banner") {
        // The server speaks first; nothing is written until its banner is in.
        Incoming banner;
        banner.expect(0, Payload(o.seed + 2, o.banner_size));
        Bytes buf(4096);
        while (banner.count() < o.banner_size) {
            const std::size_t want = static_cast<std::size_t>(
                std::min<std::uint64_t>(buf.size(), o.banner_size - banner.count()));
            const ssize_t n = retry([&] { return ::read(f.fd.get(), buf.data(), want); });
            if (n < 0) fail("read");
            if (n == 0) mismatch("EOF inside the banner");
            banner.take(std::span(buf).first(static_cast<std::size_t>(n)));
        }
        say_received("received-banner", banner);
        f.received_before = banner.count();
    }
    send_payload(f, o);
    if (o.mode == "halfclose") check_write_after_shutdown(f.fd.get());
    read_reply(f, o);
    if (o.mode == "halfclose") {
        say("eof");
        check_eof_again(f.fd.get());
    }
    check_reply(f);
    f.fd.close();
}

// A reader thread blocks in read() before anything was sent; the main thread then writes the
// payload on the same socket while the server echoes it back.
void client_threads(Flow& f, const Options& o) {
    f.out = Outgoing({}, Payload(o.seed, o.size, o.marker));
    f.in.expect(0, Payload(o.seed, o.size, o.marker));
    f.fd = connect_blocking(peer_address(o.connect));
    std::atomic<bool> returned = false;
    std::optional<SysError> reader_error;
    std::optional<Mismatch> reader_mismatch;
    std::thread reader([&] {
        try {
            read_to_eof(f.fd.get(), f.in);
        } catch (const SysError& e) {
            reader_error = e;
        } catch (const Mismatch& e) {
            reader_mismatch = e;
        }
        returned = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const bool blocked = !returned;
    if (blocked) say("reader blocked in read");
    try {
        write_all(f.fd.get(), f.out);
        shutdown_write(f.fd.get());
    } catch (...) {
        // The reader ends when the connection does; it must not outlive this frame.
        ::shutdown(f.fd.get(), SHUT_RDWR);
        reader.join();
        throw;
    }
    say_sent("sent", f.out);
    reader.join();
    if (reader_error) throw *reader_error;
    if (reader_mismatch) throw *reader_mismatch;
    if (!blocked) mismatch("read() returned before anything was sent");
    say_received("received", f.in);
    f.in.check_complete();
    say("verified");
    f.fd.close();
}

void client_rev(Flow& f, const Options& o) {
    f.fd = connect_blocking(peer_address(o.connect));
    LineReader replies;
    for (int i = 0; i < o.lines; ++i) {
        const std::string line = rev_line(o, i);
        f.out.queue(line_bytes(line));
        write_all(f.fd.get(), f.out);
        auto reply = replies.next(f.fd.get(), f.in);
        if (!reply) mismatch("EOF instead of the reply to line " + std::to_string(i));
        if (!std::equal(reply->rbegin(), reply->rend(), line.begin(), line.end()))
            mismatch("line " + std::to_string(i) + " did not come back reversed");
    }
    f.out.queue(line_bytes("CLOSE"));
    write_all(f.fd.get(), f.out);
    if (auto extra = replies.next(f.fd.get(), f.in)) mismatch("a line after CLOSE: " + *extra);
    say_sent("sent", f.out);
    say_received("received", f.in);
    say("rev %d lines verified", o.lines);
    f.fd.close();
}

// Opens a nonblocking connection: EINPROGRESS is normal and reported, completion comes later.
void connect_nonblocking(Flow& f, const Address& to, bool with_ioctl) {
    f.fd = new_socket(to.family);
    set_nonblocking(f.fd.get(), with_ioctl);
    if (::connect(f.fd.get(), reinterpret_cast<const sockaddr*>(&to.storage), to.len) == 0) {
        say("connected");
    } else if (errno == EINPROGRESS) {
        say("connect: in progress (EINPROGRESS)");
        f.connecting = true;
    } else {
        fail("connect");
    }
    f.sending = true;
    f.shutdown_after = true;
    f.on_sent = [](Flow& g) { say_sent("sent", g.out); };
}

void client_event(Flow& f, const Options& o) {
    default_flow(f, o, o.seed, o.size);
    connect_nonblocking(f, peer_address(o.connect), o.mode == "epoll-et");
    drive({&f}, wait_kind(o.mode));
    check_reply(f);
}

// --connections at once over one epoll set, each with its own seed and size.
int client_many(const Options& o) {
    std::vector<std::unique_ptr<Flow>> flows;
    const int status = reported([&] {
        const Address to = peer_address(o.connect);
        for (int i = 0; i < o.connections; ++i) {
            auto& f = *flows.emplace_back(std::make_unique<Flow>());
            const auto n = static_cast<std::uint64_t>(i);
            default_flow(f, o, o.seed + 1000 + n, o.size + 997 * n);
            connect_nonblocking(f, to, false);
        }
        std::vector<Flow*> all;
        for (auto& f : flows)
            all.push_back(f.get());
        drive(all, Wait::epoll_lt);
        for (auto& f : flows)
            check_reply(*f);
        say("verified %d connections", o.connections);
    });
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    for (auto& f : flows) {
        sent += f->out.offset();
        received += f->in.count();
    }
    say("totals: sent %llu received %llu", static_cast<unsigned long long>(sent),
        static_cast<unsigned long long>(received));
    return status;
}

int run_client(const Options& o) {
    if (o.connect.empty()) usage();
    if (o.mode == "many") return client_many(o);
    if (o.mode == "http") usage();  // the client side of http is curl
    Flow f;
    const int status = reported([&] {
        if (event_mode(o.mode))
            client_event(f, o);
        else if (o.mode == "threads")
            client_threads(f, o);
        else if (o.mode == "rev")
            client_rev(f, o);
        else
            client_default(f, o);
    });
    say("totals: sent %llu received %llu",
        static_cast<unsigned long long>(f.sent_before + f.out.offset()),
        static_cast<unsigned long long>(f.received_before + f.in.count()));
    return status;
}

int write_payload(const Options& o) {
    Outgoing out({}, Payload(o.seed, o.size, o.marker));
    return reported([&] { write_all(STDOUT_FILENO, out); });
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    // A write to a connection the peer reset must be an error line, not a silent death.
    std::signal(SIGPIPE, SIG_IGN);
    if (o.clear_env && clearenv() != 0) fail("clearenv");
    if (o.role == "server" || o.role == "client") {
        const int status = o.role == "server" ? run_server(o) : run_client(o);
        if (event_mode(o.mode)) say("spurious reads %d", g_spurious_reads.load());
        return status;
    }
    if (o.role == "payload") return write_payload(o);
    usage();
}
