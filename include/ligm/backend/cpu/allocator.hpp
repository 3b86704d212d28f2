// The CPU allocator: aligned host memory with a cache of large blocks.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "ligm/backend/backend.hpp"
#include "ligm/core/error.hpp"

namespace ligm::cpu {

// Host memory, 64-byte aligned. Blocks of 64 KiB and more are cached: a freed block goes to
// a free list of its size class (four classes per power of two, so at most 25% is wasted) and
// the next request of that class takes it back, so a training loop that allocates the same
// tensors every step stops calling the system allocator (and stops page-faulting fresh pages)
// after the first step. Small blocks go straight to malloc, which caches them itself.
// empty_cache() returns the cached blocks to the system.
class CpuAllocator final : public Allocator {
 public:
  static constexpr std::size_t kAlignment = 64;
  static constexpr std::size_t kCacheFrom = 64 << 10;

  ~CpuAllocator() override { empty_cache(); }

  void* allocate(std::size_t bytes) override {
    const std::size_t size = size_class(bytes);
    if (size >= kCacheFrom) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= size;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlignment, size);
    if (!p) {
      empty_cache();  // retry once with the cache given back
      p = std::aligned_alloc(kAlignment, size);
    }
    if (!p) throw Error("ligm::empty: out of host memory allocating " + std::to_string(bytes) + " bytes on cpu");
    return p;
  }
  void deallocate(void* p, std::size_t bytes) override {
    const std::size_t size = size_class(bytes);
    if (size < kCacheFrom) return std::free(p);
    std::lock_guard<std::mutex> lock(mu_);
    free_[size].push_back(p);
    cached_bytes_ += size;
  }
  // Frees every cached block; returns how many bytes went back.
  std::size_t empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    return std::exchange(cached_bytes_, 0);
  }
  std::size_t cached_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_bytes_;
  }
  void copy_from_host(void* dst, const void* src, std::size_t n) override { std::memcpy(dst, src, n); }
  void copy_to_host(void* dst, const void* src, std::size_t n) override { std::memcpy(dst, src, n); }
  void copy_within(void* dst, const void* src, std::size_t n) override { std::memmove(dst, src, n); }

  // Rounded up to the alignment, and from kCacheFrom on to one of four steps per power of two.
  static std::size_t size_class(std::size_t bytes) {
    std::size_t size = (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
    if (size < kCacheFrom) return size;
    std::size_t top = std::size_t(1) << (63 - __builtin_clzll(size));  // largest power of two <= size
    const std::size_t step = top / 4;
    return (size + step - 1) / step * step;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_bytes_ = 0;
};

}  // namespace ligm::cpu
