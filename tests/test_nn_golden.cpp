// Layers and optimizers against PyTorch 1.13 (tools/make_goldens_nn.py -> goldens/nn.safetensors):
// each module is built in ligm, loads PyTorch's state_dict by its PyTorch keys (strict), and
// must give PyTorch's output, input gradient, parameter gradients and updated buffers; each
// optimizer must follow PyTorch's parameter trajectory over six steps.
#include <functional>
#include <map>

#include <ligm/io/safetensors.hpp>

#include "helpers.hpp"

using namespace th;
using D = Tensor<double>;
using ModulePtr = std::shared_ptr<nn::Module<double>>;

namespace {

const io::SafetensorsFile& goldens() {
  static const auto file = io::load_safetensors(LIGM_GOLDEN_DIR "/nn.safetensors");
  return file;
}
D golden(const std::string& key) {
  const auto& st = goldens().tensors;
  REQUIRE_MESSAGE(st.count(key), "no golden ", key);
  return io::from_raw<double>(st.at(key));
}
// Every golden key under `prefix`, with the prefix removed.
std::map<std::string, D> with_prefix(const std::string& prefix) {
  std::map<std::string, D> out;
  for (const auto& [k, raw] : goldens().tensors)
    if (k.compare(0, prefix.size(), prefix) == 0) out[k.substr(prefix.size())] = io::from_raw<double>(raw);
  return out;
}

// torch's MultiheadAttention returns (output, weights): the goldens wrap it as "attn".
struct SelfAttention : nn::Module<double> {
  std::shared_ptr<nn::MultiheadAttention<double>> attn =
      register_module("attn", std::make_shared<nn::MultiheadAttention<double>>(8, 2));
  D forward(const D& x) override { return (*attn)(x); }
};

template <class M, class... A>
ModulePtr make(A&&... a) {
  return std::make_shared<M>(std::forward<A>(a)...);
}

std::map<std::string, std::function<ModulePtr()>> modules() {
  using namespace nn;
  std::map<std::string, std::function<ModulePtr()>> m;
  m["linear"] = [] { return make<Linear<double>>(5, 3); };
  m["linear_nobias"] = [] { return make<Linear<double>>(5, 3, false); };
  m["conv2d"] = [] { return make<Conv2d<double>>(3, 4, 3, Conv2dOptions{.stride = 2, .padding = 1}); };
  m["conv2d_groups"] = [] {
    return make<Conv2d<double>>(4, 6, Pair2{3, 2}, Conv2dOptions{.padding = {1, 0}, .dilation = {1, 2}, .groups = 2}, false);
  };
  m["conv1d"] = [] { return make<Conv1d<double>>(2, 3, 3, Conv1dOptions{.padding = 1}); };
  m["conv_transpose2d"] = [] {
    return make<ConvTranspose2d<double>>(3, 2, 3, ConvTranspose2dOptions{.stride = 2, .padding = 1, .output_padding = 1});
  };
  m["batchnorm2d_train"] = [] { return make<BatchNorm2d<double>>(3); };
  m["batchnorm1d_train_3d"] = [] { return make<BatchNorm1d<double>>(3, 1e-5, 0.3); };
  m["batchnorm1d_eval"] = [] { return make<BatchNorm1d<double>>(3); };
  m["layernorm"] = [] { return make<LayerNorm<double>>(Shape{3, 4}); };
  m["groupnorm"] = [] { return make<GroupNorm<double>>(2, 4); };
  m["embedding"] = [] { return make<Embedding<double>>(7, 3, 2); };
  m["maxpool2d"] = [] { return make<MaxPool2d<double>>(MaxPool2dOptions{.kernel_size = 3, .stride = Pair2(2), .padding = 1}); };
  m["avgpool2d"] = [] { return make<AvgPool2d<double>>(2); };
  m["adaptiveavgpool2d"] = [] { return make<AdaptiveAvgPool2d<double>>(Pair2{2, 3}); };
  m["gelu_tanh"] = [] { return make<GELU<double>>("tanh"); };
  m["silu"] = [] { return make<SiLU<double>>(); };
  m["leakyrelu"] = [] { return make<LeakyReLU<double>>(0.1); };
  m["softplus"] = [] { return make<Softplus<double>>(2.0, 1.0); };
  m["tanh"] = [] { return make<Tanh<double>>(); };
  m["sigmoid"] = [] { return make<Sigmoid<double>>(); };
  m["elu"] = [] { return make<ELU<double>>(0.7); };
  m["softmax"] = [] { return make<Softmax<double>>(1); };
  m["log_softmax"] = [] { return make<LogSoftmax<double>>(-1); };
  m["upsample_nearest"] = [] { return make<Upsample<double>>(InterpolateOptions{.scale_factor = 2.0}); };
  m["upsample_bilinear"] = [] {
    return make<Upsample<double>>(InterpolateOptions{.size = Pair2{7, 6}, .mode = "bilinear"});
  };
  m["unflatten"] = [] { return make<Unflatten<double>>(1, Shape{2, 3, 2}); };
  m["mha"] = [] { return make<SelfAttention>(); };
  m["transformer_prenorm"] = [] {
    return make<TransformerEncoderLayer<double>>(8, 2, TransformerOptions{.dim_feedforward = 16, .dropout = 0.0});
  };
  m["sequential_cnn"] = [] {
    return std::make_shared<Sequential<double>>(Conv2d<double>(1, 4, 3, {.padding = 1}), BatchNorm2d<double>(4),
                                                ReLU<double>(), MaxPool2d<double>(2), Flatten<double>(),
                                                Linear<double>(4 * 3 * 3, 5));
  };
  return m;
}

}  // namespace

