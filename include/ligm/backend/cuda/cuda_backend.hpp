// The CUDA backend: Backend<T> over device memory. Elementwise, reduction, indexing, sorting,
// pooling and random kernels are ours (thread bodies in backend/kernels, launched through
// launch.hpp); GEMM is cuBLAS (strided batched); convolution is cuDNN, with the algorithm
// chosen once per shape and the workspace kept between calls.
//
// Host code, compiled by g++ into the ligm_cuda library. The dtype rules mirror the CPU
// backend's exactly: a primitive the CPU refuses for a dtype, CUDA refuses with the same words.
#pragma once
#include <array>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>

#include "ligm/backend/backend.hpp"
#include "ligm/backend/registry.hpp"
#include "ligm/backend/cuda/launch.hpp"
#include "ligm/backend/cuda/runtime.hpp"
#include "ligm/backend/kernels/elementwise.hpp"
#include "ligm/backend/kernels/index.hpp"
#include "ligm/backend/kernels/loss.hpp"
#include "ligm/backend/kernels/norm.hpp"
#include "ligm/backend/kernels/optim.hpp"
#include "ligm/backend/kernels/pool.hpp"
#include "ligm/backend/kernels/random.hpp"
#include "ligm/backend/kernels/reduce.hpp"
#include "ligm/backend/kernels/sort.hpp"

namespace ligm::cuda_detail {

// cuDNN descriptors and chosen algorithms for one convolution geometry.
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool has_fwd = false, has_bwd_data = false, has_bwd_filter = false;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  std::size_t fwd_bytes = 0, bwd_data_bytes = 0, bwd_filter_bytes = 0;
  bool tf32 = false;  // float32 with cuda::allow_tf32().conv when the plan was made
  bool benchmark = false;  // cuda::cudnn_benchmark() then: algorithms timed (cudnnFind*), not ranked
  // The descriptor's math type for cuDNN's heuristics: default math lets it offer TF32
  // algorithms for float32; FMA math keeps to plain float32.
  cudnnMathType_t base_math() const { return tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH; }
  // Each algorithm's math type, set on the descriptor before it runs (they may differ).
  cudnnMathType_t fwd_math = CUDNN_FMA_MATH, bwd_data_math = CUDNN_FMA_MATH, bwd_filter_math = CUDNN_FMA_MATH;
  ~ConvPlan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

// Picks the first algorithm cuDNN's heuristics rank as working (or, with cuda::cudnn_benchmark(),
// the fastest that its trial runs timed, cudnnFind* sorting them by time); unless tensor cores are allowed
// (cuda::allow_tf32().conv, float32), the first that runs in plain FMA math (no TF32: float
// results then match the CPU within float rounding).
template <class Perf>
const Perf& pick_algorithm(const Perf* perf, int count, const char* op, bool tensor_ops) {
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS &&
        (tensor_ops ||
         (perf[i].mathType != CUDNN_TENSOR_OP_MATH && perf[i].mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)))
      return perf[i];
  fail(op, "cuDNN offers no ", tensor_ops ? "" : "FMA ", "algorithm for this convolution");
}

template <class T>
class CudaBackend final : public Backend<T> {
 public:
  explicit CudaBackend(DeviceContext& ctx) : ctx_(ctx), alloc_(ctx) {}
  Device device() const override { return Device::cuda(ctx_.index()); }
  CudaAllocator& allocator() { return alloc_; }

  [[noreturn]] void unsupported(const char* primitive) const {
    fail(primitive, "not supported for dtype ", dtype_name<T>(), " on ", device().str());
  }

  // --- elementwise -------------------------------------------------------------------------
  void fill(Ref<T> dst, T value) override {
    launch("fill", dst.numel(),
           kernels::Fill<T>{kernels::make_indexer<1>(dst.shape, {&dst.strides}, "fill"), dst.data,
                            value});
  }

  void copy(Ref<const T> src, Ref<T> dst) override {
    if (is_contiguous_strides(src.shape, src.strides) &&
        is_contiguous_strides(dst.shape, dst.strides)) {
      if (src.numel()) alloc_.copy_within(dst.data, src.data, src.numel() * sizeof(T));
      return;
    }
    convert("copy", src, dst);
  }

