// A GPT-style causal language model with nanoGPT's parameter names (transformer.wte,
// transformer.wpe, transformer.h.0.ln_1, transformer.h.0.attn.c_attn, ..., transformer.ln_f,
// lm_head), so weights move to and from nanoGPT-style PyTorch code by key.
//
//   auto lm = std::make_shared<models::GPT<>>(models::GPTConfig{.vocab_size = 256, .block_size = 128});
//   Tensor<float> logits = (*lm)(tokens);          // tokens int64 [B, T] -> [B, T, vocab]
//   auto loss = lm->loss(tokens, targets);         // next-token cross-entropy
//   auto more = lm->generate(prompt, 200, {.temperature = 0.8, .top_k = 40});
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "ligm/models/common.hpp"

namespace ligm::models {

struct GPTConfig {
  std::int64_t vocab_size = 256;  // bytes
  std::int64_t block_size = 128;  // context length
  std::int64_t n_layer = 4, n_head = 4, n_embd = 128;
  double dropout = 0.0;
  bool bias = true;           // biases in the Linear and LayerNorm layers
  bool tie_weights = false;   // the output layer is wte's weight (then there is no lm_head module)
};

template <class T = float>
class CausalSelfAttention : public nn::Module<T> {
 public:
  CausalSelfAttention(const GPTConfig& c, Generator& gen) : n_head(c.n_head), dropout(c.dropout), gen_(&gen) {
    check(c.n_head > 0 && c.n_embd % c.n_head == 0, "CausalSelfAttention", "n_embd ", c.n_embd,
          " must be divisible by n_head ", c.n_head);
    c_attn = this->register_module("c_attn", std::make_shared<nn::Linear<T>>(c.n_embd, 3 * c.n_embd, c.bias, gen));
    c_proj = this->register_module("c_proj", std::make_shared<nn::Linear<T>>(c.n_embd, c.n_embd, c.bias, gen));
    resid_dropout = this->register_module("resid_dropout", std::make_shared<nn::Dropout<T>>(c.dropout, gen));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    return (*resid_dropout)(
        packed_self_attention(*c_attn, *c_proj, x, n_head, true, this->is_training() ? dropout : 0.0, gen_));
  }
  std::string type_name() const override { return "CausalSelfAttention"; }
  std::int64_t n_head;
  double dropout;
  std::shared_ptr<nn::Linear<T>> c_attn, c_proj;
  std::shared_ptr<nn::Dropout<T>> resid_dropout;

