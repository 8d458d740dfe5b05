#include "session/background.h"

#include <fcntl.h>
#include <pthread.h>
#include <sealsock/agent_protocol.h>
#include <sealsock/secret.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "record/libcrypto.h"
#include "session/log.h"
#include "session/registry.h"
#include "session/session.h"
#include "sys/confined.h"
#include "sys/real.h"

namespace sealsock::background {
namespace {

using agent::ErrorCode;

// A session's handshake waits this much longer than the timeout the agent was given before the
// shim gives up on the agent itself.
constexpr std::uint64_t kAgentGraceMs = 5000;
// A retired session is freed this long after its last use at the earliest: a hook may have
// looked it up in the registry just before close() erased it.
constexpr std::uint64_t kFreeDelayMs = 1000;
// How long fork() waits for the background thread to finish what it is doing (a pump() or a
// handshake reply; neither blocks on the network).
constexpr std::chrono::seconds kQuiesceLimit{1};
// Reply buffers kept for the next handshakes: a new one is a guarded, locked mapping (mmap,
// mprotect, mlock and munmap each time), which cost a sealed nginx worker a fifth of its CPU at
// one handshake per request. Each kept one holds no secret (wiped when its job ends).
constexpr std::size_t kSpareFrames = 8;

std::uint64_t now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

// The errno a program sees when the agent refuses; the server side always sees a reset peer.
int refusal_errno(SessionRole role, ErrorCode code) {
    if (role == SessionRole::server) return ECONNRESET;
    switch (code) {
        case ErrorCode::timeout:
            return ETIMEDOUT;
        case ErrorCode::peer_closed:
            return ECONNRESET;
        default:
            return ECONNREFUSED;
    }
}

// What a person should do about a refusal, appended to the agent's sentence.
const char* refusal_hint(ErrorCode code) {
    switch (code) {
        case ErrorCode::no_identity:
            return " (check the rule's identity and the agent's --identity list)";
        case ErrorCode::busy:
            return " (the agent is overloaded; try again)";
        default:
            return "";
    }
}

enum class Kind : std::uint8_t { connect, handshake, writable, retire };

struct Command {
    Kind kind;
    Session* session;
};

// One handshake in flight: the agent connection and the reply read so far. The reply carries
// traffic secrets, so it is read into guarded memory and wiped with it.
struct Job {
    int agent = -1;
    SecureBuffer frame;  // length_size + max_frame bytes, from Thread::take_frame()
    std::size_t got = 0;
    std::size_t want = agent::length_size;
    std::uint64_t deadline = 0;
    std::uint64_t request_id = 0;
};

// What the background thread knows about one session. Epoll events carry the Entry's address,
// with bit 0 set for the agent connection.
struct Entry {
    Session* session = nullptr;
    std::unique_ptr<Job> job;
    bool connecting = false;  // waiting for a nonblocking connect
    bool flushing = false;    // waiting for writability to pump()
    bool in_epoll = false;    // the anchor is registered
    bool retired = false;
    std::uint64_t freed_after = 0;
    std::uint64_t retry_at = 0;  // ask the agent again then (its queue of new connections was full)
    std::uint64_t busy_since = 0;  // when the agent first answered EAGAIN for this session
};

class Thread {
  public:
    void post(Command c) {
        std::call_once(started_, [this] {
            start();
            running_.store(true, std::memory_order_release);
        });
        {
            std::lock_guard lock(mu_);
            queue_.push_back(c);
        }
        const std::uint64_t one = 1;
        (void)sys::write(wake_, &one, sizeof one);
    }

    void forget(int anchor) {
        const int ep = std::atomic_ref<int>(epoll_).load(std::memory_order_acquire);
        if (ep >= 0) epoll_ctl(ep, EPOLL_CTL_DEL, anchor, nullptr);
    }

    void set_agent_socket(std::string path) {
        std::lock_guard lock(mu_);
        agent_socket_ = std::move(path);
    }

    [[nodiscard]] std::string agent_socket_unlocked() const { return agent_socket_; }

    // Before fork: waits (at most kQuiesceLimit) until the thread is idle in epoll_wait, and keeps
    // it there until after_fork(). The child then gets a consistent copy of the thread's state,
    // and no allocator or OpenSSL lock the thread held mid-call.
    void quiesce() {
        if (!running_.load(std::memory_order_acquire)) return;
        quiet_ = busy_.try_lock_for(kQuiesceLimit);
    }

