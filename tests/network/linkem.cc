// linkem: a userspace link emulator for the network tests (tests/network/80-lossy-network.sh).
//
// This machine's kernel has no netem qdisc, so delay, jitter and explicit reordering cannot be
// had from tc. linkem joins two network namespaces instead: it creates a TAP device in each
// (open /dev/net/tun in one namespace, setns to the other, open the second) and forwards every
// Ethernet frame from one TAP to the other, impairing each direction on its own:
//
//   delay + jitter   each frame waits delay +/- jitter (uniform). Jitter alone never reorders:
//                    a frame is never released before the one that arrived before it (a queue
//                    whose delay varies), so any reordering is the explicit kind below.
//   loss             the frame is dropped.
//   duplication      the frame is delivered twice, back to back.
//   reordering       the frame is held back by an extra delay (hold) outside that order, so
//                    frames that arrive after it can overtake it. "held" counts the frames held
//                    back, "overtaken" the frames that really were delivered after a later one.
//
// Decisions come from one PRNG per direction seeded from --seed, so a run with the same seed
// makes the same decisions for the same sequence of frames. The TAP devices exist while linkem
// runs and disappear with it; the caller gives them addresses once the ready file appears.
// SIGTERM, SIGINT or SIGHUP stop it; it then prints one line of counters per direction, the
// line the tests check (an impairment that did not happen is a failed test, not a pass):
//
//   a2b frames F bytes B delivered D dropped L duplicated U held H overtaken O overflow V
//       write_errors W delay_us_min N delay_us_avg N delay_us_max N
//
// Usage: linkem NETNS_A TAP_A NETNS_B TAP_B [--seed N] [--limit FRAMES] [--ready FILE]
//                [--both SPEC] [--a2b SPEC] [--b2a SPEC]
//   NETNS: a name under /run/netns (ip netns add) or a path to a namespace file.
//   SPEC:  comma-separated key=value: delay=MS, jitter=MS, loss=PERCENT, dup=PERCENT,
//          reorder=PERCENT, hold=MS (the extra delay of a reordered frame; default 10).
//   --limit: frames queued per direction before new ones are dropped (counted as overflow).
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <queue>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using Nanos = std::int64_t;
constexpr Nanos kMilli = 1'000'000;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "linkem: %s\n", what.c_str());
    std::exit(1);
}

[[noreturn]] void fail_errno(const std::string& what) {
    fail(what + ": " + std::strerror(errno));
}

Nanos now() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<Nanos>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// --- the impairment of one direction -------------------------------------------------------------

struct Impairment {
    double delay_ms = 0;
    double jitter_ms = 0;
    double loss_pct = 0;
    double dup_pct = 0;
    double reorder_pct = 0;
    double hold_ms = 10;
};

double number(const std::string& key, const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno != 0 || v < 0) fail("bad value for " + key);
    return v;
}

// SPEC: "delay=20,jitter=5,loss=1.5,dup=1,reorder=1.5,hold=10" (any subset, any order).
void apply_spec(Impairment& imp, const std::string& spec) {
    const std::pair<const char*, double Impairment::*> keys[] = {
        {"delay", &Impairment::delay_ms},      {"jitter", &Impairment::jitter_ms},
        {"loss", &Impairment::loss_pct},       {"dup", &Impairment::dup_pct},
        {"reorder", &Impairment::reorder_pct}, {"hold", &Impairment::hold_ms}};
    std::size_t start = 0;
    while (start <= spec.size()) {
        const std::size_t comma = std::min(spec.find(',', start), spec.size());
        const std::string item = spec.substr(start, comma - start);
        const std::size_t eq = item.find('=');
        const std::string key = item.substr(0, eq);
        const auto* hit = std::find_if(std::begin(keys), std::end(keys),
                                       [&](const auto& k) { return key == k.first; });
        if (eq == std::string::npos || hit == std::end(keys)) fail("bad impairment '" + item + "'");
        imp.*(hit->second) = number(key, item.substr(eq + 1));
        start = comma + 1;
    }
    if (imp.jitter_ms > imp.delay_ms) fail("jitter larger than delay");
    if (imp.loss_pct > 100 || imp.dup_pct > 100 || imp.reorder_pct > 100)
        fail("a percentage above 100");
}

struct Counters {
    std::uint64_t frames = 0, bytes = 0, delivered = 0, dropped = 0, duplicated = 0, held = 0,
                  overtaken = 0, overflow = 0, write_errors = 0;
    Nanos delay_min = 0, delay_max = 0, delay_sum = 0;
};

struct Frame {
    Nanos release;
    std::uint64_t seq;  // arrival order within the direction (a duplicate takes the next one)
    Nanos arrived;
    std::vector<std::uint8_t> bytes;
};

struct Later {  // the priority queue's order: earliest release first, then arrival order
    bool operator()(const Frame& a, const Frame& b) const {
        return a.release != b.release ? a.release > b.release : a.seq > b.seq;
    }
};

