// MultiheadAttention and the pre-norm TransformerEncoderLayer, with PyTorch's parameter names
// (in_proj_weight, in_proj_bias, out_proj.*, linear1/2, norm1/2) and batch-first tensors
// [batch, tokens, embed_dim].
#pragma once
#include <cmath>
#include <string>

#include "ligm/nn/activation.hpp"
#include "ligm/nn/init.hpp"
#include "ligm/nn/linear.hpp"
#include "ligm/nn/module.hpp"
#include "ligm/nn/normalization.hpp"
#include "ligm/ops/nn_misc.hpp"

namespace ligm::nn {

// Attention over num_heads heads of embed_dim / num_heads: the query, key and value
// projections are the three row blocks of in_proj_weight [3 E, E] (PyTorch's packing).
template <class T = float>
class MultiheadAttention : public Module<T> {
 public:
  MultiheadAttention(std::int64_t embed_dim, std::int64_t num_heads, bool bias = true, double dropout = 0.0,
                     Generator& gen = default_generator())
      : embed_dim(embed_dim), num_heads(num_heads), dropout(dropout), gen_(&gen) {
    check(num_heads > 0 && embed_dim % num_heads == 0, "MultiheadAttention", "embed_dim ", embed_dim,
          " must be divisible by num_heads ", num_heads);
    in_proj_weight = this->register_parameter("in_proj_weight", Tensor<T>::empty({3 * embed_dim, embed_dim}));
    init::xavier_uniform_(in_proj_weight, 1.0, gen);
    if (bias) in_proj_bias = this->register_parameter("in_proj_bias", zeros<T>({3 * embed_dim}));
    out_proj = this->register_module("out_proj", std::make_shared<Linear<T>>(embed_dim, embed_dim, bias, gen));
    if (bias) init::zeros_(out_proj->bias);
  }

  // query [B, L, E], key and value [B, S, E] -> [B, L, E]. attn_mask: additive [L, S] (or
  // broadcastable to [B, heads, L, S]); is_causal masks future positions.
  Tensor<T> attend(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                   const Tensor<T>& attn_mask = {}, bool is_causal = false) {
    check(query.dim() == 3 && key.dim() == 3 && value.dim() == 3 && query.shape()[2] == embed_dim, "MultiheadAttention",
          "expects batch-first [B, L, ", embed_dim, "] inputs, got query ", query.shape(), ", key ", key.shape(),
          ", value ", value.shape());
    const std::int64_t E = embed_dim;
    const Tensor<T> w_in = in_proj_adapter ? in_proj_adapter->adapt(in_proj_weight) : in_proj_weight;
    auto project = [&](const Tensor<T>& x, std::int64_t block) {
      auto w = w_in.narrow(0, block * E, E);
      auto b = in_proj_bias.defined() ? in_proj_bias.narrow(0, block * E, E) : Tensor<T>();
      auto y = linear(x, w, b);  // [B, N, E]
      return y.reshape({x.shape()[0], x.shape()[1], num_heads, E / num_heads}).transpose(1, 2);  // [B, H, N, D]
    };
    AttentionOptions<T> o;
    o.attn_mask = attn_mask;
    o.is_causal = is_causal;
    o.dropout_p = this->is_training() ? dropout : 0.0;
    o.generator = gen_;
    auto heads = scaled_dot_product_attention(project(query, 0), project(key, 1), project(value, 2), o);
    auto merged = heads.transpose(1, 2).reshape({query.shape()[0], query.shape()[1], E});
    return (*out_proj)(merged);
  }
  // Self-attention.
  Tensor<T> forward(const Tensor<T>& x) override { return attend(x, x, x); }

  // Computes the packed in-projection with adapter->adapt(in_proj_weight) from now on (a LoRA
  // adapter; it becomes the child "in_proj_adapter"); null takes it away again.
  void set_in_proj_adapter(std::shared_ptr<WeightAdapter<T>> adapter) {
    if (in_proj_adapter) this->unregister_module("in_proj_adapter");
    in_proj_adapter = adapter;
    if (adapter) this->register_module("in_proj_adapter", adapter);
  }
  std::string type_name() const override { return "MultiheadAttention"; }
  std::string extra_repr() const override {
    return "embed_dim=" + std::to_string(embed_dim) + ", num_heads=" + std::to_string(num_heads);
  }

  std::int64_t embed_dim, num_heads;
  double dropout;
  Tensor<T> in_proj_weight, in_proj_bias;
  std::shared_ptr<Linear<T>> out_proj;
  std::shared_ptr<WeightAdapter<T>> in_proj_adapter;  // null unless set_in_proj_adapter

 private:
  Generator* gen_;
};

struct TransformerOptions {
  std::int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  std::string activation = "gelu";  // "gelu" or "relu"
  double layer_norm_eps = 1e-5;
  bool causal = false;  // mask future tokens (a GPT block)
};

// Pre-norm (norm_first=True in PyTorch): x + attn(norm1(x)), then + ffn(norm2(x)).
template <class T = float>
class TransformerEncoderLayer : public Module<T> {
 public:
  TransformerEncoderLayer(std::int64_t d_model, std::int64_t nhead, TransformerOptions o = {},
                          Generator& gen = default_generator())
      : options(o) {
    check(o.activation == "gelu" || o.activation == "relu", "TransformerEncoderLayer",
          "activation must be \"gelu\" or \"relu\", got \"", o.activation, "\"");
    self_attn = this->register_module("self_attn", std::make_shared<MultiheadAttention<T>>(d_model, nhead, true, o.dropout, gen));
    linear1 = this->register_module("linear1", std::make_shared<Linear<T>>(d_model, o.dim_feedforward, true, gen));
    dropout = this->register_module("dropout", std::make_shared<Dropout<T>>(o.dropout, gen));
    linear2 = this->register_module("linear2", std::make_shared<Linear<T>>(o.dim_feedforward, d_model, true, gen));
    norm1 = this->register_module("norm1", std::make_shared<LayerNorm<T>>(Shape{d_model}, o.layer_norm_eps));
    norm2 = this->register_module("norm2", std::make_shared<LayerNorm<T>>(Shape{d_model}, o.layer_norm_eps));
    dropout1 = this->register_module("dropout1", std::make_shared<Dropout<T>>(o.dropout, gen));
    dropout2 = this->register_module("dropout2", std::make_shared<Dropout<T>>(o.dropout, gen));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    auto h = (*norm1)(x);
    auto y = add(x, (*dropout1)(self_attn->attend(h, h, h, {}, options.causal)));
    auto f = (*linear1)((*norm2)(y));
    f = options.activation == "gelu" ? gelu(f) : relu(f);
    return add(y, (*dropout2)((*linear2)((*dropout)(f))));
  }
  std::string type_name() const override { return "TransformerEncoderLayer"; }

  TransformerOptions options;
  std::shared_ptr<MultiheadAttention<T>> self_attn;
  std::shared_ptr<Linear<T>> linear1, linear2;
  std::shared_ptr<Dropout<T>> dropout, dropout1, dropout2;
  std::shared_ptr<LayerNorm<T>> norm1, norm2;
};

}  // namespace ligm::nn
