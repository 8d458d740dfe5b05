// lifetime_probe: a plain TCP program for the socket-lifetime scenarios
// (tests/integration/session/55-lifetime.sh): one connection named by several fds (dup, dup2,
// dup3, F_DUPFD_CLOEXEC), shared across fork, handed to an exec'd or posix_spawn'd program, or
// taken away from one without the shim; sendfile, splice, close_range, closefrom and syscall() on
// it; stdio over fdopen, recvmmsg/sendmmsg and the fortified read family moving its bytes.
// Built twice: lifetime_probe_fortify is the same source with -O2 -D_FORTIFY_SOURCE=2.
//
// It knows nothing about sealing (POSIX sockets only), so every scenario runs between two plain
// processes too. Machine-checkable lines on stdout:
//
//   sent SIZE SHA256 / received SIZE SHA256    everything written / read on one connection
//   sent WRITER SIZE SHA256                    forkwrite: what the parent (0) or child (1) wrote
//   writer WRITER SIZE SHA256                  demux: what arrived from that writer
//   eof                                        a read returned 0 where the end was expected
//   error: CALL: STRERROR (errno NAME)         a call failed (exit 1)
//   error: verify: WHAT                        bytes or behaviour not as expected (exit 2)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using Bytes = std::vector<std::uint8_t>;

// --- output and failures -------------------------------------------------------------------------

// Where lines go: stdout, or a copy of it once the connection has taken fds 0 and 1.
int g_out = STDOUT_FILENO;

// One whole line, written at once: forked children share stdout with their parent.
void say(const char* format, ...) __attribute__((format(printf, 1, 2)));
void say(const char* format, ...) {
    char line[512];
    va_list args;
    va_start(args, format);
    const int n = std::vsnprintf(line, sizeof line - 1, format, args);
    va_end(args);
    const std::size_t len = std::min(static_cast<std::size_t>(std::max(n, 0)), sizeof line - 2);
    line[len] = '\n';
    (void)!::write(g_out, line, len + 1);
}

struct SysError {
    std::string call;
    int err;
};
struct Mismatch {
    std::string what;
};
[[noreturn]] void fail(const std::string& call, int err = errno) {
    throw SysError{call, err};
}
[[noreturn]] void mismatch(const std::string& what) {
    throw Mismatch{what};
}

const char* errno_name(int err) {
    const char* name = strerrorname_np(err);
    return name != nullptr ? name : "?";
}

// Runs body; a failure becomes its error line. Returns the exit status (0, 1 or 2).
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

// --- options -------------------------------------------------------------------------------------

// `--name value` pairs, then an optional `-- PROGRAM ARGS...` (the exec modes' command).
struct Options {
    std::string role;
    std::map<std::string, std::string> values;
    std::vector<std::string> command;

    std::string text(const std::string& name, const std::string& fallback = "") const {
        auto it = values.find(name);
        return it == values.end() ? fallback : it->second;
    }
    std::uint64_t number(const std::string& name, std::uint64_t fallback) const {
        auto it = values.find(name);
        if (it == values.end()) return fallback;
        return std::strtoull(it->second.c_str(), nullptr, 0);
    }
    bool flag(const std::string& name) const { return values.count(name) != 0; }
};

[[noreturn]] void usage() {
    std::fputs(
        "usage: lifetime_probe server --mode M --port-file F [--listen ADDR] [--connections N]\n"
        "                             [--seed S] [--size N] [--dup METHOD] [--close-first]\n"
        "                             [--alternate] [--turns T] [--out FILE] [--io IO]\n"
        "                             [--spawn posix_spawn|posix_spawnp] [--clean-env]\n"
        "                             [--file-actions] [-- COMMAND...]\n"
        "       lifetime_probe client --mode M --connect ADDR:PORT [--size N] [--seed S]\n"
        "                             [--dup METHOD] [--close-first] [--connections N] [--io IO]\n"
        "                             [--marker TEXT] [--file F] [--offset ptr|ptr64|pos]\n"
        "                             [--plain ADDR:PORT] [--count N] [--how "
        "close_range|closefrom]\n"
        "       lifetime_probe demux --file F --seed S --size N [--alternate --turns T]\n"
        "       lifetime_probe payload --seed S --size N [--marker TEXT]\n"
        "server modes: exchange, fork-serve (PostgreSQL), exec-child (OpenSSH), forkwrite,\n"
        "  exec-noshim [--clean-env], spawn, sink, splice-sink, echo\n"
        "client modes: exchange, echo, demux, exec-peer, sendfile, splice, closerange, syscall\n"
        "METHOD: none, dup, dup2, dup3, fcntl\n"
        "IO (exchange): plain, stdio, mmsg, syscall-mmsg, chk\n",
        stderr);
    std::exit(64);
}

Options parse(int argc, char** argv) {
    if (argc < 2) usage();
    Options o;
    o.role = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--") {
            o.command.assign(argv + i + 1, argv + argc);
            break;
        }
        if (a.rfind("--", 0) != 0) usage();
        const bool has_value = i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0;
        o.values[a.substr(2)] = has_value ? argv[++i] : "";
    }
    return o;
}

// --- payload and digests -------------------------------------------------------------------------

// Deterministic bytes from a seed (splitmix64), with `marker` at every multiple of 512 so a
// capture of the wire can be searched for plaintext.
class Payload {
  public:
    explicit Payload(std::uint64_t seed, std::string marker = {})
        : seed_(seed), marker_(std::move(marker)) {}
    std::uint8_t at(std::uint64_t p) const {
        if (p % 512 < marker_.size()) return static_cast<std::uint8_t>(marker_[p % 512]);
        std::uint64_t x = seed_ * 0x100000001b3ULL + p / 8 + 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return static_cast<std::uint8_t>((x ^ (x >> 31)) >> (8 * (p % 8)));
    }

  private:
    std::uint64_t seed_;
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
    std::string hex() const {
        std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> copy(EVP_MD_CTX_new(),
                                                                     EVP_MD_CTX_free);
        std::array<std::uint8_t, 32> out{};
        unsigned int len = 0;
        if (!copy || EVP_MD_CTX_copy_ex(copy.get(), ctx_.get()) != 1 ||
            EVP_DigestFinal_ex(copy.get(), out.data(), &len) != 1)
            std::abort();
        std::string s;
        for (std::uint8_t b : out) {
            static constexpr char kDigits[] = "0123456789abcdef";
            s += kDigits[b >> 4];
            s += kDigits[b & 15];
        }
        return s;
    }

