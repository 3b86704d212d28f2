// matmul (NumPy semantics: 1-d operands, broadcast batch dims), bmm, linear.
//
// Everything lands on one batched GEMM primitive. Transposed views are passed to it as
// transposed operands and broadcast batch dims as batch stride 0, so neither is copied.
#pragma once
#include <optional>
#include <vector>

#include "ligm/ops/reduce.hpp"

namespace ligm {
namespace ops_detail {

template <class T>
struct GemmOperand {
  Tensor<T> keep;  // holds the buffer alive
  const T* data;
  std::int64_t ld, batch_stride;
  bool trans;
};

// The leading dimension and transposition of t's last two dims as a GEMM operand read in place,
// if one of them has unit stride.
struct MatrixLayout {
  std::int64_t ld;
  bool trans;
};
template <class T>
std::optional<MatrixLayout> matrix_layout(const Tensor<T>& t) {
  const auto r = t.shape()[t.dim() - 2], c = t.shape()[t.dim() - 1];
  const auto sr = t.strides()[t.dim() - 2], sc = t.strides()[t.dim() - 1];
  if ((sc == 1 || c == 1) && sr >= std::max<std::int64_t>(c, 1)) return MatrixLayout{sr, false};
  if ((sr == 1 || r == 1) && sc >= std::max<std::int64_t>(r, 1)) return MatrixLayout{sc, true};
  return std::nullopt;
}

// t is [B, r, c]; describe it for a row-major GEMM without copying when possible.
template <class T>
GemmOperand<T> gemm_operand(const Tensor<T>& t) {
  const auto sb = t.shape()[0] == 1 ? 0 : t.strides()[0];
  if (const auto l = matrix_layout(t)) return {t, t.data_ptr(), l->ld, sb, l->trans};
  auto cc = t.contiguous();
  return {cc, cc.data_ptr(), t.shape()[2], t.shape()[1] * t.shape()[2], false};
}

// out[B, m, n] = a[B, m, k] @ b[B, k, n], written to out's contiguous buffer at `out_data`;
// a or b may have B = 1 (broadcast).
template <class T>
void bmm_into(const Tensor<T>& a, const Tensor<T>& b, T* out_data, T alpha = T(1)) {
  const auto batch = std::max(a.shape()[0], b.shape()[0]);
  const auto m = a.shape()[1], k = a.shape()[2], n = b.shape()[2];
  auto A = gemm_operand(a), B = gemm_operand(b);
  count_gemm_flops(m, n, k, batch);
  be(a).gemm(A.trans, B.trans, m, n, k, alpha, A.data, A.ld, a.shape()[0] == 1 ? 0 : A.batch_stride,
             B.data, B.ld, b.shape()[0] == 1 ? 0 : B.batch_stride, T(0), out_data, n, m * n, batch);
}

template <class T>
Tensor<T> bmm_raw(const Tensor<T>& a, const Tensor<T>& b, T alpha = T(1)) {
  auto out = Tensor<T>::empty({std::max(a.shape()[0], b.shape()[0]), a.shape()[1], b.shape()[2]}, a.device());
  bmm_into(a, b, out.data_ptr(), alpha);
  return out;
}

// t [batch..., r, c] as [numel(batch), r, c]: a view when the batch dims merge, else a copy.
template <class T>
bool batch_dims_merge(const Tensor<T>& t, std::size_t nbatch) {
  for (std::size_t d = 0; d + 1 < nbatch; ++d)
    if (t.shape()[d] != 1 && t.strides()[d] != t.strides()[d + 1] * t.shape()[d + 1]) return false;
  return true;
}

// a [batch..., m, k] @ b [batch..., k, n] (batch already broadcast) into out [batch..., m, n].
// Batch dims that do not merge into one stride (attention heads split from a packed
// projection: [B, H] with strides [N * 3D, Dh]) are walked one leading index at a time
// instead of copying the operand.
template <class T>
void bmm_batch_dims(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& out, T alpha = T(1)) {
  const std::size_t nbatch = static_cast<std::size_t>(a.dim()) - 2;
  const auto m = a.shape()[a.dim() - 2], k = a.shape()[a.dim() - 1], n = b.shape()[b.dim() - 1];
  const std::int64_t nb = numel_of(Shape(a.shape().begin(), a.shape().end() - 2));
  if (nbatch <= 1 || nb == 0 || (batch_dims_merge(a, nbatch) && batch_dims_merge(b, nbatch))) {
    bmm_into(a.reshape({nb, m, k}), b.reshape({nb, k, n}), out.data_ptr(), alpha);
    return;
  }
  if (nbatch == 2) {  // [B, H, ., .]: one call over all B * H items when both are GEMM operands in place
    const auto A = matrix_layout(a), B = matrix_layout(b);
    if (A && B) {
      const GemmBatch2 batch{a.shape()[0], a.shape()[1], a.strides()[0], a.strides()[1], b.strides()[0],
                             b.strides()[1], out.strides()[0], out.strides()[1]};
      count_gemm_flops(m, n, k, batch.count0 * batch.count1);
      be(a).gemm_batch2(A->trans, B->trans, m, n, k, alpha, a.data_ptr(), A->ld, b.data_ptr(), B->ld, T(0),
                        out.data_ptr(), n, batch);
      return;
    }
  }
  for (std::int64_t i = 0; i < a.shape()[0]; ++i) {
    auto oi = out.select(0, i);
    bmm_batch_dims(a.select(0, i), b.select(0, i), oi, alpha);
  }
}

// alpha * a [..., m, k] @ b [..., k, n] with broadcast batch dims; both have >= 2 dims. The
// scale rides on the GEMMs (attention's 1 / sqrt(d) costs no pass, forward or backward).
template <class T>
Tensor<T> matmul_nd(const Tensor<T>& a, const Tensor<T>& b, T alpha = T(1)) {
  const auto m = a.shape()[a.dim() - 2], k = a.shape()[a.dim() - 1];
  const auto k2 = b.shape()[b.dim() - 2], n = b.shape()[b.dim() - 1];
  check(k == k2, "matmul", "shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied (",
        k, " != ", k2, ") (", dtype_name<T>(), ", ", a.device().str(), ")");
  Tensor<T> out;
  {
    NoGradGuard g;
    if (b.dim() == 2 && a.dim() == 2) {
      out = bmm_raw(a.unsqueeze(0), b.unsqueeze(0), alpha).squeeze(0);  // transposed views stay views
    } else if (b.dim() == 2) {  // fold a's batch into its rows: one big GEMM
      Shape s(a.shape().begin(), a.shape().end() - 1);
      const std::int64_t rows = numel_of(s);
      s.push_back(n);
      out = bmm_raw(a.reshape({1, rows, k}), b.unsqueeze(0), alpha).view(s);
    } else {
      const Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
      Shape batch = broadcast_shapes(ba, bb, "matmul");
      Shape sa = batch, sb = batch, so = batch;
      sa.insert(sa.end(), {m, k});
      sb.insert(sb.end(), {k, n});
      so.insert(so.end(), {m, n});
      out = Tensor<T>::empty(so, a.device());
      bmm_batch_dims(a.expand(sa), b.expand(sb), out, alpha);
    }
  }
  out = out.detach();
  return autograd::record("MatmulBackward", out, {a, b},
                          [a = autograd::save(a), b = autograd::save(b), alpha](const Tensor<T>& g, const NeedsGrad& need)
                              -> std::vector<Tensor<T>> {
                            Tensor<T> ga, gb;
                            if (need[0]) ga = sum_to(matmul_nd(g, b.transpose(-1, -2), alpha), a.shape());
                            if (need[1]) gb = sum_to(matmul_nd(a.transpose(-1, -2), g, alpha), b.shape());
                            return {ga, gb};
                          });
}

}  // namespace ops_detail

template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  ops_detail::floating_only<T>("matmul");
  ops_detail::same_device(a, b, "matmul");
  check(a.dim() >= 1 && b.dim() >= 1, "matmul", "both arguments need at least 1 dim, got shapes ",
        a.shape(), " and ", b.shape());
  const bool a1 = a.dim() == 1, b1 = b.dim() == 1;
  auto out = ops_detail::matmul_nd(a1 ? a.unsqueeze(0) : a, b1 ? b.unsqueeze(-1) : b);
  if (b1) out = out.squeeze(-1);
  if (a1) out = out.squeeze(a1 && b1 ? -1 : -2);
  return out;
}

