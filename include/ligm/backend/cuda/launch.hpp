// The launchers of the kernel unit (src/cuda/kernels.cu, the one file nvcc compiles).
//
// Host code builds a thread body from backend/kernels/*.hpp and hands it to for_each, which
// runs body(i) for every i in [0, n) on the stream, one GPU thread per element. The unit
// instantiates for_each for every body the backend uses; the two kernels that need a block
// of threads to cooperate (long reductions, softmax rows) have their own launchers. Each
// returns the launch status; backend/cuda/cuda_backend.hpp checks it with the op's name.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "ligm/backend/kernels/reduce.hpp"

namespace ligm::cuda_kernels {

template <class Body>
cudaError_t for_each(std::int64_t n, const Body& body, cudaStream_t stream);

// The reduction r (see kernels::ReducePerThread) with one block of threads per output.
template <class T>
cudaError_t reduce_blocks(const kernels::ReducePerThread<T>& r, std::int64_t n_out,
                          cudaStream_t stream);

// Runs body(row, lane, 32, warp_sum) for every row < rows: one warp per row, the 32 lanes
// sharing its columns (kernels/norm.hpp).
template <class Body>
cudaError_t for_each_row(std::int64_t rows, const Body& body, cudaStream_t stream);

// Softmax or log-softmax over the last dim of a contiguous [rows, cols] buffer (causal > 0:
// row r sees its first r % causal + 1 columns), and its backward from the output; one warp
// per row.
template <class T>
cudaError_t softmax_rows(const T* src, std::int64_t rows, std::int64_t cols, bool log, std::int64_t causal,
                         T* dst, cudaStream_t stream);
template <class T>
cudaError_t softmax_rows_backward(const T* y, const T* g, std::int64_t rows, std::int64_t cols, bool log,
                                  T* dx, cudaStream_t stream);

}  // namespace ligm::cuda_kernels