TEST_CASE("nn goldens: every layer loads PyTorch's state_dict and matches its forward and gradients") {
  std::set<std::string> cases;
  for (const auto& [k, raw] : goldens().tensors)
    if (k.size() > 4 && k.compare(k.size() - 4, 4, ".out") == 0) cases.insert(k.substr(0, k.size() - 4));
  const auto table = modules();
  CHECK(cases.size() == table.size());
  for (const auto& name : cases) {
    CAPTURE(name);
    auto it = table.find(name);
    REQUIRE_MESSAGE(it != table.end(), "golden module case ", name, " has no C++ counterpart");
    auto m = it->second();
    m->load_state_dict(with_prefix(name + ".sd."));  // strict: PyTorch's keys, all of them
    const bool eval = name.find("_eval") != std::string::npos;
    m->train(!eval);
    const auto& raw_in = goldens().tensors.at(name + ".in");
    D out, x;
    if (raw_in.dtype == "I64") {
      auto emb = std::dynamic_pointer_cast<nn::Embedding<double>>(m);
      REQUIRE(emb);
      out = (*emb)(io::from_raw<std::int64_t>(raw_in));
    } else {
      x = io::from_raw<double>(raw_in).requires_grad_(true);
      out = (*m)(x);
    }
    check_close(out, golden(name + ".out"), 1e-10, 1e-8, "forward");
    out.backward(golden(name + ".cot"));
    if (x.defined()) check_close(x.grad(), golden(name + ".grad.in"), 1e-10, 1e-8, "input gradient");
    for (auto& [pname, p] : m->named_parameters()) {
      CAPTURE(pname);
      REQUIRE(p.grad().defined());
      check_close(p.grad(), golden(name + ".grad." + pname), 1e-10, 1e-8, "parameter gradient");
    }
    for (auto& [bname, expected] : with_prefix(name + ".after.")) {
      CAPTURE(bname);
      check_close(m->state_dict().at(bname), expected, 1e-10, 1e-8, "buffer after forward");
    }
  }
}

TEST_CASE("optim goldens: SGD (momentum, dampening, Nesterov, weight decay), Adam, AdamW, RMSprop and Adagrad follow PyTorch") {
  using namespace optim;
  std::map<std::string, std::function<std::function<void()>(D&)>> configs;
  auto bind = [](auto opt) {
    auto shared = std::make_shared<decltype(opt)>(std::move(opt));
    return std::function<void()>([shared] { shared->step(); });
  };
  configs["sgd"] = [&](D& p) { return bind(SGD<double>({p}, {.lr = 0.1})); };
  configs["sgd_momentum"] = [&](D& p) {
    return bind(SGD<double>({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}));
  };
  configs["sgd_nesterov"] = [&](D& p) {
    return bind(SGD<double>({p}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.05, .nesterov = true}));
  };
  configs["adam"] = [&](D& p) { return bind(Adam<double>({p}, {.lr = 0.01, .weight_decay = 0.1})); };
  configs["adamw"] = [&](D& p) {
    return bind(AdamW<double>({p}, {.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1}));
  };
  configs["rmsprop"] = [&](D& p) { return bind(RMSprop<double>({p}, {.lr = 0.01})); };
  configs["rmsprop_centered_momentum"] = [&](D& p) {
    return bind(RMSprop<double>(
        {p}, {.lr = 0.01, .alpha = 0.9, .eps = 1e-6, .weight_decay = 0.1, .momentum = 0.8, .centered = true}));
  };
  configs["adagrad"] = [&](D& p) { return bind(Adagrad<double>({p}, {.lr = 0.1})); };
  configs["adagrad_decay"] = [&](D& p) {
    return bind(Adagrad<double>(
        {p}, {.lr = 0.1, .lr_decay = 0.05, .weight_decay = 0.1, .initial_accumulator_value = 0.3, .eps = 1e-8}));
  };
  for (auto& [name, make] : configs) {
    CAPTURE(name);
    D p = golden("opt.p0").requires_grad_(true);
    auto step = make(p);
    for (int k = 1; k <= 6; ++k) {
      CAPTURE(k);
      p.set_grad(golden("opt.g" + std::to_string(k)));
      step();
      check_close(p, golden("opt." + name + ".p" + std::to_string(k)), 1e-12, 1e-10, "parameter");
    }
  }
}

