#include "gateway/relay.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_set>

#include "config/pattern.h"
#include "gateway/proxy_v2.h"

namespace sealsock::gateway {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kBuffer = 64 * 1024;  // per direction and connection
constexpr int kMaxRetryMs = 50;             // handshake result polling, at most this far apart
constexpr auto kSweep = std::chrono::milliseconds(250);
constexpr int kAcceptBatch = 64;

enum : std::uint32_t { cmd_stop = 1, cmd_finish = 2 };

struct Conn;

struct Tag {
    enum Kind : std::uint8_t { listen, side, control } kind = side;
    Conn* conn = nullptr;
    const ListenSocket* ls = nullptr;
};

struct Side {
    int fd = -1;
    bool readable = false;
    bool writable = false;
    bool eof = false;   // read 0
    bool shut = false;  // shutdown(SHUT_WR) done
    Tag tag;
};

struct Buffer {
    std::unique_ptr<char[]> data{new char[kBuffer]};
    std::size_t head = 0, tail = 0;
    [[nodiscard]] std::size_t size() const { return tail - head; }
    std::size_t room() {
        if (head == tail) head = tail = 0;
        if (tail == kBuffer && head > 0) {
            std::memmove(data.get(), data.get() + head, tail - head);
            tail -= head;
            head = 0;
        }
        return kBuffer - tail;
    }
};

enum class Phase : std::uint8_t { handshake, connecting, relaying };

struct Conn {
    const Listener* l = nullptr;
    Side a;  // the accepted connection
    Side b;  // the backend or destination
    Buffer up, down;
    Phase phase = Phase::handshake;
    Clock::time_point start, deadline, last, retry_at;
    int retry_ms = 1;
    std::uint64_t bytes_up = 0, bytes_down = 0;
    sockaddr_storage client_sa{}, local_sa{};
    std::string client, local, subject, fingerprint;
    bool dead = false;
    bool queued = false;  // in the worker's pending list
};

std::string address_text(const sockaddr_storage& ss) {
    char host[INET6_ADDRSTRLEN] = "?";
    char out[INET6_ADDRSTRLEN + 16];
    if (ss.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
        inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
        std::snprintf(out, sizeof out, "%s:%u", host, ntohs(a.sin_port));
        return out;
    }
    if (ss.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
        inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof host);
        std::snprintf(out, sizeof out, "[%s]:%u", host, ntohs(a.sin6_port));
        return out;
    }
    return "?";
}

bool source_allowed(const Listener& l, const sockaddr_storage& ss) {
    config::Address addr;
    bool ok = false;
    if (ss.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
        ok = config::canonical_address(
            ByteView(reinterpret_cast<const std::uint8_t*>(&a.sin_addr), 4), addr);
    } else if (ss.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
        ok = config::canonical_address(
            ByteView(reinterpret_cast<const std::uint8_t*>(&a.sin6_addr), 16), addr);
    }
    return ok && std::any_of(l.sources.begin(), l.sources.end(),
                             [&](const config::Network& n) { return n.contains(addr); });
}

std::string errno_text(int e) {
    return std::string(strerrorname_np(e) ? strerrorname_np(e) : "?") + " (" + std::strerror(e) +
           ")";
}

void no_delay(int fd) {
    const int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

struct Worker::Impl {
    explicit Impl(Shared& s) : sh(s) {}

    Shared& sh;
    int ep = -1;
    int ctl = -1;
    Tag ctl_tag{Tag::control, nullptr, nullptr};
    std::vector<Tag> listen_tags;
    std::atomic<std::uint32_t> commands{0};
    bool accepting = true;
    bool listening = false;  // registered in ep
    Clock::time_point paused_until{};
    bool finishing = false;
    Clock::time_point drain_deadline = Clock::time_point::max();
    std::unordered_set<Conn*> conns;
    std::vector<Conn*> pending;  // waiting for the handshake's result
    std::vector<Conn*> dead;     // freed after the batch of events that may name them
    Clock::time_point next_sweep{};

    void run();
    void listen_on(bool on);
    void on_listen(const ListenSocket& ls);
    void on_event(Tag& t, std::uint32_t ev);
    void on_control();
    void accepted(const ListenSocket& ls, int fd, const sockaddr_storage& peer);
    void try_handshake(Conn* c, Clock::time_point now);
    void start_target(Conn* c);
    void target_connected(Conn* c);
    void pump(Conn* c);
    bool move(Conn* c, Side& src, Buffer& buf, Side& dst, std::uint64_t& count);
    void end(Conn* c, const char* outcome, const std::string& reason, bool reset_plain);
    void sweep(Clock::time_point now);
    int wait_ms(Clock::time_point now);
    void watch(Side& s, Conn* c) {
        s.tag = Tag{Tag::side, c, nullptr};
        epoll_event e{};
        e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        e.data.ptr = &s.tag;
        (void)epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &e);
    }
    Side& plain(Conn* c) { return c->l->direction == Direction::inbound ? c->b : c->a; }
    const char* target_word(const Conn* c) const {
        return c->l->direction == Direction::inbound ? "backend" : "destination";
    }
};