    // At exit, after the sessions have ended: parks the thread for good (it must not touch
    // OpenSSL once OpenSSL's exit handler has freed it).
    void park() {
        if (running_.load(std::memory_order_acquire)) (void)busy_.try_lock_for(kQuiesceLimit);
    }

    // In the parent after fork (or a failed fork): lets the thread go on.
    void resume() {
        if (quiet_) busy_.unlock();
        quiet_ = false;
    }

    // In a forked child (one thread, the parent's locks as they were): closes this copy's fds.
    // The entries are read only if the parent's thread was quiesced (else they may be mid-update,
    // and their agent connections stay open in the child until it exits).
    void drop_copies() {
        for (int fd : {wake_, epoll_}) {
            if (fd < 0) continue;
            for (int h = 0; h < registry::kMaxOwnFds; ++h)
                if (registry::own_fd(h) == fd) registry::unprotect(h);
            (void)sys::close(fd);
        }
        if (!quiet_) return;
        for (auto& [session, e] : entries_)
            if (e->job) (void)sys::close(e->job->agent);
    }

  private:
    void start();
    void run();
    void take_commands();
    void apply(const Command& c);
    void on_anchor(Entry& e, std::uint32_t events);
    void on_agent(Entry& e);
    void ask_agent(Entry& e);
    void finish_job(Entry& e, agent::Message& reply);
    void end_job(Entry& e);
    SecureBuffer take_frame();
    void arm(Entry& e);
    void settle(Entry& e);
    void flush(Entry& e);
    void sweep(std::uint64_t now);
    Entry& entry(Session* s);

