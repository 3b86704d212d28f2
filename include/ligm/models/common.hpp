// Parts the models share: activation modules by name and multi-head self-attention over a
// packed q/k/v projection (timm's qkv, nanoGPT's c_attn).
#pragma once
#include <memory>
#include <string>

#include "ligm/nn/nn.hpp"

namespace ligm::models {

// "relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid", "leaky_relu", "softplus", "identity".
template <class T = float>
std::shared_ptr<nn::Module<T>> make_activation(const std::string& name) {
  if (name == "relu") return std::make_shared<nn::ReLU<T>>();
  if (name == "gelu") return std::make_shared<nn::GELU<T>>();
  if (name == "gelu_tanh") return std::make_shared<nn::GELU<T>>("tanh");
  if (name == "silu") return std::make_shared<nn::SiLU<T>>();
  if (name == "tanh") return std::make_shared<nn::Tanh<T>>();
  if (name == "sigmoid") return std::make_shared<nn::Sigmoid<T>>();
  if (name == "leaky_relu") return std::make_shared<nn::LeakyReLU<T>>();
  if (name == "softplus") return std::make_shared<nn::Softplus<T>>();
  if (name == "identity") return std::make_shared<nn::Identity<T>>();
  fail("make_activation", "unknown activation \"", name,
       "\" (relu, gelu, gelu_tanh, silu, tanh, sigmoid, leaky_relu, softplus, identity)");
}

// relu(bn(x)) for a block's batch norm and the ReLU module after it: one fused op
// (BatchNorm2d::forward_relu) when bn.fuses_with(relu), i.e. both modules are exactly what they
// were built as and plain (not replaced by module surgery, no hooks), so that a ReLU swapped
// for a Curvature Tuning unit, or a hooked one, runs as itself.
template <class T>
Tensor<T> bn_relu(nn::BatchNorm2d<T>& bn, nn::ReLU<T>& relu, const Tensor<T>& x) {
  if (auto y = bn.forward_fused(relu, x)) return std::move(*y);
  return relu(bn(x));
}
// relu(bn(x) + residual), the end of a residual block: one fused op
// (BatchNorm2d::forward_add_relu) on the same terms as bn_relu.
template <class T>
Tensor<T> bn_add_relu(nn::BatchNorm2d<T>& bn, nn::ReLU<T>& relu, const Tensor<T>& x, const Tensor<T>& residual) {
  if (bn.fuses_with(relu)) return bn.forward_add_relu(x, residual);
  return relu(add(bn(x), residual));
}

// Self-attention of x [B, N, D] with heads of D / heads: qkv(x) packs q, k and v along the
// last dim (as timm and nanoGPT do), proj mixes the heads back. Without attention dropout it is
// packed_attention, one op; with it, the composite scaled_dot_product_attention.
template <class T>
Tensor<T> packed_self_attention(nn::Linear<T>& qkv, nn::Linear<T>& proj, const Tensor<T>& x, std::int64_t heads,
                                bool causal, double dropout_p, Generator* gen) {
  const std::int64_t B = x.shape()[0], N = x.shape()[1], D = x.shape()[2];
  if (dropout_p == 0) return proj(packed_attention(qkv(x), heads, causal));  // one op, no glue
  auto packed = qkv(x).reshape({B, N, 3, heads, D / heads}).permute({2, 0, 3, 1, 4});  // [3, B, H, N, Dh]
  AttentionOptions<T> o;
  o.is_causal = causal;
  o.dropout_p = dropout_p;
  o.generator = gen;
  auto y = scaled_dot_product_attention(packed.select(0, 0), packed.select(0, 1), packed.select(0, 2), o);
  return proj(y.transpose(1, 2).reshape({B, N, D}));
}

}  // namespace ligm::models