void Worker::Impl::listen_on(bool on) {
    if (on == listening) return;
    for (Tag& t : listen_tags) {
        epoll_event e{};
        e.events = EPOLLIN | EPOLLEXCLUSIVE;
        e.data.ptr = &t;
        (void)epoll_ctl(ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, t.ls->fd, on ? &e : nullptr);
    }
    listening = on;
}

void Worker::Impl::on_listen(const ListenSocket& ls) {
    for (int i = 0; i < kAcceptBatch && accepting; ++i) {
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        const int fd =
            accept4(ls.fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accepted(ls, fd, peer);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            // Out of descriptors: stop listening for a moment rather than spin.
            listen_on(false);
            paused_until = Clock::now() + std::chrono::milliseconds(100);
        }
        return;
    }
}

void Worker::Impl::accepted(const ListenSocket& ls, int fd, const sockaddr_storage& peer) {
    auto* c = new Conn;
    c->l = ls.listener;
    c->a.fd = fd;
    c->client_sa = peer;
    c->client = address_text(peer);
    socklen_t len = sizeof c->local_sa;
    (void)getsockname(fd, reinterpret_cast<sockaddr*>(&c->local_sa), &len);
    c->local = address_text(c->local_sa);
    c->start = c->last = Clock::now();
    conns.insert(c);
    sh.live.fetch_add(1, std::memory_order_relaxed);
    no_delay(fd);
    if (c->l->direction == Direction::outbound) {
        if (!source_allowed(*c->l, peer)) {
            end(c, "refused",
                "source " + c->client + " is not in `sources` of listener \"" + c->l->name + "\"",
                true);
            return;
        }
        watch(c->a, c);
        start_target(c);
        return;
    }
    watch(c->a, c);
    c->phase = Phase::handshake;
    c->deadline = c->start + std::chrono::milliseconds(sh.settings->handshake_timeout_ms);
    try_handshake(c, c->start);
}

void Worker::Impl::try_handshake(Conn* c, Clock::time_point now) {
    sealsock_peer_info p{};
    if (sh.peer(c->a.fd, &p, 0) == 0) {
        c->subject = p.subject;
        c->fingerprint = p.fingerprint;
        if (c->l->proxy_v2) {
            const auto h = proxy_v2::header(c->client_sa, c->local_sa,
                                            {p.subject, p.fingerprint, c->l->name, p.suite});
            if (h.empty() || h.size() > kBuffer) {
                end(c, "failed", "no PROXY v2 header can be made for " + c->client, false);
                return;
            }
            std::memcpy(c->up.data.get(), h.data(), h.size());
            c->up.tail = h.size();
        }
        start_target(c);
        return;
    }
    const int e = errno;
    if (e == EAGAIN) {
        if (!c->queued) pending.push_back(c);
        c->queued = true;
        c->retry_at = now + std::chrono::milliseconds(c->retry_ms);
        c->retry_ms = std::min(c->retry_ms * 2, kMaxRetryMs);
        return;
    }
    if (e == ENOTCONN || e == EBADF) {  // fail closed: the shim did not take this connection
        end(c, "refused", "the accepted connection is not sealed: " + errno_text(e), false);
        return;
    }
    end(c, "refused",
        "the sealed handshake failed or the peer was refused: " + errno_text(e) +
            " (the audit log's refuse line says why); no backend connection was made",
        false);
}

void Worker::Impl::start_target(Conn* c) {
    const Endpoint& t = c->l->target;
    int fd = -1;
    int rc = -1;
    int err = 0;
    if (t.is_unix) {
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        std::memcpy(un.sun_path, t.path.c_str(), t.path.size());
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0) rc = connect(fd, reinterpret_cast<sockaddr*>(&un), sizeof un);
        err = errno;
    } else {
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        addrinfo* res = nullptr;
        const int g = getaddrinfo(t.host.c_str(), std::to_string(t.port).c_str(), &hints, &res);
        if (g != 0 || res == nullptr) {
            end(c, "failed",
                std::string("cannot resolve the ") + target_word(c) + " " + t.text + ": " +
                    gai_strerror(g),
                true);
            return;
        }
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            no_delay(fd);
            rc = connect(fd, res->ai_addr, res->ai_addrlen);
        }
        err = errno;
        freeaddrinfo(res);
    }
    if (fd < 0 || (rc < 0 && err != EINPROGRESS && err != EAGAIN)) {
        if (fd >= 0) ::close(fd);
        end(c, "failed",
            std::string("cannot connect to the ") + target_word(c) + " " + t.text + ": " +
                errno_text(err),
            true);
        return;
    }
    c->b.fd = fd;
    watch(c->b, c);
    if (rc == 0) {
        target_connected(c);
        return;
    }
    c->phase = Phase::connecting;
    c->deadline = Clock::now() + std::chrono::milliseconds(sh.settings->connect_timeout_ms);
}