// One direction of the link: frames read from one TAP wait here until their release time, then
// go out of the other TAP. Not thread-safe (linkem has one thread).
class Direction {
  public:
    Direction(const char* name, const Impairment& imp, std::uint64_t seed, std::size_t limit)
        : name_(name), imp_(imp), rng_(seed), limit_(limit) {}

    void accept(std::vector<std::uint8_t> bytes, Nanos at);
    void release_due(Nanos at, int out_fd);
    // The next release time, or -1 when nothing is queued.
    Nanos next_due() const { return queue_.empty() ? -1 : queue_.top().release; }
    void print() const;

  private:
    bool chance(double pct) { return pct > 0 && uniform() * 100.0 < pct; }
    double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }  // [0, 1)
    Nanos ms(double v) const { return static_cast<Nanos>(v * kMilli); }
    void deliver(const Frame& f, Nanos at, int out_fd);

    const char* name_;
    Impairment imp_;
    std::mt19937_64 rng_;
    std::size_t limit_;
    std::priority_queue<Frame, std::vector<Frame>, Later> queue_;
    std::uint64_t next_seq_ = 0;
    std::uint64_t highest_delivered_ = 0;
    bool delivered_any_ = false;
    Nanos floor_ = 0;  // the release time of the last frame in order: jitter never overtakes it
    Counters c_;
};

void Direction::accept(std::vector<std::uint8_t> bytes, Nanos at) {
    ++c_.frames;
    c_.bytes += bytes.size();
    if (chance(imp_.loss_pct)) {
        ++c_.dropped;
        return;
    }
    if (queue_.size() >= limit_) {
        ++c_.overflow;
        return;
    }
    const double jitter = imp_.jitter_ms * (2 * uniform() - 1);
    Nanos release = std::max(at + ms(imp_.delay_ms + jitter), floor_);
    if (chance(imp_.reorder_pct)) {
        ++c_.held;
        release += ms(imp_.hold_ms);  // outside the order: later frames may pass it
    } else {
        floor_ = release;
    }
    const bool dup = chance(imp_.dup_pct);
    if (dup) {
        ++c_.duplicated;
        queue_.push(Frame{release, next_seq_ + 1, at, bytes});
    }
    queue_.push(Frame{release, next_seq_, at, std::move(bytes)});
    next_seq_ += dup ? 2 : 1;
}

void Direction::release_due(Nanos at, int out_fd) {
    while (!queue_.empty() && queue_.top().release <= at) {
        deliver(queue_.top(), at, out_fd);
        queue_.pop();
    }
}

void Direction::deliver(const Frame& f, Nanos at, int out_fd) {
    if (write(out_fd, f.bytes.data(), f.bytes.size()) != static_cast<ssize_t>(f.bytes.size())) {
        ++c_.write_errors;  // the receiving namespace's backlog was full: a loss the link made
        return;
    }
    ++c_.delivered;
    if (delivered_any_ && f.seq < highest_delivered_) ++c_.overtaken;
    highest_delivered_ = delivered_any_ ? std::max(highest_delivered_, f.seq) : f.seq;
    delivered_any_ = true;
    const Nanos waited = at - f.arrived;
    c_.delay_min = c_.delivered == 1 ? waited : std::min(c_.delay_min, waited);
    c_.delay_max = std::max(c_.delay_max, waited);
    c_.delay_sum += waited;
}

void Direction::print() const {
    const Nanos avg = c_.delivered == 0 ? 0 : c_.delay_sum / static_cast<Nanos>(c_.delivered);
    std::printf(
        "%s frames %llu bytes %llu delivered %llu dropped %llu duplicated %llu held %llu "
        "overtaken %llu overflow %llu write_errors %llu delay_us_min %lld delay_us_avg %lld "
        "delay_us_max %lld\n",
        name_, static_cast<unsigned long long>(c_.frames),
        static_cast<unsigned long long>(c_.bytes), static_cast<unsigned long long>(c_.delivered),
        static_cast<unsigned long long>(c_.dropped), static_cast<unsigned long long>(c_.duplicated),
        static_cast<unsigned long long>(c_.held), static_cast<unsigned long long>(c_.overtaken),
        static_cast<unsigned long long>(c_.overflow),
        static_cast<unsigned long long>(c_.write_errors),
        static_cast<long long>(c_.delay_min / 1000), static_cast<long long>(avg / 1000),
        static_cast<long long>(c_.delay_max / 1000));
}

// --- the TAP devices ----------------------------------------------------------------------------

std::string netns_path(const std::string& ns) {
    return ns.find('/') == std::string::npos ? "/run/netns/" + ns : ns;
}

// A TAP device named `name` in network namespace `ns` (this thread enters it and stays there).
// Returns the device's fd, nonblocking; the device lives until the fd is closed.
int open_tap(const std::string& ns, const std::string& name) {
    const int ns_fd = open(netns_path(ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) fail_errno("open " + netns_path(ns));
    if (setns(ns_fd, CLONE_NEWNET) != 0) fail_errno("setns " + ns);
    close(ns_fd);
    const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fail_errno("open /dev/net/tun");
    ifreq ifr{};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (name.size() >= sizeof ifr.ifr_name) fail("device name too long: " + name);
    std::memcpy(ifr.ifr_name, name.c_str(), name.size());
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) fail_errno("TUNSETIFF " + name + " in " + ns);
    return fd;
}

