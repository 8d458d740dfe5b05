#include "keyagent/passphrase.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace sealsock::keyagent {
namespace {

constexpr std::size_t max_passphrase = 1024;

// Reads up to a newline or end of file into guarded memory.
Result<SecureBuffer> read_line(int fd) {
    SecureBuffer buf(max_passphrase);
    if (!buf.valid()) return make_error("out of secure memory");
    std::size_t n = 0;
    while (n < buf.size()) {
        char c = 0;
        const ssize_t r = ::read(fd, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0 || c == '\n') break;
        buf.data()[n++] = static_cast<std::uint8_t>(c);
    }
    if (n > 0 && buf.data()[n - 1] == '\r') --n;
    if (n == 0) return make_error("empty passphrase");
    SecureBuffer out(n);
    if (!out.valid()) return make_error("out of secure memory");
    std::memcpy(out.data(), buf.data(), n);
    return out;
}

Result<SecureBuffer> from_askpass(const char* program, const std::string& prompt) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return make_error("cannot run the askpass program");
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipefd[1], STDOUT_FILENO);
        ::execlp(program, program, prompt.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(pipefd[1]);
    auto line = pid > 0 ? read_line(pipefd[0]) : Result<SecureBuffer>(make_error("fork failed"));
    ::close(pipefd[0]);
    int status = 0;
    if (pid > 0) ::waitpid(pid, &status, 0);
    if (pid > 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
        return make_error(std::string("askpass program ") + program + " failed");
    return line;
}

Result<SecureBuffer> from_terminal(int tty, const std::string& prompt) {
    termios old{};
    ::tcgetattr(tty, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(tty, TCSAFLUSH, &quiet);
    const ssize_t ignored = ::write(tty, prompt.data(), prompt.size());
    static_cast<void>(ignored);
    auto line = read_line(tty);
    ::tcsetattr(tty, TCSAFLUSH, &old);
    const ssize_t ignored2 = ::write(tty, "\n", 1);
    static_cast<void>(ignored2);
    return line;
}

}  // namespace

Result<SecureBuffer> read_passphrase(const std::string& prompt) {
    if (const char* askpass = std::getenv("SEALSOCK_ASKPASS"); askpass != nullptr && *askpass)
        return from_askpass(askpass, prompt);
    if (::isatty(STDIN_FILENO)) {
        const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
        if (tty >= 0) {
            auto r = from_terminal(tty, prompt);
            ::close(tty);
            return r;
        }
    }
    return read_line(STDIN_FILENO);
}

Result<SecureBuffer> read_passphrase_fd(int fd) {
    return read_line(fd);
}

}  // namespace sealsock::keyagent