template <class T>
Tensor<T> mm(const Tensor<T>& a, const Tensor<T>& b) {
  check(a.dim() == 2 && b.dim() == 2, "mm", "expects 2-d tensors, got shapes ", a.shape(), " and ", b.shape());
  return matmul(a, b);
}

template <class T>
Tensor<T> bmm(const Tensor<T>& a, const Tensor<T>& b) {
  check(a.dim() == 3 && b.dim() == 3 && a.shape()[0] == b.shape()[0], "bmm",
        "expects 3-d tensors with equal batch, got shapes ", a.shape(), " and ", b.shape());
  return matmul(a, b);
}

// y = x @ weight^T + bias; weight is [out_features, in_features], x is [..., in_features].
// One GEMM with the bias added to C (Backend::gemm_bias); the backward computes dW = g^T x directly
// in W's layout, so neither direction transposes or copies the weight.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {}) {
  ops_detail::floating_only<T>("linear");
  ops_detail::same_device(x, weight, "linear");
  check(weight.dim() == 2, "linear", "weight must be 2-d, got shape ", weight.shape());
  check(x.dim() >= 1 && x.shape().back() == weight.shape()[1], "linear", "input of shape ",
        x.shape(), " does not match weight of shape ", weight.shape(), " (", dtype_name<T>(), ", ",
        x.device().str(), ")");
  if (bias.defined())
    check(bias.dim() == 1 && bias.shape()[0] == weight.shape()[0], "linear", "bias of shape ",
          bias.shape(), " does not match weight of shape ", weight.shape());
  const std::int64_t k = weight.shape()[1], n = weight.shape()[0];
  const std::int64_t m = numel_of(Shape(x.shape().begin(), x.shape().end() - 1));  // rows, even if k == 0
  Shape out_shape = x.shape();
  out_shape.back() = n;
  Tensor<T> x2, y;
  {
    NoGradGuard g;
    x2 = x.reshape({m, k});
    y = Tensor<T>::empty({m, n}, x.device());
    auto X = ops_detail::gemm_operand(x2.unsqueeze(0)), W = ops_detail::gemm_operand(weight.unsqueeze(0));
    ops_detail::count_gemm_flops(m, n, k);
    if (bias.defined()) {
      const Tensor<T> b = bias.contiguous();
      ops_detail::be(x).gemm_bias(X.trans, !W.trans, m, n, k, X.data, X.ld, W.data, W.ld, b.data_ptr(), y.data_ptr(), n);
    } else {
      ops_detail::be(x).gemm(X.trans, !W.trans, m, n, k, T(1), X.data, X.ld, 0, W.data, W.ld, 0, T(0), y.data_ptr(),
                             n, 0, 1);
    }
    y = y.view(out_shape).detach();
    x2 = x2.detach();
  }
  return autograd::record(
      "LinearBackward", y, {x, weight, bias},
      [x2 = autograd::save(x2), w = autograd::save(weight), m, n, xs = x.shape()](
          const Tensor<T>& g, const NeedsGrad& need) -> std::vector<Tensor<T>> {
        auto g2 = g.reshape({m, n});
        Tensor<T> gx, gw, gb;
        if (need[0]) gx = matmul(g2, w).view(xs);   // [m, n] @ [n, k]
        if (need[1]) gw = matmul(g2.t(), x2);       // [n, m] @ [m, k]
        if (need[2]) gb = sum(g2, {0});
        return {gx, gw, gb};
      });
}

}  // namespace ligm
