// The backend boundary: the primitives every device implements.
//
// ops/ (device-agnostic, with autograd) calls these primitives; backend/cpu implements them
// with loops and Eigen, backend/cuda (next) with kernels, cuBLAS and cuDNN. No Eigen or CUDA
// type appears here. Buffers are described by Ref<T>: a pointer to the first element plus a
// shape and element strides. Unless a comment says otherwise, inputs may be strided (views,
// broadcast with stride 0) and outputs are contiguous.
//
// A backend is instantiated for every scalar type; a primitive that has no meaning for a
// type (gemm on bool) raises ligm::Error naming the primitive and the dtype.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ligm/backend/kernels/elementwise_math.hpp"
#include "ligm/backend/kernels/curvature.hpp"
#include "ligm/backend/kernels/norm.hpp"
#include "ligm/core/device.hpp"
#include "ligm/core/dtype.hpp"
#include "ligm/core/shape.hpp"

namespace ligm {

template <class T>
struct Ref {
  T* data = nullptr;
  Shape shape;
  Shape strides;
  std::int64_t numel() const { return numel_of(shape); }
};

// Raw memory of one device. Dtype-agnostic.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr, std::size_t bytes) = 0;
  virtual void copy_from_host(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_within(void* dst, const void* src, std::size_t bytes) = 0;
};

// One Adam/AdamW step's hyperparameters (kernels/optim.hpp); bias corrections 1 - beta^t.
struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2;
  bool decoupled;  // AdamW
};

// Geometry of a 2-D convolution (also serves conv1d and conv_transpose2d).
struct Conv2dGeometry {
  std::int64_t n, c_in, h_in, w_in;     // input
  std::int64_t c_out, h_out, w_out;     // output
  std::int64_t kh, kw;                  // kernel
  std::int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
};

// Geometry of a 2-D pooling window (max and average).
struct Pool2dGeometry {
  std::int64_t n, c, h_in, w_in, h_out, w_out;
  std::int64_t kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h = 1, dil_w = 1;
  bool count_include_pad = true;
  std::int64_t divisor_override = 0;  // 0: none
};

// The batch of a GEMM over two batch dims that do not merge into one stride (attention heads
// split from one packed projection): count0 x count1 items, item (i, j) of each operand at
// i * stride0 + j * stride1 elements from its start.
struct GemmBatch2 {
  std::int64_t count0, count1;
  std::int64_t a0, a1, b0, b1, c0, c1;  // strides of A, B and C
};

enum class InterpMode : std::uint8_t { Nearest, Bilinear };

