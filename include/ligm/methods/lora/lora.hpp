// LoRA, DoRA and ALLoRA: parameter-efficient fine-tuning of a built model's Linear and Conv2d
// layers (and MultiheadAttention's packed in-projection) through module surgery.
//
//   LoRA   (Hu et al., arXiv 2106.09685):  y = x W0^T + b + s * B(A(dropout(x))),  s = alpha / r
//   DoRA   (Liu et al., arXiv 2402.09353): y = (x W0^T + s * B(A(dropout(x)))) * (m / n) + b,
//          m trainable (init: the row norms of W0), n = the row norms of W0 + s BA, detached
//   ALLoRA (Huang & Balestriero, arXiv 2410.09692): y = x W0^T + b + B(A x), no dropout, no
//          scaling; the gradients of A and B see G * diag(c), c_i = 1 / sqrt(|row i of BA|^p + 1/eta^2)
//
//   lora::Config c{.method = lora::Method::DoRA, .r = 4, .alpha = 8};
//   auto paths = lora::add_adapters(model, c);   // freezes the model, wraps every Linear
//   optim::Adam<float> opt(lora::adapter_parameters(model), {.lr = 1e-3});
//   ... train ...
//   lora::save_adapter(model, "adapter.safetensors");   // PEFT's key names
//   lora::merge_and_unload(model);                       // plain Linear layers again (unload(): unmerged)
//
// Conventions follow huggingface/peft (lora_A: Linear(in, r) with PyTorch's Linear init
// U(+-1/sqrt(in)); lora_B: Linear(r, out) zero, so every adapter starts as a no-op; child
// names base_layer, lora_dropout, lora_A, lora_B, lora_magnitude_vector). The method's math
// and its invariants: ../shared/specs/lora_family.md; the tests: tests/test_lora.cpp.
#pragma once
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ligm/io/safetensors.hpp"
#include "ligm/nn/nn.hpp"

