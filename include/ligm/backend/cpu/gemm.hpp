// Row-major batched GEMM on the CPU: float32 through ligm's own kernel (sgemm.hpp) where the
// compiler targets AVX2+FMA or AVX-512, everything else through Eigen (and all of it through
// OpenBLAS with -Dblas=true, which defines EIGEN_USE_BLAS). The only place ligm includes Eigen.
//
// Threads: batches are spread over threads when there are enough of them; otherwise the rows
// of C are split, each thread running Eigen's single-threaded kernel on its block.
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
  for (std::int64_t i = 0; i < batch; ++i) {
    const T* ai = a + i * sa;
    const T* bi = b + i * sb;
    T* ci = c + i * sc;
    // Split the rows of C, one block per thread (each block packs all of B); rows of op(A)
    // are rows of A (or columns when transposed).
    const std::int64_t per_thread = (m + get_num_threads() - 1) / get_num_threads();
    parallel_for(0, m, std::max<std::int64_t>({1, 65536 / flops_per_row, per_thread}),
                 [&](std::int64_t lo, std::int64_t hi) {
                   const T* a_block = ta ? ai + lo : ai + lo * lda;
                   gemm_one(ta, tb, hi - lo, n, k, alpha, a_block, lda, bi, ldb, beta,
                            ci + lo * ldc, ldc, bias);
                 });
  }
}

}  // namespace ligm::cpu