  void cast(Ref<const T> s, Ref<float> d) override { convert("to", s, d); }
  void cast(Ref<const T> s, Ref<double> d) override { convert("to", s, d); }
  void cast(Ref<const T> s, Ref<std::int64_t> d) override { convert("to", s, d); }
  void cast(Ref<const T> s, Ref<bool> d) override { convert("to", s, d); }

  void unary(UnaryOp op, UnaryParams p, Ref<const T> x, Ref<T> y) override {
    if constexpr (std::is_same_v<T, bool>) {
      unsupported("unary");
    } else {
      if (!is_floating_v<T> && !math::unary_supports_integers(op)) unsupported("unary");
      launch("unary", y.numel(),
             kernels::Unary<T>{kernels::make_indexer<2>(y.shape, {&y.strides, &x.strides}, "unary"),
                               x.data, y.data, op, p});
    }
  }

  void unary_backward(UnaryOp op, UnaryParams p, const T* x, const T* y, const T* g, T* dx,
                      std::int64_t n) override {
    if constexpr (is_floating_v<T>) {
      launch("unary_backward", n, kernels::UnaryBackward<T>{x, y, g, dx, op, p});
    } else {
      unsupported("unary_backward");
    }
  }

  void binary(BinaryOp op, Ref<const T> a, Ref<const T> b, Ref<T> out) override {
    if constexpr (std::is_same_v<T, bool>) {
      unsupported("binary");
    } else {
      auto ix = kernels::make_indexer<3>(out.shape, {&out.strides, &a.strides, &b.strides}, "binary");
      launch("binary", out.numel(), kernels::Binary<T>{ix, a.data, b.data, out.data, op});
    }
  }

  void compare(CompareOp op, Ref<const T> a, Ref<const T> b, Ref<bool> out) override {
    auto ix = kernels::make_indexer<3>(out.shape, {&out.strides, &a.strides, &b.strides}, "compare");
    launch("compare", out.numel(), kernels::Compare<T>{ix, a.data, b.data, out.data, op});
  }

  void where(Ref<const bool> cond, Ref<const T> a, Ref<const T> b, Ref<T> out) override {
    auto ix = kernels::make_indexer<4>(out.shape, {&out.strides, &cond.strides, &a.strides, &b.strides},
                                       "where");
    launch("where", out.numel(), kernels::Where<T>{ix, cond.data, a.data, b.data, out.data});
  }

  // --- reductions --------------------------------------------------------------------------
  void reduce(ReduceOp op, Ref<const T> src, Ref<T> out) override {
    const auto r = kernels::make_reduction(op, src, out);
    const std::int64_t n_out = out.numel();
    // Few elements per output, or outputs enough to fill the GPU: a thread each. Otherwise a
    // block of threads shares each output.
    if (r.n_red <= 32 || (n_out >= 16384 && r.n_red <= 256)) {
      launch("reduce", n_out, r);
    } else if (n_out > 0) {
      DeviceGuard guard(ctx_.index());
      ctx_.after_launch(cuda_kernels::reduce_blocks(r, n_out, ctx_.stream()), "reduce");
    }
  }

  void arg_reduce(bool is_max, Ref<const T> src, std::int64_t dim, Ref<T> values,
                  Ref<std::int64_t> indices) override {
    launch(is_max ? "max" : "min", values.numel(),
           kernels::make_arg_reduction(is_max, src, dim, values, indices));
  }