  private:
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

// A running count and digest of one direction.
struct Tally {
    std::uint64_t count = 0;
    Sha256 sha;
    void take(std::span<const std::uint8_t> data) {
        sha.update(data);
        count += data.size();
    }
    void report(const char* what) const {
        say("%s %llu %s", what, static_cast<unsigned long long>(count), sha.hex().c_str());
    }
};

// Write and read sizes cycle through these, so records are cut at every kind of boundary.
constexpr std::array<std::size_t, 8> kSizes = {1, 7, 1000, 16383, 16384, 16385, 65536, 100003};

// --- sockets -------------------------------------------------------------------------------------

using Writer = std::function<ssize_t(int, const void*, std::size_t)>;
using Reader = std::function<ssize_t(int, void*, std::size_t)>;

ssize_t plain_write(int fd, const void* buf, std::size_t n) {
    return ::write(fd, buf, n);
}
ssize_t plain_read(int fd, void* buf, std::size_t n) {
    return ::read(fd, buf, n);
}

sockaddr_in address(const std::string& host_port) {
    const auto colon = host_port.rfind(':');
    if (colon == std::string::npos) usage();
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoul(host_port.substr(colon + 1))));
    if (inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &a.sin_addr) != 1) usage();
    return a;
}

int connect_to(const std::string& host_port) {
    const sockaddr_in a = address(host_port);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) fail("connect");
    return fd;
}

int listen_on(const Options& o) {
    const sockaddr_in a = address(o.text("listen", "127.0.0.1") + ":0");
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) fail("bind");
    if (::listen(fd, 64) != 0) fail("listen");
    sockaddr_in bound{};
    socklen_t len = sizeof bound;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) fail("getsockname");
    // Written whole and renamed, so the script polling for the file never reads half of it.
    const std::string file = o.text("port-file");
    const std::string tmp = file + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) fail("fopen(" + tmp + ")");
    std::fprintf(f, "%u\n", ntohs(bound.sin_port));
    if (std::fclose(f) != 0 || std::rename(tmp.c_str(), file.c_str()) != 0) fail("port file");
    return fd;
}

int accept_one(int listener) {
    int fd = -1;
    do {
        fd = ::accept(listener, nullptr, nullptr);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) fail("accept");
    return fd;
}

void close_fd(int fd, const char* what = "close") {
    if (::close(fd) != 0) fail(what);
}

// Sends `size` bytes of the payload; returns what was sent.
Tally send_payload(int fd, const Payload& p, std::uint64_t size,
                   const Writer& write = plain_write) {
    Tally t;
    Bytes buf(*std::max_element(kSizes.begin(), kSizes.end()));
    for (std::size_t turn = 0; t.count < size; ++turn) {
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(kSizes[turn % kSizes.size()], size - t.count));
        for (std::size_t i = 0; i < n; ++i)
            buf[i] = p.at(t.count + i);
        std::size_t done = 0;
        while (done < n) {
            const ssize_t w = write(fd, buf.data() + done, n - done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) fail("write");
            done += static_cast<std::size_t>(w);
        }
        t.take(std::span(buf).first(n));
    }
    return t;
}

// Reads `size` bytes (or to EOF when size is nullopt), each checked against the payload.
Tally receive_payload(int fd, const Payload& p, std::optional<std::uint64_t> size,
                      const Reader& read = plain_read) {
    Tally t;
    Bytes buf(*std::max_element(kSizes.begin(), kSizes.end()));
    for (std::size_t turn = 0; !size || t.count < *size; ++turn) {
        std::size_t want = kSizes[turn % kSizes.size()];
        if (size) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, *size - t.count));
        const ssize_t n = read(fd, buf.data(), want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("read");
        if (n == 0) {
            if (size)
                mismatch("EOF after " + std::to_string(t.count) + " of " + std::to_string(*size) +
                         " bytes");
            break;
        }
        for (ssize_t i = 0; i < n; ++i)
            if (buf[static_cast<std::size_t>(i)] != p.at(t.count + static_cast<std::uint64_t>(i)))
                mismatch("byte " + std::to_string(t.count + static_cast<std::uint64_t>(i)) +
                         " differs from the expected");
        t.take(std::span(buf).first(static_cast<std::size_t>(n)));
    }
    return t;
}