    std::once_flag started_;
    std::atomic<bool> running_{false};
    std::atomic<bool> entered_{false};  // the thread has reached run()
    // Held by the thread while it works on events and commands; taken by quiesce() for a fork.
    std::timed_mutex busy_;
    bool quiet_ = false;  // quiesce() holds busy_ (only the forking thread reads it)
    std::mutex mu_;
    std::vector<Command> queue_;
    std::string agent_socket_;
    int wake_ = -1;
    int epoll_ = -1;
    std::uint64_t next_id_ = 1;
    bool retrying_ = false;  // some entry waits for its retry_at
    // Owned by the background thread alone.
    std::unordered_map<Session*, std::unique_ptr<Entry>> entries_;
    std::vector<SecureBuffer> spare_frames_;  // wiped reply buffers (kSpareFrames at most)
    std::vector<std::uint8_t> request_;       // the request being encoded (no secrets)
};

Thread* g_thread = nullptr;     // never destroyed: the thread may outlive static destructors
Thread* g_abandoned = nullptr;  // a forked child's copy of the parent's
std::once_flag g_made;

// Made on first use: the shim's prioritized constructors may need it before this file's
// dynamic initializers have run.
Thread& thread() {
    std::call_once(g_made, [] {
        if (g_thread == nullptr) g_thread = new Thread;
    });
    return *g_thread;
}

void Thread::start() {
    spare_frames_.reserve(kSpareFrames);  // end_job() keeps buffers without allocating
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    std::atomic_ref<int>(epoll_).store(epoll_create1(EPOLL_CLOEXEC), std::memory_order_release);
    if (wake_ < 0 || epoll_ < 0) {
        report("cannot start the shim's background thread: {}", std::strerror(errno));
        std::abort();  // fail closed: sealed connections cannot work without it
    }
    for (int* fd : {&wake_, &epoll_}) {
        const sys::Ret<int> high = sys::dup_cloexec_high(*fd);
        if (high.value >= 0) {
            (void)sys::close(*fd);
            *fd = high.value;
        }
        (void)registry::protect(*fd);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  // the new thread inherits "everything blocked"
    pthread_t tid;
    const int rc = pthread_create(
        &tid, nullptr,
        [](void* self) -> void* {
            static_cast<Thread*>(self)->run();
            return nullptr;
        },
        this);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc != 0) {
        report("cannot start the shim's background thread: {}", std::strerror(rc));
        std::abort();
    }
    pthread_detach(tid);
    // The new thread's start-up (the C library's, a sanitizer's) may allocate: a fork() in
    // between would leave the child an allocator lock nobody releases. Return once it runs.
    entered_.wait(false, std::memory_order_acquire);
}

void Thread::run() {
    entered_.store(true, std::memory_order_release);
    entered_.notify_all();
    epoll_event events[64];
    for (;;) {
        const bool waiting = !entries_.empty();
        const int n = epoll_wait(epoll_, events, 64, retrying_ ? 10 : waiting ? 200 : -1);
        const std::lock_guard working(busy_);
        for (int i = 0; i < n; ++i) {
            const std::uint64_t tag = events[i].data.u64;
            if (tag == 0) {
                std::uint64_t count = 0;
                (void)sys::read(wake_, &count, sizeof count);
                continue;
            }
            auto* e = reinterpret_cast<Entry*>(tag & ~std::uint64_t{1});
            if ((tag & 1) != 0)
                on_agent(*e);
            else
                on_anchor(*e, events[i].events);
        }
        take_commands();
        sweep(now_ms());
        // OpenSSL's per-thread state (error queue, DRBGs) lives in this thread's TLS: free it
        // while idle, so a forked child (where this thread does not exist) inherits none of it.
        if (const record::Libcrypto* c = record::libcrypto_if_loaded()) c->OPENSSL_thread_stop();
    }
}

void Thread::take_commands() {
    std::vector<Command> batch;
    {
        std::lock_guard lock(mu_);
        batch.swap(queue_);
    }
    for (const Command& c : batch)
        apply(c);
}

Entry& Thread::entry(Session* s) {
    std::unique_ptr<Entry>& slot = entries_[s];
    if (!slot) {
        slot = std::make_unique<Entry>();
        slot->session = s;
    }
    return *slot;
}

void Thread::apply(const Command& c) {
    Entry& e = entry(c.session);
    switch (c.kind) {
        case Kind::connect:
            e.connecting = true;
            arm(e);
            break;
        case Kind::handshake:
            ask_agent(e);
            break;
        case Kind::writable:
            if (!e.job && !e.connecting) {
                e.flushing = true;
                arm(e);
            }
            break;
        case Kind::retire:
            // A handshake or connect in flight goes on: bytes the program wrote before closing
            // are sealed and sent when the keys arrive, then close_notify (pump()).
            e.retired = true;
            if (!e.job && !e.connecting) flush(e);
            break;
    }
}

// Sends what the session still has; waits for writability while something is left, then
// settles (a retired session closes its anchor).
void Thread::flush(Entry& e) {
    e.flushing = e.session->pump();
    if (e.flushing)
        arm(e);
    else
        settle(e);
}

// Waits for the anchor to turn writable (one shot).
void Thread::arm(Entry& e) {
    if (e.session->anchor_closed()) {  // its number may name another file by now
        e.flushing = false;
        return;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLONESHOT;
    ev.data.u64 = reinterpret_cast<std::uint64_t>(&e);
    const int op = e.in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(epoll_, op, e.session->anchor(), &ev) == 0) e.in_epoll = true;
}

void Thread::on_anchor(Entry& e, std::uint32_t events) {
    Session& s = *e.session;
    if (e.connecting) {
        e.connecting = false;
        if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
            int err = 0;
            socklen_t len = sizeof err;
            (void)sys::getsockopt(s.anchor(), SOL_SOCKET, SO_ERROR, &err, &len);
            if (err == 0) err = ECONNREFUSED;
            s.fail(err, fmt::format("the TCP connection failed: {}", std::strerror(err)));
            settle(e);
            return;
        }
        s.connected();
        ask_agent(e);
        return;
    }
    if (e.flushing) flush(e);
}

void Thread::ask_agent(Entry& e) {
    Session& s = *e.session;
    if (s.state() != SessionState::handshaking) return settle(e);
    std::string path;
    {
        std::lock_guard lock(mu_);
        path = agent_socket_;
    }
    auto refuse = [&](int err, const std::string& why) {
        s.fail(err, why);
        settle(e);
    };
    const int errno_no_agent = s.setup().role == SessionRole::client ? ECONNREFUSED : ECONNRESET;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path)
        return refuse(errno_no_agent,
                      "no agent socket is configured (start one with "
                      "eval \"$(sealsock agent)\")");
    std::memcpy(addr.sun_path, path.data(), path.size());