template <class T>
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // --- elementwise -------------------------------------------------------------------------
  virtual void fill(Ref<T> dst, T value) = 0;                     // dst may be strided
  virtual void copy(Ref<const T> src, Ref<T> dst) = 0;           // both may be strided
  virtual void cast(Ref<const T> src, Ref<float> dst) = 0;
  virtual void cast(Ref<const T> src, Ref<double> dst) = 0;
  virtual void cast(Ref<const T> src, Ref<std::int64_t> dst) = 0;
  virtual void cast(Ref<const T> src, Ref<bool> dst) = 0;
  virtual void unary(UnaryOp op, UnaryParams p, Ref<const T> x, Ref<T> y) = 0;
  // dx = op'(x, y) * g; x, y, g contiguous with dx's shape.
  virtual void unary_backward(UnaryOp op, UnaryParams p, const T* x, const T* y, const T* g,
                              T* dx, std::int64_t n) = 0;
  virtual void binary(BinaryOp op, Ref<const T> a, Ref<const T> b, Ref<T> out) = 0;
  virtual void compare(CompareOp op, Ref<const T> a, Ref<const T> b, Ref<bool> out) = 0;
  virtual void where(Ref<const bool> cond, Ref<const T> a, Ref<const T> b, Ref<T> out) = 0;

  // --- reductions --------------------------------------------------------------------------
  // out has src's rank, with size 1 in every reduced dim.
  virtual void reduce(ReduceOp op, Ref<const T> src, Ref<T> out) = 0;
  // Max or min along one dim, first index on ties; values and indices have size 1 in dim.
  virtual void arg_reduce(bool is_max, Ref<const T> src, std::int64_t dim, Ref<T> values,
                          Ref<std::int64_t> indices) = 0;

  // --- linear algebra ----------------------------------------------------------------------
  // Row-major batched C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b], op = transpose if set.
  virtual void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                    T alpha, const T* a, std::int64_t lda, std::int64_t stride_a, const T* b,
                    std::int64_t ldb, std::int64_t stride_b, T beta, T* c, std::int64_t ldc,
                    std::int64_t stride_c, std::int64_t batch) = 0;
  // gemm over a two-level batch. The default runs one batched gemm per leading index; the CPU
  // backend spreads all count0 * count1 items over its threads at once.
  virtual void gemm_batch2(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                           const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
                           const GemmBatch2& batch) {
    if (m == 0 || n == 0) return;  // C is empty (and A or B, whose pointers may be null)
    const bool empty = k == 0;  // then A and B may be null: no offsets from them
    for (std::int64_t i = 0; i < batch.count0; ++i)
      gemm(trans_a, trans_b, m, n, k, alpha, empty ? a : a + i * batch.a0, lda, batch.a1,
           empty ? b : b + i * batch.b0, ldb, batch.b1, beta, c + i * batch.c0, ldc, batch.c1, batch.count1);
  }
  // C = op(A) @ op(B) + bias, the n values of `bias` added to every row: the Linear layer. The
  // default pre-loads C with the bias and runs gemm with beta = 1; the CPU backend adds the bias
  // as its kernel stores C (one pass over C less).
  virtual void gemm_bias(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
                         std::int64_t lda, const T* b, std::int64_t ldb, const T* bias, T* c, std::int64_t ldc) {
    copy(Ref<const T>{bias, {m, n}, {0, 1}}, Ref<T>{c, {m, n}, {ldc, 1}});
    gemm(trans_a, trans_b, m, n, k, T(1), a, lda, 0, b, ldb, 0, T(1), c, ldc, 0, 1);
  }

  // --- indexing (all contiguous) -----------------------------------------------------------
  // src viewed as [outer, src_dim, inner]; dst as [outer, n_index, inner].
  virtual void index_select(const T* src, std::int64_t outer, std::int64_t src_dim,
                            std::int64_t inner, const std::int64_t* index, std::int64_t n_index,
                            T* dst) = 0;
  // dst[outer, index[i], inner] += src[outer, i, inner]
  virtual void index_add(T* dst, std::int64_t outer, std::int64_t dst_dim, std::int64_t inner,
                         const std::int64_t* index, std::int64_t n_index, const T* src) = 0;
  // out[i..] = src[i.., index[i..] along dim, ..]; index and out share a shape.
  virtual void gather(Ref<const T> src, std::int64_t dim, Ref<const std::int64_t> index,
                      Ref<T> out) = 0;
  // dst[.., index[i..], ..] += src[i..] along dim; index and src share a shape. dst contiguous.
  virtual void scatter_add(Ref<T> dst, std::int64_t dim, Ref<const std::int64_t> index,
                           Ref<const T> src) = 0;
  // Sorts each row of a contiguous [rows, cols] buffer (stable).
  virtual void sort_rows(const T* src, std::int64_t rows, std::int64_t cols, bool descending,
                         T* values, std::int64_t* indices) = 0;

  // --- fused NN primitives (contiguous) ----------------------------------------------------
  // Softmax or log-softmax over the last dim of a [rows, cols] buffer. causal > 0: row r sees
  // only its first r % causal + 1 columns, the others come out 0 (-inf for log): attention's
  // causal mask for rows that are [..., L queries] with L = causal, without a mask tensor.
  virtual void softmax_rows(const T* src, std::int64_t rows, std::int64_t cols, bool log,
                            std::int64_t causal, T* dst) = 0;
  // Their backward from the output y: dx = y (g - sum(g y)), or g - exp(y) sum(g) for log.
  virtual void softmax_rows_backward(const T* y, const T* g, std::int64_t rows, std::int64_t cols,
                                     bool log, T* dx) = 0;
  // Normalisation of rows (kernels/norm.hpp: a matrix's rows or an NCHW tensor's channels,
  // with an optional per-row affine): runs the body over rows 0..rows-1.
  virtual void normalize_rows(std::int64_t rows, const kernels::NormalizeRows<T>& body) = 0;
  virtual void normalize_rows_backward(std::int64_t rows, const kernels::NormalizeRowsBackward<T>& body) = 0;
  // Whether the two above take a per-column affine (the bodies' col_weight, col_bias: layer
  // norm's weight and bias in the same passes). Where not, the ops apply it as separate ops.
  virtual bool normalizes_columns() const { return false; }
  // Cross-entropy of each row of [rows, cols] logits against class indices, with optional
  // class weights (nullptr: all 1), ignore_index and label smoothing (the formulas are in
  // kernels/loss.hpp). Writes each row's loss and log-sum-exp; the backward reads the latter.
  virtual void cross_entropy_forward(const T* logits, std::int64_t rows, std::int64_t cols,
                                     const std::int64_t* target, const T* weight,
                                     std::int64_t ignore_index, double smoothing, T* loss,
                                     T* lse) = 0;
  // grad = dloss/dlogits scaled by g[row]; weight_sum points at sum(weight) (device memory)
  // when there are weights.
  virtual void cross_entropy_backward(const T* logits, const T* lse, std::int64_t rows,
                                      std::int64_t cols, const std::int64_t* target,
                                      const T* weight, const T* weight_sum,
                                      std::int64_t ignore_index, double smoothing, const T* g,
                                      T* grad) = 0;
  // One fused Adam/AdamW step over n contiguous elements: p, m (exp_avg) and v (exp_avg_sq)
  // updated in place from the gradient g (kernels/optim.hpp).
  virtual void adam_step(std::int64_t n, T* p, const T* g, T* m, T* v, const AdamHyper& h) = 0;
  // The Curvature Tuning unit over n contiguous elements, forward and backward
  // (kernels/curvature.hpp: beta and c per channel, element i uses (i / inner) % channels).
  virtual void ctu_forward(std::int64_t n, const kernels::CtuForward<T>& body) = 0;
  virtual void ctu_backward(std::int64_t n, const kernels::CtuBackward<T>& body) = 0;
  virtual void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, T* y) = 0;
  virtual void conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w,
                                     T* gx) = 0;  // gx is overwritten
  virtual void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy,
                                      T* gw) = 0;  // gw is overwritten
  // Both gradients of a convolution (either pointer may be null: not wanted), for backends that
  // share work between them (the CPU's Winograd transforms dY once); the default calls the two
  // above.
  virtual void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* gy, const T* w, T* gx, T* gw) {
    if (gx) conv2d_backward_input(g, gy, w, gx);
    if (gw) conv2d_backward_weight(g, x, gy, gw);
  }
  virtual void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y,
                                  std::int64_t* argmax) = 0;
  virtual void max_pool2d_backward(const Pool2dGeometry& g, const T* gy,
                                   const std::int64_t* argmax, T* gx) = 0;  // gx overwritten
  virtual void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) = 0;
  virtual void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx) = 0;
  // Adaptive average pooling: window [floor(i*H/Ho), ceil((i+1)*H/Ho)).
  virtual void adaptive_avg_pool2d_forward(std::int64_t nc, std::int64_t h, std::int64_t w,
                                           std::int64_t ho, std::int64_t wo, const T* x,
                                           T* y) = 0;
  virtual void adaptive_avg_pool2d_backward(std::int64_t nc, std::int64_t h, std::int64_t w,
                                            std::int64_t ho, std::int64_t wo, const T* gy,
                                            T* gx) = 0;
  // ratio_h/ratio_w: source pixels per output pixel when the caller gave a scale factor
  // (1 / scale, as PyTorch uses it); 0 means in / out.
  virtual void interpolate_forward(InterpMode mode, bool align_corners, std::int64_t nc,
                                   std::int64_t h, std::int64_t w, std::int64_t ho,
                                   std::int64_t wo, double ratio_h, double ratio_w, const T* x,
                                   T* y) = 0;
  virtual void interpolate_backward(InterpMode mode, bool align_corners, std::int64_t nc,
                                    std::int64_t h, std::int64_t w, std::int64_t ho,
                                    std::int64_t wo, double ratio_h, double ratio_w,
                                    const T* gy, T* gx) = 0;

  // --- random numbers (Philox4x32-10, counter-based) ---------------------------------------
  // Element i uses counter (offset + i / 4, 0), lane i % 4, key = seed. Same stream on every
  // device. Uniform in [lo, hi); normal via Box-Muller over lane pairs.
  virtual void random_uniform(T* dst, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                              double lo, double hi) = 0;
  virtual void random_normal(T* dst, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                             double mean, double std) = 0;
};

}  // namespace ligm