// The connection's end: the next read returns 0 (not an error, not more data).
void expect_eof(int fd, const Reader& read = plain_read) {
    std::uint8_t byte = 0;
    ssize_t n = 0;
    do {
        n = read(fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) fail("read (expecting EOF)");
    if (n > 0) mismatch("data where EOF was expected");
    say("eof");
}

// Runs `body` on a thread while the caller goes on; join() rethrows what it threw.
class Background {
  public:
    explicit Background(std::function<void()> body)
        : thread_([this, body = std::move(body)] {
              try {
                  body();
              } catch (const SysError& e) {
                  sys_ = e;
              } catch (const Mismatch& e) {
                  mismatch_ = e;
              }
          }) {}
    ~Background() {
        if (thread_.joinable()) thread_.join();
    }
    void join() {
        thread_.join();
        if (sys_) throw *sys_;
        if (mismatch_) throw *mismatch_;
    }

  private:
    std::optional<SysError> sys_;
    std::optional<Mismatch> mismatch_;
    std::thread thread_;
};

// --- ways to move the bytes ----------------------------------------------------------------------

// How one side of an exchange moves its bytes (`--io`):
//   plain         read and write
//   stdio         fdopen: fwrite, fprintf and fflush on one stream, fread and fgets on a second
//                 stream over a dup of the fd; fclose of both ends the connection
//   mmsg          sendmmsg and recvmmsg, several messages per call, several iovecs per message
//   syscall-mmsg  the same through syscall(SYS_sendmmsg) and syscall(SYS_recvmmsg)
//   chk           read, recv and recvfrom into arrays of known size: built with
//                 -D_FORTIFY_SOURCE=2 (lifetime_probe_fortify), they are __read_chk,
//                 __recv_chk and __recvfrom_chk
struct Io {
    Writer write = plain_write;
    Reader read = plain_read;
    std::function<void()> flush = [] {};
    std::function<void()> close;
    std::function<void()> report = [] {};  // after the exchange: what the calls did
};

// [buf, buf + n) cut into up to 3 messages of up to 3 iovecs each, unevenly (pieces grow), so
// message and iovec edges fall everywhere relative to records. No message is empty: a zero
// length would read as EOF.
class Messages {
  public:
    Messages(std::uint8_t* buf, std::size_t n) {
        std::size_t at = 0;
        for (std::size_t m = 0; m < 3; ++m) {
            iovec* iov = iov_[count_].data();
            std::size_t pieces = 0;
            std::size_t len = 0;
            for (std::size_t k = 3 * m; k < 3 * m + 3; ++k) {
                const std::size_t end = n * (k + 1) * (k + 2) / 90;  // the last piece ends at n
                if (end == at) continue;
                iov[pieces++] = {buf + at, end - at};
                len += end - at;
                at = end;
            }
            if (pieces == 0) continue;
            vec_[count_] = {};
            vec_[count_].msg_hdr.msg_iov = iov;
            vec_[count_].msg_hdr.msg_iovlen = pieces;
            start_[count_] = at - len;
            len_[count_++] = len;
        }
    }
    mmsghdr* vec() { return vec_.data(); }
    unsigned count() const { return count_; }
    std::size_t start(unsigned i) const { return start_[i]; }
    std::size_t len(unsigned i) const { return len_[i]; }

  private:
    std::array<mmsghdr, 3> vec_{};
    std::array<std::array<iovec, 3>, 3> iov_{};
    std::array<std::size_t, 3> start_{};
    std::array<std::size_t, 3> len_{};
    unsigned count_ = 0;
};

using SendMmsg = std::function<int(int, mmsghdr*, unsigned, int)>;
using RecvMmsg = std::function<int(int, mmsghdr*, unsigned, int)>;

// Calls and the messages they moved, per direction: several messages per call must really
// happen, or the scenario would only test one-message calls.
struct MmsgCounts {
    std::atomic<std::uint64_t> calls[2] = {0, 0};
    std::atomic<std::uint64_t> messages[2] = {0, 0};
    void take(int way, unsigned n) {
        ++calls[way];
        messages[way] += n;
    }
};

// One sendmmsg: the bytes of the messages it sent. On a stream, only the last of them may be
// short.
ssize_t write_mmsg(const SendMmsg& call, int fd, const void* buf, std::size_t n,
                   MmsgCounts& counts) {
    Messages m(static_cast<std::uint8_t*>(const_cast<void*>(buf)), n);
    const int sent = call(fd, m.vec(), m.count(), MSG_NOSIGNAL);
    if (sent <= 0) return sent < 0 ? -1 : 0;
    counts.take(0, static_cast<unsigned>(sent));
    ssize_t total = 0;
    for (unsigned i = 0; i < static_cast<unsigned>(sent); ++i) {
        if (m.vec()[i].msg_len < m.len(i) && i + 1 < static_cast<unsigned>(sent))
            mismatch("sendmmsg: message " + std::to_string(i) + " short, but a later one sent");
        total += m.vec()[i].msg_len;
    }
    return total;
}

// One recvmmsg (MSG_WAITFORONE every other call: the later messages never wait): the messages'
// bytes moved together, in order; a message that got nothing is the end.
ssize_t read_mmsg(const RecvMmsg& call, int fd, void* buf, std::size_t n, int flags,
                  MmsgCounts& counts) {
    auto* bytes = static_cast<std::uint8_t*>(buf);
    Messages m(bytes, n);
    const int got = call(fd, m.vec(), m.count(), flags);
    if (got < 0) return -1;
    std::size_t at = 0;
    unsigned filled = 0;
    for (unsigned i = 0; i < static_cast<unsigned>(got); ++i) {
        const std::size_t len = m.vec()[i].msg_len;
        if (len == 0) break;
        if (len > m.len(i)) mismatch("recvmmsg: msg_len larger than the message");
        std::memmove(bytes + at, bytes + m.start(i), len);
        at += len;
        ++filled;
    }
    counts.take(1, filled);
    return static_cast<ssize_t>(at);
}

Io mmsg_io(SendMmsg send, RecvMmsg recv) {
    Io io;
    auto counts = std::make_shared<MmsgCounts>();
    io.write = [send, counts](int fd, const void* buf, std::size_t n) {
        return write_mmsg(send, fd, buf, n, *counts);
    };
    io.read = [recv, counts, turn = 0U](int fd, void* buf, std::size_t n) mutable {
        return read_mmsg(recv, fd, buf, n, turn++ % 2 == 0 ? MSG_WAITFORONE : 0, *counts);
    };
    io.report = [counts] {
        const char* names[2] = {"sendmmsg", "recvmmsg"};
        for (int way = 0; way < 2; ++way)
            say("%s calls %llu messages %llu", names[way],
                static_cast<unsigned long long>(counts->calls[way].load()),
                static_cast<unsigned long long>(counts->messages[way].load()));
    };
    return io;
}

// stdio writes: fwrite, fprintf("%c") byte by byte (binary bytes, NULs included), fwrite then
// fflush, in turn.
ssize_t write_stdio(std::FILE* out, unsigned turn, const void* buf, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(buf);
    if (turn % 3 == 1) {
        for (std::size_t i = 0; i < n; ++i)
            if (std::fprintf(out, "%c", b[i]) != 1) return -1;
        return static_cast<ssize_t>(n);
    }
    if (std::fwrite(b, 1, n, out) != n) return -1;
    if (turn % 3 == 2 && std::fflush(out) != 0) return -1;
    return static_cast<ssize_t>(n);
}

// stdio reads: fread, or fgets up to the first newline the expected bytes hold (fgets cannot say
// how much it read when NULs are among the bytes, so the count is predicted and checked: fgets
// must have written its terminator exactly there).
ssize_t read_stdio(std::FILE* in, unsigned turn, const Payload& expected, std::uint64_t at,
                   void* buf, std::size_t n, Bytes& scratch) {
    std::size_t len = 0;
    if (turn % 2 == 0) {
        len = std::fread(buf, 1, n, in);
    } else {
        while (len < n && expected.at(at + len++) != '\n') {
        }
        scratch.assign(len + 1, 1);
        if (std::fgets(reinterpret_cast<char*>(scratch.data()), static_cast<int>(len + 1), in) ==
            nullptr)
            len = 0;
        else if (scratch[len] != 0)
            mismatch("fgets returned fewer bytes than the line held");
        std::memcpy(buf, scratch.data(), len);
    }
    if (len == 0 && std::ferror(in)) return -1;
    return static_cast<ssize_t>(len);
}

Io stdio_io(int fd, const Payload& in) {
    std::FILE* out = ::fdopen(fd, "w");
    if (out == nullptr) fail("fdopen(fd, \"w\")");
    const int second = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (second < 0) fail("fcntl(F_DUPFD_CLOEXEC)");
    std::FILE* inf = ::fdopen(second, "r");
    if (inf == nullptr) fail("fdopen(dup, \"r\")");
    Io io;
    io.write = [out, turn = 0U](int, const void* buf, std::size_t n) mutable {
        return write_stdio(out, turn++, buf, n);
    };
    io.read = [inf, in, turn = 0U, at = std::uint64_t{0}, scratch = Bytes()](
                  int, void* buf, std::size_t n) mutable {
        const ssize_t r = read_stdio(inf, turn++, in, at, buf, n, scratch);
        if (r > 0) at += static_cast<std::uint64_t>(r);
        return r;
    };
    io.flush = [out] {
        if (std::fflush(out) != 0) fail("fflush");
    };
    io.close = [out, inf] {
        if (std::fclose(out) != 0) fail("fclose(writing stream)");
        if (std::fclose(inf) != 0) fail("fclose(reading stream)");
    };
    return io;
}

// The fortified read family: the array's size is known at compile time and the length is not
// (no clamp here, or the compiler would prove the call safe and drop the check), so with
// _FORTIFY_SOURCE=2 gcc makes each call its __*_chk variant. receive_payload asks for at most
// the largest of kSizes.
//
// clang (the sanitizer tree) never does with glibc 2.36: it evaluates __builtin_object_size
// inside glibc's wrappers before inlining them, where the buffer is a parameter of unknown size.
// There the fortified build calls the variants itself, exactly as a gcc-fortified program does.
#if defined(__clang__) && defined(__USE_FORTIFY_LEVEL) && __USE_FORTIFY_LEVEL > 0
#define LIFETIME_CHK(call, fd, buf, n, ...) \
    __##call##_chk(fd, buf, n, sizeof buf __VA_OPT__(, ) __VA_ARGS__)
#else
#define LIFETIME_CHK(call, fd, buf, n, ...) ::call(fd, buf, n __VA_OPT__(, ) __VA_ARGS__)
#endif
ssize_t read_chk(int fd, void* out, std::size_t n) {
    static thread_local std::uint8_t buf[1 << 17];
    static_assert(*std::max_element(kSizes.begin(), kSizes.end()) <= sizeof buf);
    static thread_local unsigned turn = 0;
    ssize_t r = -1;
    if (turn % 3 == 0) {
        r = LIFETIME_CHK(read, fd, buf, n);
    } else if (turn % 3 == 1) {
        r = LIFETIME_CHK(recv, fd, buf, n, 0);
    } else {
        sockaddr_storage from{};
        socklen_t len = sizeof from;
        r = LIFETIME_CHK(recvfrom, fd, buf, n, 0, reinterpret_cast<sockaddr*>(&from), &len);
    }
    ++turn;
    if (r > 0) std::memcpy(out, buf, static_cast<std::size_t>(r));
    return r;
}

Io make_io(int fd, const std::string& how, const Payload& in) {
    Io io;
    if (how == "stdio") return stdio_io(fd, in);
    if (how == "mmsg") {
        io = mmsg_io(::sendmmsg, [](int f, mmsghdr* v, unsigned n, int flags) {
            return ::recvmmsg(f, v, n, flags, nullptr);
        });
    } else if (how == "syscall-mmsg") {
        io = mmsg_io(
            [](int f, mmsghdr* v, unsigned n, int flags) {
                return static_cast<int>(::syscall(SYS_sendmmsg, f, v, n, flags));
            },
            [](int f, mmsghdr* v, unsigned n, int flags) {
                return static_cast<int>(::syscall(SYS_recvmmsg, f, v, n, flags, nullptr));
            });
    } else if (how == "chk") {
        io.read = read_chk;
    } else if (how != "plain") {
        usage();
    }
    io.close = [fd] { close_fd(fd); };
    return io;
}

// --- one connection under several names ----------------------------------------------------------

bool cloexec(int fd) {
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) fail("fcntl(F_GETFD)");
    return (flags & FD_CLOEXEC) != 0;
}

