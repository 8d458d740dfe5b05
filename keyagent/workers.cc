#include "keyagent/workers.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>

namespace sealsock::keyagent {

WorkerPool::WorkerPool(unsigned threads, int wake_fd) : wake_fd_(wake_fd) {
    sigset_t all, old;
    sigfillset(&all);
    // Threads inherit the creator's mask: block everything while creating them.
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < (threads == 0 ? 1 : threads); ++i)
        threads_.emplace_back([this] { run(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

WorkerPool::~WorkerPool() {
    {
        std::lock_guard lock(jobs_mutex_);
        stopping_ = true;
    }
    jobs_ready_.notify_all();
    for (auto& t : threads_)
        t.join();
}

void WorkerPool::submit(void* job, Handshake* handshake) {
    {
        std::lock_guard lock(jobs_mutex_);
        jobs_.emplace_back(job, handshake);
    }
    jobs_ready_.notify_one();
}

std::vector<WorkerPool::Completion> WorkerPool::take_completions() {
    std::lock_guard lock(done_mutex_);
    return std::exchange(done_, {});
}

void WorkerPool::run() {
    for (;;) {
        std::pair<void*, Handshake*> job;
        {
            std::unique_lock lock(jobs_mutex_);
            jobs_ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
            if (stopping_) return;
            job = jobs_.front();
            jobs_.pop_front();
        }
        const Handshake::Want want = job.second->step();
        {
            std::lock_guard lock(done_mutex_);
            done_.push_back({job.first, want});
        }
        const std::uint64_t one = 1;
        const ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
        static_cast<void>(ignored);
    }
}

}  // namespace sealsock::keyagent
