// The agent's handshake workers: threads that run one handshake step at a time.
//
// The event loop submits a job when a handshake's socket is ready; a worker runs the step and
// hands the result back through take_completions(), waking the loop by writing to its eventfd.
// Workers block every signal, so signals reach the event loop's thread only.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "keyagent/handshake.h"

namespace sealsock::keyagent {

class WorkerPool {
  public:
    struct Completion {
        void* job;
        Handshake::Want want;
    };

    // `threads` workers (at least one); `wake_fd` is an eventfd the loop polls.
    WorkerPool(unsigned threads, int wake_fd);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // Runs handshake->step() on a worker; `job` comes back in the completion.
    void submit(void* job, Handshake* handshake);
    std::vector<Completion> take_completions();

  private:
    void run();

    std::mutex jobs_mutex_;
    std::condition_variable jobs_ready_;
    std::deque<std::pair<void*, Handshake*>> jobs_;
    bool stopping_ = false;
    std::mutex done_mutex_;
    std::vector<Completion> done_;
    int wake_fd_;
    std::vector<std::thread> threads_;
};

}  // namespace sealsock::keyagent
