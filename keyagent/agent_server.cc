#include "keyagent/agent_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "keyagent/handshake.h"
#include "keyagent/log.h"
#include "keyagent/workers.h"

namespace sealsock::keyagent {
namespace {

using Clock = std::chrono::steady_clock;
using agent::ErrorCode;
using agent::ErrorReply;
using agent::Message;
using agent::MessageType;

constexpr std::size_t max_queued_fds = 64;
constexpr std::size_t input_capacity = 2 * (agent::length_size + agent::max_frame);

// What an epoll event points at.
struct Source {
    enum class Kind { listener, wake, client, task } kind;
};

struct Client : Source {
    int fd = -1;
    pid_t pid = 0;
    std::vector<std::uint8_t> input;  // wiped as frames are consumed (unlock carries a passphrase)
    std::deque<int> fds;              // descriptors received, waiting for their handshake frame
    unsigned in_flight = 0;
    bool closed = false;
    Client() : Source{Kind::client} {}
    ~Client() {
        sodium_memzero(input.data(), input.size());
        for (int fd_ : fds)
            ::close(fd_);
    }
};

struct Task : Source {
    std::shared_ptr<Client> client;
    std::uint64_t request_id = 0;
    int fd = -1;
    std::string peer;  // address, for logs
    std::unique_ptr<Handshake> handshake;
    std::multimap<Clock::time_point, Task*>::iterator timer;
    bool registered = false;      // in epoll
    bool on_worker = false;       // a worker owns the handshake right now
    bool expire_pending = false;  // its deadline passed while on a worker
    Task() : Source{Kind::task} {}
};

std::string executable_of(pid_t pid) {
    char buf[4096];
    const std::string link = "/proc/" + std::to_string(pid) + "/exe";
    const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// "ADDRESS:PORT" of a connected TCP socket, for logs ("?" if `fd` is not one).
std::string tcp_peer(int fd) {
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return "?";
    sockaddr_storage ss{};
    len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        return fmt::format("{}:{}", host, ntohs(a->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        return fmt::format("[{}]:{}", host, ntohs(a->sin6_port));
    }
    return "?";
}

Status prepare_socket_directory(const std::string& path) {
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return make_error("cannot create " + dir + ": " + std::strerror(errno));
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return make_error(dir + " is not a directory");
    if (st.st_uid != ::geteuid())
        return make_error("socket directory " + dir + " belongs to another user");
    if ((st.st_mode & 077) != 0)
        return make_error("socket directory " + dir + " is open to other users (mode " +
                          fmt::format("{:o}", st.st_mode & 0777) + "): chmod 700 it");
    return {};
}

Result<int> bind_socket(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return make_error("socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
    // A live agent answers on the path; a stale socket file refuses and is replaced.
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        ::close(fd);
        return make_error("an agent is already running at " + path);
    }
    if (errno == ECONNREFUSED) ::unlink(path.c_str());
    const mode_t old = ::umask(0177);
    const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::umask(old);
    // A server sealing a burst of accepted connections asks for that many handshakes at once.
    if (rc != 0 || ::listen(fd, SOMAXCONN) != 0) {
        const int err = errno;
        ::close(fd);
        return make_error("cannot listen on " + path + ": " + std::strerror(err));
    }
    return fd;
}

}  // namespace

struct AgentServer::Impl {
    ServerOptions options;
    std::unique_ptr<IdentityStore> store;
    // TLS contexts built from the store's credentials, dropped whenever the store changes.
    ContextCache contexts;
    std::uint64_t contexts_generation = 0;
    // Every reply is encoded here and wiped after it is sent: guarded, locked memory, allocated
    // on first use (after any fork: a child does not inherit memory locks) rather than per reply
    // (mmap, mprotect, mlock and munmap of 64 KiB cost a tenth of the agent's CPU per handshake).
    SecureBuffer reply_frame;
    int epoll_fd = -1;
    int listen_fd = -1;
    int wake_fd = -1;
    ino_t socket_inode = 0;
    Source listener{Source::Kind::listener};
    Source wake{Source::Kind::wake};
    std::unique_ptr<WorkerPool> workers;
    std::unordered_map<Client*, std::shared_ptr<Client>> clients;
    std::unordered_map<Task*, std::unique_ptr<Task>> tasks;
    // Clients dropped and tasks finished during one batch of events stay allocated until the
    // batch is done, so a later event in the same batch can never reach freed (or reused) memory.
    std::vector<std::shared_ptr<Client>> dropped_clients;
    std::vector<std::unique_ptr<Task>> finished_tasks;
    std::multimap<Clock::time_point, Task*> timers;
    std::atomic<bool> stopping{false};
    Clock::time_point lock_at = Clock::time_point::max();
    Clock::time_point next_reload = Clock::now();

    ~Impl();
    int run();
    void arm(Source* s, int fd, std::uint32_t events, bool add);
    void accept_clients();
    void on_client(Client& c, std::uint32_t events);
    void read_client(Client& c);
    void process_frames(Client& c);
    void drop_client(Client& c, const std::string& why);
    void send_message(Client& c, const Message& m);
    void reply_error(Client& c, std::uint64_t id, ErrorCode code, const std::string& message);
    void dispatch(Client& c, Message& m);
    void on_handshake(Client& c, Message& m);
    void on_lock(Client& c, Message& m);
    void on_unlock(Client& c, Message& m);
    void on_status(Client& c, Message& m);
    void on_stop(Client& c, Message& m);
    void submit(Task& t);
    void on_completions();
    void finish(Task& t);
    void expire_tasks(Clock::time_point now);
    void housekeeping(Clock::time_point now);
    int next_timeout_ms(Clock::time_point now) const;
    void sync_contexts();
};

AgentServer::Impl::~Impl() {
    workers.reset();  // joins: no handshake is touched after this
    for (auto& [p, t] : tasks)
        ::close(t->fd);
    for (auto& [p, c] : clients)
        ::close(c->fd);
    if (listen_fd >= 0) {
        // Remove the socket only if it is still ours (a new agent may have replaced it).
        struct stat st {};
        if (::stat(options.socket_path.c_str(), &st) == 0 && st.st_ino == socket_inode)
            ::unlink(options.socket_path.c_str());
        ::close(listen_fd);
    }
    if (wake_fd >= 0) ::close(wake_fd);
    if (epoll_fd >= 0) ::close(epoll_fd);
}

void AgentServer::Impl::arm(Source* s, int fd, std::uint32_t events, bool add) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = s;
    ::epoll_ctl(epoll_fd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

void AgentServer::Impl::accept_clients() {
    for (;;) {
        const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) return;
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
            cred.uid != ::geteuid()) {
            log("refused a connection from uid {} (pid {}): this agent serves uid {} only",
                cred.uid, cred.pid, ::geteuid());
            ::close(fd);
            continue;
        }
        if (clients.size() >= options.max_clients) {
            log("refused a connection from pid {}: {} clients already connected", cred.pid,
                clients.size());
            ::close(fd);
            continue;
        }
        auto c = std::make_shared<Client>();
        c->fd = fd;
        c->pid = cred.pid;
        c->input.reserve(input_capacity);
        arm(c.get(), fd, EPOLLIN | EPOLLRDHUP, true);
        clients.emplace(c.get(), std::move(c));
    }
}

void AgentServer::Impl::drop_client(Client& c, const std::string& why) {
    if (!why.empty()) log("dropped client pid {}: {}", c.pid, why);
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.closed = true;
    // Running handshakes keep the Client alive until they finish; the graveyard keeps it alive
    // until the current batch of events is done.
    auto it = clients.find(&c);
    dropped_clients.push_back(std::move(it->second));
    clients.erase(it);
}

void AgentServer::Impl::on_client(Client& c, std::uint32_t events) {
    if ((events & EPOLLIN) != 0) read_client(c);
    if (c.closed) return;
    if ((events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) != 0 && (events & EPOLLIN) == 0)
        drop_client(c, "");
}

void AgentServer::Impl::read_client(Client& c) {
    for (;;) {
        const std::size_t old = c.input.size();
        if (old == input_capacity) return drop_client(c, "sent more than a frame without reading");
        c.input.resize(input_capacity);
        iovec iov{c.input.data() + old, input_capacity - old};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(c.fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        c.input.resize(old + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
        for (cmsghdr* h = CMSG_FIRSTHDR(&msg); n > 0 && h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
            const std::size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int fd = -1;
                std::memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
                c.fds.push_back(fd);
            }
        }
        if ((msg.msg_flags & MSG_CTRUNC) != 0 || c.fds.size() > max_queued_fds)
            return drop_client(c, "passed more descriptors than requests");
        if (n == 0) return drop_client(c, "");
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            return drop_client(c, std::strerror(errno));
        }
        process_frames(c);
        if (c.closed) return;
    }
}

void AgentServer::Impl::process_frames(Client& c) {
    while (!c.closed && c.input.size() >= agent::length_size) {
        auto length = agent::frame_length(ByteView(c.input).first(agent::length_size));
        if (!length) return drop_client(c, "malformed frame: " + length.error().message);
        const std::size_t total = agent::length_size + length.value();
        if (c.input.size() < total) return;
        const ByteView body = ByteView(c.input).subspan(agent::length_size, length.value());
        auto message = agent::decode(body);
        if (message) {
            dispatch(c, message.value());
        } else {
            Reader r(body.subspan(2));
            std::uint64_t id = 0;
            static_cast<void>(r.read_u64(id));
            reply_error(c, id, ErrorCode::bad_request,
                        "malformed request: " + message.error().message);
        }
        if (c.closed) return;
        sodium_memzero(c.input.data(), total);
        c.input.erase(c.input.begin(), c.input.begin() + static_cast<std::ptrdiff_t>(total));
    }
}

void AgentServer::Impl::dispatch(Client& c, Message& m) {
    using Handler = void (Impl::*)(Client&, Message&);
    static constexpr struct {
        MessageType type;
        Handler handler;
    } table[] = {
        {MessageType::handshake, &Impl::on_handshake}, {MessageType::lock, &Impl::on_lock},
        {MessageType::unlock, &Impl::on_unlock},       {MessageType::status, &Impl::on_status},
        {MessageType::stop, &Impl::on_stop},
    };
    for (const auto& entry : table)
        if (entry.type == m.type) return (this->*entry.handler)(c, m);
    reply_error(c, m.request_id, ErrorCode::bad_request, "not a request the agent serves");
}

void AgentServer::Impl::send_message(Client& c, const Message& m) {
    if (c.closed) return;
    if (!reply_frame.valid()) reply_frame = SecureBuffer(agent::length_size + agent::max_frame);
    SecureBuffer& frame = reply_frame;
    const std::size_t n = frame.valid() ? agent::encode(m, frame.span()) : 0;
    if (n == 0) return drop_client(c, "could not encode a reply");
    // Replies are small and clients wait for them: a client whose socket is full is not reading.
    const ssize_t w = ::send(c.fd, frame.data(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
    sodium_memzero(frame.data(), n);  // a handshake_ok carries the traffic secrets
    if (w != static_cast<ssize_t>(n)) drop_client(c, "client is not reading its replies");
}

void AgentServer::Impl::reply_error(Client& c, std::uint64_t id, ErrorCode code,
                                    const std::string& message) {
    send_message(c, Message{MessageType::error, id, ErrorReply{code, message}});
}

void AgentServer::Impl::on_handshake(Client& c, Message& m) {
    auto& request = std::get<agent::HandshakeRequest>(m.body);
    if (c.fds.empty())
        return reply_error(c, m.request_id, ErrorCode::not_a_socket,
                           "the handshake request carried no socket");
    const int fd = c.fds.front();
    c.fds.pop_front();
    const std::string peer = tcp_peer(fd);
    auto refuse = [&](ErrorCode code, const std::string& why) {
        ::close(fd);
        log("refused a handshake for pid {}: {}", c.pid, why);
        reply_error(c, m.request_id, code, why);
    };
    if (tasks.size() >= options.max_in_flight)
        return refuse(ErrorCode::busy, "too many handshakes in flight; try again");
    const std::string program = executable_of(c.pid);
    auto resolved = store->resolve(request.identity, program);
    if (auto* e = std::get_if<ErrorReply>(&resolved)) return refuse(e->code, e->message);
    const auto& cred = std::get<Credentials>(resolved);
    HandshakeSetup setup{request, cred.certificate, cred.chain, cred.key, cred.trust, cred.name};
    sync_contexts();
    auto prepared = Handshake::prepare(fd, setup, &contexts);
    if (auto* e = std::get_if<ErrorReply>(&prepared)) return refuse(e->code, e->message);

    auto t = std::make_unique<Task>();
    t->client = clients.at(&c);
    t->request_id = m.request_id;
    t->fd = fd;
    t->peer = peer;
    t->handshake = std::move(std::get<std::unique_ptr<Handshake>>(prepared));
    t->timer =
        timers.emplace(Clock::now() + std::chrono::milliseconds(request.timeout_ms), t.get());
    ++c.in_flight;
    log("handshake started: pid {} ({}) as {} with {}, identity {}", c.pid,
        program.empty() ? "?" : program, request.role == agent::Role::client ? "client" : "server",
        peer, cred.name);
    Task& task = *t;
    tasks.emplace(t.get(), std::move(t));
    submit(task);
}

// Drops cached TLS contexts once the store has changed: a locked key must not stay alive in a
// context, and a reloaded certificate or trust file must be used from the next handshake on.
void AgentServer::Impl::sync_contexts() {
    if (store->generation() == contexts_generation) return;
    contexts.clear();
    contexts_generation = store->generation();
}

void AgentServer::Impl::on_lock(Client& c, Message& m) {
    store->lock();
    sync_contexts();
    lock_at = Clock::time_point::max();
    log("keys locked on request of pid {}", c.pid);
    send_message(c, Message{MessageType::ok, m.request_id, agent::Empty{}});
}

void AgentServer::Impl::on_unlock(Client& c, Message& m) {
    auto& request = std::get<agent::UnlockRequest>(m.body);
    const Status s = store->unlock(request.passphrase.view());
    sync_contexts();
    if (!s) {
        log("unlock refused for pid {}: {}", c.pid, s.error().message);
        return reply_error(c, m.request_id, ErrorCode::bad_passphrase, s.error().message);
    }
    if (options.lifetime_seconds != 0)
        lock_at = Clock::now() + std::chrono::seconds(options.lifetime_seconds);
    log("keys unlocked by pid {}", c.pid);
    send_message(c, Message{MessageType::ok, m.request_id, agent::Empty{}});
}

void AgentServer::Impl::on_status(Client& c, Message& m) {
    agent::StatusReply status;
    status.locked = store->locked();
    status.in_flight = static_cast<std::uint32_t>(tasks.size());
    status.identities = store->describe();
    send_message(c, Message{MessageType::status_reply, m.request_id, std::move(status)});
}

void AgentServer::Impl::on_stop(Client& c, Message& m) {
    log("stopping on request of pid {}", c.pid);
    send_message(c, Message{MessageType::ok, m.request_id, agent::Empty{}});
    stopping = true;
}

void AgentServer::Impl::submit(Task& t) {
    t.on_worker = true;
    workers->submit(&t, t.handshake.get());
}

void AgentServer::Impl::on_completions() {
    std::uint64_t ignored = 0;
    while (::read(wake_fd, &ignored, sizeof ignored) > 0) {
    }
    for (const auto& done : workers->take_completions()) {
        Task& t = *static_cast<Task*>(done.job);
        t.on_worker = false;
        if (t.expire_pending) t.handshake->expire();
        if (t.expire_pending || done.want == Handshake::Want::done) {
            finish(t);
            continue;
        }
        const std::uint32_t events =
            (done.want == Handshake::Want::read ? EPOLLIN : EPOLLOUT) | EPOLLONESHOT;
        arm(&t, t.fd, events, !t.registered);
        t.registered = true;
    }
}

void AgentServer::Impl::finish(Task& t) {
    // The program still holds this socket's open file description: closing our descriptor would
    // not remove it from the epoll set, so remove it explicitly first.
    if (t.registered) ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, t.fd, nullptr);
    ::close(t.fd);
    timers.erase(t.timer);
    Client& c = *t.client;
    --c.in_flight;
    if (t.handshake->succeeded()) {
        agent::HandshakeReply reply = t.handshake->take_reply();
        log("handshake done: pid {} with {}: peer {}, suite {:04x}", c.pid, t.peer,
            reply.peer.subject, reply.suite);
        send_message(c, Message{MessageType::handshake_ok, t.request_id, std::move(reply)});
    } else {
        const ErrorReply& e = t.handshake->error();
        log("handshake failed: pid {} with {}: {} ({})", c.pid, t.peer, e.message,
            agent::error_code_name(e.code));
        send_message(c, Message{MessageType::error, t.request_id, e});
    }
    auto it = tasks.find(&t);
    finished_tasks.push_back(std::move(it->second));
    tasks.erase(it);
}

void AgentServer::Impl::expire_tasks(Clock::time_point now) {
    while (!timers.empty() && timers.begin()->first <= now) {
        Task& t = *timers.begin()->second;
        if (t.on_worker) {
            t.expire_pending = true;
            // Keep it out of the way of the next timers; it finishes when the worker is done.
            timers.erase(t.timer);
            t.timer = timers.emplace(Clock::time_point::max(), &t);
            continue;
        }
        t.handshake->expire();
        finish(t);
    }
}

void AgentServer::Impl::housekeeping(Clock::time_point now) {
    if (now >= lock_at) {
        store->lock();
        sync_contexts();
        lock_at = Clock::time_point::max();
        log("keys locked: lifetime of {} s ran out", options.lifetime_seconds);
    }
    if (now >= next_reload) {
        for (const auto& problem : store->reload_if_changed())
            log("reload: {}", problem);
        sync_contexts();
        next_reload = now + std::chrono::milliseconds(options.reload_interval_ms);
    }
}

int AgentServer::Impl::next_timeout_ms(Clock::time_point now) const {
    Clock::time_point next = std::min(lock_at, next_reload);
    if (!timers.empty()) next = std::min(next, timers.begin()->first);
    if (next <= now) return 0;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
    return static_cast<int>(std::min<long long>(ms + 1, 60000));
}

int AgentServer::Impl::run() {
    // Threads start here, not in create(): the agent may fork into the background in between.
    const unsigned cores = std::max(1u, static_cast<unsigned>(::sysconf(_SC_NPROCESSORS_ONLN)));
    workers = std::make_unique<WorkerPool>(options.workers != 0 ? options.workers : cores, wake_fd);
    epoll_event events[64];
    while (!stopping) {
        const int n = ::epoll_wait(epoll_fd, events, 64, next_timeout_ms(Clock::now()));
        if (n < 0 && errno != EINTR) {
            log("epoll_wait failed: {}", std::strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            auto* s = static_cast<Source*>(events[i].data.ptr);
            switch (s->kind) {
                case Source::Kind::listener:
                    accept_clients();
                    break;
                case Source::Kind::wake:
                    on_completions();
                    break;
                case Source::Kind::client: {
                    auto* c = static_cast<Client*>(s);
                    if (clients.count(c) != 0) on_client(*c, events[i].events);
                    break;
                }
                case Source::Kind::task: {
                    auto* t = static_cast<Task*>(s);
                    if (tasks.count(t) != 0 && !t->on_worker) submit(*t);
                    break;
                }
            }
        }
        const auto now = Clock::now();
        expire_tasks(now);
        housekeeping(now);
        finished_tasks.clear();
        dropped_clients.clear();
    }
    log("stopped");
    return 0;
}

AgentServer::AgentServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentServer::~AgentServer() = default;

Result<std::unique_ptr<AgentServer>> AgentServer::create(ServerOptions options,
                                                         std::unique_ptr<IdentityStore> store) {
    auto impl = std::make_unique<Impl>();
    impl->options = std::move(options);
    impl->store = std::move(store);
    if (Status s = prepare_socket_directory(impl->options.socket_path); !s) return s.error();
    auto fd = bind_socket(impl->options.socket_path);
    if (!fd) return fd.error();
    impl->listen_fd = fd.value();
    struct stat st {};
    if (::stat(impl->options.socket_path.c_str(), &st) == 0) impl->socket_inode = st.st_ino;
    impl->epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    impl->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (impl->epoll_fd < 0 || impl->wake_fd < 0)
        return make_error(std::string("cannot set up the event loop: ") + std::strerror(errno));
    impl->arm(&impl->listener, impl->listen_fd, EPOLLIN, true);
    impl->arm(&impl->wake, impl->wake_fd, EPOLLIN, true);
    return std::unique_ptr<AgentServer>(new AgentServer(std::move(impl)));
}

int AgentServer::run() {
    return impl_->run();
}

void AgentServer::stop() {
    impl_->stopping = true;
    const std::uint64_t one = 1;
    const ssize_t ignored = ::write(impl_->wake_fd, &one, sizeof one);
    static_cast<void>(ignored);
}

void AgentServer::note_unlocked() {
    if (impl_->options.lifetime_seconds != 0)
        impl_->lock_at = Clock::now() + std::chrono::seconds(impl_->options.lifetime_seconds);
}

}  // namespace sealsock::keyagent
