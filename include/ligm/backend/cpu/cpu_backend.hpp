// The CPU backend: Backend<T> over host memory, with loops the compiler vectorises, a thread
// pool, Eigen for GEMM (backend/cpu/gemm.hpp) and im2col convolution (conv_pool.hpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "ligm/backend/backend.hpp"
#include "ligm/backend/cpu/allocator.hpp"
#include "ligm/backend/cpu/conv_pool.hpp"
#include "ligm/backend/cpu/gemm.hpp"
#include "ligm/backend/cpu/norm_rows.hpp"
#include "ligm/backend/cpu/parallel.hpp"
#include "ligm/backend/cpu/strided_loop.hpp"
#include "ligm/backend/kernels/loss.hpp"
#include "ligm/backend/kernels/norm.hpp"
#include "ligm/backend/kernels/optim.hpp"
#include "ligm/backend/kernels/random.hpp"
#include "ligm/backend/kernels/reduce.hpp"

namespace ligm::cpu {

template <class T>
class CpuBackend final : public Backend<T> {
 public:
  Device device() const override { return Device::cpu(); }

  [[noreturn]] static void unsupported(const char* primitive) {
    fail(primitive, "not supported for dtype ", dtype_name<T>(), " on cpu");
  }

  // --- elementwise -------------------------------------------------------------------------
  void fill(Ref<T> dst, T value) override {
    if (is_contiguous_strides(dst.shape, dst.strides)) {
      T* d = dst.data;
      parallel_for(0, dst.numel(), 65536, [&](std::int64_t lo, std::int64_t hi) {
        std::fill(d + lo, d + hi, value);
      });
      return;
    }
    strided_for<1>(dst.shape, {&dst.strides}, [&](std::int64_t, auto o) { dst.data[o[0]] = value; });
  }

  void copy(Ref<const T> src, Ref<T> dst) override {
    if (is_contiguous_strides(src.shape, src.strides) &&
        is_contiguous_strides(dst.shape, dst.strides)) {
      if (src.numel()) std::memmove(dst.data, src.data, src.numel() * sizeof(T));
      return;
    }
    strided_rows<2>(dst.shape, {&dst.strides, &src.strides},
                    [&](std::int64_t, const Offsets<2>& o, std::int64_t n, const Offsets<2>& s) {
                      T* d = dst.data + o[0];
                      const T* x = src.data + o[1];
                      if (s[0] == 1 && s[1] == 1) {
                        std::copy(x, x + n, d);
                      } else {
                        for (std::int64_t j = 0; j < n; ++j) d[j * s[0]] = x[j * s[1]];
                      }
                    });
  }

  template <class U>
  void cast_to(Ref<const T> src, Ref<U> dst) {
    strided_for<2>(dst.shape, {&dst.strides, &src.strides}, [&](std::int64_t, auto o) {
      dst.data[o[0]] = static_cast<U>(src.data[o[1]]);
    });
  }
  void cast(Ref<const T> s, Ref<float> d) override { cast_to(s, d); }
  void cast(Ref<const T> s, Ref<double> d) override { cast_to(s, d); }
  void cast(Ref<const T> s, Ref<std::int64_t> d) override { cast_to(s, d); }
  void cast(Ref<const T> s, Ref<bool> d) override { cast_to(s, d); }

  void unary(UnaryOp op, UnaryParams p, Ref<const T> x, Ref<T> y) override {
    if constexpr (is_floating_v<T> || std::is_same_v<T, std::int64_t>) {
      if constexpr (!is_floating_v<T>) {
        if (!math::unary_supports_integers(op)) unsupported("unary");
      }
      dispatch_unary(op, [&](auto op_c) {
        constexpr UnaryOp O = decltype(op_c)::value;
        strided_rows<2>(y.shape, {&y.strides, &x.strides},
                        [&](std::int64_t, const Offsets<2>& o, std::int64_t n, const Offsets<2>& s) {
                          T* yd = y.data + o[0];
                          const T* xd = x.data + o[1];
                          if (s[0] == 1 && s[1] == 1) {
                            for (std::int64_t j = 0; j < n; ++j) yd[j] = math::unary_forward(O, p, xd[j]);
                          } else {
                            for (std::int64_t j = 0; j < n; ++j)
                              yd[j * s[0]] = math::unary_forward(O, p, xd[j * s[1]]);
                          }
                        },
                        16384);
      });
    } else {
      unsupported("unary");
    }
  }