// A second name for fd by METHOD, then the original closed: the connection must live on.
int renamed(int fd, const std::string& method) {
    int to = -1;
    bool want_cloexec = false;
    if (method == "none") return fd;
    if (method == "dup") {
        to = ::dup(fd);
    } else if (method == "dup2") {
        to = ::dup2(fd, 40);
        if (to >= 0 && to != 40) mismatch("dup2 returned " + std::to_string(to));
    } else if (method == "dup3") {
        to = ::dup3(fd, 41, O_CLOEXEC);
        if (to >= 0 && to != 41) mismatch("dup3 returned " + std::to_string(to));
        want_cloexec = true;
    } else if (method == "fcntl") {
        to = ::fcntl(fd, F_DUPFD_CLOEXEC, 50);
        if (to >= 0 && to < 50) mismatch("F_DUPFD_CLOEXEC returned " + std::to_string(to));
        want_cloexec = true;
    } else {
        usage();
    }
    if (to < 0) fail(method);
    if (cloexec(to) != want_cloexec) mismatch(method + " set the wrong close-on-exec flag");
    close_fd(fd, "close(original)");
    say("%s %d -> %d, original closed", method.c_str(), fd, to);
    return to;
}

// Both directions at once (size bytes each way), then the end: this side closes first, or it
// reads the peer's EOF and closes after. The bytes move the way `--io` says (make_io).
void exchange(int fd, std::uint64_t out_seed, std::uint64_t in_seed, const Options& o) {
    const std::uint64_t size = o.number("size", 1 << 20);
    const std::string marker = o.text("marker");
    const Payload in(in_seed, marker);
    Io io = make_io(fd, o.text("io", "plain"), in);
    Tally sent;
    Background writer([&] {
        sent = send_payload(fd, Payload(out_seed, marker), size, io.write);
        io.flush();
    });
    const Tally received = receive_payload(fd, in, size, io.read);
    writer.join();
    sent.report("sent");
    received.report("received");
    if (!o.flag("close-first")) expect_eof(fd, io.read);
    io.close();
    io.report();
    say("closed");
}

// --- server modes --------------------------------------------------------------------------------

void wait_children(const std::vector<pid_t>& children) {
    for (pid_t pid : children) {
        int status = 0;
        if (::waitpid(pid, &status, 0) != pid) fail("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            mismatch("child " + std::to_string(pid) + " ended with status " +
                     std::to_string(status));
    }
    say("children %zu, each exited 0", children.size());
}

[[noreturn]] void child_exit(const std::function<void()>& body) {
    std::exit(reported(body));
}

std::vector<const char*> argv_of(const std::vector<std::string>& command) {
    if (command.empty()) usage();
    std::vector<const char*> argv;
    for (const auto& a : command)
        argv.push_back(a.c_str());
    argv.push_back(nullptr);
    return argv;
}

// The connection becomes the program's stdin and stdout; the original name is closed.
void onto_stdio(int conn) {
    g_out = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 100);
    if (g_out < 0) fail("fcntl(F_DUPFD_CLOEXEC, stdout)");
    if (::dup2(conn, STDIN_FILENO) != STDIN_FILENO) fail("dup2(conn, 0)");
    if (::dup2(conn, STDOUT_FILENO) != STDOUT_FILENO) fail("dup2(conn, 1)");
    close_fd(conn, "close(conn)");
}