namespace ligm::methods::lora {

enum class Method { LoRA, DoRA, ALLoRA };

inline const char* method_name(Method m) {
  return m == Method::LoRA ? "LoRA" : m == Method::DoRA ? "DoRA" : "ALLoRA";
}

struct Config {
  Method method = Method::LoRA;
  std::int64_t r = 8;
  double alpha = 8;    // LoRA and DoRA scale the adapter by alpha / r (ALLoRA: scale 1)
  double dropout = 0;  // on the adapter's input (LoRA, DoRA); ALLoRA has none
  double eta = 2;      // ALLoRA: c_i = eta while BA = 0
  double p = 1;        // ALLoRA: the exponent of the row norm (the spec's open question: 1 or 2)
  bool dora_full_gradient = false;  // DoRA: let gradients flow through the norm n too
  // Which modules: a path matches a name when it equals it or ends with "." + name; a
  // MultiheadAttention at path P is matched by P or P + ".in_proj" (its out_proj is a Linear
  // of its own). Empty: every Linear, every Conv2d and every MultiheadAttention in-projection.
  std::vector<std::string> target_modules;
  std::uint64_t seed = 0;  // the generator that initialises lora_A
};

// ALLoRA's per-row coefficient c_i = 1 / sqrt(q_i^p + 1/eta^2), q_i = |row i of BA|_2 computed
// through the r x r Gram matrix A A^T (BA is never formed). A constant: no gradient flows into it.
template <class T>
Tensor<T> allora_coefficient(const Tensor<T>& A, const Tensor<T>& B, double eta, double p) {
  NoGradGuard no_grad;
  auto gram = matmul(A, A.t());                                 // [r, r]
  auto q2 = sum(mul(matmul(B, gram), B), {1}).clamp(0, INFINITY);  // [out]: B_i (A A^T) B_i^T
  return rsqrt(add(q2.pow(p / 2), T(1 / (eta * eta))));
}

// (x A^T) B^T with ALLoRA's backward: the gradients of A and B are those of G diag(c) (column i
// of the upstream gradient G scaled by c_i), the gradient of x is the true one. x [..., in],
// A [r, in], B [out, r], c [out] -> [..., out].
template <class T>
Tensor<T> allora_delta(const Tensor<T>& x, const Tensor<T>& A, const Tensor<T>& B, const Tensor<T>& c) {
  const char* op = "allora_delta";
  check(x.dim() >= 1 && A.dim() == 2 && B.dim() == 2 && c.dim() == 1 && x.shape().back() == A.shape()[1] &&
            B.shape()[1] == A.shape()[0] && c.shape()[0] == B.shape()[0],
        op, "expects x [..., in], A [r, in], B [out, r], c [out], got x ", x.shape(), ", A ", A.shape(), ", B ",
        B.shape(), ", c ", c.shape(), " (", dtype_name<T>(), ")");
  check(x.device() == A.device() && A.device() == B.device() && B.device() == c.device(), op,
        "x, A, B and c must be on one device, got ", x.device().str(), ", ", A.device().str(), ", ",
        B.device().str(), ", ", c.device().str());
  Tensor<T> y;
  {
    NoGradGuard no_grad;
    y = matmul(matmul(x, A.t()), B.t());
  }
  return autograd::record(
      "ALLoRABackward", y, {x, A, B},
      [x = autograd::save(x), A = autograd::save(A), B = autograd::save(B), c = c.detach()](
          const Tensor<T>& g, const NeedsGrad& need) -> std::vector<Tensor<T>> {
        const std::int64_t in = A.shape()[1], out = B.shape()[0];
        auto x2 = x.reshape({-1, in});
        auto g2 = g.reshape({-1, out});
        auto gb = matmul(g2, B);  // [N, r], the true path into x
        Tensor<T> dx, dA, dB;
        if (need[0]) dx = matmul(gb, A).reshape(x.shape());
        if (need[1] || need[2]) {
          auto gc = mul(g2, c);  // G diag(c)
          if (need[1]) dA = matmul(matmul(gc, B).t(), x2);
          if (need[2]) dB = matmul(gc.t(), matmul(x2, A.t()));
        }
        return {dx, dA, dB};
      });
}

// The adapter of one weight W0 [out, in] (a convolution's [out, in, kh, kw] as [out, in kh kw]):
// lora_A, lora_B (and DoRA's magnitude vector), the adapted weight, merge and unmerge. As an
// nn::WeightAdapter it adapts a weight used directly (MultiheadAttention's in-projection);
// LoRALinear wraps a Linear, LoRAConv2d a Conv2d.
template <class T = float>
class LoRALayer : public nn::WeightAdapter<T> {
 public:
  // `base_module`, when given, becomes the first child "base_layer" (the wrapped layer). With
  // `conv`, the factors are convolutions as PEFT's: lora_A Conv2d(in, r, kernel, the base's
  // stride, padding and dilation), lora_B Conv2d(r, out, 1).
  LoRALayer(Tensor<T> base_weight, const Config& c, Generator& gen,
            std::shared_ptr<nn::Module<T>> base_module = nullptr, const nn::Conv2d<T>* conv = nullptr)
      : config(c), base_weight_(std::move(base_weight)) {
    const char* op = "LoRALayer";
    check(base_weight_.defined() && (base_weight_.dim() == 2 || (conv && base_weight_.dim() == 4)), op,
          "adapts a 2-d weight [out, in] (or a Conv2d's), got ", base_weight_.describe());
    check(!conv || conv->options.groups == 1, op, "adapts convolutions with groups = 1, got groups ",
          conv ? conv->options.groups : 1);
    check(c.r > 0, op, "rank r must be positive, got ", c.r);
    check(c.dropout >= 0 && c.dropout < 1, op, "dropout must be in [0, 1), got ", c.dropout);
    check(c.method != Method::ALLoRA || c.dropout == 0, op, "ALLoRA has no dropout (got ", c.dropout,
          "): its coefficient replaces it");
    check(c.method != Method::ALLoRA || (c.eta > 0 && c.p > 0), op, "ALLoRA needs eta > 0 and p > 0, got eta ",
          c.eta, ", p ", c.p);
    out_features = base_weight_.shape()[0];
    in_features = base_weight_.numel() / std::max<std::int64_t>(out_features, 1);
    scaling = c.method == Method::ALLoRA ? 1.0 : c.alpha / double(c.r);
    if (base_module) this->register_module("base_layer", base_module);
    // The dropout stream is the layer's own (a Dropout keeps a pointer to its generator, and
    // `gen` may not outlive this layer), seeded from `gen`: one distinct stream per layer.
    dropout_gen_ = std::make_unique<Generator>(gen.seed() * 0x9E3779B97F4A7C15ull + gen.reserve(1) + 1);
    lora_dropout = this->register_module("lora_dropout", std::make_shared<nn::Dropout<T>>(c.dropout, *dropout_gen_));
    if (conv) {
      Conv2dOptions o = conv->options;
      lora_A_conv = this->register_module(
          "lora_A", std::make_shared<nn::Conv2d<T>>(conv->in_channels, c.r, conv->kernel_size, o, false, gen));
      lora_B_conv = this->register_module("lora_B", std::make_shared<nn::Conv2d<T>>(c.r, out_features, 1,
                                                                                    Conv2dOptions{}, false, gen));
      nn::init::zeros_(lora_B_conv->weight);
    } else {
      lora_A = this->register_module("lora_A", std::make_shared<nn::Linear<T>>(in_features, c.r, false, gen));
      lora_B = this->register_module("lora_B", std::make_shared<nn::Linear<T>>(c.r, out_features, false, gen));
      nn::init::zeros_(lora_B->weight);
    }
    if (c.method == Method::DoRA) {
      NoGradGuard no_grad;
      lora_magnitude_vector =
          this->register_parameter("lora_magnitude_vector", rows(base_weight_.detach()).norm(2, {1}).contiguous());
    }
    this->to(base_weight_.device());
  }