  void unary_backward(UnaryOp op, UnaryParams p, const T* x, const T* y, const T* g, T* dx,
                      std::int64_t n) override {
    if constexpr (is_floating_v<T>) {
      dispatch_unary(op, [&](auto op_c) {
        constexpr UnaryOp O = decltype(op_c)::value;
        parallel_for(0, n, 16384, [&](std::int64_t lo, std::int64_t hi) {
          for (std::int64_t i = lo; i < hi; ++i) dx[i] = math::unary_backward(O, p, x[i], y[i], g[i]);
        });
      });
    } else {
      unsupported("unary_backward");
    }
  }

  void binary(BinaryOp op, Ref<const T> a, Ref<const T> b, Ref<T> out) override {
    if constexpr (std::is_same_v<T, bool>) {
      unsupported("binary");
    } else {
      dispatch_binary(op, [&](auto op_c) {
        constexpr BinaryOp O = decltype(op_c)::value;
        auto f = [](T u, T v) { return math::binary_forward(O, u, v); };
        if (is_contiguous_strides(a.shape, a.strides) && is_contiguous_strides(b.shape, b.strides) &&
            is_contiguous_strides(out.shape, out.strides) && a.shape == out.shape &&
            b.shape == out.shape) {  // one flat loop
          const T *as = a.data, *bs = b.data;
          T* os = out.data;
          parallel_for(0, out.numel(), 16384, [&](std::int64_t lo, std::int64_t hi) {
            for (std::int64_t i = lo; i < hi; ++i) os[i] = f(as[i], bs[i]);
          });
          return;
        }
        strided_rows<3>(out.shape, {&out.strides, &a.strides, &b.strides},
                        [&](std::int64_t, const Offsets<3>& o, std::int64_t n, const Offsets<3>& s) {
                          T* od = out.data + o[0];
                          const T* ad = a.data + o[1];
                          const T* bd = b.data + o[2];
                          if (s[0] == 1 && s[1] == 1 && s[2] == 1) {
                            for (std::int64_t j = 0; j < n; ++j) od[j] = f(ad[j], bd[j]);
                          } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {  // row op scalar
                            const T bv = bd[0];
                            for (std::int64_t j = 0; j < n; ++j) od[j] = f(ad[j], bv);
                          } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {  // scalar op row
                            const T av = ad[0];
                            for (std::int64_t j = 0; j < n; ++j) od[j] = f(av, bd[j]);
                          } else {
                            for (std::int64_t j = 0; j < n; ++j)
                              od[j * s[0]] = f(ad[j * s[1]], bd[j * s[2]]);
                          }
                        },
                        16384);
      });
    }
  }

  void compare(CompareOp op, Ref<const T> a, Ref<const T> b, Ref<bool> out) override {
    strided_for<3>(out.shape, {&out.strides, &a.strides, &b.strides}, [&](std::int64_t, auto o) {
      out.data[o[0]] = math::compare(op, a.data[o[1]], b.data[o[2]]);
    });
  }

  void where(Ref<const bool> cond, Ref<const T> a, Ref<const T> b, Ref<T> out) override {
    strided_for<4>(out.shape, {&out.strides, &cond.strides, &a.strides, &b.strides},
                   [&](std::int64_t, auto o) {
                     out.data[o[0]] = cond.data[o[1]] ? a.data[o[2]] : b.data[o[3]];
                   });
  }