  // --- linear algebra ----------------------------------------------------------------------
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets B first.
  void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
            const T* a, std::int64_t lda, std::int64_t sa, const T* b, std::int64_t ldb,
            std::int64_t sb, T beta, T* c, std::int64_t ldc, std::int64_t sc,
            std::int64_t batch) override {
    if constexpr (is_floating_v<T>) {
      if (m == 0 || n == 0 || batch == 0) return;
      if (k == 0) {  // no products: C = beta * C
        if (beta == T(1)) return;
        check(beta == T(0), "gemm", "k = 0 with beta ", beta, " is not supported on cuda");
        Ref<T> cm{c, {batch, m, n}, {sc, ldc, 1}};
        fill(cm, T(0));
        return;
      }
      for (std::int64_t v : {m, n, k, lda, ldb, ldc, batch})
        check(v <= INT_MAX, "gemm", "dimension ", v, " exceeds cuBLAS's int range");
      DeviceGuard guard(ctx_.index());
      const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
      const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
      const int M = int(m), N = int(n), K = int(k);
      if constexpr (std::is_same_v<T, float>) {
        check_status(cublasSetMathMode(ctx_.cublas(), ::ligm::cuda::allow_tf32().matmul ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                                : CUBLAS_DEFAULT_MATH),
                     "matmul");
        check_status(cublasSgemmStridedBatched(ctx_.cublas(), op_b, op_a, N, M, K, &alpha, b, int(ldb), sb,
                                        a, int(lda), sa, &beta, c, int(ldc), sc, int(batch)),
              "matmul");
      } else {
        check_status(cublasDgemmStridedBatched(ctx_.cublas(), op_b, op_a, N, M, K, &alpha, b, int(ldb), sb,
                                        a, int(lda), sa, &beta, c, int(ldc), sc, int(batch)),
              "matmul");
      }
      ctx_.after_launch(cudaSuccess, "matmul");
    } else {
      unsupported("gemm");
    }
  }

  // --- indexing ----------------------------------------------------------------------------
  void index_select(const T* src, std::int64_t outer, std::int64_t src_dim, std::int64_t inner,
                    const std::int64_t* index, std::int64_t n_index, T* dst) override {
    if (inner == 0) return;
    launch("index_select", outer * n_index * inner,
           kernels::IndexSelect<T>{src, src_dim, inner, n_index, index, dst});
  }

  void index_add(T* dst, std::int64_t outer, std::int64_t dst_dim, std::int64_t inner,
                 const std::int64_t* index, std::int64_t n_index, const T* src) override {
    if constexpr (std::is_same_v<T, bool>) {
      unsupported("index_add");
    } else {
      if (inner == 0) return;
      launch("index_add", outer * n_index * inner,
             kernels::IndexAdd<T>{dst, dst_dim, inner, n_index, index, src});
    }
  }

  void gather(Ref<const T> src, std::int64_t dim, Ref<const std::int64_t> index,
              Ref<T> out) override {
    launch("gather", out.numel(), kernels::make_gather(src, dim, index, out));
  }

  void scatter_add(Ref<T> dst, std::int64_t dim, Ref<const std::int64_t> index,
                   Ref<const T> src) override {
    if constexpr (std::is_same_v<T, bool>) {
      unsupported("scatter_add");
    } else {
      launch("scatter_add", src.numel(), kernels::make_scatter_add(dst, dim, index, src));
    }
  }

  void sort_rows(const T* src, std::int64_t rows, std::int64_t cols, bool descending, T* values,
                 std::int64_t* indices) override {
    if (rows == 0 || cols == 0) return;
    const std::int64_t p = kernels::sort_padded_cols(cols);
    Scratch keys(alloc_, std::size_t(rows * p) * sizeof(T));
    Scratch idx(alloc_, std::size_t(rows * p) * sizeof(std::int64_t));
    kernels::bitonic_sort_rows(src, rows, cols, descending, values, indices, keys.as<T>(),
                               idx.as<std::int64_t>(),
                               [&](std::int64_t n, const auto& body) { launch("sort", n, body); });
  }

  // --- fused NN primitives -----------------------------------------------------------------
  void softmax_rows(const T* src, std::int64_t rows, std::int64_t cols, bool log, std::int64_t causal,
                    T* dst) override {
    if constexpr (is_floating_v<T>) {
      DeviceGuard guard(ctx_.index());
      ctx_.after_launch(cuda_kernels::softmax_rows(src, rows, cols, log, causal, dst, ctx_.stream()),
                        log ? "log_softmax" : "softmax");
    } else {
      unsupported("softmax");
    }
  }
  void softmax_rows_backward(const T* y, const T* g, std::int64_t rows, std::int64_t cols, bool log,
                             T* dx) override {
    if constexpr (is_floating_v<T>) {
      DeviceGuard guard(ctx_.index());
      ctx_.after_launch(cuda_kernels::softmax_rows_backward(y, g, rows, cols, log, dx, ctx_.stream()),
                        "softmax_backward");
    } else {
      unsupported("softmax_backward");
    }
  }

  // Batch norm's rows (NCHW channels) as three launches with many warps per channel
  // (kernels::channel_passes); other rows a warp each.
  void normalize_rows(std::int64_t rows, const kernels::NormalizeRows<T>& body) override {
    if (body.col_weight || body.col_bias) unsupported("normalize with a per-column affine");  // normalizes_columns()
    if constexpr (is_floating_v<T>) {
      if (kernels::ChannelSplit::applies(body.layout, rows)) return channel_passes("normalize", rows, body, true);
      launch_rows("normalize", rows, body);
    } else {
      unsupported("normalize");
    }
  }
  void normalize_rows_backward(std::int64_t rows, const kernels::NormalizeRowsBackward<T>& body) override {
    if (body.col_weight || body.dcol_weight || body.dcol_bias) unsupported("normalize_backward with a per-column affine");
    if constexpr (is_floating_v<T>) {
      if (kernels::ChannelSplit::applies(body.layout, rows))
        return channel_passes("normalize_backward", rows, body, body.dx || body.dresidual);
      launch_rows("normalize_backward", rows, body);
    } else {
      unsupported("normalize_backward");
    }
  }

  void ctu_forward(std::int64_t n, const kernels::CtuForward<T>& body) override {
    if constexpr (is_floating_v<T>) {
      launch("ctu", n, body);
    } else {
      unsupported("ctu");
    }
  }
  void ctu_backward(std::int64_t n, const kernels::CtuBackward<T>& body) override {
    if constexpr (is_floating_v<T>) {
      launch("ctu_backward", n, body);
    } else {
      unsupported("ctu_backward");
    }
  }

  void adam_step(std::int64_t n, T* p, const T* g, T* m, T* v, const AdamHyper& h) override {
    if constexpr (is_floating_v<T>) {
      launch("adam_step", n, kernels::AdamStep<T>::make(p, g, m, v, h));
    } else {
      unsupported("adam_step");
    }
  }

  void cross_entropy_forward(const T* logits, std::int64_t rows, std::int64_t cols,
                             const std::int64_t* target, const T* weight, std::int64_t ignore,
                             double smoothing, T* loss, T* lse) override {
    if constexpr (is_floating_v<T>) {
      launch("cross_entropy", rows,
             kernels::CrossEntropyForward<T>{logits, cols, target, weight, ignore, T(smoothing), loss, lse});
    } else {
      unsupported("cross_entropy");
    }
  }
  void cross_entropy_backward(const T* logits, const T* lse, std::int64_t rows, std::int64_t cols,
                              const std::int64_t* target, const T* weight, const T* weight_sum,
                              std::int64_t ignore, double smoothing, const T* g, T* grad) override {
    if constexpr (is_floating_v<T>) {
      launch("cross_entropy_backward", rows * cols,
             kernels::CrossEntropyBackward<T>{logits, lse, cols, target, weight, weight_sum, ignore,
                                              T(smoothing), g, grad});
    } else {
      unsupported("cross_entropy_backward");
    }
  }

  void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, T* y) override {
    if constexpr (is_floating_v<T>) {
      DeviceGuard guard(ctx_.index());
      std::lock_guard<std::mutex> lock(conv_mutex_);  // plans and workspace are shared
      ConvPlan& plan = conv_plan(g);
      if (!plan.has_fwd) {
        check_status(cudnnSetConvolutionMathType(plan.conv, plan.base_math()), "conv2d");
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int count = 0;
        const auto choose = plan.benchmark ? cudnnFindConvolutionForwardAlgorithm : cudnnGetConvolutionForwardAlgorithm_v7;
        check_status(choose(ctx_.cudnn(), plan.x, plan.w, plan.conv, plan.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf),
                     "conv2d");
        const auto& best = pick_algorithm(perf, count, "conv2d", plan.tf32);
        plan.fwd = best.algo;
        plan.fwd_math = best.mathType;
        check_status(cudnnGetConvolutionForwardWorkspaceSize(ctx_.cudnn(), plan.x, plan.w, plan.conv, plan.y,
                                                      plan.fwd, &plan.fwd_bytes),
              "conv2d");
        plan.has_fwd = true;
      }
      const T one = 1, zero = 0;
      void* ws = workspace(plan.fwd_bytes);
      check_status(cudnnSetConvolutionMathType(plan.conv, plan.fwd_math), "conv2d");
      check_status(cudnnConvolutionForward(ctx_.cudnn(), &one, plan.x, x, plan.w, w, plan.conv, plan.fwd, ws,
                                    plan.fwd_bytes, &zero, plan.y, y),
            "conv2d");
    } else {
      unsupported("conv2d");
    }
  }

  void conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) override {
    if constexpr (is_floating_v<T>) {
      DeviceGuard guard(ctx_.index());
      std::lock_guard<std::mutex> lock(conv_mutex_);  // plans and workspace are shared
      ConvPlan& plan = conv_plan(g);
      if (!plan.has_bwd_data) {
        check_status(cudnnSetConvolutionMathType(plan.conv, plan.base_math()), "conv2d_backward_input");
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        int count = 0;
        const auto choose =
            plan.benchmark ? cudnnFindConvolutionBackwardDataAlgorithm : cudnnGetConvolutionBackwardDataAlgorithm_v7;
        check_status(choose(ctx_.cudnn(), plan.w, plan.y, plan.conv, plan.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                            &count, perf),
                     "conv2d_backward_input");
        const auto& best = pick_algorithm(perf, count, "conv2d_backward_input", plan.tf32);
        plan.bwd_data = best.algo;
        plan.bwd_data_math = best.mathType;
        check_status(cudnnGetConvolutionBackwardDataWorkspaceSize(ctx_.cudnn(), plan.w, plan.y, plan.conv,
                                                           plan.x, plan.bwd_data, &plan.bwd_data_bytes),
              "conv2d_backward_input");
        plan.has_bwd_data = true;
      }
      const T one = 1, zero = 0;
      void* ws = workspace(plan.bwd_data_bytes);
      check_status(cudnnSetConvolutionMathType(plan.conv, plan.bwd_data_math), "conv2d_backward_input");
      check_status(cudnnConvolutionBackwardData(ctx_.cudnn(), &one, plan.w, w, plan.y, gy, plan.conv,
                                         plan.bwd_data, ws, plan.bwd_data_bytes, &zero, plan.x, gx),
            "conv2d_backward_input");
    } else {
      unsupported("conv2d_backward_input");
    }
  }

  void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw) override {
    if constexpr (is_floating_v<T>) {
      DeviceGuard guard(ctx_.index());
      std::lock_guard<std::mutex> lock(conv_mutex_);  // plans and workspace are shared
      ConvPlan& plan = conv_plan(g);
      if (!plan.has_bwd_filter) {
        check_status(cudnnSetConvolutionMathType(plan.conv, plan.base_math()), "conv2d_backward_weight");
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        int count = 0;
        const auto choose =
            plan.benchmark ? cudnnFindConvolutionBackwardFilterAlgorithm : cudnnGetConvolutionBackwardFilterAlgorithm_v7;
        check_status(choose(ctx_.cudnn(), plan.x, plan.y, plan.conv, plan.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                            &count, perf),
                     "conv2d_backward_weight");
        const auto& best = pick_algorithm(perf, count, "conv2d_backward_weight", plan.tf32);
        plan.bwd_filter = best.algo;
        plan.bwd_filter_math = best.mathType;
        check_status(cudnnGetConvolutionBackwardFilterWorkspaceSize(ctx_.cudnn(), plan.x, plan.y, plan.conv,
                                                             plan.w, plan.bwd_filter,
                                                             &plan.bwd_filter_bytes),
              "conv2d_backward_weight");
        plan.has_bwd_filter = true;
      }
      const T one = 1, zero = 0;
      void* ws = workspace(plan.bwd_filter_bytes);
      check_status(cudnnSetConvolutionMathType(plan.conv, plan.bwd_filter_math), "conv2d_backward_weight");
      check_status(cudnnConvolutionBackwardFilter(ctx_.cudnn(), &one, plan.x, x, plan.y, gy, plan.conv,
                                           plan.bwd_filter, ws, plan.bwd_filter_bytes, &zero, plan.w,
                                           gw),
            "conv2d_backward_weight");
    } else {
      unsupported("conv2d_backward_weight");
    }
  }

  void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int64_t* am) override {
    if constexpr (is_floating_v<T>) {
      launch("max_pool2d", g.n * g.c * g.h_out * g.w_out, kernels::MaxPool2dForward<T>{g, x, y, am});
    } else {
      unsupported("max_pool2d");
    }
  }
  void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int64_t* am,
                           T* gx) override {
    if constexpr (is_floating_v<T>) {
      zero_fill(gx, g.n * g.c * g.h_in * g.w_in);
      launch("max_pool2d_backward", g.n * g.c * g.h_out * g.w_out,
             kernels::MaxPool2dBackward<T>{g, gy, am, gx});
    } else {
      unsupported("max_pool2d_backward");
    }
  }
  void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) override {
    if constexpr (is_floating_v<T>) {
      launch("avg_pool2d", g.n * g.c * g.h_out * g.w_out, kernels::AvgPool2d<T, false>{g, x, y});
    } else {
      unsupported("avg_pool2d");
    }
  }
  void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx) override {
    if constexpr (is_floating_v<T>) {
      zero_fill(gx, g.n * g.c * g.h_in * g.w_in);
      launch("avg_pool2d_backward", g.n * g.c * g.h_out * g.w_out,
             kernels::AvgPool2d<T, true>{g, gy, gx});
    } else {
      unsupported("avg_pool2d_backward");
    }
  }
  void adaptive_avg_pool2d_forward(std::int64_t nc, std::int64_t h, std::int64_t w,
                                   std::int64_t ho, std::int64_t wo, const T* x, T* y) override {
    if constexpr (is_floating_v<T>) {
      launch("adaptive_avg_pool2d", nc * ho * wo,
             kernels::AdaptiveAvgPool2d<T, false>{h, w, ho, wo, x, y});
    } else {
      unsupported("adaptive_avg_pool2d");
    }
  }
  void adaptive_avg_pool2d_backward(std::int64_t nc, std::int64_t h, std::int64_t w,
                                    std::int64_t ho, std::int64_t wo, const T* gy,
                                    T* gx) override {
    if constexpr (is_floating_v<T>) {
      zero_fill(gx, nc * h * w);
      launch("adaptive_avg_pool2d_backward", nc * ho * wo,
             kernels::AdaptiveAvgPool2d<T, true>{h, w, ho, wo, gy, gx});
    } else {
      unsupported("adaptive_avg_pool2d_backward");
    }
  }
  void interpolate_forward(InterpMode mode, bool ac, std::int64_t nc, std::int64_t h,
                           std::int64_t w, std::int64_t ho, std::int64_t wo, double rh, double rw,
                           const T* x, T* y) override {
    if constexpr (is_floating_v<T>) {
      launch("interpolate", nc * ho * wo,
             kernels::Interpolate<T, false>{mode, ac, h, w, ho, wo, rh, rw, x, y});
    } else {
      unsupported("interpolate");
    }
  }
  void interpolate_backward(InterpMode mode, bool ac, std::int64_t nc, std::int64_t h,
                            std::int64_t w, std::int64_t ho, std::int64_t wo, double rh,
                            double rw, const T* gy, T* gx) override {
    if constexpr (is_floating_v<T>) {
      zero_fill(gx, nc * h * w);
      launch("interpolate_backward", nc * ho * wo,
             kernels::Interpolate<T, true>{mode, ac, h, w, ho, wo, rh, rw, gy, gx});
    } else {
      unsupported("interpolate_backward");
    }
  }

  // --- random ------------------------------------------------------------------------------
  void random_uniform(T* dst, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                      double lo, double hi) override {
    if constexpr (is_floating_v<T>) {
      launch("rand", n, kernels::RandomUniform<T>{dst, seed, offset, lo, hi});
    } else {
      unsupported("rand");
    }
  }
  void random_normal(T* dst, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                     double mean, double std) override {
    if constexpr (is_floating_v<T>) {
      launch("randn", n, kernels::RandomNormal<T>{dst, seed, offset, mean, std});
    } else {
      unsupported("randn");
    }
  }

 private:
  template <class Body>
  void launch(const char* op, std::int64_t n, const Body& body) {
    if (n <= 0) return;
    DeviceGuard guard(ctx_.index());
    ctx_.after_launch(cuda_kernels::for_each(n, body, ctx_.stream()), op);
  }

  template <class Body>
  void launch_rows(const char* op, std::int64_t rows, const Body& body) {
    if (rows <= 0) return;
    DeviceGuard guard(ctx_.index());
    ctx_.after_launch(cuda_kernels::for_each_row(rows, body, ctx_.stream()), op);
  }

  template <class Params>
  void channel_passes(const char* op, std::int64_t rows, const Params& p, bool elementwise) {
    using Acc = kernels::ReduceAcc<T>;
    const auto split = kernels::ChannelSplit::of(p.layout, rows);
    // Stream-ordered scratch: freed after the launches queued before it.
    Scratch partial(alloc_, std::size_t(split.parts * rows) * sizeof(kernels::Pair<Acc>));
    Scratch coef(alloc_, std::size_t(4 * rows) * sizeof(T));
    kernels::channel_passes(
        p, rows, split, partial.as<kernels::Pair<Acc>>(), coef.as<T>(),
        [&](std::int64_t n, const auto& body) { launch_rows(op, n, body); },
        [&](std::int64_t n, const auto& body) { launch(op, n, body); }, elementwise);
  }

  template <class U>
  void convert(const char* op, const Ref<const T>& src, const Ref<U>& dst) {
    launch(op, dst.numel(),
           kernels::Convert<T, U>{kernels::make_indexer<2>(dst.shape, {&dst.strides, &src.strides}, op),
                                  src.data, dst.data});
  }

  void zero_fill(T* p, std::int64_t n) {
    if (n <= 0) return;
    DeviceGuard guard(ctx_.index());
    check_status(cudaMemsetAsync(p, 0, std::size_t(n) * sizeof(T), ctx_.stream()), "zero");
  }

  // The plan of a geometry, TF32 and benchmark setting: descriptors made once, algorithms chosen
  // on first use.
  ConvPlan& conv_plan(const Conv2dGeometry& g) {
    const bool tf32 = std::is_same_v<T, float> && ::ligm::cuda::allow_tf32().conv;
    const bool benchmark = ::ligm::cuda::cudnn_benchmark();
    const std::array<std::int64_t, 17> key{g.n,    g.c_in,     g.h_in,     g.w_in,  g.c_out, g.h_out,
                                           g.w_out, g.kh,      g.kw,       g.stride_h, g.stride_w,
                                           g.pad_h, g.pad_w,   g.dil_h,    g.dil_w, g.groups,
                                           (tf32 ? 1 : 0) | (benchmark ? 2 : 0)};
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;
    for (std::int64_t v : key)
      check(v <= INT_MAX, "conv2d", "dimension ", v, " exceeds cuDNN's int range");
    auto plan = std::make_unique<ConvPlan>();
    const cudnnDataType_t dt = std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
    check_status(cudnnCreateTensorDescriptor(&plan->x), "conv2d");
    check_status(cudnnCreateTensorDescriptor(&plan->y), "conv2d");
    check_status(cudnnCreateFilterDescriptor(&plan->w), "conv2d");
    check_status(cudnnCreateConvolutionDescriptor(&plan->conv), "conv2d");
    check_status(cudnnSetTensor4dDescriptor(plan->x, CUDNN_TENSOR_NCHW, dt, int(g.n), int(g.c_in),
                                     int(g.h_in), int(g.w_in)),
          "conv2d");
    check_status(cudnnSetTensor4dDescriptor(plan->y, CUDNN_TENSOR_NCHW, dt, int(g.n), int(g.c_out),
                                     int(g.h_out), int(g.w_out)),
          "conv2d");
    check_status(cudnnSetFilter4dDescriptor(plan->w, dt, CUDNN_TENSOR_NCHW, int(g.c_out),
                                     int(g.c_in / g.groups), int(g.kh), int(g.kw)),
          "conv2d");
    check_status(cudnnSetConvolution2dDescriptor(plan->conv, int(g.pad_h), int(g.pad_w), int(g.stride_h),
                                          int(g.stride_w), int(g.dil_h), int(g.dil_w),
                                          CUDNN_CROSS_CORRELATION, dt),
          "conv2d");
    check_status(cudnnSetConvolutionGroupCount(plan->conv, int(g.groups)), "conv2d");
    plan->tf32 = tf32;
    plan->benchmark = benchmark;
    check_status(cudnnSetConvolutionMathType(plan->conv, plan->base_math()), "conv2d");
    return *plans_.emplace(key, std::move(plan)).first->second;
  }

  // One workspace per backend, grown to the largest request and reused.
  void* workspace(std::size_t bytes) {
    if (bytes > workspace_bytes_) {
      workspace_.reset();
      workspace_ = std::make_unique<Scratch>(alloc_, bytes);
      workspace_bytes_ = bytes;
    }
    return workspace_ ? workspace_->as<void>() : nullptr;
  }

  DeviceContext& ctx_;
  CudaAllocator alloc_;
  std::map<std::array<std::int64_t, 17>, std::unique_ptr<ConvPlan>> plans_;
  std::unique_ptr<Scratch> workspace_;
  std::mutex conv_mutex_;
  std::size_t workspace_bytes_ = 0;
};

}  // namespace ligm::cuda_detail