  // The factors as matrices: A [r, in] and B [out, r] (a convolution's, flattened).
  Tensor<T> A() const { return lora_A ? lora_A->weight : lora_A_conv->weight.reshape({config.r, -1}); }
  Tensor<T> B() const { return lora_B ? lora_B->weight : lora_B_conv->weight.reshape({out_features, config.r}); }

  // The update s BA [out, in]. ALLoRA: BA, with a gradient hook that scales row i of its
  // gradient by c_i (only A and B are behind it: the input gradient is never scaled).
  Tensor<T> delta_weight() {
    auto d = matmul(B(), A());
    if (config.method != Method::ALLoRA) return scaling == 1.0 ? d : mul(d, T(scaling));
    if (d.requires_grad()) {
      auto c = coefficient().unsqueeze(1);
      d.register_hook([c](const Tensor<T>& g) { return mul(g, c); });
    }
    return d;
  }

  // DoRA: n, the row norms of W0 + s BA (detached unless dora_full_gradient).
  Tensor<T> weight_norm() {
    if (config.dora_full_gradient) return add(rows(base_weight_), delta_weight()).norm(2, {1});
    NoGradGuard no_grad;
    return add(rows(base_weight_), delta_weight()).norm(2, {1});
  }
  // DoRA: m / n, the per-output-unit scale.
  Tensor<T> magnitude_scale() { return div(lora_magnitude_vector, weight_norm()); }

  // ALLoRA's coefficient for the current A and B ([out]; eta everywhere while B = 0).
  Tensor<T> coefficient() const { return allora_coefficient(A(), B(), config.eta, config.p); }

  // The weight to use in place of W0 (W0 itself once merged): W0 + s BA, or for DoRA
  // diag(m / n) (W0 + s BA). The adapter's dropout cannot act on a weight and is not applied.
  Tensor<T> adapt(const Tensor<T>& weight) override {
    check(weight.is_same(base_weight_), "LoRALayer::adapt", "adapts the weight it was built on (",
          base_weight_.describe(), "), got another tensor: ", weight.describe());
    if (merged_) return weight;
    auto v = add(weight, like_weight(delta_weight()));
    return config.method == Method::DoRA ? mul(v, per_row(magnitude_scale())) : v;
  }

