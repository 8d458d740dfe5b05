// A small deterministic generator for test payloads (splitmix64): the same seed gives the same
// bytes on every run and machine, so a failing transfer can be replayed.
#pragma once

#include <cstdint>

namespace sealsock::test {

class Prng {
  public:
    explicit Prng(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

  private:
    std::uint64_t state_;
};

}  // namespace sealsock::test
