// Which Winograd tile the CPU's 3x3 convolutions use (winograd.hpp): F(4x4, 3x3) on planes with
// at least 32 tile slots where it needs fewer multiplies than F(2x2, 3x3); F(2x2, 3x3) elsewhere.
// Its transforms cost about three times F2's per slot and run on vectors of consecutive slots,
// so on small planes (6 slots at 7x7, 20 at 14x14) they lose what the GEMMs gain: one thread on
// the AMD EPYC VM, batch 64, forward / input gradient / weight gradient in ms, F2 against F4:
// 28x28x32 9.2/10.1/8.4 vs 8.2/8.7/7.9; 14x14x64 7.8/8.4/7.2 vs 8.3/8.8/7.6; 7x7x128 9.7/10.1/8.3
// vs 11.5/12.3/10.6 (bench/NOTES.md, entry 18). Light on purpose (no Eigen), so tests and
// benchmarks can include it to force a tile.
#pragma once
#include <atomic>
#include <cstdint>

namespace ligm::cpu::winograd {

// 0: choose by cost (the default); 2 or 4: always F(2x2, 3x3) or F(4x4, 3x3).
inline std::atomic<int> forced_tile{0};

// GEMM multiplies per image and channel pair with m x m output tiles: (m + 2)^2 transformed
// values for each of ceil(h / m) x (ceil(w / m) + 1) tile slots (one spare slot per tile row).
inline std::int64_t tile_cost(int m, std::int64_t h_out, std::int64_t w_out) {
  return std::int64_t{m + 2} * (m + 2) * ((h_out + m - 1) / m) * ((w_out + m - 1) / m + 1);
}

// The output tile size, 2 or 4, for an h_out x w_out output plane.
inline int tile_for(std::int64_t h_out, std::int64_t w_out) {
  const int forced = forced_tile.load(std::memory_order_relaxed);
  if (forced == 2 || forced == 4) return forced;
  const std::int64_t slots4 = ((h_out + 3) / 4) * ((w_out + 3) / 4 + 1);
  return slots4 >= 32 && tile_cost(4, h_out, w_out) < tile_cost(2, h_out, w_out) ? 4 : 2;
}

}  // namespace ligm::cpu::winograd