  // Folds the adapter into W0 (in place), so the base layer alone computes the adapted output;
  // unmerge() takes it out again (DoRA remembers the scale it merged with).
  void merge() {
    if (merged_) return;
    NoGradGuard no_grad;
    auto d = like_weight(delta_weight());
    if (config.method == Method::DoRA) {
      merge_scale_ = per_row(magnitude_scale()).contiguous();
      base_weight_.set_data(mul(add(base_weight_, d), merge_scale_).contiguous());
    } else {
      base_weight_.set_data(add(base_weight_, d).contiguous());
    }
    merged_ = true;
  }
  void unmerge() {
    if (!merged_) return;
    NoGradGuard no_grad;
    auto d = like_weight(delta_weight());
    if (config.method == Method::DoRA) base_weight_.set_data(sub(div(base_weight_, merge_scale_), d).contiguous());
    else base_weight_.set_data(sub(base_weight_, d).contiguous());
    merge_scale_ = {};
    merged_ = false;
  }
  bool merged() const { return merged_; }
  const Tensor<T>& base_weight() const { return base_weight_; }

  std::string type_name() const override { return std::string(method_name(config.method)) + "Layer"; }
  std::string extra_repr() const override {
    std::string s = "r=" + std::to_string(config.r);
    if (config.method == Method::ALLoRA)
      return s + ", eta=" + nn::repr_number(config.eta) + ", p=" + nn::repr_number(config.p);
    return s + ", alpha=" + nn::repr_number(config.alpha) + ", dropout=" + nn::repr_number(config.dropout);
  }

  Config config;
  double scaling = 1;  // s = alpha / r (ALLoRA: 1)
  std::int64_t in_features = 0, out_features = 0;
  std::shared_ptr<nn::Dropout<T>> lora_dropout;
  std::shared_ptr<nn::Linear<T>> lora_A, lora_B;             // a Linear's or a weight's factors
  std::shared_ptr<nn::Conv2d<T>> lora_A_conv, lora_B_conv;   // a Conv2d's (children lora_A, lora_B)
  Tensor<T> lora_magnitude_vector;  // DoRA only

 protected:
  // [out, ...] <-> [out, in]: the weight's rows, a row matrix in the weight's shape, and a
  // per-row vector shaped to scale the weight.
  Tensor<T> rows(const Tensor<T>& w) const { return w.reshape({out_features, -1}); }
  // s * t (t itself when s = 1).
  Tensor<T> scaled(const Tensor<T>& t) const { return scaling == 1.0 ? t : mul(t, T(scaling)); }
  // DoRA's output from z = x W0^T + s B A D(x) (any layout with the output units along
  // `units`): z * (m / n) + b, the bias after the magnitude scaling.
  Tensor<T> dora_output(const Tensor<T>& z, const Tensor<T>& bias, const Shape& units) {
    auto y = mul(z, magnitude_scale().reshape(units));
    return bias.defined() ? add(y, bias.reshape(units)) : y;
  }
  // The weight of the layer a wrapper is built on (its constructor's first argument).
  template <class Layer>
  static Tensor<T> weight_of(const std::shared_ptr<Layer>& base, const char* wrapper) {
    check(base != nullptr, wrapper, "needs a layer to wrap, got null");
    return base->weight;
  }
  Tensor<T> like_weight(const Tensor<T>& m) const { return m.reshape(base_weight_.shape()); }
  Tensor<T> per_row(const Tensor<T>& v) const {
    Shape s(std::size_t(base_weight_.dim()), 1);
    s[0] = out_features;
    return v.reshape(s);
  }

  Tensor<T> base_weight_;  // W0: a handle to the frozen weight of the adapted layer
  Tensor<T> merge_scale_;  // DoRA: m / n at merge(), shaped to scale the weight ([out, 1] or [out, 1, 1, 1])
  std::unique_ptr<Generator> dropout_gen_;
  bool merged_ = false;
};

// A Linear with an adapter: the original layer is its child "base_layer" (PEFT's layout).
template <class T = float>
class LoRALinear : public LoRALayer<T> {
 public:
  LoRALinear(std::shared_ptr<nn::Linear<T>> base, const Config& c, Generator& gen)
      : LoRALayer<T>(LoRALayer<T>::weight_of(base, "LoRALinear"), c, gen, base), base_layer(base) {}

