// Embedding: a lookup table [num_embeddings, embedding_dim] indexed by int64 tensors,
// initialised N(0, 1) with the padding row (if any) zero and never updated by gradients.
#pragma once
#include <cmath>
#include <optional>
#include <vector>

#include "ligm/nn/init.hpp"
#include "ligm/nn/module.hpp"
#include "ligm/ops/nn_misc.hpp"

namespace ligm::nn {

template <class T = float>
class Embedding : public Module<T> {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim,
            std::optional<std::int64_t> padding_idx = std::nullopt, Generator& gen = default_generator())
      : num_embeddings(num_embeddings), embedding_dim(embedding_dim), padding_idx(padding_idx) {
    weight = this->register_parameter("weight", Tensor<T>::empty({num_embeddings, embedding_dim}));
    init::normal_(weight, 0, 1, gen);
    if (padding_idx) {
      check(*padding_idx >= -num_embeddings && *padding_idx < num_embeddings, "Embedding", "padding_idx ",
            *padding_idx, " is out of range for ", num_embeddings, " embeddings");
      if (*this->padding_idx < 0) *this->padding_idx += num_embeddings;
      NoGradGuard no_grad;
      weight.select(0, *this->padding_idx).zero_();
    }
  }
  Tensor<T> operator()(const Tensor<std::int64_t>& indices) {
    return embedding(indices, weight, padding_idx);
  }
  Tensor<T> forward(const Tensor<T>&) override {
    fail("Embedding", "takes int64 indices: call it with a Tensor<std::int64_t>");
  }
  std::string type_name() const override { return "Embedding"; }
  std::string extra_repr() const override {
    return std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim) +
           (padding_idx ? ", padding_idx=" + std::to_string(*padding_idx) : "");
  }
  std::int64_t num_embeddings, embedding_dim;
  std::optional<std::int64_t> padding_idx;
  Tensor<T> weight;
};

}  // namespace ligm::nn

namespace ligm::nn {

// Learned positions (GPT's wpe, ViT's pos_embed): weight [num_positions, dim], trunc-normal
// with std 0.02; forward adds the first T rows to x [B, T, dim].
template <class T = float>
class PositionalEmbedding : public Module<T> {
 public:
  PositionalEmbedding(std::int64_t num_positions, std::int64_t dim, Generator& gen = default_generator())
      : num_positions(num_positions), dim(dim) {
    weight = this->register_parameter("weight", Tensor<T>::empty({num_positions, dim}));
    init::trunc_normal_(weight, 0.0, 0.02, -0.04, 0.04, gen);
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    check(x.dim() == 3 && x.shape()[2] == dim && x.shape()[1] <= num_positions, "PositionalEmbedding",
          "expects [B, T <= ", num_positions, ", ", dim, "], got ", x.shape());
    return add(x, weight.narrow(0, 0, x.shape()[1]));
  }
  std::string type_name() const override { return "PositionalEmbedding"; }
  std::string extra_repr() const override { return std::to_string(num_positions) + ", " + std::to_string(dim); }
  std::int64_t num_positions, dim;
  Tensor<T> weight;
};

// Fixed 2-D sine-cosine positions for a grid_h x grid_w grid of patches (MAE's
// get_2d_sincos_pos_embed): the first dim/2 channels encode the column, the rest the row,
// each as [sin(p w_i), cos(p w_i)] with w_i = 10000^(-i / (dim/4)). [grid_h * grid_w, dim],
// with a leading zero row when cls_token.
template <class T = float>
Tensor<T> sincos_2d_positional_embedding(std::int64_t grid_h, std::int64_t grid_w, std::int64_t dim,
                                         bool cls_token = false) {
  check(dim % 4 == 0, "sincos_2d_positional_embedding", "dim must be divisible by 4, got ", dim);
  const std::int64_t quarter = dim / 4, rows = grid_h * grid_w + (cls_token ? 1 : 0);
  std::vector<T> v(std::size_t(rows * dim), T(0));
  for (std::int64_t r = 0; r < grid_h; ++r)
    for (std::int64_t c = 0; c < grid_w; ++c) {
      T* e = v.data() + ((cls_token ? 1 : 0) + r * grid_w + c) * dim;
      for (std::int64_t i = 0; i < quarter; ++i) {
        const double omega = 1.0 / std::pow(10000.0, double(i) / double(quarter));
        e[i] = T(std::sin(double(c) * omega));
        e[quarter + i] = T(std::cos(double(c) * omega));
        e[2 * quarter + i] = T(std::sin(double(r) * omega));
        e[3 * quarter + i] = T(std::cos(double(r) * omega));
      }
    }
  return tensor<T>(v, {rows, dim});
}

}  // namespace ligm::nn
