// A real TLS peer for the engine test: `openssl s_server` or `openssl s_client` as a child
// process. We type into its stdin (a pipe kept open, so it never sees end of input); its stdout
// and stderr go to files in a private directory, read back whole whenever a check needs them.
//
// Thread-safety: none; one test owns one peer. The process is killed and reaped on destruction.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealsock::engine_test {

using Clock = std::chrono::steady_clock;

// A failed check: thrown so every owner (peer process, sockets, directory) cleans up on the way
// out; the driver prints its message as the scenario's one line.
struct CheckFailure {
    std::string message;
};

[[noreturn]] void fail(std::string message);
void check(bool ok, const std::string& what);
std::string errno_text(std::string_view call);

class PeerProcess {
  public:
    // Starts argv[0] (looked up in PATH) with its output in `dir`/NAME.out and NAME.err.
    PeerProcess(const std::vector<std::string>& argv, const std::string& dir,
                const std::string& name);
    ~PeerProcess();
    PeerProcess(const PeerProcess&) = delete;
    PeerProcess& operator=(const PeerProcess&) = delete;

    // Writes as much of `bytes` into its stdin as the pipe takes now; returns the count.
    std::size_t type(std::string_view bytes);

    // Everything it has written to stdout / stderr so far.
    [[nodiscard]] std::string output() const;
    [[nodiscard]] std::string errors() const;

    // Polls output()+errors() until `needle` appears or `end` passes.
    bool wait_for_text(std::string_view needle, Clock::time_point end) const;

    // Waits until `end` for it to exit; true if it did.
    bool wait_exit(Clock::time_point end);

    // Its command line and output, for a failure report.
    [[nodiscard]] std::string describe() const;

  private:
    pid_t pid_ = 0;
    int stdin_ = -1;
    std::string out_path_;
    std::string err_path_;
    std::string command_;
};

// A directory removed with everything in it when it goes out of scope.
class TempDir {
  public:
    explicit TempDir(const std::string& parent);
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }

  private:
    std::string path_;
};

}  // namespace sealsock::engine_test
