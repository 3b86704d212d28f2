// The CUDA kernel unit: the only file nvcc compiles. It turns the thread bodies of
// backend/kernels/*.hpp into kernels, adds the two block-level kernels (long reductions and
// softmax rows), and instantiates every launcher the backend calls. No Eigen, no ligm::Error
// here: launchers return a cudaError_t and the host code (backend_cuda.cpp) reports it.
#include <cstdint>
#include <limits>

#include "ligm/backend/cuda/launch.hpp"
#include "ligm/backend/kernels/curvature.hpp"
#include "ligm/backend/kernels/elementwise.hpp"
#include "ligm/backend/kernels/index.hpp"
#include "ligm/backend/kernels/loss.hpp"
#include "ligm/backend/kernels/norm.hpp"
#include "ligm/backend/kernels/optim.hpp"
#include "ligm/backend/kernels/pool.hpp"
#include "ligm/backend/kernels/random.hpp"
#include "ligm/backend/kernels/reduce.hpp"
#include "ligm/backend/kernels/sort.hpp"

namespace ligm::cuda_kernels {

constexpr int kThreads = 256;
constexpr std::int64_t kMaxBlocks = std::int64_t(1) << 20;  // a grid-stride loop does the rest

std::int64_t blocks_for(std::int64_t n, std::int64_t per_block) {
  const std::int64_t b = (n + per_block - 1) / per_block;
  return b < kMaxBlocks ? b : kMaxBlocks;
}

// ---- one thread per element ---------------------------------------------------------------

template <class Body>
__global__ void for_each_kernel(std::int64_t n, Body body) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    body(i);
}

template <class Body>
cudaError_t for_each(std::int64_t n, const Body& body, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  for_each_kernel<<<unsigned(blocks_for(n, kThreads)), kThreads, 0, stream>>>(n, body);
  return cudaGetLastError();
}

// ---- reductions: one block per output -----------------------------------------------------

template <class T>
__global__ void reduce_blocks_kernel(kernels::ReducePerThread<T> r, std::int64_t n_out) {
  using Acc = kernels::ReduceAcc<T>;
  __shared__ Acc partial[kThreads];
  for (std::int64_t i = blockIdx.x; i < n_out; i += gridDim.x) {
    std::int64_t o[2], off[1];
    r.keep.offsets(i, o);
    r.red.offsets(0, off);
    // Max/min start from the first element (folding it twice changes nothing).
    Acc acc = r.op == ReduceOp::Sum ? Acc(0) : Acc(r.src[o[1] + off[0]]);
    for (std::int64_t j = threadIdx.x; j < r.n_red; j += blockDim.x) {
      r.red.offsets(j, off);
      acc = kernels::reduce_combine(r.op, acc, Acc(r.src[o[1] + off[0]]));
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
      if (int(threadIdx.x) < half)
        partial[threadIdx.x] = kernels::reduce_combine(r.op, partial[threadIdx.x],
                                                       partial[threadIdx.x + half]);
      __syncthreads();
    }
    if (threadIdx.x == 0) r.out[o[0]] = T(partial[0]);
    __syncthreads();  // partial is reused by the block's next output
  }
}

template <class T>
cudaError_t reduce_blocks(const kernels::ReducePerThread<T>& r, std::int64_t n_out,
                          cudaStream_t stream) {
  if (n_out <= 0) return cudaSuccess;
  reduce_blocks_kernel<T><<<unsigned(blocks_for(n_out, 1)), kThreads, 0, stream>>>(r, n_out);
  return cudaGetLastError();
}

// ---- softmax: one warp per row ------------------------------------------------------------

template <class T>
__device__ T warp_max(T v) {
  for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2) {
    const T other = __shfl_xor_sync(0xffffffffu, v, lane_mask);
    v = v < other ? other : v;
  }
  return v;
}

template <class T>
__device__ T warp_sum(T v) {
  for (int lane_mask = 16; lane_mask > 0; lane_mask /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, lane_mask);
  return v;
}

// ---- row bodies: one warp per row -------------------------------------------------------

struct WarpSum {
  template <class A>
  __device__ A operator()(A v) const { return warp_sum(v); }
};

template <class Body>
__global__ void for_each_row_kernel(std::int64_t rows, Body body) {
  const int lane = threadIdx.x % 32;
  const std::int64_t warps = std::int64_t(gridDim.x) * (blockDim.x / 32);
  for (std::int64_t row = std::int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
       row < rows; row += warps)  // warp-uniform: the shuffles see all 32 lanes
    body(row, lane, 32, WarpSum{});
}

template <class Body>
cudaError_t for_each_row(std::int64_t rows, const Body& body, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  constexpr int kWarps = kThreads / 32;
  for_each_row_kernel<<<unsigned(blocks_for(rows, kWarps)), kThreads, 0, stream>>>(rows, body);
  return cudaGetLastError();
}

