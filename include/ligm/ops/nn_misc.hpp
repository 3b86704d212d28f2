// dropout, embedding, one_hot, sort, topk, scaled_dot_product_attention and packed_attention.
#pragma once
#include <cmath>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "ligm/ops/matmul.hpp"
#include "ligm/ops/softmax.hpp"

namespace ligm {

// Zeroes each element with probability p and scales the rest by 1 / (1 - p). The mask comes
// from the Philox stream of `gen`, so it is the same on every device for the same seed.
template <class T>
Tensor<T> dropout(const Tensor<T>& x, double p = 0.5, bool training = true,
                  Generator& gen = default_generator()) {
  check(p >= 0 && p <= 1, "dropout", "probability must be in [0, 1], got ", p);
  if (!training || p == 0) return x;
  if (p == 1) return mul(x, zeros_like(x));
  auto keep = lt(rand<T>(x.shape(), gen, x.device()), T(1 - p)).template to<T>();
  return mul(x, mul(keep, T(1 / (1 - p))));
}

// Rows of weight [V, D] for each index; the padding_idx row receives no gradient.
template <class T>
Tensor<T> embedding(const Tensor<std::int64_t>& indices, const Tensor<T>& weight,
                    std::optional<std::int64_t> padding_idx = std::nullopt) {
  check(weight.dim() == 2, "embedding", "weight must be 2-d [num_embeddings, dim], got ", weight.shape());
  Shape out_shape = indices.shape();
  out_shape.push_back(weight.shape()[1]);
  auto flat = indices.reshape({-1});
  auto rows = index_select(weight, 0, flat);
  if (padding_idx) {
    auto pad = eq(flat, *padding_idx).unsqueeze(1);
    rows = where(pad, index_select(weight.detach(), 0, flat), rows);
  }
  return rows.reshape(out_shape);
}

// int64 tensor with a trailing dim of num_classes (inferred as max + 1 when -1).
inline Tensor<std::int64_t> one_hot(const Tensor<std::int64_t>& indices, std::int64_t num_classes = -1) {
  const auto v = indices.to_vector();
  if (num_classes < 0) {
    num_classes = 0;
    for (auto i : v) num_classes = std::max(num_classes, i + 1);
  }
  for (auto i : v)
    check(i >= 0 && i < num_classes, "one_hot", "class value ", i, " is out of range for ",
          num_classes, " classes");
  Shape s = indices.shape();
  s.push_back(num_classes);
  auto out = zeros<std::int64_t>(s, indices.device());
  auto idx = indices.unsqueeze(-1);
  return scatter_add(out, -1, idx, ones<std::int64_t>(idx.shape(), indices.device()));
}

// Sorted values (differentiable, as a gather) and their indices (stable).
template <class T>
std::pair<Tensor<T>, Tensor<std::int64_t>> sort(const Tensor<T>& x, std::int64_t dim = -1,
                                                bool descending = false) {
  ops_detail::defined_or_fail(x, "sort", "the input");
  if (x.dim() == 0) return {x, zeros<std::int64_t>({}, x.device())};
  dim = wrap_dim(dim, x.dim(), "sort");
  Tensor<std::int64_t> idx;
  {
    NoGradGuard g;
    auto moved = x.transpose(dim, -1).contiguous();
    const auto cols = moved.shape().back();
    auto values = Tensor<T>::empty(moved.shape(), x.device());
    auto indices = Tensor<std::int64_t>::empty(moved.shape(), x.device());
    ops_detail::be(x).sort_rows(moved.data_ptr(), cols ? moved.numel() / cols : 0, cols, descending,
                                values.data_ptr(), indices.data_ptr());
    idx = indices.transpose(dim, -1).contiguous();
  }
  return {gather(x, dim, idx), idx};
}

template <class T>
std::pair<Tensor<T>, Tensor<std::int64_t>> topk(const Tensor<T>& x, std::int64_t k,
                                                std::int64_t dim = -1, bool largest = true) {
  dim = wrap_dim(dim, x.dim(), "topk");
  const std::int64_t size = x.dim() ? x.shape()[dim] : 1;
  check(k >= 0 && k <= size, "topk", "k (", k, ") is out of range for dim ", dim, " of size ",
        size, " (shape ", x.shape(), ")");
  if (x.dim() == 0) {  // a scalar is its own top 1
    check(k == 1, "topk", "k = 0 of a 0-dim tensor");
    return sort(x, dim, largest);
  }
  auto [values, idx] = sort(x, dim, largest);
  auto top_idx = idx.narrow(dim, 0, k).contiguous();
  return {gather(x, dim, top_idx), top_idx};
}

template <class T>
struct AttentionOptions {
  Tensor<T> attn_mask = {};          // additive float mask, broadcast to [..., L, S]
  Tensor<bool> attn_mask_bool = {};  // or a boolean mask: true = may attend
  double dropout_p = 0.0;
  bool is_causal = false;
  std::optional<double> scale = std::nullopt;  // default 1 / sqrt(E)
  Generator* generator = nullptr;
};

// softmax(q k^T * scale + mask) v for q [..., L, E], k [..., S, E], v [..., S, Ev].
template <class T>
Tensor<T> scaled_dot_product_attention(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v,
                                       const AttentionOptions<T>& o = {}) {
  const char* op = "scaled_dot_product_attention";
  check(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2, op, "q, k, v need at least 2 dims, got ",
        q.shape(), ", ", k.shape(), ", ", v.shape());
  check(q.shape().back() == k.shape().back() && k.shape()[k.dim() - 2] == v.shape()[v.dim() - 2],
        op, "incompatible shapes q ", q.shape(), ", k ", k.shape(), ", v ", v.shape());
  const std::int64_t L = q.shape()[q.dim() - 2], S = k.shape()[k.dim() - 2];
  const double scale = o.scale.value_or(1.0 / std::sqrt(double(q.shape().back())));
  // The scale rides on the GEMM (its alpha, forward and backward): no pass over q or the scores.
  auto scores = ops_detail::matmul_nd(q, k.transpose(-2, -1), T(scale));
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const bool masks = o.attn_mask_bool.defined() || o.attn_mask.defined();
  if (o.is_causal && masks) {
    auto rows = arange<std::int64_t>(0, double(L), 1, q.device()).unsqueeze(1);
    auto cols = arange<std::int64_t>(0, double(S), 1, q.device()).unsqueeze(0);
    scores = masked_fill(scores, gt(cols, rows), neg_inf);
  }
  if (o.attn_mask_bool.defined()) scores = masked_fill(scores, logical_not(o.attn_mask_bool), neg_inf);
  if (o.attn_mask.defined()) scores = add(scores, o.attn_mask);
  // Causal alone: query i sees keys 0..i, masked inside the softmax kernel (no mask tensor).
  auto p = o.is_causal && !masks ? ops_detail::softmax_impl(scores, -1, false, L) : softmax(scores, -1);
  if (o.dropout_p > 0) p = dropout(p, o.dropout_p, true, o.generator ? *o.generator : default_generator());
  return matmul(p, v);
}

// Self-attention straight from a packed projection, as one op: qkv [B, N, 3 * H * Dh] holds
// each token's q, k and v side by side (H heads of Dh each: timm's qkv, nanoGPT's c_attn), the
// result [B, N, H * Dh] its heads side by side, ready for the output projection. The same
// values as
//   packed = qkv.reshape({B, N, 3, H, Dh}).permute({2, 0, 3, 1, 4});
//   scaled_dot_product_attention(packed[0], packed[1], packed[2]).transpose(1, 2).reshape({B, N, H * Dh})
// but its GEMMs read q, k and v in place and write their results where they belong: the
// forward makes no head-merging copy, and the backward writes dq, dk and dv into one packed
// gradient, instead of a zero-filled input-sized gradient per slice summed together and a
// permuting copy (in ViT's attention that glue took about a quarter of the time). Five batched
// GEMMs and the softmax kernels (backend primitives: CPU and CUDA alike); the probabilities
// [B, H, N, N] are kept for the backward, as the composite form keeps them.
//   S = scale q k^T, P = softmax(S) (causal: key j <= query i), out = P v
//   dP = dout v^T, dv = P^T dout, dS = P (dP - rowsum(dP P)), dq = scale dS k, dk = scale dS^T q
template <class T>
Tensor<T> packed_attention(const Tensor<T>& qkv, std::int64_t heads, bool causal = false,
                           std::optional<double> scale = std::nullopt) {
  const char* op = "packed_attention";
  ops_detail::floating_only<T>(op);
  ops_detail::defined_or_fail(qkv, op, "qkv");
  check(qkv.dim() == 3 && heads > 0 && qkv.shape()[2] % (3 * heads) == 0, op,
        "qkv must be [B, N, 3 * heads * head_dim]; got ", qkv.shape(), " with ", heads, " heads (",
        dtype_name<T>(), ", ", qkv.device().str(), ")");
  const std::int64_t B = qkv.shape()[0], N = qkv.shape()[1], Dh = qkv.shape()[2] / (3 * heads), H = heads;
  const std::int64_t D = H * Dh, ld = 3 * D;  // a token's row of qkv; q, k, v at 0, D, 2 D of it
  const T alpha = T(scale.value_or(1.0 / std::sqrt(double(Dh))));
  // The strides of item (b, h): in a [B, H, N, N] buffer (H N^2, N^2), of a head in qkv (N ld,
  // Dh) and in [B, N, H Dh] (out, dout: N D, Dh).
  const GemmBatch2 scores_by_qk{B, H, N * ld, Dh, N * ld, Dh, H * N * N, N * N};
  const GemmBatch2 p_by_v{B, H, H * N * N, N * N, N * ld, Dh, N * D, Dh};
  Tensor<T> x = qkv.contiguous().detach(), out, probs;
  {
    NoGradGuard g;
    auto scores = Tensor<T>::empty({B, H, N, N}, x.device());
    probs = Tensor<T>::empty({B, H, N, N}, x.device());
    out = Tensor<T>::empty({B, N, D}, x.device());
    auto& backend = ops_detail::be(x);
    const T *q = x.data_ptr(), *k = q + D, *v = q + 2 * D;
    ops_detail::count_gemm_flops(N, N, Dh, 2 * B * H);  // q k^T and p v
    backend.gemm_batch2(false, true, N, N, Dh, alpha, q, ld, k, ld, T(0), scores.data_ptr(), N, scores_by_qk);
    backend.softmax_rows(scores.data_ptr(), B * H * N, N, false, causal ? N : 0, probs.data_ptr());
    backend.gemm_batch2(false, false, N, Dh, N, T(1), probs.data_ptr(), N, v, ld, T(0), out.data_ptr(), D,
                        p_by_v);
  }
  return autograd::record(
      "PackedAttentionBackward", out, {qkv},
      [x = autograd::save(x), probs = autograd::save(probs), B, N, H, Dh, D, ld, alpha](
          const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
        auto dout = g.contiguous();
        auto& backend = ops_detail::be(dout);
        auto dp = Tensor<T>::empty({B, H, N, N}, dout.device());
        auto ds = Tensor<T>::empty({B, H, N, N}, dout.device());
        auto dx = Tensor<T>::empty({B, N, ld}, dout.device());  // its q, k and v parts all written below
        const T *q = x.data_ptr(), *k = q + D, *v = q + 2 * D;
        T* const dq = dx.data_ptr(), *const dk = dq + D, *const dv = dq + 2 * D;
        const GemmBatch2 dout_by_v{B, H, N * D, Dh, N * ld, Dh, H * N * N, N * N};
        const GemmBatch2 p_by_dout{B, H, H * N * N, N * N, N * D, Dh, N * ld, Dh};
        const GemmBatch2 ds_by_qk{B, H, H * N * N, N * N, N * ld, Dh, N * ld, Dh};
        ops_detail::count_gemm_flops(N, N, Dh, 4 * B * H);  // dp, dv, dq, dk
        backend.gemm_batch2(false, true, N, N, Dh, T(1), dout.data_ptr(), D, v, ld, T(0), dp.data_ptr(), N,
                            dout_by_v);
        backend.gemm_batch2(true, false, N, Dh, N, T(1), probs.data_ptr(), N, dout.data_ptr(), D, T(0), dv, ld, p_by_dout);
        backend.softmax_rows_backward(probs.data_ptr(), dp.data_ptr(), B * H * N, N, false, ds.data_ptr());
        backend.gemm_batch2(false, false, N, Dh, N, alpha, ds.data_ptr(), N, k, ld, T(0), dq, ld, ds_by_qk);
        backend.gemm_batch2(true, false, N, Dh, N, alpha, ds.data_ptr(), N, q, ld, T(0), dk, ld, ds_by_qk);
        return {dx};
      });
}

}  // namespace ligm
