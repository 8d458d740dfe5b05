// passthrough_probe: calls every entry point libsealsock.so hooks, on plain fds, and prints a
// transcript of each return value and errno. 40-shim-passthrough.sh runs it without and with the
// shim preloaded and requires identical transcripts: with no session registered the shim must be
// invisible (same values, same errnos on failure and success, same EINTR, same signals).
//
// Modes:
//   transcript DIR         the transcript (DIR: a scratch directory)
//   which NAME...          for each NAME, the object RTLD_NEXT resolves it to (proves the hooks
//                          are the ones the program reaches)
//   protected FD PATH      checks the shim's protection of its own fd FD (opened on PATH), set
//                          up by SEALSOCK_TEST_PROTECT_FD=FD; prints ok/FAIL lines
//   exec-child LABEL       prints "exec-child LABEL" (the target of the exec and spawn checks)
//   exit CODE              exits with CODE
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
// The fortify entry points, declared here because this file is built without _FORTIFY_SOURCE
// (a fortified build would call them implicitly; we call them explicitly).
ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags, sockaddr* addr,
                       socklen_t* addrlen);
}

namespace {

// errno is set to this before every call: a hook that touched errno on success would show.
constexpr int kSentinel = ESRCH;
const char* g_self = nullptr;

const char* err_name(int e) {
    if (e == 0) return "0";
    const char* n = strerrorname_np(e);
    return n != nullptr ? n : "?";
}

void report(const char* what, long rv, int e) {
    std::printf("%-44s rv=%ld errno=%s\n", what, rv, err_name(e));
}

#define CALL(what, expr)                    \
    do {                                    \
        errno = kSentinel;                  \
        long rv_ = static_cast<long>(expr); \
        int e_ = errno;                     \
        report(what, rv_, e_);              \
    } while (0)

// Like CALL, but also returns the value for later use.
#define KEEP(var, what, expr)           \
    errno = kSentinel;                  \
    long var = static_cast<long>(expr); \
    report(what, var, errno)

void show_bytes(const char* what, const char* buf, long n) {
    std::printf("%-44s \"%.*s\"\n", what, n > 0 ? static_cast<int>(n) : 0, buf);
}

int fd_flags(int fd) {
    return fcntl(fd, F_GETFD);
}

void flush_all() {
    std::fflush(stdout);
}

int wait_status(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1000;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// --- before any constructor ---------------------------------------------------------------------
// A preinit function runs before every shared library's constructor, the shim's included: these
// calls reach the hooks before the seam's load-time resolution, so they exercise the lazy path
// (another library's constructor calling a hook first). Results are kept and printed later.
struct Early {
    const char* what;
    long rv;
    int err;
};
Early g_early[8];
int g_early_count = 0;

void early_record(const char* what, long rv) {
    if (g_early_count < 8) g_early[g_early_count++] = Early{what, rv, errno};
}

void before_constructors(int, char**, char**) {
    int p[2] = {-1, -1};
    errno = kSentinel;
    early_record("pipe", pipe(p));
    errno = kSentinel;
    early_record("write", write(p[1], "early", 5));
    char buf[8];
    errno = kSentinel;
    early_record("read", read(p[0], buf, sizeof buf));
    errno = kSentinel;
    early_record("fcntl F_GETFD", fcntl(p[0], F_GETFD));
    errno = kSentinel;
    early_record("syscall SYS_getppid > 0", syscall(SYS_getppid) > 0);
    errno = kSentinel;
    early_record("close", close(p[0]));
    errno = kSentinel;
    early_record("close again EBADF", close(p[0]));
    errno = kSentinel;
    early_record("close", close(p[1]));
}
__attribute__((section(".preinit_array"), used)) void (*g_preinit)(int, char**,
                                                                   char**) = before_constructors;

void early() {
    std::puts("== before constructors (preinit)");
    for (int i = 0; i < g_early_count; ++i)
        report(g_early[i].what, g_early[i].rv, g_early[i].err);
}

// --- files -------------------------------------------------------------------------------------
void files(const std::string& dir) {
    std::puts("== files");
    const std::string path = dir + "/file.txt";
    KEEP(fd, "open", open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600));
    CALL("write", write(static_cast<int>(fd), "hello world\n", 12));
    char a[] = "second ";
    char b[] = "line\n";
    iovec out[2] = {{a, 7}, {b, 5}};
    CALL("writev", writev(static_cast<int>(fd), out, 2));
    CALL("lseek", lseek(static_cast<int>(fd), 0, SEEK_SET));
    char buf[64] = {};
    KEEP(n, "read 5", read(static_cast<int>(fd), buf, 5));
    show_bytes("  data", buf, n);
    char c[4];
    char d[4];
    iovec in[2] = {{c, 4}, {d, 4}};
    CALL("readv 4+4", readv(static_cast<int>(fd), in, 2));
    show_bytes("  data", c, 4);
    KEEP(m, "__read_chk", __read_chk(static_cast<int>(fd), buf, 4, sizeof buf));
    show_bytes("  data", buf, m);
    CALL("ioctl FIONREAD (file)", [&] {
        int avail = -1;
        int r = ioctl(static_cast<int>(fd), FIONREAD, &avail);
        return r == 0 ? avail : -100;
    }());
    CALL("ioctl TCGETS (file) ENOTTY", ioctl(static_cast<int>(fd), TCGETS, buf));
    CALL("read to EOF", read(static_cast<int>(fd), buf, sizeof buf));
    CALL("read at EOF", read(static_cast<int>(fd), buf, sizeof buf));
    CALL("read(-1) EBADF", read(-1, buf, 1));
    CALL("write(-1) EBADF", write(-1, buf, 1));
    CALL("readv(-1) EBADF", readv(-1, in, 2));
    CALL("writev(-1) EBADF", writev(-1, out, 2));
    CALL("__read_chk(-1) EBADF", __read_chk(-1, buf, 1, sizeof buf));

    KEEP(ro, "open O_RDONLY", open(path.c_str(), O_RDONLY));
    CALL("write to O_RDONLY EBADF", write(static_cast<int>(ro), "x", 1));
    CALL("fcntl F_GETFL accmode", fcntl(static_cast<int>(ro), F_GETFL) & O_ACCMODE);
    CALL("fcntl F_SETFD", fcntl(static_cast<int>(ro), F_SETFD, FD_CLOEXEC));
    CALL("fcntl F_GETFD", fcntl(static_cast<int>(ro), F_GETFD));
    CALL("fcntl64 F_SETFD 0", fcntl64(static_cast<int>(ro), F_SETFD, 0));
    CALL("fcntl64 F_GETFD", fcntl64(static_cast<int>(ro), F_GETFD));
    CALL("fcntl F_DUPFD_CLOEXEC >= 50", fcntl(static_cast<int>(ro), F_DUPFD_CLOEXEC, 50));
    CALL("  F_GETFD of 50", fd_flags(50));
    CALL("close 50", close(50));
    flock lk{};
    lk.l_type = F_RDLCK;
    lk.l_whence = SEEK_SET;
    CALL("fcntl F_GETLK", fcntl(static_cast<int>(fd), F_GETLK, &lk));
    CALL("  l_type is F_UNLCK", lk.l_type == F_UNLCK);
    CALL("fcntl(-1) EBADF", fcntl(-1, F_GETFD));
    CALL("fcntl bad cmd EINVAL", fcntl(static_cast<int>(fd), 123456));
    CALL("ioctl(-1) EBADF", ioctl(-1, FIONREAD, buf));

    KEEP(copy, "dup for fdopen", dup(static_cast<int>(ro)));
    errno = kSentinel;
    FILE* f = fdopen(static_cast<int>(copy), "r");
    report("fdopen", f != nullptr, errno);
    if (f != nullptr) {
        char line[64] = {};
        CALL("fgets", std::fgets(line, sizeof line, f) != nullptr);
        show_bytes("  line", line, static_cast<long>(std::strlen(line)) - 1);
        CALL("fclose", std::fclose(f));
    }
    errno = kSentinel;
    f = fdopen(-1, "r");
    report("fdopen(-1) EBADF", f != nullptr, errno);
    CALL("close", close(static_cast<int>(ro)));
    CALL("close", close(static_cast<int>(fd)));
    CALL("close again EBADF", close(static_cast<int>(fd)));
}

// --- pipes, splice, sendfile ------------------------------------------------------------------
void pipes(const std::string& dir) {
    std::puts("== pipes, splice, sendfile");
    int p[2];
    CALL("pipe2 O_NONBLOCK", pipe2(p, O_NONBLOCK));
    char buf[64] = {};
    CALL("read empty nonblocking EAGAIN", read(p[0], buf, sizeof buf));
    CALL("write", write(p[1], "abc", 3));
    CALL("ioctl FIONREAD (pipe)", [&] {
        int avail = -1;
        return ioctl(p[0], FIONREAD, &avail) == 0 ? avail : -100;
    }());
    KEEP(n, "read", read(p[0], buf, sizeof buf));
    show_bytes("  data", buf, n);

    const std::string path = dir + "/splice.txt";
    int file = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    CALL("write file", write(file, "0123456789", 10));
    off64_t off = 2;
    CALL("splice file->pipe", splice(file, &off, p[1], nullptr, 4, 0));
    CALL("  off_in now", off);
    n = read(p[0], buf, sizeof buf);
    show_bytes("  pipe data", buf, n);
    CALL("write pipe", write(p[1], "XY", 2));
    off64_t out_off = 8;
    CALL("splice pipe->file", splice(p[0], nullptr, file, &out_off, 2, 0));
    CALL("pread", pread(file, buf, 10, 0));
    show_bytes("  file", buf, 10);
    off_t soff = 1;
    CALL("sendfile file->pipe", sendfile(p[1], file, &soff, 3));
    CALL("  offset now", soff);
    n = read(p[0], buf, sizeof buf);
    show_bytes("  pipe data", buf, n);
    off64_t soff64 = 5;
    CALL("sendfile64 file->pipe", sendfile64(p[1], file, &soff64, 5));
    n = read(p[0], buf, sizeof buf);
    show_bytes("  pipe data", buf, n);
    CALL("sendfile(-1) EBADF", sendfile(-1, file, nullptr, 1));
    CALL("sendfile64(-1) EBADF", sendfile64(p[1], -1, nullptr, 1));
    CALL("splice file->file EINVAL", splice(file, nullptr, file, nullptr, 1, 0));
    CALL("splice(-1) EBADF", splice(-1, nullptr, p[1], nullptr, 1, 0));
    close(file);

    CALL("close write end", close(p[1]));
    CALL("read EOF", read(p[0], buf, sizeof buf));
    int q[2];
    CALL("pipe", pipe(q));
    CALL("close read end", close(q[0]));
    CALL("write no reader EPIPE", write(q[1], "x", 1));
    close(q[1]);
    close(p[0]);
}

// --- Unix stream sockets ---------------------------------------------------------------------
void unix_sockets() {
    std::puts("== unix socketpair");
    int s[2];
    CALL("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, s));
    char buf[64] = {};
    CALL("send", send(s[0], "ping", 4, 0));
    CALL("recv MSG_PEEK", recv(s[1], buf, 2, MSG_PEEK));
    KEEP(n, "recv", recv(s[1], buf, sizeof buf, 0));
    show_bytes("  data", buf, n);
    CALL("sendto", sendto(s[0], "to", 2, 0, nullptr, 0));
    sockaddr_storage from{};
    socklen_t fromlen = sizeof from;
    CALL("recvfrom",
         recvfrom(s[1], buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fromlen));
    CALL("  fromlen", fromlen);
    char a[] = "two ";
    char b[] = "parts";
    iovec out[2] = {{a, 4}, {b, 5}};
    msghdr msg{};
    msg.msg_iov = out;
    msg.msg_iovlen = 2;
    CALL("sendmsg", sendmsg(s[0], &msg, 0));
    char c[5] = {};
    char d[8] = {};
    iovec in[2] = {{c, 5}, {d, 8}};
    msghdr rmsg{};
    rmsg.msg_iov = in;
    rmsg.msg_iovlen = 2;
    CALL("recvmsg", recvmsg(s[1], &rmsg, 0));
    show_bytes("  part 1", c, 5);
    show_bytes("  part 2", d, 4);
    CALL("writev", writev(s[0], out, 2));
    CALL("readv", readv(s[1], in, 2));
    CALL("send for __recv_chk", send(s[0], "chk", 3, 0));
    CALL("__recv_chk", __recv_chk(s[1], buf, 3, sizeof buf, 0));
    CALL("send for __recvfrom_chk", send(s[0], "chk2", 4, 0));
    fromlen = sizeof from;
    CALL("__recvfrom_chk",
         __recvfrom_chk(s[1], buf, 4, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fromlen));
    CALL("recv MSG_DONTWAIT EAGAIN", recv(s[1], buf, sizeof buf, MSG_DONTWAIT));
    CALL("__recv_chk MSG_DONTWAIT EAGAIN", __recv_chk(s[1], buf, 1, sizeof buf, MSG_DONTWAIT));
    int one = 1;
    CALL("ioctl FIONBIO on", ioctl(s[1], FIONBIO, &one));
    CALL("  F_GETFL has O_NONBLOCK", (fcntl(s[1], F_GETFL) & O_NONBLOCK) != 0);
    CALL("read nonblocking EAGAIN", read(s[1], buf, sizeof buf));
    int zero = 0;
    CALL("ioctl FIONBIO off", ioctl(s[1], FIONBIO, &zero));
    int type = 0;
    socklen_t len = sizeof type;
    CALL("getsockopt SO_TYPE", getsockopt(s[0], SOL_SOCKET, SO_TYPE, &type, &len));
    CALL("  type", type);
    int rcvbuf = 65536;
    CALL("setsockopt SO_RCVBUF", setsockopt(s[0], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf));
    CALL("getsockopt bad option ENOPROTOOPT", getsockopt(s[0], SOL_SOCKET, 9999, &type, &len));
    CALL("setsockopt(-1) EBADF", setsockopt(-1, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf));
    CALL("ioctl FIONREAD (socket)", [&] {
        (void)send(s[0], "12345", 5, 0);
        int avail = -1;
        return ioctl(s[1], FIONREAD, &avail) == 0 ? avail : -100;
    }());
    CALL("read", read(s[1], buf, sizeof buf));
    CALL("shutdown SHUT_WR", shutdown(s[0], SHUT_WR));
    CALL("peer recv EOF", recv(s[1], buf, sizeof buf, 0));
    CALL("shutdown bad how EINVAL", shutdown(s[0], 42));
    CALL("close peer", close(s[1]));
    int t[2];
    CALL("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, t));
    close(t[1]);
    CALL("send MSG_NOSIGNAL EPIPE", send(t[0], "x", 1, MSG_NOSIGNAL));
    CALL("sendmsg MSG_NOSIGNAL EPIPE", sendmsg(t[0], &msg, MSG_NOSIGNAL));
    close(t[0]);
    close(s[0]);
}

void not_sockets(const std::string& dir) {
    std::puts("== ENOTSOCK");
    int p[2];
    (void)pipe(p);
    const std::string path = dir + "/plain";
    int file = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    char buf[8];
    msghdr msg{};
    mmsghdr mm{};
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    socklen_t len = sizeof sin;
    int v = 0;
    socklen_t vl = sizeof v;
    CALL("recv on pipe", recv(p[0], buf, 1, MSG_DONTWAIT));
    CALL("send on pipe", send(p[1], "x", 1, 0));
    CALL("recvfrom on file", recvfrom(file, buf, 1, 0, nullptr, nullptr));
    CALL("sendto on file", sendto(file, "x", 1, 0, nullptr, 0));
    CALL("recvmsg on pipe", recvmsg(p[0], &msg, 0));
    CALL("sendmsg on pipe", sendmsg(p[1], &msg, 0));
    CALL("recvmmsg on file", recvmmsg(file, &mm, 1, 0, nullptr));
    CALL("sendmmsg on file", sendmmsg(file, &mm, 1, 0));
    CALL("connect on file", connect(file, reinterpret_cast<sockaddr*>(&sin), sizeof sin));
    CALL("accept on file", accept(file, reinterpret_cast<sockaddr*>(&sin), &len));
    CALL("accept4 on file", accept4(file, nullptr, nullptr, SOCK_CLOEXEC));
    CALL("shutdown on file", shutdown(file, SHUT_RDWR));
    CALL("getsockopt on file", getsockopt(file, SOL_SOCKET, SO_TYPE, &v, &vl));
    CALL("setsockopt on file", setsockopt(file, SOL_SOCKET, SO_RCVBUF, &v, vl));
    CALL("__recv_chk on pipe", __recv_chk(p[0], buf, 1, sizeof buf, 0));
    CALL("__recvfrom_chk on pipe", __recvfrom_chk(p[0], buf, 1, sizeof buf, 0, nullptr, nullptr));
    close(file);
    close(p[0]);
    close(p[1]);
}

// --- UDP and TCP loopback ----------------------------------------------------------------------
sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

sockaddr_in bound_address(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return a;
}

void udp() {
    std::puts("== UDP loopback");
    KEEP(u, "socket UDP", socket(AF_INET, SOCK_DGRAM, 0));
    const int fd = static_cast<int>(u);
    sockaddr_in self = loopback(0);
    CALL("bind", bind(fd, reinterpret_cast<sockaddr*>(&self), sizeof self));
    self = bound_address(fd);
    char buf[64] = {};
    CALL("recvfrom empty MSG_DONTWAIT EAGAIN",
         recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, nullptr, nullptr));
    CALL("sendto self", sendto(fd, "udp1", 4, 0, reinterpret_cast<sockaddr*>(&self), sizeof self));
    sockaddr_in from{};
    socklen_t fromlen = sizeof from;
    KEEP(n, "recvfrom",
         recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fromlen));
    show_bytes("  data", buf, n);
    CALL("  from is self", from.sin_port == self.sin_port);
    char m0[] = "a";
    char m1[] = "bb";
    char m2[] = "ccc";
    iovec iov[3] = {{m0, 1}, {m1, 2}, {m2, 3}};
    mmsghdr out[3] = {};
    for (int i = 0; i < 3; ++i) {
        out[i].msg_hdr.msg_iov = &iov[i];
        out[i].msg_hdr.msg_iovlen = 1;
        out[i].msg_hdr.msg_name = &self;
        out[i].msg_hdr.msg_namelen = sizeof self;
    }
    CALL("sendmmsg 3", sendmmsg(fd, out, 3, 0));
    char r[3][8] = {};
    iovec riov[3] = {{r[0], 8}, {r[1], 8}, {r[2], 8}};
    mmsghdr in[3] = {};
    for (int i = 0; i < 3; ++i) {
        in[i].msg_hdr.msg_iov = &riov[i];
        in[i].msg_hdr.msg_iovlen = 1;
    }
    CALL("recvmmsg 3", recvmmsg(fd, in, 3, MSG_DONTWAIT, nullptr));
    for (const mmsghdr& h : in)
        CALL("  msg_len", h.msg_len);
    CALL("recvmmsg empty EAGAIN", recvmmsg(fd, in, 3, MSG_DONTWAIT, nullptr));
    CALL("connect UDP", connect(fd, reinterpret_cast<sockaddr*>(&self), sizeof self));
    CALL("send", send(fd, "conn", 4, 0));
    CALL("recv", recv(fd, buf, sizeof buf, 0));
    CALL("write", write(fd, "w", 1));
    CALL("read", read(fd, buf, sizeof buf));
    CALL("close", close(fd));
}

void tcp(const std::string& dir) {
    std::puts("== TCP loopback");
    KEEP(l, "socket listener", socket(AF_INET, SOCK_STREAM, 0));
    const int lfd = static_cast<int>(l);
    sockaddr_in addr = loopback(0);
    CALL("bind", bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
    CALL("accept before listen EINVAL", accept(lfd, nullptr, nullptr));
    CALL("listen", listen(lfd, 8));
    addr = bound_address(lfd);
    KEEP(c, "socket client", socket(AF_INET, SOCK_STREAM, 0));
    const int cfd = static_cast<int>(c);
    CALL("connect", connect(cfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    KEEP(a, "accept", accept(lfd, reinterpret_cast<sockaddr*>(&peer), &plen));
    const int afd = static_cast<int>(a);
    CALL("  peer is client", peer.sin_port == bound_address(cfd).sin_port);
    int one = 1;
    CALL("setsockopt TCP_NODELAY", setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    int nodelay = 0;
    socklen_t len = sizeof nodelay;
    CALL("getsockopt TCP_NODELAY", getsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len));
    CALL("  value", nodelay);
    char buf[64] = {};
    CALL("send", send(cfd, "hello ", 6, 0));
    CALL("write", write(cfd, "tcp", 3));
    CALL("recv MSG_WAITALL 9", recv(afd, buf, 9, MSG_WAITALL));
    show_bytes("  data", buf, 9);
    CALL("server write", write(afd, "back", 4));
    CALL("client read", read(cfd, buf, sizeof buf));

    // sendfile from a file to a TCP socket.
    const std::string path = dir + "/tcp-src";
    int file = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    (void)write(file, "sendfile over tcp", 17);
    off_t off = 0;
    CALL("sendfile file->tcp", sendfile(cfd, file, &off, 17));
    CALL("recv MSG_WAITALL 17", recv(afd, buf, 17, MSG_WAITALL));
    show_bytes("  data", buf, 17);
    close(file);

    KEEP(c2, "socket nonblocking", socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    const int c2fd = static_cast<int>(c2);
    CALL("connect nonblocking EINPROGRESS",
         connect(c2fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
    pollfd pfd{c2fd, POLLOUT, 0};
    CALL("poll writable", poll(&pfd, 1, 5000));
    int soerr = -1;
    len = sizeof soerr;
    CALL("getsockopt SO_ERROR", getsockopt(c2fd, SOL_SOCKET, SO_ERROR, &soerr, &len));
    CALL("  value", soerr);
    KEEP(a2, "accept4 CLOEXEC|NONBLOCK",
         accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    CALL("  FD_CLOEXEC", fd_flags(static_cast<int>(a2)));
    CALL("  O_NONBLOCK", (fcntl(static_cast<int>(a2), F_GETFL) & O_NONBLOCK) != 0);
    CALL("recv nonblocking EAGAIN", recv(static_cast<int>(a2), buf, sizeof buf, 0));
    CALL("accept4 bad flags EINVAL", accept4(lfd, nullptr, nullptr, 0x7fff0000));
    int lflags = fcntl(lfd, F_GETFL);
    CALL("fcntl F_SETFL O_NONBLOCK", fcntl(lfd, F_SETFL, lflags | O_NONBLOCK));
    CALL("accept empty EAGAIN", accept(lfd, nullptr, nullptr));
    CALL("shutdown SHUT_WR", shutdown(cfd, SHUT_WR));
    CALL("server recv EOF", recv(afd, buf, sizeof buf, 0));
    CALL("shutdown(-1) EBADF", shutdown(-1, SHUT_WR));
    close(static_cast<int>(a2));
    close(c2fd);

    // A port with nothing listening: bind a socket, close it, connect there.
    int dead = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in daddr = loopback(0);
    bind(dead, reinterpret_cast<sockaddr*>(&daddr), sizeof daddr);
    daddr = bound_address(dead);
    close(dead);
    int r = socket(AF_INET, SOCK_STREAM, 0);
    CALL("connect refused ECONNREFUSED",
         connect(r, reinterpret_cast<sockaddr*>(&daddr), sizeof daddr));
    CALL("connect(-1) EBADF", connect(-1, reinterpret_cast<sockaddr*>(&daddr), sizeof daddr));
    close(r);
    close(afd);
    close(cfd);
    close(lfd);
}

void event_fd() {
    std::puts("== eventfd");
    KEEP(e, "eventfd nonblocking", eventfd(0, EFD_NONBLOCK));
    const int fd = static_cast<int>(e);
    uint64_t v = 0;
    CALL("read empty EAGAIN", read(fd, &v, sizeof v));
    v = 5;
    CALL("write 5", write(fd, &v, sizeof v));
    v = 0;
    CALL("read", read(fd, &v, sizeof v));
    CALL("  value", static_cast<long>(v));
    CALL("write 4 bytes EINVAL", write(fd, &v, 4));
    CALL("close", close(fd));
}

// --- dup family, close_range, closefrom ---------------------------------------------------------
void dups() {
    std::puts("== dup, dup2, dup3");
    int p[2];
    (void)pipe(p);
    KEEP(d, "dup", dup(p[1]));
    CALL("dup2 -> 60", dup2(p[1], 60));
    CALL("dup3 -> 61 O_CLOEXEC", dup3(p[1], 61, O_CLOEXEC));
    CALL("  F_GETFD 61", fd_flags(61));
    CALL("dup2 same fd", dup2(60, 60));
    CALL("dup3 same fd EINVAL", dup3(60, 60, 0));
    CALL("dup3 bad flags EINVAL", dup3(60, 62, 12345));
    CALL("dup2(-1) EBADF", dup2(-1, 62));
    CALL("dup(-1) EBADF", dup(-1));
    CALL("write via 61", write(61, "dup", 3));
    char buf[8];
    CALL("read", read(p[0], buf, sizeof buf));
    CALL("dup2 over open 60", dup2(p[0], 60));
    for (int fd : {static_cast<int>(d), 60, 61, p[0], p[1]})
        close(fd);
}

void ranges() {
    std::puts("== close_range, closefrom");
    int p[2];
    (void)pipe(p);
    for (int fd = 100; fd <= 106; ++fd)
        (void)dup2(p[0], fd);
    CALL("close_range 101..103", close_range(101, 103, 0));
    for (int fd = 100; fd <= 106; ++fd)
        CALL("  F_GETFD", fd_flags(fd));
    CALL("close_range 104..105 CLOEXEC", close_range(104, 105, CLOSE_RANGE_CLOEXEC));
    for (int fd = 104; fd <= 106; ++fd)
        CALL("  F_GETFD", fd_flags(fd));
    CALL("close_range first>last EINVAL", close_range(10, 5, 0));
    CALL("close_range bad flags EINVAL", close_range(200, 201, 0x40000000));
    CALL("close_range empty", close_range(500, 600, 0));
    errno = kSentinel;
    closefrom(100);
    report("closefrom 100", 0, errno);
    for (int fd = 100; fd <= 106; ++fd)
        CALL("  F_GETFD", fd_flags(fd));
    (void)dup2(p[0], 200);
    (void)dup2(p[0], 201);
    CALL("syscall close_range 200..201", syscall(SYS_close_range, 200, 201, 0));
    CALL("  F_GETFD 200", fd_flags(200));
    close(p[0]);
    close(p[1]);
}

// --- syscall() ------------------------------------------------------------------------------
void raw_syscalls() {
    std::puts("== syscall()");
    int p[2];
    (void)pipe(p);
    CALL("syscall SYS_write", syscall(SYS_write, p[1], "sys", 3));
    char buf[8] = {};
    KEEP(n, "syscall SYS_read", syscall(SYS_read, p[0], buf, sizeof buf));
    show_bytes("  data", buf, n);
    int d = dup(p[0]);
    CALL("syscall SYS_close", syscall(SYS_close, d));
    CALL("  F_GETFD after", fd_flags(d));
    CALL("syscall SYS_close(-1) EBADF", syscall(SYS_close, -1));
    CALL("syscall SYS_dup3", syscall(SYS_dup3, p[0], 70, O_CLOEXEC));
    CALL("  F_GETFD 70", fd_flags(70));
    CALL("syscall SYS_dup2", syscall(SYS_dup2, p[0], 71));
    close(70);
    close(71);
    CALL("syscall SYS_getpid matches", syscall(SYS_getpid) == getpid());
    CALL("syscall unknown ENOSYS", syscall(100000, 1, 2, 3, 4, 5, 6));
    void* map = reinterpret_cast<void*>(
        syscall(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    report("syscall SYS_mmap (six words)", map != MAP_FAILED, 0);
    if (map != MAP_FAILED) CALL("syscall SYS_munmap", syscall(SYS_munmap, map, 4096));
    CALL("syscall io_uring_setup(0, NULL)", syscall(SYS_io_uring_setup, 0, nullptr));
    CALL("syscall SYS_fcntl F_GETFD", syscall(SYS_fcntl, p[0], F_GETFD));
    close(p[0]);
    close(p[1]);
}

// --- signals: write() from a handler, EINTR ----------------------------------------------------
int g_signal_pipe = -1;
void on_usr1(int) {
    const int saved = errno;
    (void)write(g_signal_pipe, "sig!", 4);
    (void)send(g_signal_pipe, "x", 1, MSG_DONTWAIT);  // ENOTSOCK on a pipe, from a handler
    errno = saved;
}
void on_alarm(int) {}

void signals() {
    std::puts("== signals");
    int p[2];
    (void)pipe(p);
    g_signal_pipe = p[1];
    struct sigaction sa {};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, nullptr);
    CALL("raise SIGUSR1 (handler writes)", raise(SIGUSR1));
    char buf[8] = {};
    KEEP(n, "read what the handler wrote", read(p[0], buf, sizeof buf));
    show_bytes("  data", buf, n);

    struct sigaction alarm_sa {};
    alarm_sa.sa_handler = on_alarm;  // no SA_RESTART: blocking calls fail with EINTR
    sigaction(SIGALRM, &alarm_sa, nullptr);
    itimerval t{};
    t.it_value.tv_usec = 50000;
    setitimer(ITIMER_REAL, &t, nullptr);
    CALL("blocking read interrupted EINTR", read(p[0], buf, sizeof buf));
    int s[2];
    (void)socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    setitimer(ITIMER_REAL, &t, nullptr);
    CALL("blocking recv interrupted EINTR", recv(s[0], buf, sizeof buf, 0));
    setitimer(ITIMER_REAL, &t, nullptr);
    mmsghdr mm{};
    iovec iov{buf, sizeof buf};
    mm.msg_hdr.msg_iov = &iov;
    mm.msg_hdr.msg_iovlen = 1;
    CALL("blocking recvmsg interrupted EINTR", recvmsg(s[0], &mm.msg_hdr, 0));
    alarm_sa.sa_flags = SA_RESTART;  // with SA_RESTART the read resumes and sees the data
    sigaction(SIGALRM, &alarm_sa, nullptr);
    setitimer(ITIMER_REAL, &t, nullptr);
    pid_t writer = fork();
    if (writer == 0) {
        usleep(200000);
        (void)write(p[1], "late", 4);
        _exit(0);
    }
    CALL("SA_RESTART read resumes", read(p[0], buf, sizeof buf));
    CALL("  writer exit", wait_status(writer));
    signal(SIGALRM, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    for (int fd : {p[0], p[1], s[0], s[1]})
        close(fd);
}

// --- fork, vfork, exec family, posix_spawn ---------------------------------------------------
char* const* child_argv(const char* label) {
    static char* argv[4];
    argv[0] = const_cast<char*>(g_self);
    argv[1] = const_cast<char*>("exec-child");
    argv[2] = const_cast<char*>(label);
    argv[3] = nullptr;
    return argv;
}

template <typename Exec>
void exec_in_child(const char* what, Exec exec) {
    flush_all();
    pid_t pid = fork();
    if (pid == 0) {
        exec();
        _exit(120);
    }
    CALL(what, wait_status(pid));
}

void processes() {
    std::puts("== fork, vfork, exec, posix_spawn");
    int p[2];
    (void)pipe(p);
    flush_all();
    errno = kSentinel;
    pid_t pid = fork();
    if (pid == 0) {
        (void)write(p[1], "child", 5);
        _exit(3);
    }
    report("fork", pid > 0, errno);
    CALL("  child exit", wait_status(pid));
    char buf[8] = {};
    KEEP(n, "  read from child", read(p[0], buf, sizeof buf));
    show_bytes("  data", buf, n);
    flush_all();
    errno = kSentinel;
    pid = vfork();
    if (pid == 0) _exit(4);
    report("vfork", pid > 0, errno);
    CALL("  child exit", wait_status(pid));
    flush_all();
    pid = vfork();
    if (pid == 0) {
        char* argv[] = {const_cast<char*>(g_self), const_cast<char*>("exit"),
                        const_cast<char*>("5"), nullptr};
        execv(g_self, argv);
        _exit(121);
    }
    CALL("vfork + execv, child exit", wait_status(pid));

    exec_in_child("execve", [] { execve(g_self, child_argv("execve"), environ); });
    exec_in_child("execv", [] { execv(g_self, child_argv("execv")); });
    exec_in_child("execvp", [] { execvp(g_self, child_argv("execvp")); });
    exec_in_child("execvpe", [] { execvpe(g_self, child_argv("execvpe"), environ); });
    exec_in_child("execl", [] { execl(g_self, g_self, "exec-child", "execl", nullptr); });
    exec_in_child("execlp", [] { execlp(g_self, g_self, "exec-child", "execlp", nullptr); });
    exec_in_child("execle",
                  [] { execle(g_self, g_self, "exec-child", "execle", nullptr, environ); });
    exec_in_child("fexecve", [] {
        int fd = open(g_self, O_RDONLY | O_CLOEXEC);
        fexecve(fd, child_argv("fexecve"), environ);
    });
    exec_in_child("execveat",
                  [] { execveat(AT_FDCWD, g_self, child_argv("execveat"), environ, 0); });
    CALL("execve missing ENOENT", execve("/nonexistent/x", child_argv("x"), environ));
    CALL("execl missing ENOENT", execl("/nonexistent/x", "x", nullptr));
    CALL("execlp missing ENOENT", execlp("sealsock-no-such-program", "x", nullptr));

    // The child prints, so each spawn is reported after the child has finished.
    flush_all();
    pid_t spawned = -1;
    errno = kSentinel;
    int rc = posix_spawn(&spawned, g_self, nullptr, nullptr, child_argv("posix_spawn"), environ);
    int e = errno;
    int status = wait_status(spawned);
    report("posix_spawn", rc, e);
    CALL("  child exit", status);
    flush_all();
    errno = kSentinel;
    rc = posix_spawnp(&spawned, g_self, nullptr, nullptr, child_argv("posix_spawnp"), environ);
    e = errno;
    status = wait_status(spawned);
    report("posix_spawnp", rc, e);
    CALL("  child exit", status);
    CALL("posix_spawn missing (returns ENOENT)",
         posix_spawn(&spawned, "/nonexistent/x", nullptr, nullptr, child_argv("x"), environ));
    close(p[0]);
    close(p[1]);
}

void resolver() {
    std::puts("== getaddrinfo");
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    CALL("getaddrinfo localhost", getaddrinfo("localhost", "80", &hints, &res));
    if (res != nullptr) {
        char text[INET_ADDRSTRLEN] = {};
        const auto* sin = reinterpret_cast<const sockaddr_in*>(res->ai_addr);
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
        std::printf("%-44s %s:%d\n", "  first address", text, ntohs(sin->sin_port));
        freeaddrinfo(res);
    }
    res = nullptr;
    CALL("getaddrinfo numeric", getaddrinfo("127.0.0.1", nullptr, nullptr, &res));
    if (res != nullptr) freeaddrinfo(res);
    CALL("getaddrinfo(NULL, NULL) EAI_NONAME",
         getaddrinfo(nullptr, nullptr, nullptr, &res) == EAI_NONAME);
}

int transcript(const std::string& dir) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    early();
    files(dir);
    pipes(dir);
    unix_sockets();
    not_sockets(dir);
    udp();
    tcp(dir);
    event_fd();
    dups();
    ranges();
    raw_syscalls();
    signals();
    processes();
    resolver();
    std::puts("== end");
    return 0;
}

int which(int argc, char** argv) {
    for (int i = 2; i < argc; ++i) {
        void* sym = dlsym(RTLD_NEXT, argv[i]);
        Dl_info info{};
        const char* object = "unresolved";
        if (sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname != nullptr) {
            const char* slash = std::strrchr(info.dli_fname, '/');
            object = slash != nullptr ? slash + 1 : info.dli_fname;
        }
        std::printf("%s %s\n", argv[i], object);
    }
    return 0;
}

// --- the shim's own fd ---------------------------------------------------------------------------
int g_failures = 0;
void expect(bool ok, const char* what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) ++g_failures;
}

bool is_open(int fd) {
    return fcntl(fd, F_GETFD) >= 0;
}

// The fd (other than `except`) open on `path`, or -1. Scans /proc/self/fd.
int find_fd_on(const char* path, int except) {
    DIR* dir = opendir("/proc/self/fd");
    if (dir == nullptr) return -1;
    int found = -1;
    while (dirent* e = readdir(dir)) {
        if (e->d_name[0] == '.') continue;
        const int fd = std::atoi(e->d_name);
        char link[4096] = {};
        std::string p = std::string("/proc/self/fd/") + e->d_name;
        ssize_t n = readlink(p.c_str(), link, sizeof link - 1);
        if (n > 0 && std::strcmp(link, path) == 0 && fd != except && fd != dirfd(dir)) found = fd;
    }
    closedir(dir);
    return found;
}

int protected_fd(int own, const char* path) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    expect(is_open(own), "the shim's fd is open at start");
    errno = 0;
    expect(close(own) == -1 && errno == EBADF, "close(own) answers EBADF");
    expect(is_open(own), "  and leaves it open");
    errno = 0;
    expect(syscall(SYS_close, own) == -1 && errno == EBADF,
           "syscall(SYS_close, own) answers EBADF");
    expect(is_open(own), "  and leaves it open");

    int p[2];
    (void)pipe(p);
    (void)dup2(p[0], own - 1);
    (void)dup2(p[0], own + 1);
    expect(close_range(3, ~0U, 0) == 0, "close_range(3, ~0) succeeds");
    expect(is_open(own), "  own fd still open");
    expect(!is_open(own - 1) && !is_open(own + 1) && !is_open(p[0]), "  fds around it closed");

    (void)pipe(p);
    (void)dup2(p[0], own + 5);
    expect(syscall(SYS_close_range, 3, ~0U, 0) == 0, "syscall(SYS_close_range, 3, ~0) succeeds");
    expect(is_open(own) && !is_open(own + 5) && !is_open(p[0]), "  own fd kept, others closed");

    (void)pipe(p);
    (void)dup2(p[0], own + 7);
    closefrom(3);
    expect(is_open(own) && !is_open(own + 7) && !is_open(p[0]), "closefrom(3) keeps own fd only");

    expect(close_range(static_cast<unsigned>(own), static_cast<unsigned>(own), 0) == 0,
           "close_range(own, own) succeeds");
    expect(is_open(own), "  own fd still open");
    const int flags_before = fcntl(own, F_GETFD);
    expect(close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0, "close_range CLOEXEC succeeds");
    expect(fcntl(own, F_GETFD) == flags_before, "  own fd flags untouched");

    // dup2 onto the shim's number: the program gets exactly its dup2; the shim's file moves.
    (void)pipe(p);
    expect(dup2(p[1], own) == own, "dup2(pipe, own) returns own");
    expect(write(own, "x", 1) == 1, "  own number now writes to the program's pipe");
    char c = 0;
    expect(read(p[0], &c, 1) == 1 && c == 'x', "  the pipe received it");
    const int moved = find_fd_on(path, own);
    expect(moved >= 0 && moved != own, "  the shim's file is still open elsewhere");
    expect(moved >= 0 && (fcntl(moved, F_GETFD) & FD_CLOEXEC) != 0, "  at a close-on-exec fd");
    std::printf("     (moved to a number %s 64)\n", moved > 64 ? "above" : "at or below");
    expect(close(own) == 0, "close(own) is the program's own close now");
    expect(close(moved) == -1 && errno == EBADF, "close(moved) answers EBADF");
    closefrom(3);
    expect(is_open(moved), "closefrom(3) keeps the moved fd");

    int q[2];
    (void)pipe(q);
    expect(dup3(q[1], moved, O_CLOEXEC) == moved, "dup3 onto the moved fd returns it");
    const int moved_again = find_fd_on(path, -1);
    expect(moved_again >= 0 && moved_again != moved, "  the shim's file moved again");
    expect(dup2(-1, moved_again) == -1 && errno == EBADF, "failed dup2(-1, own) reports EBADF");
    const int after_failed = find_fd_on(path, -1);
    expect(after_failed >= 0 && after_failed != moved_again && !is_open(moved_again),
           "  the shim's file moved, and the vacated number is closed again");
    return g_failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    g_self = "/proc/self/exe";
    static char self_path[4096];
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n > 0) g_self = self_path;
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "transcript" && argc == 3) return transcript(argv[2]);
    if (mode == "which") return which(argc, argv);
    if (mode == "protected" && argc == 4) return protected_fd(std::atoi(argv[2]), argv[3]);
    if (mode == "exec-child" && argc == 3) {
        std::printf("%-44s %s\n", "  exec-child", argv[2]);
        return 0;
    }
    if (mode == "exit" && argc == 3) return std::atoi(argv[2]);
    std::fprintf(stderr, "usage: %s transcript DIR | which NAME... | protected FD PATH\n", argv[0]);
    return 2;
}