// --- the loop ------------------------------------------------------------------------------------

volatile std::sig_atomic_t stop_requested = 0;

void on_signal(int) {
    stop_requested = 1;
}

// Blocks the stop signals outside ppoll, so a signal cannot slip in between the check and the
// wait; returns the mask ppoll waits with (the signals unblocked).
sigset_t catch_stop_signals() {
    sigset_t stops;
    sigemptyset(&stops);
    for (const int s : {SIGTERM, SIGINT, SIGHUP}) {
        sigaddset(&stops, s);
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        sigaction(s, &sa, nullptr);
    }
    sigset_t waiting;
    sigprocmask(SIG_BLOCK, &stops, &waiting);
    for (const int s : {SIGTERM, SIGINT, SIGHUP})
        sigdelset(&waiting, s);
    return waiting;
}

// Reads what `fd` has now (at most a batch, so the other direction gets its turn).
void read_frames(int fd, Direction& dir) {
    static std::vector<std::uint8_t> buf(65536);  // a frame is at most the MTU (no offloads)
    for (int i = 0; i < 64; ++i) {
        const ssize_t n = read(fd, buf.data(), buf.size());
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n < 0) fail_errno("read from a TAP device");
        dir.accept(std::vector<std::uint8_t>(buf.begin(), buf.begin() + n), now());
    }
}

// How long ppoll may sleep: until the earliest release, at most a second.
timespec wait_time(const Direction& a, const Direction& b, Nanos at) {
    Nanos due = at + 1000 * kMilli;
    for (const Nanos d : {a.next_due(), b.next_due()})
        if (d >= 0) due = std::min(due, d);
    const Nanos wait = std::max<Nanos>(due - at, 0);
    return timespec{static_cast<time_t>(wait / 1'000'000'000),
                    static_cast<long>(wait % 1'000'000'000)};
}

void run(int fd_a, int fd_b, Direction& a2b, Direction& b2a, const sigset_t& waiting) {
    pollfd fds[2] = {{fd_a, POLLIN, 0}, {fd_b, POLLIN, 0}};
    while (stop_requested == 0) {
        const Nanos at = now();
        a2b.release_due(at, fd_b);
        b2a.release_due(at, fd_a);
        const timespec ts = wait_time(a2b, b2a, at);
        const int n = ppoll(fds, 2, &ts, &waiting);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail_errno("ppoll");
        if ((fds[0].revents | fds[1].revents) & (POLLERR | POLLHUP | POLLNVAL))
            fail("a TAP device failed");
        if (fds[0].revents & POLLIN) read_frames(fd_a, a2b);
        if (fds[1].revents & POLLIN) read_frames(fd_b, b2a);
    }
}

struct Options {
    std::string ns_a, tap_a, ns_b, tap_b, ready;
    Impairment a2b, b2a;
    std::uint64_t seed = 1;
    std::size_t limit = 10000;
};

[[noreturn]] void usage() {
    fail(
        "usage: linkem NETNS_A TAP_A NETNS_B TAP_B [--seed N] [--limit FRAMES] [--ready FILE]\n"
        "              [--both SPEC] [--a2b SPEC] [--b2a SPEC]\n"
        "  SPEC: delay=MS,jitter=MS,loss=PERCENT,dup=PERCENT,reorder=PERCENT,hold=MS");
}

Options parse(int argc, char** argv) {
    if (argc < 5) usage();
    Options o{argv[1], argv[2], argv[3], argv[4], {}, {}, {}};
    for (int i = 5; i < argc; i += 2) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) usage();
        const std::string v = argv[i + 1];
        if (flag == "--seed") {
            o.seed = static_cast<std::uint64_t>(number(flag, v));
        } else if (flag == "--limit") {
            o.limit = static_cast<std::size_t>(number(flag, v));
        } else if (flag == "--ready") {
            o.ready = v;
        } else if (flag == "--both") {
            apply_spec(o.a2b, v);
            apply_spec(o.b2a, v);
        } else if (flag == "--a2b") {
            apply_spec(o.a2b, v);
        } else if (flag == "--b2a") {
            apply_spec(o.b2a, v);
        } else {
            usage();
        }
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    const sigset_t waiting = catch_stop_signals();
    const int fd_a = open_tap(o.ns_a, o.tap_a);
    const int fd_b = open_tap(o.ns_b, o.tap_b);
    Direction a2b("a2b", o.a2b, o.seed, o.limit);
    Direction b2a("b2a", o.b2a, o.seed ^ 0x9e3779b97f4a7c15ULL, o.limit);
    if (!o.ready.empty()) {
        std::FILE* f = std::fopen(o.ready.c_str(), "w");
        if (f == nullptr || std::fclose(f) != 0) fail_errno("create " + o.ready);
    }
    run(fd_a, fd_b, a2b, b2a, waiting);
    a2b.print();
    b2a.print();
    return std::fflush(stdout) == 0 ? 0 : 1;
}
