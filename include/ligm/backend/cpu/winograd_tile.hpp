// Which Winograd tile and layout the CPU's 3x3 convolutions use (winograd.hpp).
//
// Planes up to 16 x 16, in batches of 16 images or more, take the image-major layout (vectors
// over 16 or more images of a chunk, no spare slot) and the tile of fewer multiplies there:
// F(4x4, 3x3) at 7x7 (36 x 4 per image against F2's 16 x 16) and at 14x14 (36 x 16 against
// 16 x 49). One thread on the Xeon VM of
// session 12, batch 64, forward / input gradient / weight gradient in ms (bench/NOTES.md,
// entries 33 and 37): 128 -> 128 at 7x7, F2 on phase planes 7.5-8.0 / 8.1-9.0 / 8.2-8.9, F4
// image-major 4.6-4.9 / 4.8-5.7 / 6.7-6.8; 64 -> 64 at 14x14, F2 on phase planes 5.9-6.0 /
// 6.5 / 5.9, F4 image-major (16 images a chunk) 5.3 / 5.4-5.6 / 5.7-5.9.
//
// Larger planes take the phase planes and F(4x4, 3x3) where it has at least 32 tile slots and
// needs fewer multiplies than F(2x2, 3x3); F2 elsewhere. On phase planes F4's transforms cost
// about three times F2's per slot and run on vectors of consecutive slots of one image, so on
// small planes they lose what the GEMMs gain (the AMD EPYC VM, F2 against F4, 28x28x32
// 9.2/10.1/8.4 vs 8.2/8.7/7.9; 14x14x64 7.8/8.4/7.2 vs 8.3/8.8/7.6; entry 18).
// Light on purpose (no Eigen), so tests and benchmarks can include it to force either choice.
#pragma once
#include <atomic>
#include <cstdint>

namespace ligm::cpu::winograd {

// 0: choose by cost (the default); 2 or 4: always F(2x2, 3x3) or F(4x4, 3x3).
inline std::atomic<int> forced_tile{0};
// 0: choose (the default); 1: always the phase planes; 2: always the image-major layout.
inline std::atomic<int> forced_layout{0};

// Whether a batch of n images with h_out x w_out outputs takes the image-major layout
// (winograd.hpp's Plan): small planes, and at least a float vector's worth of images (with
// fewer, its vectors are short: one 128 -> 128 image at 7x7 took 0.66 ms image-major and
// 0.31 ms on phase planes, four images 0.72 and 0.64 ms, 16 images 1.3 and 2.1 ms; one thread).
inline bool image_major_tiles(std::int64_t n, std::int64_t h_out, std::int64_t w_out) {
  const int forced = forced_layout.load(std::memory_order_relaxed);
  if (forced == 1 || forced == 2) return forced == 2;
  return n >= 16 && h_out <= 16 && w_out <= 16;
}

// GEMM multiplies per image and channel pair with m x m output tiles: (m + 2)^2 transformed
// values for each tile slot, ceil(h / m) x ceil(w / m) of them, plus one spare per tile row
// on phase planes.
inline std::int64_t tile_cost(int m, std::int64_t h_out, std::int64_t w_out, bool spare = true) {
  return std::int64_t{m + 2} * (m + 2) * ((h_out + m - 1) / m) * ((w_out + m - 1) / m + (spare ? 1 : 0));
}

// The output tile size, 2 or 4, for n images with h_out x w_out output planes.
inline int tile_for(std::int64_t n, std::int64_t h_out, std::int64_t w_out) {
  const int forced = forced_tile.load(std::memory_order_relaxed);
  if (forced == 2 || forced == 4) return forced;
  if (image_major_tiles(n, h_out, w_out))
    return tile_cost(4, h_out, w_out, false) < tile_cost(2, h_out, w_out, false) ? 4 : 2;
  const std::int64_t slots4 = ((h_out + 3) / 4) * ((w_out + 3) / 4 + 1);
  return slots4 >= 32 && tile_cost(4, h_out, w_out) < tile_cost(2, h_out, w_out) ? 4 : 2;
}

}  // namespace ligm::cpu::winograd
