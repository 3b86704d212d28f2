// Row-major batched GEMM on the CPU: float32 through ligm's own kernel (sgemm.hpp) where the
// compiler targets AVX2+FMA or AVX-512, everything else through Eigen (and all of it through
// OpenBLAS with -Dblas=true, which defines EIGEN_USE_BLAS). The only place ligm includes Eigen.
//
// Threads: batches are spread over threads when there are enough of them; otherwise C is split
// along its longer side (rows or columns), each thread running the single-threaded kernel on its
// block.
#pragma once
#include <Eigen/Core>
#include <cstdint>
#include <type_traits>

#include "ligm/backend/cpu/parallel.hpp"
#include "ligm/backend/cpu/sgemm.hpp"

namespace ligm::cpu {

// C = alpha * op(A) op(B) + beta * C; with `bias` (n values; beta must be 0) every row of C
// starts from the bias instead (the Linear layer: ligm's float kernel adds it as C is stored).
template <class T>
void gemm_one(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
              const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
              std::int64_t ldc, const T* bias = nullptr) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CMap = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  using MMap = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  MMap C(c, m, n, Eigen::OuterStride<>(ldc));
#if defined(LIGM_HAVE_SGEMM) && !defined(EIGEN_USE_BLAS)
  if constexpr (std::is_same_v<T, float>) {
    if (m == 0 || n == 0) return;
    if (k > 0) return sgemm::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias);
  }
#endif
  if (bias) {
    C.rowwise() = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias, n);
    beta = T(1);
  }
  if (k == 0) {
    if (beta == T(0)) C.setZero(); else C *= beta;
    return;
  }
  const CMap A(a, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
  const CMap B(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
  auto run = [&](const auto& opa, const auto& opb) {
    if (beta == T(0)) {
      C.noalias() = alpha * (opa * opb);
    } else {
      if (beta != T(1)) C *= beta;
      C.noalias() += alpha * (opa * opb);
    }
  };
  if (!ta && !tb) run(A, B);
  else if (ta && !tb) run(A.transpose(), B);
  else if (!ta && tb) run(A, B.transpose());
  else run(A.transpose(), B.transpose());
}

// `bias` as in gemm_one, the same row for every batch.
template <class T>
void gemm_batched(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                  const T* a, std::int64_t lda, std::int64_t sa, const T* b, std::int64_t ldb,
                  std::int64_t sb, T beta, T* c, std::int64_t ldc, std::int64_t sc,
                  std::int64_t batch, const T* bias = nullptr) {
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) {  // A and B hold nothing (and may be null: no offsets from them): C = beta C (or the bias)
    for (std::int64_t i = 0; i < batch; ++i) gemm_one(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c + i * sc, ldc, bias);
    return;
  }
  const std::int64_t flops_per_row = std::max<std::int64_t>(1, n * k);
  if (batch >= get_num_threads() || m < 2) {
    parallel_for(0, batch, std::max<std::int64_t>(1, 65536 / (m * flops_per_row)),
                 [&](std::int64_t lo, std::int64_t hi) {
                   for (std::int64_t i = lo; i < hi; ++i)
                     gemm_one(ta, tb, m, n, k, alpha, a + i * sa, lda, b + i * sb, ldb, beta,
                              c + i * sc, ldc, bias);
                 });
    return;
  }
  // One product split over the threads along the longer side of C: each block packs all of the
  // other side's operand (split rows: all of op(B), k x n; split columns: all of op(A), m x k),
  // so the split that copies less is the one across the longer side. (The weight gradient of a
  // ViT's fc2, 192 x 768 over k = 3200: split by rows, each thread packed all 10 MB of B.)
  // Column blocks are whole multiples of 32 (the float kernel's panel width), so no block but
  // the last ends in a part-filled panel; either split leaves every value of C computed in the
  // same order, so the result does not depend on the thread count.
  const std::int64_t threads = get_num_threads();
  for (std::int64_t i = 0; i < batch; ++i) {
    const T* ai = a + i * sa;
    const T* bi = b + i * sb;
    T* ci = c + i * sc;
    if (n > m) {
      const std::int64_t per = std::max<std::int64_t>({(n + threads - 1) / threads, 65536 / (m * std::max<std::int64_t>(k, 1)), 1});
      const std::int64_t width = (per + 31) / 32 * 32, blocks = (n + width - 1) / width;
      parallel_for(0, blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t blk = lo; blk < hi; ++blk) {
          const std::int64_t j0 = blk * width, cols = std::min(width, n - j0);
          gemm_one(ta, tb, m, cols, k, alpha, ai, lda, tb ? bi + j0 * ldb : bi + j0, ldb, beta, ci + j0, ldc,
                   bias ? bias + j0 : nullptr);
        }
      });
      continue;
    }
    // Rows of op(A) are rows of A (or columns when transposed).
    const std::int64_t per_thread = (m + threads - 1) / threads;
    parallel_for(0, m, std::max<std::int64_t>({1, 65536 / flops_per_row, per_thread}),
                 [&](std::int64_t lo, std::int64_t hi) {
                   const T* a_block = ta ? ai + lo : ai + lo * lda;
                   gemm_one(ta, tb, hi - lo, n, k, alpha, a_block, lda, bi, ldb, beta,
                            ci + lo * ldc, ldc, bias);
                 });
  }
}

}  // namespace ligm::cpu