 private:
  Generator* gen_;
};

template <class T = float>
class GPTMLP : public nn::Module<T> {
 public:
  GPTMLP(const GPTConfig& c, Generator& gen) {
    c_fc = this->register_module("c_fc", std::make_shared<nn::Linear<T>>(c.n_embd, 4 * c.n_embd, c.bias, gen));
    gelu = this->register_module("gelu", std::make_shared<nn::GELU<T>>());
    c_proj = this->register_module("c_proj", std::make_shared<nn::Linear<T>>(4 * c.n_embd, c.n_embd, c.bias, gen));
    dropout = this->register_module("dropout", std::make_shared<nn::Dropout<T>>(c.dropout, gen));
  }
  Tensor<T> forward(const Tensor<T>& x) override { return (*dropout)((*c_proj)((*gelu)((*c_fc)(x)))); }
  std::string type_name() const override { return "MLP"; }
  std::shared_ptr<nn::Linear<T>> c_fc, c_proj;
  std::shared_ptr<nn::GELU<T>> gelu;
  std::shared_ptr<nn::Dropout<T>> dropout;
};

template <class T = float>
class GPTBlock : public nn::Module<T> {
 public:
  GPTBlock(const GPTConfig& c, Generator& gen) {
    ln_1 = this->register_module("ln_1", std::make_shared<nn::LayerNorm<T>>(Shape{c.n_embd}, 1e-5, true, c.bias));
    attn = this->register_module("attn", std::make_shared<CausalSelfAttention<T>>(c, gen));
    ln_2 = this->register_module("ln_2", std::make_shared<nn::LayerNorm<T>>(Shape{c.n_embd}, 1e-5, true, c.bias));
    mlp = this->register_module("mlp", std::make_shared<GPTMLP<T>>(c, gen));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    auto h = add(x, (*attn)((*ln_1)(x)));
    return add(h, (*mlp)((*ln_2)(h)));
  }
  std::string type_name() const override { return "Block"; }
  std::shared_ptr<nn::LayerNorm<T>> ln_1, ln_2;
  std::shared_ptr<CausalSelfAttention<T>> attn;
  std::shared_ptr<GPTMLP<T>> mlp;
};

struct SampleOptions {
  double temperature = 1.0;
  std::int64_t top_k = 0;  // 0: sample from the whole distribution
};

template <class T = float>
class GPT : public nn::Module<T> {
 public:
  explicit GPT(GPTConfig c = {}, Generator& gen = default_generator()) : config(c) {
    transformer = this->register_module("transformer", std::make_shared<nn::ModuleDict<T>>());
    wte = std::make_shared<nn::Embedding<T>>(c.vocab_size, c.n_embd, std::nullopt, gen);
    wpe = std::make_shared<nn::Embedding<T>>(c.block_size, c.n_embd, std::nullopt, gen);
    drop = std::make_shared<nn::Dropout<T>>(c.dropout, gen);
    h = std::make_shared<nn::ModuleList<T>>();
    for (std::int64_t i = 0; i < c.n_layer; ++i) h->push_back(std::make_shared<GPTBlock<T>>(c, gen));
    ln_f = std::make_shared<nn::LayerNorm<T>>(Shape{c.n_embd}, 1e-5, true, c.bias);
    transformer->insert("wte", wte).insert("wpe", wpe).insert("drop", drop).insert("h", h).insert("ln_f", ln_f);
    if (!c.tie_weights)
      lm_head = this->register_module("lm_head", std::make_shared<nn::Linear<T>>(c.n_embd, c.vocab_size, false, gen));
    init_weights(gen);
  }

  // tokens int64 [B, T <= block_size] -> logits [B, T, vocab_size].
  Tensor<T> operator()(const Tensor<std::int64_t>& tokens) {
    check(tokens.dim() == 2 && tokens.shape()[1] <= config.block_size, "GPT", "expects int64 tokens [B, T <= ",
          config.block_size, "], got ", tokens.describe());
    auto pos = arange<std::int64_t>(0, tokens.shape()[1]).to(tokens.device());
    auto x = (*drop)(add((*wte)(tokens), (*wpe)(pos)));
    for (std::size_t i = 0; i < h->size(); ++i) x = (*h)[i](x);
    x = (*ln_f)(x);
    return lm_head ? (*lm_head)(x) : linear(x, wte->weight);
  }
  Tensor<T> forward(const Tensor<T>&) override { fail("GPT", "takes int64 tokens: call it with a Tensor<std::int64_t>"); }

  // Mean next-token cross-entropy of the logits for `tokens` against `targets` (both [B, T]).
  Tensor<T> loss(const Tensor<std::int64_t>& tokens, const Tensor<std::int64_t>& targets) {
    auto logits = (*this)(tokens);
    return cross_entropy(logits.reshape({-1, config.vocab_size}), targets.reshape({-1}));
  }

