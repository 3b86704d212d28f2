// Embedding: a lookup table [num_embeddings, embedding_dim] indexed by int64 tensors,
// initialised N(0, 1) with the padding row (if any) zero and never updated by gradients.
#pragma once
#include <optional>

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