// Test harness, sanitizer tree only: an uninstrumented program (cat, env) exec'd under the
// ASan-built shim needs the ASan runtime preloaded before the shim. The script names that list
// in LIFETIME_EXEC_PRELOAD; the release tree leaves it unset and the program's own LD_PRELOAD
// (the shim alone) is what the new image inherits. A plain run (no LD_PRELOAD) stays plain.
void exec_preload() {
    const char* preload = std::getenv("LIFETIME_EXEC_PRELOAD");
    if (preload == nullptr || std::getenv("LD_PRELOAD") == nullptr) return;  // a plain run
    if (::setenv("LD_PRELOAD", preload, 1) != 0 ||
        ::setenv("ASAN_OPTIONS", "detect_leaks=0:verify_asan_link_order=0", 1) != 0)
        fail("setenv");
}

// The environment for a new program: the program's own, without LD_PRELOAD when `clean`.
std::vector<char*> program_env(bool clean) {
    std::vector<char*> env;
    for (char** e = environ; *e != nullptr; ++e)
        if (!clean || std::strncmp(*e, "LD_PRELOAD=", 11) != 0) env.push_back(*e);
    env.push_back(nullptr);
    return env;
}

// OpenSSH: accept, fork; the child puts the connection on 0 and 1 and execs the command; the
// parent closes its copy and accepts the next.
void serve_exec_child(int listener, const Options& o) {
    std::vector<pid_t> children;
    const auto argv = argv_of(o.command);
    for (std::uint64_t i = 0; i < o.number("connections", 1); ++i) {
        const int conn = accept_one(listener);
        const pid_t pid = ::fork();
        if (pid < 0) fail("fork");
        if (pid == 0) {
            child_exit([&] {
                close_fd(listener, "close(listener)");
                onto_stdio(conn);
                exec_preload();
                ::execv(argv[0], const_cast<char* const*>(argv.data()));
                fail(std::string("execv ") + argv[0]);
            });
        }
        close_fd(conn, "close(parent's copy)");
        say("connection %llu: child %d", static_cast<unsigned long long>(i), pid);
        children.push_back(pid);
    }
    wait_children(children);
}

// PostgreSQL: accept, fork, the parent closes its copy at once; the child serves and exits.
void serve_fork(int listener, const Options& o) {
    std::vector<pid_t> children;
    const std::uint64_t seed = o.number("seed", 1);
    for (std::uint64_t i = 0; i < o.number("connections", 1); ++i) {
        const int conn = accept_one(listener);
        const pid_t pid = ::fork();
        if (pid < 0) fail("fork");
        if (pid == 0) {
            child_exit([&] {
                close_fd(listener, "close(listener)");
                exchange(conn, seed + 2 * i + 1, seed + 2 * i, o);
            });
        }
        close_fd(conn, "close(parent's copy)");
        children.push_back(pid);
    }
    wait_children(children);
}

// forkwrite: writer w's bytes carry w in their top bit, so the reader can tell the two streams
// apart however they interleave, and check each one complete and in order. Writer 0's bytes keep
// the marker (ASCII), so the wire check has plaintext to look for.
class Tagged {
  public:
    Tagged(std::uint64_t seed, const std::string& marker)
        : streams_{Payload(seed, marker), Payload(seed + 1)} {}
    std::uint8_t at(int w, std::uint64_t p) const {
        return static_cast<std::uint8_t>((streams_[static_cast<std::size_t>(w)].at(p) & 0x7f) |
                                         (w << 7));
    }

  private:
    std::array<Payload, 2> streams_;
};