  // Appends max_new_tokens sampled tokens to each row of `prompt` [B, T0] (the context is
  // cropped to the last block_size tokens); eval mode, no gradients.
  Tensor<std::int64_t> generate(const Tensor<std::int64_t>& prompt, std::int64_t max_new_tokens, SampleOptions o = {},
                                Generator& gen = default_generator()) {
    check(o.temperature > 0, "GPT::generate", "temperature must be positive, got ", o.temperature);
    NoGradGuard no_grad;
    const bool was_training = this->is_training();
    this->eval();
    const std::int64_t B = prompt.shape()[0], V = config.vocab_size;
    std::vector<std::vector<std::int64_t>> seqs(static_cast<std::size_t>(B));
    const auto p = prompt.to(Device::cpu()).contiguous().to_vector();
    for (std::int64_t b = 0; b < B; ++b)
      seqs[std::size_t(b)].assign(p.begin() + b * prompt.shape()[1], p.begin() + (b + 1) * prompt.shape()[1]);
    for (std::int64_t step = 0; step < max_new_tokens; ++step) {
      const std::int64_t len = std::min<std::int64_t>(std::int64_t(seqs[0].size()), config.block_size);
      std::vector<std::int64_t> ctx;
      for (auto& s : seqs) ctx.insert(ctx.end(), s.end() - len, s.end());
      auto logits = (*this)(tensor<std::int64_t>(ctx, {B, len}).to(prompt.device())).select(1, len - 1);
      const auto l = logits.template to<double>().to(Device::cpu()).contiguous().to_vector();
      const auto u = rand<double>({B}, gen).to_vector();
      for (std::int64_t b = 0; b < B; ++b)
        seqs[std::size_t(b)].push_back(sample_row(l.data() + b * V, V, o, u[std::size_t(b)]));
    }
    this->train(was_training);
    std::vector<std::int64_t> flat;
    for (auto& s : seqs) flat.insert(flat.end(), s.begin(), s.end());
    return tensor<std::int64_t>(flat, {B, std::int64_t(seqs[0].size())}).to(prompt.device());
  }
  std::string type_name() const override { return "GPT"; }

  GPTConfig config;
  std::shared_ptr<nn::ModuleDict<T>> transformer;
  std::shared_ptr<nn::Embedding<T>> wte, wpe;
  std::shared_ptr<nn::Dropout<T>> drop;
  std::shared_ptr<nn::ModuleList<T>> h;
  std::shared_ptr<nn::LayerNorm<T>> ln_f;
  std::shared_ptr<nn::Linear<T>> lm_head;  // null when tie_weights

 private:
  // nanoGPT's: every Linear and Embedding N(0, 0.02), biases zero, and the residual
  // projections (c_proj) N(0, 0.02 / sqrt(2 n_layer)).
  void init_weights(Generator& gen) {
    for (auto& [name, m] : this->named_modules()) {
      if (auto* l = dynamic_cast<nn::Linear<T>*>(m)) {
        const bool residual = name.size() >= 6 && name.compare(name.size() - 6, 6, "c_proj") == 0;
        nn::init::normal_(l->weight, 0.0, residual ? 0.02 / std::sqrt(2.0 * double(config.n_layer)) : 0.02, gen);
        if (l->bias.defined()) nn::init::zeros_(l->bias);
      } else if (auto* e = dynamic_cast<nn::Embedding<T>*>(m)) {
        nn::init::normal_(e->weight, 0.0, 0.02, gen);
      }
    }
  }

  // Samples one token from softmax(logits / temperature), restricted to the top_k largest,
  // by inverting the cumulative distribution at u in [0, 1).
  static std::int64_t sample_row(const double* logits, std::int64_t V, const SampleOptions& o, double u) {
    std::vector<double> z(logits, logits + V);
    for (auto& v : z) v /= o.temperature;
    if (o.top_k > 0 && o.top_k < V) {
      std::vector<double> sorted = z;
      std::nth_element(sorted.begin(), sorted.begin() + (o.top_k - 1), sorted.end(), std::greater<>());
      const double kth = sorted[std::size_t(o.top_k - 1)];
      for (auto& v : z)
        if (v < kth) v = -INFINITY;
    }
    const double mx = *std::max_element(z.begin(), z.end());
    double total = 0;
    for (auto& v : z) total += (v = std::exp(v - mx));
    double acc = 0;
    for (std::int64_t i = 0; i < V; ++i) {
      acc += z[std::size_t(i)] / total;
      if (u < acc) return i;
    }
    for (std::int64_t i = V - 1; i >= 0; --i)
      if (z[std::size_t(i)] > 0) return i;
    return V - 1;
  }
};

}  // namespace ligm::models
