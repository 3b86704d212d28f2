// Generator: a seed plus a counter offset into the Philox stream.
//
// Every random op asks the generator to reserve the counters it needs (numel / 4, rounded
// up) and then computes element i from (seed, offset + i / 4, lane i % 4). The result depends
// only on (seed, offset, i), so the CPU and CUDA backends produce the same numbers.
#pragma once
#include <cstdint>
#include <mutex>

namespace ligm {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 67280421310721ull) : seed_(seed) {}

  std::uint64_t seed() const { return seed_; }
  std::uint64_t offset() const { return offset_; }
  void manual_seed(std::uint64_t seed) {
    std::lock_guard<std::mutex> lock(mu_);
    seed_ = seed;
    offset_ = 0;
  }
  void set_offset(std::uint64_t offset) {
    std::lock_guard<std::mutex> lock(mu_);
    offset_ = offset;
  }
  // Reserves the counters for n random 32-bit values; returns the first counter.
  std::uint64_t reserve(std::uint64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::uint64_t start = offset_;
    offset_ += (n + 3) / 4;
    return start;
  }

  Generator(const Generator& o) : seed_(o.seed_), offset_(o.offset_) {}
  Generator& operator=(const Generator& o) {
    seed_ = o.seed_;
    offset_ = o.offset_;
    return *this;
  }

 private:
  std::uint64_t seed_;
  std::uint64_t offset_ = 0;
  std::mutex mu_;
};

// The process-wide generator used when an op is not given one.
inline Generator& default_generator() {
  static Generator gen;
  return gen;
}
inline void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace ligm