  // --- reductions --------------------------------------------------------------------------
  // Sum of n values p[0], p[step], ... in Acc, with eight independent partial sums so the
  // additions overlap (a single accumulator would wait on each add's latency).
  template <class Acc>
  static Acc sum_run(const T* p, std::int64_t n, std::int64_t step) {
    Acc part[8] = {};
    std::int64_t j = 0;
    if (step == 1) {
      for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; ++u) part[u] += Acc(p[j + u]);
    } else {
      for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; ++u) part[u] += Acc(p[(j + u) * step]);
    }
    Acc total = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    for (; j < n; ++j) total += Acc(p[j * step]);
    return total;
  }

  void reduce(ReduceOp op, Ref<const T> src, Ref<T> out) override {
    if (reduce_contiguous(op, src, out)) return;
    // Split src's dims into kept ones (iterated by output element) and reduced ones.
    // (Named fields, not a structured binding: clang before 16 cannot capture bindings in lambdas.)
    const kernels::ReductionDims dims = kernels::split_reduction(src.shape, src.strides, out.shape);
    const Shape &red_shape = dims.red_shape, &red_strides = dims.red_strides;
    using Acc = std::conditional_t<std::is_same_v<T, float>, double, T>;
    const std::int64_t n_red = numel_of(red_shape);
    if (n_red == 0) {  // an empty sum (the ops reject empty max/min): src may hold no memory at all
      check(op == ReduceOp::Sum, "reduce", "max/min over no elements");
      return fill(out, T(0));
    }
    strided_for<2>(out.shape, {&out.strides, &dims.keep_src_strides},
                   [&](std::int64_t, auto o) {
                     const T* base = src.data + o[1];
                     Acc acc = op == ReduceOp::Sum ? Acc(0) : Acc(base[0]);
                     strided_rows_range<1>(
                         red_shape, {&red_strides}, 0, n_red,
                         [&](std::int64_t, const Offsets<1>& r, std::int64_t n, const Offsets<1>& st) {
                           const T* p = base + r[0];
                           const std::int64_t step = st[0];
                           if (op == ReduceOp::Sum) {
                             acc += sum_run<Acc>(p, n, step);
                           } else {
                             for (std::int64_t j = 0; j < n; ++j) {
                               const Acc v = Acc(p[j * step]);
                               if (op == ReduceOp::Max) acc = (v > acc || math::is_nan(v)) ? v : acc;
                               else acc = (v < acc || math::is_nan(v)) ? v : acc;
                             }
                           }
                         });
                     out.data[o[0]] = T(acc);
                   },
                   std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(n_red, 1)));
  }

  // Fast paths for a contiguous source whose reduced dims are a prefix ([R, C] -> [C]: rows
  // folded into one vectorised accumulator row) or a suffix ([C, R] -> [C]: each output a
  // contiguous run). Returns false when neither applies.
  bool reduce_contiguous(ReduceOp op, const Ref<const T>& src, const Ref<T>& out) {
    if constexpr (std::is_same_v<T, bool>) {
      return false;
    } else {
      if (!is_contiguous_strides(src.shape, src.strides) || src.numel() == 0) return false;
      // Over the dims of size > 1, reduced (R) and kept (K) must form R..RK..K (a leading
      // reduction, which needs some kept dim) or K..KR..R (a trailing or full reduction).
      bool seen_kept = false, seen_reduced = false;
      bool reduced_after_kept = false, kept_after_reduced = false;
      for (std::size_t d = 0; d < src.shape.size(); ++d) {
        if (src.shape[d] == 1) continue;
        if (out.shape[d] == 1) {
          reduced_after_kept = reduced_after_kept || seen_kept;
          seen_reduced = true;
        } else {
          kept_after_reduced = kept_after_reduced || seen_reduced;
          seen_kept = true;
        }
      }
      const bool prefix = seen_kept && !reduced_after_kept, suffix = !kept_after_reduced;
      const std::int64_t kept = out.numel(), red = src.numel() / std::max<std::int64_t>(kept, 1);
      auto combine = [op](T acc, T v) {
        if (op == ReduceOp::Sum) return T(acc + v);
        if (op == ReduceOp::Max) return (v > acc || math::is_nan(v)) ? v : acc;
        return (v < acc || math::is_nan(v)) ? v : acc;
      };
      if (prefix && is_floating_v<T>) {  // [red, kept]
        parallel_for(0, kept, 4096, [&](std::int64_t lo, std::int64_t hi) {
          T* o = out.data;
          for (std::int64_t j = lo; j < hi; ++j) o[j] = src.data[j];
          for (std::int64_t r = 1; r < red; ++r) {
            const T* row = src.data + r * kept;
            if (op == ReduceOp::Sum) {
              for (std::int64_t j = lo; j < hi; ++j) o[j] += row[j];
            } else {
              for (std::int64_t j = lo; j < hi; ++j) o[j] = combine(o[j], row[j]);
            }
          }
        });
        return true;
      }
      if (suffix) {  // [kept, red]
        using Acc = std::conditional_t<std::is_same_v<T, float>, double, T>;
        parallel_for(0, kept, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(red, 1)),
                     [&](std::int64_t lo, std::int64_t hi) {
                       for (std::int64_t j = lo; j < hi; ++j) {
                         const T* seg = src.data + j * red;
                         if (op == ReduceOp::Sum) {
                           out.data[j] = T(sum_run<Acc>(seg, red, 1));
                         } else {
                           T acc = seg[0];
                           for (std::int64_t r = 1; r < red; ++r) acc = combine(acc, seg[r]);
                           out.data[j] = acc;
                         }
                       }
                     });
        return true;
      }
      return false;
    }
  }

  void arg_reduce(bool is_max, Ref<const T> src, std::int64_t dim, Ref<T> values,
                  Ref<std::int64_t> indices) override {
    Shape keep_strides = src.strides;
    keep_strides[dim] = 0;
    const std::int64_t len = src.shape[dim], step = src.strides[dim];
    strided_for<3>(values.shape, {&values.strides, &indices.strides, &keep_strides},
                   [&](std::int64_t, auto o) {
                     const T* base = src.data + o[2];
                     T best = base[0];
                     std::int64_t best_i = 0;
                     for (std::int64_t i = 1; i < len; ++i) {
                       const T v = base[i * step];
                       if constexpr (is_floating_v<T>) {
                         if (best != best) break;  // NaN wins, first one
                         if (math::is_nan(v)) { best = v; best_i = i; break; }
                       }
                       if (is_max ? v > best : v < best) { best = v; best_i = i; }
                     }
                     values.data[o[0]] = best;
                     indices.data[o[1]] = best_i;
                   },
                   std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(len, 1)));
  }

  // --- linear algebra ----------------------------------------------------------------------
  void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
            const T* a, std::int64_t lda, std::int64_t sa, const T* b, std::int64_t ldb,
            std::int64_t sb, T beta, T* c, std::int64_t ldc, std::int64_t sc,
            std::int64_t batch) override {
    if constexpr (is_floating_v<T>) {
      gemm_batched(ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
    } else {
      unsupported("gemm");
    }
  }
  void gemm_batch2(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                   std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
                   const GemmBatch2& batch) override {
    if constexpr (is_floating_v<T>) {
      if (m == 0 || n == 0 || batch.count0 * batch.count1 == 0) return;  // C is empty (pointers may be null)
      // Too few items: split rows (gemm_batched); no inner dim: gemm_batched scales C (A and B may be null).
      if (batch.count0 * batch.count1 < get_num_threads() || k == 0)
        return Backend<T>::gemm_batch2(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, batch);
      parallel_for(0, batch.count0 * batch.count1, std::max<std::int64_t>(1, 65536 / std::max<std::int64_t>(1, m * n * k)),
                   [&](std::int64_t lo, std::int64_t hi) {
                     for (std::int64_t it = lo; it < hi; ++it) {
                       const std::int64_t i = it / batch.count1, j = it % batch.count1;
                       gemm_one(ta, tb, m, n, k, alpha, a + i * batch.a0 + j * batch.a1, lda,
                                b + i * batch.b0 + j * batch.b1, ldb, beta, c + i * batch.c0 + j * batch.c1, ldc);
                     }
                   });
    } else {
      unsupported("gemm_batch2");
    }
  }
  void gemm_bias(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
                 const T* b, std::int64_t ldb, const T* bias, T* c, std::int64_t ldc) override {
    if constexpr (is_floating_v<T>) {
      gemm_batched(ta, tb, m, n, k, T(1), a, lda, 0, b, ldb, 0, T(0), c, ldc, 0, 1, bias);
    } else {
      unsupported("gemm_bias");
    }
  }

  // --- indexing ----------------------------------------------------------------------------
  void index_select(const T* src, std::int64_t outer, std::int64_t src_dim, std::int64_t inner,
                    const std::int64_t* index, std::int64_t n_index, T* dst) override {
    parallel_for(0, outer * n_index, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(inner, 1)),
                 [&](std::int64_t lo, std::int64_t hi) {
                   for (std::int64_t r = lo; r < hi; ++r) {
                     const std::int64_t o = r / n_index, i = index[r % n_index];
                     std::copy(src + (o * src_dim + i) * inner, src + (o * src_dim + i + 1) * inner,
                               dst + r * inner);
                   }
                 });
  }

  void index_add(T* dst, std::int64_t outer, std::int64_t dst_dim, std::int64_t inner,
                 const std::int64_t* index, std::int64_t n_index, const T* src) override {
    if constexpr (std::is_same_v<T, bool>) {
      unsupported("index_add");
    } else {
      // Parallel over outer slices only: two indices may name the same row.
      parallel_for(0, outer, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t o = lo; o < hi; ++o)
          for (std::int64_t i = 0; i < n_index; ++i) {
            T* d = dst + (o * dst_dim + index[i]) * inner;
            const T* s = src + (o * n_index + i) * inner;
            for (std::int64_t j = 0; j < inner; ++j) d[j] += s[j];
          }
      });
    }
  }

  void gather(Ref<const T> src, std::int64_t dim, Ref<const std::int64_t> index,
              Ref<T> out) override {
    Shape src_strides = src.strides;
    const std::int64_t step = src_strides[dim];
    src_strides[dim] = 0;
    strided_for<3>(out.shape, {&out.strides, &index.strides, &src_strides},
                   [&](std::int64_t, auto o) {
                     out.data[o[0]] = src.data[o[2] + index.data[o[1]] * step];
                   });
  }

  void scatter_add(Ref<T> dst, std::int64_t dim, Ref<const std::int64_t> index,
                   Ref<const T> src) override {
    if constexpr (std::is_same_v<T, bool>) {
      unsupported("scatter_add");
    } else {
      Shape dst_strides = dst.strides;
      const std::int64_t step = dst_strides[dim];
      dst_strides[dim] = 0;
      // Serial: several source elements may land on one destination.
      strided_range<3>(src.shape, {&src.strides, &index.strides, &dst_strides}, 0, src.numel(),
                       [&](std::int64_t, auto o) {
                         dst.data[o[2] + index.data[o[1]] * step] += src.data[o[0]];
                       });
    }
  }

  void sort_rows(const T* src, std::int64_t rows, std::int64_t cols, bool descending, T* values,
                 std::int64_t* indices) override {
    parallel_for(0, rows, 1, [&](std::int64_t lo, std::int64_t hi) {
      std::vector<std::int64_t> order(static_cast<std::size_t>(cols));
      for (std::int64_t r = lo; r < hi; ++r) {
        const T* row = src + r * cols;
        std::iota(order.begin(), order.end(), 0);
        // NaN sorts as the largest value, as in PyTorch.
        auto less = [&](std::int64_t i, std::int64_t j) {
          const T a = row[i], b = row[j];
          if constexpr (is_floating_v<T>) {
            if (b != b) return a == a;
            if (a != a) return false;
          }
          return a < b;
        };
        if (descending)
          std::stable_sort(order.begin(), order.end(), [&](auto i, auto j) { return less(j, i); });
        else
          std::stable_sort(order.begin(), order.end(), less);
        for (std::int64_t c = 0; c < cols; ++c) {
          values[r * cols + c] = row[order[c]];
          indices[r * cols + c] = order[c];
        }
      }
    });
  }

  // --- fused NN primitives -----------------------------------------------------------------
  void softmax_rows(const T* src, std::int64_t rows, std::int64_t cols, bool log, std::int64_t causal,
                    T* dst) override {
    if constexpr (is_floating_v<T>) {
      parallel_for(0, rows, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(cols, 1)),
                   [&](std::int64_t lo, std::int64_t hi) {
                     for (std::int64_t r = lo; r < hi; ++r) {
                       const T* x = src + r * cols;
                       T* y = dst + r * cols;
                       // The columns this row sees; the rest are masked out.
                       const std::int64_t n = causal > 0 ? std::min(cols, r % causal + 1) : cols;
                       T mx = -std::numeric_limits<T>::infinity();
                       for (std::int64_t c = 0; c < n; ++c) mx = std::max(mx, x[c]);
                       if (mx == -std::numeric_limits<T>::infinity()) mx = 0;
                       // Each output reads its own input before writing: safe when dst == src.
                       if (log) {
                         T sum = 0;
                         for (std::int64_t c = 0; c < n; ++c) sum += math::exp(x[c] - mx);
                         const T lse = mx + std::log(sum);
                         for (std::int64_t c = 0; c < n; ++c) y[c] = x[c] - lse;
                       } else {
                         // exp once, into y (a loop that vectorises), then the sum and the scale.
                         for (std::int64_t c = 0; c < n; ++c) y[c] = math::exp(x[c] - mx);
                         T sum = 0;
                         for (std::int64_t c = 0; c < n; ++c) sum += y[c];
                         const T inv = T(1) / sum;
                         for (std::int64_t c = 0; c < n; ++c) y[c] *= inv;
                       }
                       std::fill(y + n, y + cols, log ? -std::numeric_limits<T>::infinity() : T(0));
                     }
                   });
    } else {
      unsupported("softmax");
    }
  }
  void softmax_rows_backward(const T* y, const T* g, std::int64_t rows, std::int64_t cols, bool log,
                             T* dx) override {
    if constexpr (is_floating_v<T>) {
      parallel_for(0, rows, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(cols, 1)),
                   [&](std::int64_t lo, std::int64_t hi) {
                     for (std::int64_t r = lo; r < hi; ++r) {
                       const T* yr = y + r * cols;
                       const T* gr = g + r * cols;
                       T* d = dx + r * cols;
                       T dot = 0;
                       if (log) {
                         for (std::int64_t c = 0; c < cols; ++c) dot += gr[c];
                         for (std::int64_t c = 0; c < cols; ++c) d[c] = gr[c] - math::exp(yr[c]) * dot;
                       } else {
                         for (std::int64_t c = 0; c < cols; ++c) dot += gr[c] * yr[c];
                         for (std::int64_t c = 0; c < cols; ++c) d[c] = yr[c] * (gr[c] - dot);
                       }
                     }
                   });
    } else {
      unsupported("softmax_backward");
    }
  }