void write_tagged(int fd, const Tagged& tags, int w, Tally& t, std::size_t n) {
    Bytes buf(n);
    for (std::size_t i = 0; i < n; ++i)
        buf[i] = tags.at(w, t.count + i);
    std::size_t done = 0;
    while (done < n) {
        const ssize_t r = ::write(fd, buf.data() + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail("write");
        done += static_cast<std::size_t>(r);
    }
    t.take(buf);
}

void pipe_token(int fd, bool send) {
    char c = 't';
    const ssize_t n = send ? ::write(fd, &c, 1) : ::read(fd, &c, 1);
    if (n == 0) mismatch("the other writer ended before its turn");
    if (n != 1) fail(send ? "write(turn pipe)" : "read(turn pipe)");
}

// One writer's part: alternating turns (the other writer's pipe says when), or free-running.
void forkwrite_part(int fd, int w, const Options& o, int turn_in, int turn_out) {
    const Tagged tags(o.number("seed", 1), o.text("marker"));
    Tally t;
    if (o.flag("alternate")) {
        for (std::uint64_t i = 0; i < o.number("turns", 64); ++i) {
            if (w == 1) pipe_token(turn_in, false);
            write_tagged(fd, tags, w, t, kSizes[i % kSizes.size()]);
            pipe_token(turn_out, true);
            if (w == 0) pipe_token(turn_in, false);
        }
    } else {
        const std::uint64_t size = o.number("size", 4 << 20);
        for (std::size_t turn = 0; t.count < size; ++turn)
            write_tagged(fd, tags, w, t,
                         static_cast<std::size_t>(std::min<std::uint64_t>(
                             kSizes[turn % kSizes.size()], size - t.count)));
    }
    say("sent %d %llu %s", w, static_cast<unsigned long long>(t.count), t.sha.hex().c_str());
    close_fd(fd);
}

// Both processes write on one connection after fork, then both close.
void serve_forkwrite(int listener, const Options& o) {
    const int conn = accept_one(listener);
    close_fd(listener, "close(listener)");
    std::uint8_t go = 0;  // the reader's go: the connection is up before the fork
    if (::read(conn, &go, 1) != 1) fail("read(go)");
    int to_child[2];
    int to_parent[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(to_parent, O_CLOEXEC) != 0) fail("pipe2");
    const pid_t pid = ::fork();
    if (pid < 0) fail("fork");
    // Each keeps only its own pipe ends, so a writer that dies ends the other's wait.
    if (pid == 0) {
        child_exit([&] {
            close_fd(to_child[1], "close(pipe)");
            close_fd(to_parent[0], "close(pipe)");
            forkwrite_part(conn, 1, o, to_child[0], to_parent[1]);
        });
    }
    close_fd(to_child[0], "close(pipe)");
    close_fd(to_parent[1], "close(pipe)");
    forkwrite_part(conn, 0, o, to_parent[0], to_child[1]);
    wait_children({pid});
}

// exec into a program without the shim: no fork, no other holder of the socket. The client's
// first bytes are peeked (not taken) first, so the connection is up when the exec comes.
void serve_exec_noshim(int listener, const Options& o) {
    const int conn = accept_one(listener);
    close_fd(listener, "close(listener)");
    std::uint8_t first = 0;
    if (::recv(conn, &first, 1, MSG_PEEK) != 1) fail("recv(MSG_PEEK)");
    onto_stdio(conn);
    exec_preload();
    const auto env = program_env(o.flag("clean-env"));
    const auto argv = argv_of(o.command);
    ::execve(argv[0], const_cast<char* const*>(argv.data()), env.data());
    fail(std::string("execve ") + argv[0]);
}

// posix_spawn (`--spawn posix_spawn|posix_spawnp`): accept, put the connection on 0 and 1 (not
// close-on-exec), spawn the command without file actions, so it inherits them, and close the
// parent's copies at once. With --clean-env the command's environment has no LD_PRELOAD (the
// connection must end, never reach it as a plain socket), and the connection is up before the
// spawn (a peek), as in exec-noshim; the children's exit status is then only reported.
// With --file-actions the connection stays on its own close-on-exec fd and the spawn's file
// actions dup2 it onto 0 and 1 in the child (glibc does that without our hooks).
pid_t spawn_one(int conn, const Options& o, const std::vector<const char*>& argv,
                const std::vector<char*>& env) {
    posix_spawn_file_actions_t actions;
    const bool with_actions = o.flag("file-actions");
    if (with_actions) {
        if (::fcntl(conn, F_SETFD, FD_CLOEXEC) != 0) fail("fcntl(F_SETFD)");
        if (posix_spawn_file_actions_init(&actions) != 0 ||
            posix_spawn_file_actions_adddup2(&actions, conn, STDIN_FILENO) != 0 ||
            posix_spawn_file_actions_adddup2(&actions, conn, STDOUT_FILENO) != 0)
            fail("posix_spawn_file_actions");
    } else {
        if (::dup2(conn, STDIN_FILENO) != STDIN_FILENO) fail("dup2(conn, 0)");
        if (::dup2(conn, STDOUT_FILENO) != STDOUT_FILENO) fail("dup2(conn, 1)");
        if (conn > STDOUT_FILENO) close_fd(conn, "close(conn)");
    }
    const std::string how = o.text("spawn", "posix_spawn");
    auto* const* args = const_cast<char* const*>(argv.data());
    pid_t pid = -1;
    const posix_spawn_file_actions_t* fa = with_actions ? &actions : nullptr;
    int err = 0;
    if (how == "posix_spawnp")
        err = ::posix_spawnp(&pid, argv[0], fa, nullptr, args, env.data());
    else if (how == "posix_spawn")
        err = ::posix_spawn(&pid, argv[0], fa, nullptr, args, env.data());
    else
        usage();
    if (with_actions) posix_spawn_file_actions_destroy(&actions);
    if (err != 0) fail(how + " " + argv[0], err);
    if (with_actions) {
        close_fd(conn, "close(parent's copy)");
    } else {
        close_fd(STDIN_FILENO, "close(parent's fd 0)");
        close_fd(STDOUT_FILENO, "close(parent's fd 1)");
    }
    return pid;
}

void serve_spawn(int listener, const Options& o) {
    g_out = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 100);
    if (g_out < 0) fail("fcntl(F_DUPFD_CLOEXEC, stdout)");
    exec_preload();
    const bool clean = o.flag("clean-env");
    const auto env = program_env(clean);
    const auto argv = argv_of(o.command);
    std::vector<pid_t> children;
    for (std::uint64_t i = 0; i < o.number("connections", 1); ++i) {
        const int conn = accept_one(listener);
        std::uint8_t first = 0;
        if (clean && ::recv(conn, &first, 1, MSG_PEEK) != 1) fail("recv(MSG_PEEK)");
        const pid_t pid = spawn_one(conn, o, argv, env);
        say("connection %llu: child %d", static_cast<unsigned long long>(i), pid);
        children.push_back(pid);
    }
    if (!clean) return wait_children(children);
    for (pid_t pid : children) {
        int status = 0;
        if (::waitpid(pid, &status, 0) != pid) fail("waitpid");
        say("child status %d", status);
    }
}