    auto job = std::make_unique<Job>();
    job->frame = take_frame();
    if (!job->frame.valid())
        return refuse(errno_no_agent, "no memory for the agent's reply (locked memory)");
    const int low = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (low < 0) return refuse(errno_no_agent, "cannot create a socket to reach the agent");
    const sys::Ret<int> high = sys::dup_cloexec_high(low);
    (void)sys::close(low);
    if (high.value < 0) return refuse(errno_no_agent, "cannot create a socket to reach the agent");
    job->agent = high.value;
    const sys::Ret<int> dial =
        sys::connect(job->agent, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    if (dial.value < 0) {
        const int err = dial.err;
        (void)sys::close(job->agent);
        if (err == EAGAIN) {  // the agent's backlog is full: a burst of handshakes; try again
            const std::uint64_t now = now_ms();
            if (e.busy_since == 0) e.busy_since = now;
            if (now - e.busy_since < s.setup().request.timeout_ms) {
                e.retry_at = now + 10;
                retrying_ = true;
                return;
            }
            return refuse(errno_no_agent,
                          fmt::format("the agent at {} is overloaded: it took no new connection "
                                      "for {} ms",
                                      path, now - e.busy_since));
        }
        return refuse(errno_no_agent,
                      fmt::format("no sealsock agent at {} ({}): start one with "
                                  "eval \"$(sealsock agent)\", or set SEALSOCK_AGENT_SOCK",
                                  path, std::strerror(err)));
    }

    job->request_id = next_id_++;
    agent::Message request{agent::MessageType::handshake, job->request_id, s.setup().request};
    request_.resize(agent::length_size + agent::max_frame);
    const std::size_t n = agent::encode(request, request_);
    if (n == 0) {
        (void)sys::close(job->agent);
        return refuse(errno_no_agent, "the handshake request is too large for the agent protocol");
    }
    iovec iov{request_.data(), n};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int anchor = s.anchor();
    std::memcpy(CMSG_DATA(c), &anchor, sizeof anchor);
    // A fresh Unix socket's buffer takes a request whole (at most a few KB).
    const sys::Ret<ssize_t> w = sys::sendmsg(job->agent, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w.value != static_cast<ssize_t>(n)) {
        (void)sys::close(job->agent);
        return refuse(errno_no_agent, fmt::format("lost the agent while sending the request: {}",
                                                  std::strerror(w.value < 0 ? w.err : EPIPE)));
    }
    job->deadline = now_ms() + s.setup().request.timeout_ms + kAgentGraceMs;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = reinterpret_cast<std::uint64_t>(&e) | 1;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, job->agent, &ev);
    e.job = std::move(job);
}

void Thread::on_agent(Entry& e) {
    Job& job = *e.job;
    for (;;) {
        const sys::Ret<ssize_t> r =
            sys::recv(job.agent, job.frame.data() + job.got, job.want - job.got, MSG_DONTWAIT);
        if (r.value < 0 && r.err == EINTR) continue;
        if (r.value < 0 && r.err == EAGAIN) return;
        if (r.value <= 0) {
            e.session->fail(refusal_errno(e.session->setup().role, ErrorCode::internal),
                            "the agent closed the connection without answering");
            end_job(e);
            settle(e);
            return;
        }
        job.got += static_cast<std::size_t>(r.value);
        if (job.got < job.want) continue;
        if (job.want == agent::length_size) {
            auto len = agent::frame_length(job.frame.view().first(agent::length_size));
            if (!len) {
                e.session->fail(ECONNREFUSED, "the agent sent a malformed frame");
                end_job(e);
                settle(e);
                return;
            }
            job.want += len.value();
            continue;
        }
        auto reply = agent::decode(
            job.frame.view().subspan(agent::length_size, job.want - agent::length_size));
        if (!reply || reply.value().request_id != job.request_id) {
            e.session->fail(ECONNREFUSED, "the agent sent a reply the shim cannot read");
            end_job(e);
            settle(e);
        } else {
            finish_job(e, reply.value());  // ends the job
        }
        return;
    }
}