// Same arithmetic as the CPU backend: subtract the row max (0 when the row is all -inf),
// sum the exponentials, then x - logsumexp or exp(x - max) / sum; masked columns (causal)
// come out 0, or -inf for log.
template <class T>
__global__ void softmax_rows_kernel(const T* src, std::int64_t rows, std::int64_t cols, bool log,
                                    std::int64_t causal, T* dst) {
  const int lane = threadIdx.x % 32;
  const std::int64_t warps = std::int64_t(gridDim.x) * (blockDim.x / 32);
  for (std::int64_t row = std::int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
       row < rows; row += warps) {  // the same row for all 32 lanes: shuffles stay uniform
    const T* x = src + row * cols;
    T* y = dst + row * cols;
    const std::int64_t n = causal > 0 ? (row % causal + 1 < cols ? row % causal + 1 : cols) : cols;
    T mx = -std::numeric_limits<T>::infinity();
    for (std::int64_t c = lane; c < n; c += 32) mx = mx < x[c] ? x[c] : mx;
    mx = warp_max(mx);
    if (mx == -std::numeric_limits<T>::infinity()) mx = 0;
    T sum = 0;
    for (std::int64_t c = lane; c < n; c += 32) sum += exp(x[c] - mx);
    sum = warp_sum(sum);
    if (log) {
      const T lse = mx + ::log(sum);
      for (std::int64_t c = lane; c < n; c += 32) y[c] = x[c] - lse;
    } else {
      const T inv = T(1) / sum;
      for (std::int64_t c = lane; c < n; c += 32) y[c] = exp(x[c] - mx) * inv;
    }
    const T masked = log ? -std::numeric_limits<T>::infinity() : T(0);
    for (std::int64_t c = n + lane; c < cols; c += 32) y[c] = masked;
  }
}

template <class T>
cudaError_t softmax_rows(const T* src, std::int64_t rows, std::int64_t cols, bool log, std::int64_t causal,
                         T* dst, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  constexpr int kWarps = kThreads / 32;
  softmax_rows_kernel<T><<<unsigned(blocks_for(rows, kWarps)), kThreads, 0, stream>>>(
      src, rows, cols, log, causal, dst);
  return cudaGetLastError();
}

// dx = y (g - sum(g y)), or g - exp(y) sum(g) for log_softmax; one warp per row.
template <class T>
__global__ void softmax_rows_backward_kernel(const T* y, const T* g, std::int64_t rows, std::int64_t cols,
                                             bool log, T* dx) {
  const int lane = threadIdx.x % 32;
  const std::int64_t warps = std::int64_t(gridDim.x) * (blockDim.x / 32);
  for (std::int64_t row = std::int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
       row < rows; row += warps) {
    const T* yr = y + row * cols;
    const T* gr = g + row * cols;
    T* d = dx + row * cols;
    T dot = 0;
    for (std::int64_t c = lane; c < cols; c += 32) dot += log ? gr[c] : gr[c] * yr[c];
    dot = warp_sum(dot);
    for (std::int64_t c = lane; c < cols; c += 32) d[c] = log ? gr[c] - exp(yr[c]) * dot : yr[c] * (gr[c] - dot);
  }
}

template <class T>
cudaError_t softmax_rows_backward(const T* y, const T* g, std::int64_t rows, std::int64_t cols, bool log,
                                  T* dx, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  constexpr int kWarps = kThreads / 32;
  softmax_rows_backward_kernel<T><<<unsigned(blocks_for(rows, kWarps)), kThreads, 0, stream>>>(
      y, g, rows, cols, log, dx);
  return cudaGetLastError();
}

// ---- instantiations -----------------------------------------------------------------------
// Every thread body the backend launches, per dtype. A body missing here is a link error in
// the backend library, never a silent gap.

#define LIGM_FOR_EACH(...) \
  template cudaError_t for_each<__VA_ARGS__>(std::int64_t, const __VA_ARGS__&, cudaStream_t);

// All four dtypes.
#define LIGM_ALL_TYPES(T)                                                                  \
  LIGM_FOR_EACH(kernels::Fill<T>)                                                          \
  LIGM_FOR_EACH(kernels::Convert<T, float>)                                                \
  LIGM_FOR_EACH(kernels::Convert<T, double>)                                               \
  LIGM_FOR_EACH(kernels::Convert<T, std::int64_t>)                                         \
  LIGM_FOR_EACH(kernels::Convert<T, bool>)                                                 \
  LIGM_FOR_EACH(kernels::Compare<T>)                                                       \
  LIGM_FOR_EACH(kernels::Where<T>)                                                         \
  LIGM_FOR_EACH(kernels::ReducePerThread<T>)                                               \
  LIGM_FOR_EACH(kernels::ArgReduce<T>)                                                     \
  LIGM_FOR_EACH(kernels::IndexSelect<T>)                                                   \
  LIGM_FOR_EACH(kernels::Gather<T>)                                                        \
  LIGM_FOR_EACH(kernels::SortInit<T>)                                                      \
  LIGM_FOR_EACH(kernels::BitonicStep<T>)                                                   \
  LIGM_FOR_EACH(kernels::SortWrite<T>)                                                     \
  template cudaError_t reduce_blocks<T>(const kernels::ReducePerThread<T>&, std::int64_t, \
                                        cudaStream_t);