  Tensor<T> forward(const Tensor<T>& x) override {
    if (this->merged_) return (*base_layer)(x);
    auto adapter = [&] { return this->scaled((*this->lora_B)((*this->lora_A)((*this->lora_dropout)(x)))); };
    switch (this->config.method) {
      case Method::LoRA:
        return add((*base_layer)(x), adapter());
      case Method::ALLoRA:
        return add((*base_layer)(x), allora_delta(x, this->lora_A->weight, this->lora_B->weight, this->coefficient()));
      case Method::DoRA:
        return this->dora_output(add(linear(x, base_layer->weight), adapter()), base_layer->bias,
                                 Shape{this->out_features});
    }
    return {};
  }
  std::string type_name() const override { return std::string(method_name(this->config.method)) + "Linear"; }

  std::shared_ptr<nn::Linear<T>> base_layer;
};

// A Conv2d with an adapter (groups 1): the original layer is its child "base_layer"; lora_A is
// Conv2d(in, r, kernel) with the base's stride, padding and dilation, lora_B Conv2d(r, out, 1),
// as PEFT's; in matrix form BA is the update of the weight flattened to [out, in kh kw].
template <class T = float>
class LoRAConv2d : public LoRALayer<T> {
 public:
  LoRAConv2d(std::shared_ptr<nn::Conv2d<T>> base, const Config& c, Generator& gen)
      : LoRALayer<T>(LoRALayer<T>::weight_of(base, "LoRAConv2d"), c, gen, base, base.get()), base_layer(base) {}

  Tensor<T> forward(const Tensor<T>& x) override {
    if (this->merged_) return (*base_layer)(x);
    auto adapter = [&] { return this->scaled((*this->lora_B_conv)((*this->lora_A_conv)((*this->lora_dropout)(x)))); };
    const auto& o = base_layer->options;
    switch (this->config.method) {
      case Method::LoRA:
        return add((*base_layer)(x), adapter());
      case Method::ALLoRA:  // through the weight: BA's gradient hook scales its rows (channels)
        return add((*base_layer)(x), conv2d(x, this->like_weight(this->delta_weight()), Tensor<T>(), o));
      case Method::DoRA:
        return this->dora_output(add(conv2d(x, base_layer->weight, Tensor<T>(), o), adapter()), base_layer->bias,
                                 Shape{1, this->out_features, 1, 1});
    }
    return {};
  }
  std::string type_name() const override { return std::string(method_name(this->config.method)) + "Conv2d"; }

