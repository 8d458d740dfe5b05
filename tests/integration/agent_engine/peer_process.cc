#include "peer_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <utility>

extern char** environ;

namespace sealsock::engine_test {

using namespace std::chrono_literals;

void fail(std::string message) {
    throw CheckFailure{std::move(message)};
}

void check(bool ok, const std::string& what) {
    if (!ok) fail(what);
}

std::string errno_text(std::string_view call) {
    return std::string(call) + ": " + std::strerror(errno);
}

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

namespace {

// A new file name prefix per peer, so that two peers in one scenario never share output files.
std::string unique_prefix(const std::string& dir, const std::string& name) {
    static int count = 0;
    return dir + "/" + name + "-" + std::to_string(++count);
}

}  // namespace

PeerProcess::PeerProcess(const std::vector<std::string>& argv, const std::string& dir,
                         const std::string& name) {
    const std::string prefix = unique_prefix(dir, name);
    out_path_ = prefix + ".out";
    err_path_ = prefix + ".err";
    for (const auto& a : argv)
        command_ += (command_.empty() ? "" : " ") + a;
    int in[2];
    if (pipe2(in, O_CLOEXEC) != 0) fail(errno_text("pipe2"));
    stdin_ = in[1];
    if (fcntl(stdin_, F_SETFL, O_NONBLOCK) != 0) fail(errno_text("fcntl"));

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int err = posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    if (err != 0) {
        pid_ = 0;
        fail("cannot start " + argv[0] + ": " + std::strerror(err));
    }
}

PeerProcess::~PeerProcess() {
    if (stdin_ >= 0) close(stdin_);
    if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
}

std::size_t PeerProcess::type(std::string_view bytes) {
    const ssize_t n = write(stdin_, bytes.data(), bytes.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (n < 0) fail(errno_text("write(peer stdin)"));
    return static_cast<std::size_t>(n);
}

std::string PeerProcess::output() const {
    return read_file(out_path_);
}

std::string PeerProcess::errors() const {
    return read_file(err_path_);
}

bool PeerProcess::wait_for_text(std::string_view needle, Clock::time_point end) const {
    while (true) {
        if ((output() + errors()).find(needle) != std::string::npos) return true;
        if (Clock::now() >= end) return false;
        std::this_thread::sleep_for(10ms);
    }
}

bool PeerProcess::wait_exit(Clock::time_point end) {
    while (pid_ > 0) {
        const pid_t r = waitpid(pid_, nullptr, WNOHANG);
        if (r == pid_) {
            pid_ = 0;
            return true;
        }
        if (r < 0 && errno != EINTR) fail(errno_text("waitpid"));
        if (Clock::now() >= end) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

std::string PeerProcess::describe() const {
    std::string out = output();
    // Keep failure reports readable: data we sent is binary.
    for (char& c : out)
        if (static_cast<unsigned char>(c) >= 0x80) c = '.';
    if (out.size() > 4000) out = "..." + out.substr(out.size() - 4000);
    return "---- " + command_ + "\n---- stdout:\n" + out + "\n---- stderr:\n" + errors();
}

TempDir::TempDir(const std::string& parent) {
    std::string tmpl = parent + "/agent_engine.XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) fail(errno_text("mkdtemp " + tmpl));
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

}  // namespace sealsock::engine_test