// sink: reads to EOF; echo: sends back what it reads. Each connection on its own thread.
void serve_stream(int conn, bool echo) {
    Tally in;
    Bytes buf(65536);
    for (;;) {
        const ssize_t n = ::read(conn, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("read");
        if (n == 0) break;
        const auto got = std::span(buf).first(static_cast<std::size_t>(n));
        in.take(got);
        for (std::size_t done = 0; echo && done < got.size();) {
            const ssize_t w = ::write(conn, got.data() + done, got.size() - done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) fail("write");
            done += static_cast<std::size_t>(w);
        }
    }
    in.report("received");
    say("eof");
    close_fd(conn);
}

void serve_splice(int conn, const Options& o) {
    const int out = ::open(o.text("out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int p[2];
    if (out < 0 || ::pipe2(p, O_CLOEXEC) != 0) fail("open/pipe2");
    const unsigned flags = SPLICE_F_MOVE | SPLICE_F_MORE;
    std::uint64_t total = 0;
    for (;;) {
        const ssize_t n = ::splice(conn, nullptr, p[1], nullptr, 65536, flags);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("splice(socket -> pipe)");
        if (n == 0) break;
        for (ssize_t moved = 0; moved < n;) {
            const ssize_t m =
                ::splice(p[0], nullptr, out, nullptr, static_cast<std::size_t>(n - moved), flags);
            if (m <= 0) fail("splice(pipe -> file)");
            moved += m;
        }
        total += static_cast<std::uint64_t>(n);
    }
    say("spliced %llu", static_cast<unsigned long long>(total));
    say("eof");
    close_fd(out);
    close_fd(conn);
}

void serve_threads(int listener, const Options& o) {
    std::vector<std::unique_ptr<Background>> threads;
    std::atomic<int> worst = 0;
    for (std::uint64_t i = 0; i < o.number("connections", 1); ++i) {
        const int conn = accept_one(listener);
        threads.push_back(std::make_unique<Background>([conn, &o, &worst] {
            const int status = reported([&] {
                if (o.text("mode") == "splice-sink")
                    serve_splice(conn, o);
                else
                    serve_stream(conn, o.text("mode") == "echo");
            });
            if (status != 0) worst = status;  // a failed connection fails the run
        }));
    }
    threads.clear();  // joins
    if (worst != 0) mismatch("a connection failed");
}

void serve_exchange(int listener, const Options& o) {
    const std::uint64_t seed = o.number("seed", 1);
    for (std::uint64_t i = 0; i < o.number("connections", 1); ++i) {
        const int conn = renamed(accept_one(listener), o.text("dup", "none"));
        exchange(conn, seed + 2 * i + 1, seed + 2 * i, o);
    }
}

int run_server(const Options& o) {
    return reported([&] {
        const int listener = listen_on(o);
        const std::string mode = o.text("mode");
        if (mode == "exchange")
            serve_exchange(listener, o);
        else if (mode == "fork-serve")
            serve_fork(listener, o);
        else if (mode == "exec-child")
            serve_exec_child(listener, o);
        else if (mode == "forkwrite")
            serve_forkwrite(listener, o);
        else if (mode == "exec-noshim")
            serve_exec_noshim(listener, o);
        else if (mode == "spawn")
            serve_spawn(listener, o);
        else if (mode == "sink" || mode == "echo" || mode == "splice-sink")
            serve_threads(listener, o);
        else
            usage();
    });
}

// --- client modes --------------------------------------------------------------------------------

void client_exchange(const Options& o) {
    const std::uint64_t seed = o.number("seed", 1);
    for (std::uint64_t i = 0; i < o.number("connections", 1); ++i) {
        const int fd = renamed(connect_to(o.text("connect")), o.text("dup", "none"));
        exchange(fd, seed + 2 * i, seed + 2 * i + 1, o);
    }
}

// Against an echo (cat): send, shut down the write side, read the echo to EOF.
void client_echo(const Options& o) {
    const std::uint64_t seed = o.number("seed", 1);
    const std::uint64_t size = o.number("size", 4 << 20);
    for (std::uint64_t i = 0; i < o.number("connections", 1); ++i) {
        const int fd = connect_to(o.text("connect"));
        const Payload p(seed + i, o.text("marker"));
        Tally sent;
        Background writer([&] {
            sent = send_payload(fd, p, size);
            if (::shutdown(fd, SHUT_WR) != 0) fail("shutdown");
        });
        const Tally received = receive_payload(fd, p, std::nullopt);
        writer.join();
        sent.report("sent");
        received.report("received");
        if (received.count != size)
            mismatch("the echo is " + std::to_string(received.count) + " bytes, not " +
                     std::to_string(size));
        close_fd(fd);
        say("verified");
    }
}

// Splits a forkwrite stream by writer and checks each (and, alternating, the turn order).
class Demux {
  public:
    explicit Demux(const Options& o)
        : tags_(o.number("seed", 1), o.text("marker")),
          alternate_(o.flag("alternate")),
          turns_(o.number("turns", 64)),
          size_(o.number("size", 4 << 20)) {}

    void take(std::span<const std::uint8_t> data) {
        all_.take(data);
        for (std::uint8_t b : data) {
            const int w = b >> 7;
            Tally& t = writer_[w];
            if (alternate_) check_turn(w);
            if (b != tags_.at(w, t.count))
                mismatch("writer " + std::to_string(w) + ": byte " + std::to_string(t.count) +
                         " differs (at stream offset " + std::to_string(all_.count) +
                         " or before)");
            t.take(std::span(&b, 1));
        }
    }
    void finish() const {
        for (int w = 0; w < 2; ++w)
            say("writer %d %llu %s", w, static_cast<unsigned long long>(writer_[w].count),
                writer_[w].sha.hex().c_str());
        all_.report("received");
        std::uint64_t want = size_;
        if (alternate_) {
            want = 0;
            for (std::uint64_t i = 0; i < turns_; ++i)
                want += kSizes[i % kSizes.size()];
        }
        for (int w = 0; w < 2; ++w)
            if (writer_[w].count != want)
                mismatch("writer " + std::to_string(w) + " delivered " +
                         std::to_string(writer_[w].count) + " bytes, not " + std::to_string(want));
        say("verified");
    }

  private:
    // Turn i: writer 0 writes kSizes[i % 8] bytes, then writer 1 as many.
    void check_turn(int w) {
        if (left_ == 0) {
            turn_writer_ ^= 1;
            if (turn_writer_ == 0 && started_) ++turn_;
            started_ = true;
            left_ = kSizes[turn_ % kSizes.size()];
        }
        if (w != turn_writer_)
            mismatch("turn " + std::to_string(turn_) + ": writer " + std::to_string(w) +
                     " wrote in writer " + std::to_string(turn_writer_) + "'s turn");
        --left_;
    }

    Tagged tags_;
    bool alternate_;
    std::uint64_t turns_;
    std::uint64_t size_;
    Tally all_;
    std::array<Tally, 2> writer_;
    std::uint64_t turn_ = 0;
    int turn_writer_ = 1;  // the first byte starts turn 0 with writer 0
    bool started_ = false;
    std::uint64_t left_ = 0;
};

void demux_fd(int fd, const Options& o) {
    Demux d(o);
    Bytes buf(65536);
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("read");
        if (n == 0) break;
        d.take(std::span(buf).first(static_cast<std::size_t>(n)));
    }
    say("eof");
    d.finish();
}

void client_demux(const Options& o) {
    const int fd = connect_to(o.text("connect"));
    if (::write(fd, "g", 1) != 1) fail("write(go)");
    demux_fd(fd, o);
    close_fd(fd);
}

// exec-peer: sends (marker included), shuts down, reads until the connection ends, and says what
// it got and how it ended; the script judges.
void client_exec_peer(const Options& o) {
    const int fd = connect_to(o.text("connect"));
    const std::string marker = o.text("marker");
    std::string write_end = "ok";
    Background writer([&] {
        try {
            send_payload(fd, Payload(o.number("seed", 1), marker), o.number("size", 65536));
            if (::shutdown(fd, SHUT_WR) != 0) fail("shutdown");
        } catch (const SysError& e) {
            write_end = errno_name(e.err);
        }
    });
    Tally in;
    std::string got;
    Bytes buf(65536);
    std::string end = "eof";
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            end = std::string("error ") + errno_name(errno);
            break;
        }
        if (n == 0) break;
        in.take(std::span(buf).first(static_cast<std::size_t>(n)));
        got.append(buf.begin(), buf.begin() + n);
    }
    writer.join();
    in.report("received");
    say("end %s", end.c_str());
    say("write end %s", write_end.c_str());
    say("marker seen %s", !marker.empty() && got.find(marker) != std::string::npos ? "yes" : "no");
    close_fd(fd);
}

