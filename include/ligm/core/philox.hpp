// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
// a counter-based generator. Output block = f(key, counter); no sequential state, so any
// element of a stream can be computed independently on any device. Used by Generator.
#pragma once
#include <cmath>
#include <cstdint>

#include "ligm/backend/kernels/elementwise_math.hpp"  // LIGM_HD

namespace ligm::philox {

struct Block {
  std::uint32_t v[4];
};

LIGM_HD void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}

// Ten rounds over the 128-bit counter (c0..c3) with the 64-bit key (k0, k1).
LIGM_HD Block philox4x32_10(std::uint64_t counter_lo, std::uint64_t counter_hi,
                            std::uint64_t key) {
  std::uint32_t c[4] = {static_cast<std::uint32_t>(counter_lo),
                        static_cast<std::uint32_t>(counter_lo >> 32),
                        static_cast<std::uint32_t>(counter_hi),
                        static_cast<std::uint32_t>(counter_hi >> 32)};
  std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    mulhilo(0xD2511F53u, c[0], hi0, lo0);
    mulhilo(0xCD9E8D57u, c[2], hi1, lo1);
    const std::uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0; c[1] = lo1; c[2] = n2; c[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c[0], c[1], c[2], c[3]}};
}

// 32 random bits -> uniform in [0, 1) with 24 (float) or 32 (double) bits of resolution.
LIGM_HD double to_unit_double(std::uint32_t x) { return x * (1.0 / 4294967296.0); }

// Element i of a stream that starts at counter `offset`.
LIGM_HD std::uint32_t bits(std::uint64_t seed, std::uint64_t offset, std::uint64_t i) {
  return philox4x32_10(offset + i / 4, 0, seed).v[i % 4];
}

LIGM_HD double uniform(std::uint64_t seed, std::uint64_t offset, std::uint64_t i) {
  return to_unit_double(bits(seed, offset, i));
}

// Box-Muller over lanes (0,1) and (2,3) of each block: element i uses the pair it sits in.
LIGM_HD double normal(std::uint64_t seed, std::uint64_t offset, std::uint64_t i) {
  const Block b = philox4x32_10(offset + i / 4, 0, seed);
  const unsigned pair = (i % 4) / 2;
  const double u1 = (b.v[2 * pair] + 1.0) * (1.0 / 4294967297.0);  // (0, 1]: log is finite
  const double u2 = to_unit_double(b.v[2 * pair + 1]);
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 6.283185307179586476925 * u2;
  return (i % 2 == 0) ? r * std::cos(theta) : r * std::sin(theta);
}

}  // namespace ligm::philox