TEST_CASE("nn goldens: 2-D sin-cos positions equal MAE's get_2d_sincos_pos_embed") {
  check_close(nn::sincos_2d_positional_embedding<double>(2, 3, 8, true), golden("sincos.2x3x8.cls"), 1e-15, 1e-14,
              "2x3 grid, dim 8, cls row");
  check_close(nn::sincos_2d_positional_embedding<double>(4, 4, 16), golden("sincos.4x4x16"), 1e-15, 1e-14,
              "4x4 grid, dim 16");
  nn::PositionalEmbedding<double> pos(10, 8);
  CHECK(pos.weight.abs().max().item() <= 0.04);
  auto x = zeros<double>({2, 4, 8});
  check_close(pos(x).select(0, 1), pos.weight.narrow(0, 0, 4), 0, 0, "adds the first rows");
  check_error([&] { pos(zeros<double>({1, 11, 8})); }, {"PositionalEmbedding", "[1, 11, 8]"});
}

TEST_CASE("optim goldens: L-BFGS follows PyTorch's, with and without the strong Wolfe line search") {
  const D X = golden("lbfgs.X"), y = golden("lbfgs.y");
  struct Problem {
    std::vector<D> params;
    std::function<D()> loss;
  };
  auto logreg = [&] {
    auto w = zeros<double>({5}).requires_grad_(), b = zeros<double>({1}).requires_grad_();
    return Problem{{w, b}, [=] {
                     return add(binary_cross_entropy_with_logits(add(matmul(X, w), b), y),
                                mul(sum(mul(w, w)), 1e-2));
                   }};
  };
  auto rosenbrock = [] {
    auto x = tensor<double>({-1.5, 2.0}, {2}).requires_grad_();
    return Problem{{x}, [=] {
                     auto x0 = x.narrow(0, 0, 1), x1 = x.narrow(0, 1, 1);
                     return sum(add(square(sub(1.0, x0)), mul(square(sub(x1, square(x0))), 100.0)));
                   }};
  };
  const std::map<std::string, std::pair<std::function<Problem()>, optim::LBFGSOptions>> cases{
      {"logreg", {logreg, {.lr = 1, .max_iter = 20, .history_size = 5}}},
      {"logreg_wolfe", {logreg, {.lr = 1, .max_iter = 10, .history_size = 3, .line_search_fn = "strong_wolfe"}}},
      {"rosen_wolfe", {rosenbrock, {.lr = 1, .max_iter = 30, .history_size = 10, .line_search_fn = "strong_wolfe"}}},
      {"rosen_wolfe_h2", {rosenbrock, {.lr = 1, .max_iter = 25, .history_size = 2, .line_search_fn = "strong_wolfe"}}},
  };
  for (const auto& [name, c] : cases) {
    CAPTURE(name);
    Problem problem = c.first();
    optim::LBFGS<double> opt(problem.params, c.second);
    auto closure = [&] {
      opt.zero_grad();
      auto loss = problem.loss();
      loss.backward();
      return double(loss.item());
    };
    for (int k = 1; k <= 3; ++k) {
      CAPTURE(k);
      const double loss = opt.step(closure);
      const std::string at = "lbfgs." + name;
      CHECK(loss == doctest::Approx(golden(at + ".loss" + std::to_string(k)).item()).epsilon(1e-8));
      CHECK(double(opt.func_evals()) == golden(at + ".evals" + std::to_string(k)).item());
      std::vector<D> flat;
      for (auto& p : problem.params) flat.push_back(p.detach().reshape({-1}));
      check_close(cat(flat, 0), golden(at + ".p" + std::to_string(k)), 1e-10, 1e-8, "parameters");
    }
  }
  // Bad options are refused.
  auto x = zeros<double>({2}).requires_grad_();
  check_error([&] { optim::LBFGS<double>({x}, {.line_search_fn = "armijo"}); }, {"LBFGS", "armijo"});
  check_error([&] { optim::LBFGS<double>({x}, {.history_size = 0}); }, {"LBFGS", "history_size"});
  check_error([&] { optim::LBFGS<double>({}, {}); }, {"LBFGS", "no parameters"});
}