void Thread::finish_job(Entry& e, agent::Message& reply) {
    Session& s = *e.session;
    if (auto* ok = std::get_if<agent::HandshakeReply>(&reply.body)) {
        const bool established = s.establish(*ok);
        end_job(e);  // wipes the secrets
        if (established) return flush(e);
    } else if (auto* err = std::get_if<agent::ErrorReply>(&reply.body)) {
        s.fail(refusal_errno(s.setup().role, err->code),
               fmt::format("{}: {}{}", agent::error_code_name(err->code), err->message,
                           refusal_hint(err->code)));
        end_job(e);
    } else {
        s.fail(ECONNREFUSED, "the agent answered with an unexpected message");
        end_job(e);
    }
    settle(e);
}

void Thread::end_job(Entry& e) {
    if (!e.job) return;
    epoll_ctl(epoll_, EPOLL_CTL_DEL, e.job->agent, nullptr);
    (void)sys::close(e.job->agent);
    SecureBuffer& frame = e.job->frame;
    if (frame.valid() && spare_frames_.size() < kSpareFrames) {
        sodium_memzero(frame.data(), e.job->got);  // what was read of the reply: the secrets
        spare_frames_.push_back(std::move(frame));
    }
    e.job.reset();  // wipes the reply (unless its buffer was wiped and kept above)
}

SecureBuffer Thread::take_frame() {
    if (spare_frames_.empty()) return SecureBuffer(agent::length_size + agent::max_frame);
    SecureBuffer frame = std::move(spare_frames_.back());
    spare_frames_.pop_back();
    return frame;
}

// A retired session with nothing left to do: close the anchor (the FIN) and schedule the free.
void Thread::settle(Entry& e) {
    if (!e.retired || e.job || e.connecting || e.flushing || e.retry_at != 0 || e.freed_after != 0)
        return;
    e.in_epoll = false;
    e.session->close_anchor();
    e.freed_after = now_ms() + kFreeDelayMs;
}

void Thread::sweep(std::uint64_t now) {
    retrying_ = false;
    for (auto it = entries_.begin(); it != entries_.end();) {
        Entry& e = *it->second;
        if (e.retry_at != 0) {
            if (now >= e.retry_at) {
                e.retry_at = 0;
                ask_agent(e);
            }
            retrying_ = retrying_ || e.retry_at != 0;
        }
        if (e.job && now > e.job->deadline) {
            e.session->fail(refusal_errno(e.session->setup().role, ErrorCode::timeout),
                            "the agent did not answer in time");
            end_job(e);
            settle(e);
        }
        const bool idle = !e.job && !e.connecting && !e.flushing && e.retry_at == 0;
        if (e.freed_after != 0 && now >= e.freed_after &&
            e.session->users.load(std::memory_order_acquire) == 0) {
            delete e.session;
            it = entries_.erase(it);
            continue;
        }
        if (idle && !e.retired) {  // nothing to wait for: forget it until the next command
            if (e.in_epoll) epoll_ctl(epoll_, EPOLL_CTL_DEL, e.session->anchor(), nullptr);
            it = entries_.erase(it);
            continue;
        }
        ++it;
    }
}

}  // namespace

// A sandboxed process never starts the thread (sys/confined.h): its sessions do this work
// inline, and it starts none.
void await_connect(Session& session) {
    if (confined::active()) return;
    thread().post({Kind::connect, &session});
}

void start_handshake(Session& session) {
    if (confined::active()) return;
    thread().post({Kind::handshake, &session});
}

void await_writable(Session& session) {
    if (confined::active()) return;
    thread().post({Kind::writable, &session});
}

void retire(Session& session) {
    if (confined::active()) return;  // the view stays: the process is sandboxed, soon gone
    thread().post({Kind::retire, &session});
}

void forget(int anchor) {
    if (confined::active()) return;
    thread().forget(anchor);
}

void set_agent_socket(std::string path) {
    thread().set_agent_socket(std::move(path));
}

void before_fork() {
    thread().quiesce();
}

void after_fork_in_parent() {
    thread().resume();
}

void park_for_exit() {
    if (confined::active()) return;
    thread().park();
}

void reset_in_child() {
    Thread* old = &thread();
    // The copy's mutex may have been held by a parent thread at fork: read the socket path
    // without it (this is the only thread now).
    std::string path = old->agent_socket_unlocked();
    old->drop_copies();
    g_abandoned = old;  // kept reachable: its memory may be mid-update
    g_thread = new Thread;
    g_thread->set_agent_socket(std::move(path));
}

}  // namespace sealsock::background