void Worker::Impl::target_connected(Conn* c) {
    c->phase = Phase::relaying;
    c->last = Clock::now();
    pump(c);
}

bool Worker::Impl::move(Conn* c, Side& src, Buffer& buf, Side& dst, std::uint64_t& count) {
    bool progress = false;
    for (bool again = true; again && !c->dead;) {
        again = false;
        if (buf.size() > 0 && dst.writable) {
            const ssize_t n = send(dst.fd, buf.data.get() + buf.head, buf.size(), MSG_NOSIGNAL);
            if (n > 0) {
                buf.head += static_cast<std::size_t>(n);
                count += static_cast<std::size_t>(n);
                again = progress = true;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                dst.writable = false;
            } else if (errno != EINTR) {
                end(c, "failed",
                    std::string("sending to the ") + (&dst == &c->a ? "client" : target_word(c)) +
                        ": " + errno_text(errno),
                    true);
                return progress;
            }
        }
        if (!src.eof && src.readable && buf.room() > 0) {
            const ssize_t n = recv(src.fd, buf.data.get() + buf.tail, buf.room(), 0);
            if (n > 0) {
                buf.tail += static_cast<std::size_t>(n);
                again = progress = true;
            } else if (n == 0) {
                src.eof = true;
                progress = true;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                src.readable = false;
            } else if (errno != EINTR) {
                end(c, "failed",
                    std::string("receiving from the ") +
                        (&src == &c->a ? "client" : target_word(c)) + ": " + errno_text(errno),
                    true);
                return progress;
            }
        }
    }
    if (!c->dead && src.eof && buf.size() == 0 && !dst.shut) {
        (void)shutdown(dst.fd, SHUT_WR);  // half-close: the other side's reads end
        dst.shut = true;
        progress = true;
    }
    return progress;
}

void Worker::Impl::pump(Conn* c) {
    if (c->phase != Phase::relaying) return;
    bool progress = true;
    while (progress && !c->dead) {
        progress = move(c, c->a, c->up, c->b, c->bytes_up);
        if (!c->dead) progress = move(c, c->b, c->down, c->a, c->bytes_down) || progress;
        if (progress) c->last = Clock::now();
    }
    if (!c->dead && c->a.shut && c->b.shut) end(c, "closed", "", false);
}

void Worker::Impl::end(Conn* c, const char* outcome, const std::string& reason, bool reset_plain) {
    if (c->dead) return;
    c->dead = true;
    if (c->queued) {
        pending.erase(std::remove(pending.begin(), pending.end(), c), pending.end());
        c->queued = false;
    }
    if (c->l->direction == Direction::outbound && c->b.fd >= 0 && sh.peer != nullptr) {
        sealsock_peer_info p{};
        if (sh.peer(c->b.fd, &p, 0) == 0) {
            c->subject = p.subject;
            c->fingerprint = p.fingerprint;
        }
    }
    RelayRecord r;
    r.listener = c->l->name;
    r.direction = c->l->direction == Direction::inbound ? "inbound" : "outbound";
    r.client = c->client;
    r.local = c->local;
    r.target = c->l->target.text;
    r.peer_subject = c->subject;
    r.peer_fingerprint = c->fingerprint;
    r.bytes_up = c->bytes_up;
    r.bytes_down = c->bytes_down;
    r.duration_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - c->start).count());
    r.outcome = outcome;
    r.reason = reason;
    sh.log->write(r);
    if (reset_plain && plain(c).fd >= 0) {  // a failure reaches the plaintext peer as a reset
        const linger lg{1, 0};
        (void)setsockopt(plain(c).fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    for (Side* s : {&c->a, &c->b}) {
        if (s->fd < 0) continue;
        (void)epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, nullptr);
        ::close(s->fd);
        s->fd = -1;
    }
    conns.erase(c);
    dead.push_back(c);
    sh.live.fetch_sub(1, std::memory_order_relaxed);
}

