// How much memory tensors hold, per device: PyTorch's torch.cuda.memory_allocated,
// max_memory_allocated and reset_peak_memory_stats, for the CPU as well as each GPU.
//
//   reset_peak_memory_stats(Device::cuda());
//   train_step();
//   std::printf("peak %.1f MB\n", max_memory_allocated(Device::cuda()) / 1e6);
//
// Counted where storages are made and freed (core/storage.hpp): the bytes tensors asked for,
// not what the allocators keep cached for reuse (the CPU's size classes and cache, CUDA's pool)
// nor memory a backend takes for its own scratch (convolution workspaces). Thread-safe.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>

#include "ligm/core/device.hpp"
#include "ligm/core/error.hpp"

namespace ligm {
namespace memory_detail {

struct Counter {
  std::atomic<std::int64_t> allocated{0}, peak{0};
};
// Every device's bytes together (what the profiler follows).
inline std::atomic<std::int64_t>& total() {
  static std::atomic<std::int64_t> t{0};
  return t;
}
inline constexpr int kSlots = 1 + 64;  // the CPU, then GPUs 0..63
inline std::array<Counter, kSlots>& counters() {
  static std::array<Counter, kSlots> c;
  return c;
}
inline Counter* counter(Device d) {
  if (!d.is_cpu() && (d.index < 0 || d.index >= kSlots - 1)) return nullptr;
  return &counters()[d.is_cpu() ? 0 : std::size_t(1 + d.index)];
}
inline void add(Device d, std::int64_t bytes) {
  total().fetch_add(bytes, std::memory_order_relaxed);
  Counter* c = counter(d);
  if (!c) return;
  const std::int64_t now = c->allocated.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  std::int64_t peak = c->peak.load(std::memory_order_relaxed);
  while (now > peak && !c->peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
inline void sub(Device d, std::int64_t bytes) {
  total().fetch_sub(bytes, std::memory_order_relaxed);
  if (Counter* c = counter(d)) c->allocated.fetch_sub(bytes, std::memory_order_relaxed);
}

}  // namespace memory_detail

// Bytes held by tensors on `device` now.
inline std::int64_t memory_allocated(Device device = Device::cpu()) {
  const auto* c = memory_detail::counter(device);
  return c ? c->allocated.load(std::memory_order_relaxed) : 0;
}
// The most bytes held at once on `device` since the program started or the last reset.
inline std::int64_t max_memory_allocated(Device device = Device::cpu()) {
  const auto* c = memory_detail::counter(device);
  return c ? c->peak.load(std::memory_order_relaxed) : 0;
}
// Starts the peak over from what is held now.
inline void reset_peak_memory_stats(Device device = Device::cpu()) {
  if (auto* c = memory_detail::counter(device)) c->peak.store(c->allocated.load(std::memory_order_relaxed));
}

}  // namespace ligm