#define LIGM_CPU_FLOAT_ONLY(name, call) \
  if constexpr (is_floating_v<T>) { call; } else { unsupported(name); }

  // The math of kernels/norm.hpp (which CUDA runs a warp per row) in two vectorised passes
  // (norm_rows.hpp).
  void normalize_rows(std::int64_t rows, const kernels::NormalizeRows<T>& body) override {
    LIGM_CPU_FLOAT_ONLY("normalize", norm::forward(body, rows));
  }
  void normalize_rows_backward(std::int64_t rows, const kernels::NormalizeRowsBackward<T>& body) override {
    LIGM_CPU_FLOAT_ONLY("normalize_backward", norm::backward(body, rows));
  }
  bool normalizes_columns() const override { return true; }

  // The CUDA thread bodies (kernels/loss.hpp), run over rows and elements in parallel.
  void cross_entropy_forward(const T* logits, std::int64_t rows, std::int64_t cols,
                             const std::int64_t* target, const T* weight, std::int64_t ignore,
                             double smoothing, T* loss, T* lse) override {
    if constexpr (is_floating_v<T>) {
      const kernels::CrossEntropyForward<T> body{logits, cols, target, weight, ignore, T(smoothing), loss, lse};
      parallel_for(0, rows, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(cols, 1)),
                   [&](std::int64_t lo, std::int64_t hi) {
                     for (std::int64_t i = lo; i < hi; ++i) body(i);
                   });
    } else {
      unsupported("cross_entropy");
    }
  }
  void cross_entropy_backward(const T* logits, const T* lse, std::int64_t rows, std::int64_t cols,
                              const std::int64_t* target, const T* weight, const T* weight_sum,
                              std::int64_t ignore, double smoothing, const T* g, T* grad) override {
    if constexpr (is_floating_v<T>) {
      const kernels::CrossEntropyBackward<T> body{logits, lse, cols, target, weight, weight_sum,
                                                  ignore, T(smoothing), g, grad};
      parallel_for(0, rows, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(cols, 1)),
                   [&](std::int64_t lo, std::int64_t hi) {
                     for (std::int64_t i = lo; i < hi; ++i) body.row(i);
                   });
    } else {
      unsupported("cross_entropy_backward");
    }
  }

  void ctu_forward(std::int64_t n, const kernels::CtuForward<T>& body) override {
    if constexpr (is_floating_v<T>) {
      parallel_for(0, n, 8192, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) body(i);
      });
    } else {
      unsupported("ctu");
    }
  }
  void ctu_backward(std::int64_t n, const kernels::CtuBackward<T>& body) override {
    if constexpr (is_floating_v<T>) {
      parallel_for(0, n, 4096, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) body(i);
      });
    } else {
      unsupported("ctu_backward");
    }
  }

  void adam_step(std::int64_t n, T* p, const T* g, T* m, T* v, const AdamHyper& h) override {
    if constexpr (is_floating_v<T>) {
      const auto body = kernels::AdamStep<T>::make(p, g, m, v, h);
      parallel_for(0, n, 16384, [&](std::int64_t lo, std::int64_t hi) { body.run(lo, hi); });
    } else {
      unsupported("adam_step");
    }
  }

  void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, T* y) override {
    LIGM_CPU_FLOAT_ONLY("conv2d", cpu::conv2d_forward(g, x, w, y))
  }
  void conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) override {
    LIGM_CPU_FLOAT_ONLY("conv2d_backward_input", cpu::conv2d_backward_input(g, gy, w, gx))
  }
  void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw) override {
    LIGM_CPU_FLOAT_ONLY("conv2d_backward_weight", cpu::conv2d_backward_weight(g, x, gy, gw))
  }
  void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* gy, const T* w, T* gx, T* gw) override {
    LIGM_CPU_FLOAT_ONLY("conv2d_backward", cpu::conv2d_backward(g, x, gy, w, gx, gw))
  }
  void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int64_t* am) override {
    LIGM_CPU_FLOAT_ONLY("max_pool2d", cpu::max_pool2d_forward(g, x, y, am))
  }
  void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int64_t* am,
                           T* gx) override {
    LIGM_CPU_FLOAT_ONLY("max_pool2d_backward", cpu::max_pool2d_backward(g, gy, am, gx))
  }
  void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) override {
    LIGM_CPU_FLOAT_ONLY("avg_pool2d", cpu::avg_pool2d_forward(g, x, y))
  }
  void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx) override {
    LIGM_CPU_FLOAT_ONLY("avg_pool2d_backward", cpu::avg_pool2d_backward(g, gy, gx))
  }
  void adaptive_avg_pool2d_forward(std::int64_t nc, std::int64_t h, std::int64_t w,
                                   std::int64_t ho, std::int64_t wo, const T* x, T* y) override {
    LIGM_CPU_FLOAT_ONLY("adaptive_avg_pool2d", (cpu::adaptive_avg_pool2d<T, false>(nc, h, w, ho, wo, x, y)))
  }
  void adaptive_avg_pool2d_backward(std::int64_t nc, std::int64_t h, std::int64_t w,
                                    std::int64_t ho, std::int64_t wo, const T* gy,
                                    T* gx) override {
    LIGM_CPU_FLOAT_ONLY("adaptive_avg_pool2d_backward", (cpu::adaptive_avg_pool2d<T, true>(nc, h, w, ho, wo, gy, gx)))
  }
  void interpolate_forward(InterpMode mode, bool ac, std::int64_t nc, std::int64_t h,
                           std::int64_t w, std::int64_t ho, std::int64_t wo, double rh, double rw,
                           const T* x, T* y) override {
    LIGM_CPU_FLOAT_ONLY("interpolate", (cpu::interpolate<T, false>(mode, ac, nc, h, w, ho, wo, rh, rw, x, y)))
  }
  void interpolate_backward(InterpMode mode, bool ac, std::int64_t nc, std::int64_t h,
                            std::int64_t w, std::int64_t ho, std::int64_t wo, double rh,
                            double rw, const T* gy, T* gx) override {
    LIGM_CPU_FLOAT_ONLY("interpolate_backward", (cpu::interpolate<T, true>(mode, ac, nc, h, w, ho, wo, rh, rw, gy, gx)))
  }

  // --- random ------------------------------------------------------------------------------
  void random_uniform(T* dst, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                      double lo, double hi) override {
    LIGM_CPU_FLOAT_ONLY("rand", parallel_for(0, n, 16384, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        T v = T(lo + (hi - lo) * philox::uniform(seed, offset, std::uint64_t(i)));
        dst[i] = v < T(hi) ? v : kernels::next_below(T(hi), T(lo));  // keep [lo, hi) after rounding
      }
    }))
  }
  void random_normal(T* dst, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                     double mean, double std) override {
    LIGM_CPU_FLOAT_ONLY("randn", parallel_for(0, n, 16384, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        dst[i] = T(mean + std * philox::normal(seed, offset, std::uint64_t(i)));
    }))
  }
#undef LIGM_CPU_FLOAT_ONLY
};

}  // namespace ligm::cpu