void Worker::Impl::on_event(Tag& t, std::uint32_t ev) {
    Conn* c = t.conn;
    if (c->dead) return;
    Side& s = (&t == &c->a.tag) ? c->a : c->b;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s.readable = true;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s.writable = true;
    switch (c->phase) {
        case Phase::handshake:
            try_handshake(c, Clock::now());
            return;
        case Phase::connecting: {
            if (&s != &c->b || !s.writable) return;
            int err = 0;
            socklen_t len = sizeof err;
            (void)getsockopt(c->b.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                end(c, "failed",
                    std::string("cannot connect to the ") + target_word(c) + " " +
                        c->l->target.text + ": " + errno_text(err),
                    true);
                return;
            }
            target_connected(c);
            return;
        }
        case Phase::relaying:
            pump(c);
            return;
    }
}

void Worker::Impl::on_control() {
    std::uint64_t v = 0;
    (void)!read(ctl, &v, sizeof v);
    const std::uint32_t cmd = commands.exchange(0);
    if (cmd & cmd_stop) {
        accepting = false;
        listen_on(false);
        if (sh.settings->drain_timeout_ms > 0)
            drain_deadline =
                Clock::now() + std::chrono::milliseconds(sh.settings->drain_timeout_ms);
    }
    if (cmd & cmd_finish) finishing = true;
}

void Worker::Impl::sweep(Clock::time_point now) {
    const auto idle = std::chrono::milliseconds(sh.settings->idle_timeout_ms);
    std::vector<Conn*> all(conns.begin(), conns.end());
    for (Conn* c : all) {
        if (finishing || now >= drain_deadline) {
            end(c, "failed", finishing ? "the gateway stopped" : "drain_timeout after a reload",
                true);
        } else if (c->phase == Phase::handshake && now >= c->deadline) {
            end(c, "timeout", "no handshake result within handshake_timeout", false);
        } else if (c->phase == Phase::connecting && now >= c->deadline) {
            end(c, "timeout",
                std::string("connecting to the ") + target_word(c) + " " + c->l->target.text +
                    " took longer than connect_timeout",
                true);
        } else if (c->phase == Phase::relaying && now - c->last >= idle) {
            end(c, "timeout", "idle for idle_timeout", true);
        }
    }
}

int Worker::Impl::wait_ms(Clock::time_point now) {
    Clock::time_point next = next_sweep;
    std::vector<Conn*> due;
    due.swap(pending);
    for (Conn* c : due) {
        if (c->retry_at <= now) try_handshake(c, now);  // may end c (which then leaves pending)
        if (!c->dead && c->phase == Phase::handshake) {
            pending.push_back(c);
            next = std::min(next, c->retry_at);
        } else if (!c->dead) {
            c->queued = false;
        }
    }
    if (!listening && accepting) next = std::min(next, paused_until);
    if (next <= now) return 0;
    return static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1);
}

void Worker::Impl::run() {
    listen_on(true);
    epoll_event events[128];
    while (!finishing && (accepting || !conns.empty())) {
        Clock::time_point now = Clock::now();
        if (!listening && accepting && now >= paused_until) listen_on(true);
        const int n = epoll_wait(ep, events, 128, wait_ms(now));
        for (int i = 0; i < n; ++i) {
            Tag& t = *static_cast<Tag*>(events[i].data.ptr);
            if (t.kind == Tag::control)
                on_control();
            else if (t.kind == Tag::listen)
                on_listen(*t.ls);
            else
                on_event(t, events[i].events);
        }
        now = Clock::now();
        if (now >= next_sweep || finishing) {
            sweep(now);
            next_sweep = now + kSweep;
        }
        for (Conn* c : dead)
            delete c;
        dead.clear();
    }
    if (finishing) {
        sweep(Clock::now());
        for (Conn* c : dead)
            delete c;
        dead.clear();
    }
    listen_on(false);
}

Worker::Worker(Shared& shared) : impl_(std::make_unique<Impl>(shared)) {
    Impl& w = *impl_;
    w.ep = epoll_create1(EPOLL_CLOEXEC);
    w.ctl = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.ptr = &w.ctl_tag;
    (void)epoll_ctl(w.ep, EPOLL_CTL_ADD, w.ctl, &e);
    for (const ListenSocket& ls : shared.listeners)
        w.listen_tags.push_back(Tag{Tag::listen, nullptr, &ls});
}

Worker::~Worker() {
    if (impl_->ep >= 0) ::close(impl_->ep);
    if (impl_->ctl >= 0) ::close(impl_->ctl);
}

void Worker::run() {
    impl_->run();
}

void Worker::stop_accepting() {
    impl_->commands.fetch_or(cmd_stop);
    const std::uint64_t one = 1;
    (void)!write(impl_->ctl, &one, sizeof one);
}

void Worker::finish() {
    impl_->commands.fetch_or(cmd_finish);
    const std::uint64_t one = 1;
    (void)!write(impl_->ctl, &one, sizeof one);
}

}  // namespace sealsock::gateway