// Numbers (not bool): arithmetic and accumulation.
#define LIGM_NUMBER_TYPES(T)            \
  LIGM_FOR_EACH(kernels::Unary<T>)      \
  LIGM_FOR_EACH(kernels::Binary<T>)     \
  LIGM_FOR_EACH(kernels::IndexAdd<T>)   \
  LIGM_FOR_EACH(kernels::ScatterAdd<T>)

// Floating point: calculus, neural-network primitives, random numbers.
#define LIGM_FLOAT_TYPES(T)                                                                  \
  LIGM_FOR_EACH(kernels::UnaryBackward<T>)                                                   \
  LIGM_FOR_EACH(kernels::CrossEntropyForward<T>)                                             \
  LIGM_FOR_EACH(kernels::AdamStep<T>)                                                        \
  LIGM_FOR_EACH(kernels::CtuForward<T>)                                                      \
  LIGM_FOR_EACH(kernels::CtuBackward<T>)                                                     \
  LIGM_FOR_EACH(kernels::CrossEntropyBackward<T>)                                            \
  template cudaError_t for_each_row<kernels::NormalizeRows<T>>(                              \
      std::int64_t, const kernels::NormalizeRows<T>&, cudaStream_t);                         \
  template cudaError_t for_each_row<kernels::NormalizeRowsBackward<T>>(                      \
      std::int64_t, const kernels::NormalizeRowsBackward<T>&, cudaStream_t);                 \
  template cudaError_t for_each_row<kernels::ChannelSums<kernels::NormalizeRows<T>>>(        \
      std::int64_t, const kernels::ChannelSums<kernels::NormalizeRows<T>>&, cudaStream_t);   \
  template cudaError_t for_each_row<kernels::ChannelSums<kernels::NormalizeRowsBackward<T>>>( \
      std::int64_t, const kernels::ChannelSums<kernels::NormalizeRowsBackward<T>>&, cudaStream_t); \
  LIGM_FOR_EACH(kernels::ChannelFinish<kernels::NormalizeRows<T>>)                           \
  LIGM_FOR_EACH(kernels::ChannelFinish<kernels::NormalizeRowsBackward<T>>)                   \
  LIGM_FOR_EACH(kernels::ChannelApply<kernels::NormalizeRows<T>>)                            \
  LIGM_FOR_EACH(kernels::ChannelApply<kernels::NormalizeRowsBackward<T>>)                    \
  LIGM_FOR_EACH(kernels::MaxPool2dForward<T>)                                                \
  LIGM_FOR_EACH(kernels::MaxPool2dBackward<T>)                                               \
  LIGM_FOR_EACH(kernels::AvgPool2d<T, false>)                                                \
  LIGM_FOR_EACH(kernels::AvgPool2d<T, true>)                                                 \
  LIGM_FOR_EACH(kernels::AdaptiveAvgPool2d<T, false>)                                        \
  LIGM_FOR_EACH(kernels::AdaptiveAvgPool2d<T, true>)                                         \
  LIGM_FOR_EACH(kernels::Interpolate<T, false>)                                              \
  LIGM_FOR_EACH(kernels::Interpolate<T, true>)                                               \
  LIGM_FOR_EACH(kernels::RandomUniform<T>)                                                   \
  LIGM_FOR_EACH(kernels::RandomNormal<T>)                                                    \
  template cudaError_t softmax_rows<T>(const T*, std::int64_t, std::int64_t, bool, std::int64_t, T*, \
                                       cudaStream_t);                                        \
  template cudaError_t softmax_rows_backward<T>(const T*, const T*, std::int64_t, std::int64_t, bool, \
                                                T*, cudaStream_t);

LIGM_ALL_TYPES(float)
LIGM_ALL_TYPES(double)
LIGM_ALL_TYPES(std::int64_t)
LIGM_ALL_TYPES(bool)
LIGM_NUMBER_TYPES(float)
LIGM_NUMBER_TYPES(double)
LIGM_NUMBER_TYPES(std::int64_t)
LIGM_FLOAT_TYPES(float)
LIGM_FLOAT_TYPES(double)

}  // namespace ligm::cuda_kernels