  std::shared_ptr<nn::Conv2d<T>> base_layer;
};

namespace detail {
inline bool matches(const std::string& path, const std::vector<std::string>& targets) {
  if (targets.empty()) return true;
  for (const auto& t : targets)
    if (path == t || (path.size() > t.size() && path.compare(path.size() - t.size(), t.size(), t) == 0 &&
                      path[path.size() - t.size() - 1] == '.'))
      return true;
  return false;
}

// What add_adapters wraps: Linear and Conv2d layers (by path), MultiheadAttention in-projections.
template <class T>
struct Targets {
  std::vector<std::pair<std::string, std::shared_ptr<nn::Linear<T>>>> linears;
  std::vector<std::pair<std::string, std::shared_ptr<nn::Conv2d<T>>>> convs;
  std::vector<std::pair<std::string, nn::MultiheadAttention<T>*>> attentions;
  bool empty() const { return linears.empty() && convs.empty() && attentions.empty(); }
};

// The layers below `m` that `targets` selects; adapters already in place are skipped with their
// subtrees.
template <class T>
void find_targets(nn::Module<T>& m, const std::string& prefix, const std::vector<std::string>& targets,
                  Targets<T>& found) {
  for (auto& [name, child] : m.named_children()) {
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    if (dynamic_cast<LoRALayer<T>*>(child.get())) continue;
    if (auto lin = std::dynamic_pointer_cast<nn::Linear<T>>(child)) {
      if (matches(path, targets)) found.linears.emplace_back(path, lin);
      continue;
    }
    if (auto conv = std::dynamic_pointer_cast<nn::Conv2d<T>>(child)) {
      if (matches(path, targets)) found.convs.emplace_back(path, conv);
      continue;
    }
    if (auto* mha = dynamic_cast<nn::MultiheadAttention<T>*>(child.get()))
      if (!mha->in_proj_adapter && (matches(path, targets) || matches(path + ".in_proj", targets)))
        found.attentions.emplace_back(path, mha);
    find_targets(*child, path, targets, found);
  }
}
}  // namespace detail

// Freezes every parameter of `model` (requires_grad false) and puts an adapter on each target:
// a Linear becomes a LoRALinear around it, a Conv2d a LoRAConv2d, a MultiheadAttention gets an
// in-projection adapter. The adapters are on the model's device and are the only trainable
// parameters; unfreeze a new head yourself. Returns the adapted paths (an in-projection as
// "<attention>.in_proj").
template <class T>
std::vector<std::string> add_adapters(nn::Module<T>& model, const Config& config) {
  const char* op = "lora::add_adapters";
  detail::Targets<T> found;
  detail::find_targets(model, "", config.target_modules, found);
  check(!found.empty(), op, "no Linear, Conv2d or MultiheadAttention in ", model.type_name(),
        " matches the target modules");
  const auto& attentions = found.attentions;
  if (!attentions.empty())  // (check's message is built before the test: front() only when there is one)
    check(config.dropout == 0, op, "an adapter on MultiheadAttention's in-projection ", attentions.front().first,
          " adapts the weight and cannot apply dropout ", config.dropout,
          " to its input: use dropout 0 or leave it out of target_modules");
  model.requires_grad_(false);
  Generator gen(config.seed);
  std::vector<std::string> paths;
  for (auto& [path, lin] : found.linears) {
    model.replace_module(path, std::make_shared<LoRALinear<T>>(lin, config, gen));
    paths.push_back(path);
  }
  for (auto& [path, conv] : found.convs) {
    model.replace_module(path, std::make_shared<LoRAConv2d<T>>(conv, config, gen));
    paths.push_back(path);
  }
  for (auto& [path, mha] : attentions) {
    mha->set_in_proj_adapter(std::make_shared<LoRALayer<T>>(mha->in_proj_weight, config, gen));
    paths.push_back(path + ".in_proj");
  }
  return paths;
}

// Every adapter in `model` with its path (a LoRALinear at the Linear's path, an in-projection
// adapter at "<attention>.in_proj_adapter").
template <class T>
std::vector<std::pair<std::string, LoRALayer<T>*>> adapter_layers(nn::Module<T>& model) {
  std::vector<std::pair<std::string, LoRALayer<T>*>> out;
  for (auto& [path, m] : model.named_modules())
    if (auto* a = dynamic_cast<LoRALayer<T>*>(m)) out.emplace_back(path, a);
  return out;
}

// The adapters' parameters (A, B and DoRA's magnitudes): what the optimizer trains.
template <class T>
std::vector<Tensor<T>> adapter_parameters(nn::Module<T>& model) {
  std::vector<Tensor<T>> out;
  for (auto& [path, a] : adapter_layers(model))
    for (auto& [name, p] : a->named_parameters())
      if (name.rfind("base_layer.", 0) != 0) out.push_back(p);
  return out;
}

template <class T>
void merge_adapters(nn::Module<T>& model) {
  for (auto& [path, a] : adapter_layers(model)) a->merge();
}
template <class T>
void unmerge_adapters(nn::Module<T>& model) {
  for (auto& [path, a] : adapter_layers(model)) a->unmerge();
}

namespace detail {
// Takes the adapters out of `model`, merged into the base weights first or not.
template <class T>
void remove_adapters(nn::Module<T>& model, bool merge) {
  for (auto& [path, a] : adapter_layers(model)) {
    if (merge) a->merge();
    else a->unmerge();
    if (auto* lin = dynamic_cast<LoRALinear<T>*>(a)) {
      model.replace_module(path, lin->base_layer);
      continue;
    }
    if (auto* conv = dynamic_cast<LoRAConv2d<T>*>(a)) {
      model.replace_module(path, conv->base_layer);
      continue;
    }
    const auto dot = path.rfind('.');
    auto& parent = model.get_submodule(dot == std::string::npos ? "" : path.substr(0, dot));
    auto* mha = dynamic_cast<nn::MultiheadAttention<T>*>(&parent);
    check(mha != nullptr, "lora::merge_and_unload", "the adapter at ", path, " belongs to a ", parent.type_name(),
          ", not a MultiheadAttention");
    mha->set_in_proj_adapter(nullptr);
  }
}
}  // namespace detail

// Merges every adapter and takes it out: the model is its original architecture again, with
// the adapted weights (still frozen).
template <class T>
void merge_and_unload(nn::Module<T>& model) {
  detail::remove_adapters(model, true);
}
// Takes every adapter out unmerged: the original model and weights (still frozen), as PEFT's
// unload().
template <class T>
void unload(nn::Module<T>& model) {
  detail::remove_adapters(model, false);
}

// The adapters alone, keyed as PEFT saves them: prefix + "<path>.lora_A.weight",
// "<path>.lora_B.weight", "<path>.lora_magnitude_vector" (DoRA). Shares data with the model.
template <class T>
nn::StateDict<T> adapter_state_dict(nn::Module<T>& model, const std::string& prefix = "base_model.model.") {
  nn::StateDict<T> sd;
  for (auto& [path, a] : adapter_layers(model))
    for (auto& [name, p] : a->named_parameters())
      if (name.rfind("base_layer.", 0) != 0) sd[prefix + path + "." + name] = p.detach();
  return sd;
}

// Loads adapter values saved by adapter_state_dict into the adapters of `model` (built with
// the same config): every key must match both ways, with equal shapes.
template <class T>
void load_adapter_state_dict(nn::Module<T>& model, const nn::StateDict<T>& sd,
                             const std::string& prefix = "base_model.model.") {
  const char* op = "lora::load_adapter_state_dict";
  auto mine = adapter_state_dict(model, prefix);
  std::vector<std::string> missing, unexpected;
  for (auto& [k, v] : mine)
    if (!sd.count(k)) missing.push_back(k);
  for (auto& [k, v] : sd)
    if (!mine.count(k)) unexpected.push_back(k);
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > 8) s += ", ... (" + std::to_string(v.size()) + " in all)";
    return v.empty() ? std::string("(none)") : s;
  };
  check(missing.empty() && unexpected.empty(), op, "keys do not match the model's adapters: missing ", list(missing),
        "; unexpected ", list(unexpected));
  NoGradGuard no_grad;
  for (auto& [k, dst] : mine) {
    const auto& src = sd.at(k);
    check(src.shape() == dst.shape(), op, "size mismatch for ", k, ": the adapter file has ", src.shape(),
          ", the model ", dst.shape());
  }
  for (auto& [k, dst] : mine) dst.copy_(sd.at(k).to(dst.device()));
}

// The adapters to a safetensors file (written atomically), and back. Files from PEFT with the
// same targets and rank load too (float32 keys "base_model.model.<path>.lora_A.weight", ...).
template <class T>
void save_adapter(nn::Module<T>& model, const std::string& path, std::map<std::string, std::string> metadata = {}) {
  io::SafetensorsFile f;
  for (auto& [k, t] : adapter_state_dict(model)) f.tensors[k] = io::to_raw(t);
  metadata["ligm.format"] = "lora-adapter/1";
  f.metadata = std::move(metadata);
  io::save_safetensors(f, path);
}
// From a parsed file (io::parse_safetensors of bytes in memory): what load_adapter does after
// reading the file. All or nothing: a file that does not fit leaves the adapters as they were.
template <class T>
void load_adapter(nn::Module<T>& model, const io::SafetensorsFile& f) {
  nn::StateDict<T> sd;
  for (auto& [k, raw] : f.tensors) sd[k] = io::from_raw<T>(raw);
  load_adapter_state_dict(model, sd);
}
template <class T>
void load_adapter(nn::Module<T>& model, const std::string& path) {
  load_adapter(model, io::load_safetensors(path));
}

}  // namespace ligm::methods::lora