// sendfile(2)'s offset rules: with a pointer, *offset advances and the file position does not
// move; without, the file position advances.
void client_sendfile(const Options& o) {
    const int file = ::open(o.text("file").c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (file < 0 || ::fstat(file, &st) != 0) fail("open(file)");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const std::string how = o.text("offset", "pos");
    const off_t position = how == "pos" ? 0 : 12345;  // a pointer must leave it here
    if (::lseek(file, position, SEEK_SET) != position) fail("lseek");
    const int fd = connect_to(o.text("connect"));
    off_t offset = 0;
    off64_t offset64 = 0;
    std::uint64_t sent = 0;
    while (sent < size) {
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(size - sent, 1 << 24));
        ssize_t n = 0;
        if (how == "ptr")
            n = ::sendfile(fd, file, &offset, want);
        else if (how == "ptr64")
            n = ::sendfile64(fd, file, &offset64, want);
        else
            n = ::sendfile(fd, file, nullptr, want);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("sendfile");
        sent += static_cast<std::uint64_t>(n);
        const auto at = static_cast<std::uint64_t>(how == "ptr" ? offset : offset64);
        if (how != "pos" && at != sent)
            mismatch("*offset is " + std::to_string(at) + " after " + std::to_string(sent) +
                     " bytes were sent");
    }
    const off_t now = ::lseek(file, 0, SEEK_CUR);
    const off_t want_now = how == "pos" ? static_cast<off_t>(size) : position;
    if (now != want_now)
        mismatch("the file position is " + std::to_string(now) + ", not " +
                 std::to_string(want_now));
    say("sendfile (%s) %llu bytes, offset rules kept", how.c_str(),
        static_cast<unsigned long long>(sent));
    close_fd(fd);
    close_fd(file, "close(file)");
}

void client_splice(const Options& o) {
    const int file = ::open(o.text("file").c_str(), O_RDONLY | O_CLOEXEC);
    int p[2];
    if (file < 0 || ::pipe2(p, O_CLOEXEC) != 0) fail("open/pipe2");
    const int fd = connect_to(o.text("connect"));
    const unsigned flags = SPLICE_F_MOVE | SPLICE_F_MORE;  // as real programs pass them
    std::uint64_t total = 0;
    for (;;) {
        const ssize_t n = ::splice(file, nullptr, p[1], nullptr, 65536, flags);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("splice(file -> pipe)");
        if (n == 0) break;
        for (ssize_t moved = 0; moved < n;) {
            const ssize_t m =
                ::splice(p[0], nullptr, fd, nullptr, static_cast<std::size_t>(n - moved), flags);
            if (m < 0 && errno == EINTR) continue;
            if (m <= 0) fail("splice(pipe -> socket)");
            moved += m;
        }
        total += static_cast<std::uint64_t>(n);
    }
    say("spliced %llu", static_cast<unsigned long long>(total));
    close_fd(fd);
}

// Several sealed connections and one plain one, written to, then ended by one close_range (or
// closefrom); afterwards a new connection must work.
void client_closerange(const Options& o) {
    const std::uint64_t count = o.number("count", 3);
    const std::uint64_t size = o.number("size", 100000);
    std::vector<int> fds;
    for (std::uint64_t i = 0; i <= count; ++i)
        fds.push_back(connect_to(o.text(i < count ? "connect" : "plain")));
    for (std::size_t i = 0; i < fds.size(); ++i)
        send_payload(fds[i], Payload(o.number("seed", 1) + i), size).report("sent");
    const int lo = *std::min_element(fds.begin(), fds.end());
    const int hi = *std::max_element(fds.begin(), fds.end());
    if (o.text("how") == "closefrom") {
        ::closefrom(lo);
    } else if (::close_range(static_cast<unsigned>(lo), static_cast<unsigned>(hi), 0) != 0) {
        fail("close_range");
    }
    for (int fd : fds)
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            mismatch("fd " + std::to_string(fd) + " is still open");
    say("%s %d..%d closed", o.text("how").c_str(), lo, hi);
    const int fd = connect_to(o.text("connect"));
    send_payload(fd, Payload(o.number("seed", 1) + 100), size).report("sent");
    close_fd(fd);
    say("a new connection after it: sent and closed");
}

long checked(long r, const char* call) {
    if (r < 0) fail(call);
    return r;
}

// syscall(2) instead of the libc wrappers: write, read, getsockname, getpeername, close.
void client_syscall(const Options& o) {
    const int fd = connect_to(o.text("connect"));
    sockaddr_in a{};
    sockaddr_in b{};
    socklen_t alen = sizeof a;
    socklen_t blen = sizeof b;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &alen) != 0) fail("getsockname");
    checked(::syscall(SYS_getsockname, fd, &b, &blen), "syscall(SYS_getsockname)");
    if (alen != blen || std::memcmp(&a, &b, alen) != 0)
        mismatch("syscall(SYS_getsockname) differs from getsockname");
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &alen) != 0) fail("getpeername");
    checked(::syscall(SYS_getpeername, fd, &b, &blen), "syscall(SYS_getpeername)");
    if (alen != blen || std::memcmp(&a, &b, alen) != 0)
        mismatch("syscall(SYS_getpeername) differs from getpeername");
    say("syscall getsockname, getpeername: as the libc calls");
    const Payload p(o.number("seed", 1), o.text("marker"));
    const std::uint64_t size = o.number("size", 1 << 20);
    Tally sent;
    Background writer([&] {
        sent = send_payload(fd, p, size, [](int f, const void* buf, std::size_t n) {
            return static_cast<ssize_t>(::syscall(SYS_write, f, buf, n));
        });
    });
    const Tally received = receive_payload(fd, p, size, [](int f, void* buf, std::size_t n) {
        return static_cast<ssize_t>(::syscall(SYS_read, f, buf, n));
    });
    writer.join();
    sent.report("sent");
    received.report("received");
    checked(::syscall(SYS_close, fd), "syscall(SYS_close)");
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) mismatch("SYS_close left the fd open");
    say("closed");
}

int run_client(const Options& o) {
    return reported([&] {
        const std::string mode = o.text("mode");
        if (mode == "exchange")
            client_exchange(o);
        else if (mode == "echo")
            client_echo(o);
        else if (mode == "demux")
            client_demux(o);
        else if (mode == "exec-peer")
            client_exec_peer(o);
        else if (mode == "sendfile")
            client_sendfile(o);
        else if (mode == "splice")
            client_splice(o);
        else if (mode == "closerange")
            client_closerange(o);
        else if (mode == "syscall")
            client_syscall(o);
        else
            usage();
    });
}

// payload: the bytes a peer sends (for openssl s_client's stdin).
int run_payload(const Options& o) {
    return reported([&] {
        send_payload(STDOUT_FILENO, Payload(o.number("seed", 1), o.text("marker")),
                     o.number("size", 1 << 20));
    });
}

int run_demux_file(const Options& o) {
    return reported([&] {
        const int fd = ::open(o.text("file").c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail("open(" + o.text("file") + ")");
        demux_fd(fd, o);
        close_fd(fd);
    });
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    // A write to a connection the peer ended must be an error line, not a silent death.
    std::signal(SIGPIPE, SIG_IGN);
    if (o.role == "server") return run_server(o);
    if (o.role == "client") return run_client(o);
    if (o.role == "demux") return run_demux_file(o);
    if (o.role == "payload") return run_payload(o);
    usage();
}
