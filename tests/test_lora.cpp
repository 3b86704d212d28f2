// LoRA, DoRA and ALLoRA: the spec's invariants (shared/specs/lora_family.md section 8), the
// dense oracles for ALLoRA's scaled gradients, DoRA against its frozen-norm function, module
// surgery on the models, merging, and adapter files.
#include <cmath>
#include <cstdio>

#include <ligm/methods/lora/lora.hpp>
#include <ligm/models/models.hpp>

#include "helpers.hpp"

using namespace th;
namespace lora = ligm::methods::lora;
using D = Tensor<double>;
using In = std::vector<D>;

namespace {

lora::Config config(lora::Method m, std::int64_t r = 3, double alpha = 6) {
  lora::Config c;
  c.method = m;
  c.r = r;
  c.alpha = alpha;
  c.seed = 7;
  return c;
}

// A float64 Linear(in, out) with an adapter, B random (nonzero) so every term is exercised.
std::shared_ptr<lora::LoRALinear<double>> adapted(lora::Method m, std::int64_t in = 6, std::int64_t out = 5,
                                                  std::uint64_t seed = 1, double alpha = 6) {
  Generator g(seed);
  auto base = std::make_shared<nn::Linear<double>>(in, out, true, g);
  base->requires_grad_(false);
  auto layer = std::make_shared<lora::LoRALinear<double>>(base, config(m, 3, alpha), g);
  NoGradGuard no_grad;
  layer->lora_B->weight.copy_(mul(randn<double>({out, 3}, g), 0.5));
  return layer;
}

// Points the layer's factors (and DoRA's magnitudes) at gradcheck's leaves.
void bind(lora::LoRALayer<double>& l, const D& A, const D& B, const D& m = {}) {
  l.lora_A->weight = A;
  l.lora_B->weight = B;
  if (m.defined()) l.lora_magnitude_vector = m;
}

D rows_scaled(const D& g, const D& c) { return mul(g, c.unsqueeze(1)); }

}  // namespace

TEST_CASE("lora: every method is a no-op at initialisation (B = 0)") {
  for (auto m : {lora::Method::LoRA, lora::Method::DoRA, lora::Method::ALLoRA}) {
    CAPTURE(lora::method_name(m));
    Generator g(3);
    auto base = std::make_shared<nn::Linear<float>>(8, 4, true, g);
    auto x = randn<float>({5, 8}, g);
    const auto y0 = base->forward(x);
    lora::LoRALinear<float> layer(base, config(m), g);
    CHECK(layer.lora_B->weight.abs().max().item() == 0.0f);
    CHECK(layer.lora_A->weight.abs().max().item() > 0.0f);
    if (m == lora::Method::DoRA) check_close(layer(x), y0, 1e-6, 1e-6, "DoRA at init");
    else CHECK(layer(x).to_vector() == y0.to_vector());
  }
}

TEST_CASE("lora: merged weights give the unmerged output; unmerge restores W0") {
  for (auto m : {lora::Method::LoRA, lora::Method::DoRA, lora::Method::ALLoRA}) {
    CAPTURE(lora::method_name(m));
    auto l = adapted(m);
    auto x = randn<double>({4, 6}, default_generator());
    const auto w0 = l->base_layer->weight.clone();
    const auto y = l->forward(x);
    // The adapted weight in closed form: LoRA W0 + s BA, ALLoRA W0 + BA, DoRA diag(m/n)(W0 + s BA).
    const double s = m == lora::Method::ALLoRA ? 1.0 : 2.0;
    auto v = add(w0, mul(matmul(l->lora_B->weight, l->lora_A->weight), s));
    auto w = m == lora::Method::DoRA ? mul(v, div(l->lora_magnitude_vector, v.norm(2, {1})).unsqueeze(1)) : v;
    check_close(linear(x, w, l->base_layer->bias), y, 1e-10, 1e-10, "closed form");
    l->merge();
    CHECK(l->merged());
    check_close(l->base_layer->weight, w, 1e-12, 1e-12, "merged weight");
    check_close(l->forward(x), y, 1e-10, 1e-10, "merged output");
    l->unmerge();
    check_close(l->base_layer->weight, w0, 1e-12, 1e-12, "unmerged weight");
    check_close(l->forward(x), y, 1e-10, 1e-10, "unmerged output");
  }
  // float32 within the spec's 1e-5.
  Generator g(4);
  auto base = std::make_shared<nn::Linear<float>>(16, 8, true, g);
  lora::LoRALinear<float> l(base, config(lora::Method::DoRA, 4, 8), g);
  l.lora_B->weight.detach().copy_(mul(randn<float>({8, 4}, g), 0.3f));
  auto x = randn<float>({6, 16}, g);
  auto y = l(x);
  l.merge();
  check_close(l(x), y, 1e-5, 1e-5, "float32 merged");
}

TEST_CASE("lora: float64 gradcheck of x, A and B (no dropout)") {
  auto l = adapted(lora::Method::LoRA);
  check_grad([&](const In& in) { bind(*l, in[1], in[2]); return (*l)(in[0]); },
             {leaf({4, 6}, 10), leaf({3, 6}, 11), leaf({5, 3}, 12)});
  // Leading dims: [2, 3, in].
  check_grad([&](const In& in) { bind(*l, in[1], in[2]); return (*l)(in[0]); },
             {leaf({2, 3, 6}, 13), leaf({3, 6}, 14), leaf({5, 3}, 15)});
}

TEST_CASE("allora: forward and input gradient equal LoRA with s = 1; A and B gradients follow the dense oracle") {
  auto al = adapted(lora::Method::ALLoRA, 6, 5, 1);
  auto lo = adapted(lora::Method::LoRA, 6, 5, 1, /*alpha = r*/ 3);
  CHECK(lo->scaling == 1.0);
  CHECK(al->scaling == 1.0);
  auto x = leaf({7, 6}, 20);
  auto G = randn<double>({7, 5}, default_generator());
  auto run = [&](lora::LoRALinear<double>& l) {
    auto xi = x.detach().clone().requires_grad_(true);
    auto A = l.lora_A->weight.detach().clone().requires_grad_(true);
    auto B = l.lora_B->weight.detach().clone().requires_grad_(true);
    bind(l, A, B);
    auto y = l(xi);
    y.backward(G);
    return std::make_tuple(y.detach(), xi.grad(), A.grad(), B.grad());
  };
  // The same factors in both.
  lo->lora_A->weight = al->lora_A->weight;
  lo->lora_B->weight = al->lora_B->weight;
  auto [ya, dxa, dAa, dBa] = run(*al);
  auto [yl, dxl, dAl, dBl] = run(*lo);
  check_close(ya, yl, 1e-12, 1e-12, "forward");
  check_close(dxa, dxl, 1e-12, 1e-12, "input gradient");
  // Dense oracle: G_W = G^T X; dB = diag(c) G_W A^T, dA = B^T diag(c) G_W.
  const auto c = al->coefficient();
  const auto A = al->lora_A->weight.detach(), B = al->lora_B->weight.detach();
  auto GW = matmul(G.t(), x.detach());
  check_close(dBa, matmul(rows_scaled(GW, c), A.t()), 1e-10, 1e-9, "dB oracle");
  check_close(dAa, matmul(B.t(), rows_scaled(GW, c)), 1e-10, 1e-9, "dA oracle");
  // Row i of dB is c_i times LoRA's.
  check_close(dBa, rows_scaled(dBl, c), 1e-12, 1e-10, "dB row ratio");
  // The input gradient passes finite differences; A and B do not (their gradients are scaled).
  check_grad([&](const In& in) { return (*al)(in[0]); }, {leaf({3, 6}, 21)});
  check_grad([&](const In& in) { return lora::allora_delta(in[0], A, B, c); }, {leaf({2, 3, 6}, 22)});
  auto r = gradcheck([&](const In& in) { bind(*al, in[0], in[1]); return (*al)(x.detach()); },
                     {A.clone().requires_grad_(true), B.clone().requires_grad_(true)});
  CHECK_FALSE(r.ok);
}

TEST_CASE("allora: the Gram-matrix row norm equals the dense one; c = eta at init; eta never touches dx") {
  auto l = adapted(lora::Method::ALLoRA);
  const auto A = l->lora_A->weight, B = l->lora_B->weight;
  const auto q = matmul(B, A).norm(2, {1});
  for (double p : {1.0, 2.0}) {
    auto expect = rsqrt(add(q.pow(p), 1.0 / 4.0));  // eta = 2
    check_close(lora::allora_coefficient(A, B, 2.0, p), expect, 1e-12, 1e-12, "coefficient");
  }
  Generator g(5);
  auto base = std::make_shared<nn::Linear<double>>(6, 5, true, g);
  for (double eta : {1.0, 2.0, 8.0}) {
    auto c = config(lora::Method::ALLoRA);
    c.eta = eta;
    lora::LoRALinear<double> fresh(base, c, g);
    CHECK(fresh.coefficient().to_vector() == std::vector<double>(5, eta));
  }
  // dx with eta 1 and 8 on the same factors.
  std::vector<D> dx;
  for (double eta : {1.0, 8.0}) {
    l->config.eta = eta;
    auto x = leaf({4, 6}, 30);
    l->forward(x).backward(ones<double>({4, 5}));
    dx.push_back(x.grad());
  }
  CHECK(dx[0].to_vector() == dx[1].to_vector());
}

TEST_CASE("allora: one SGD step from B = 0 is dB = -lr eta G^T (X A^T), dA = 0") {
  Generator g(6);
  auto base = std::make_shared<nn::Linear<double>>(6, 5, true, g);
  base->requires_grad_(false);
  auto c = config(lora::Method::ALLoRA);
  c.eta = 2;
  lora::LoRALinear<double> l(base, c, g);
  const auto A0 = l.lora_A->weight.clone();
  auto x = randn<double>({8, 6}, g), G = randn<double>({8, 5}, g);
  optim::SGD<double> opt(std::vector<D>{l.lora_A->weight, l.lora_B->weight}, {.lr = 0.1});
  sum(mul(l(x), G)).backward();  // dL/dY = G
  opt.step();
  check_close(l.lora_B->weight, mul(matmul(G.t(), matmul(x, A0.t())), -0.1 * 2.0), 1e-12, 1e-12, "B after one step");
  CHECK(l.lora_A->weight.to_vector() == A0.to_vector());
}

TEST_CASE("dora: detached-norm gradients equal those of the frozen-norm function; the full variant passes gradcheck") {
  auto l = adapted(lora::Method::DoRA);
  const auto W0 = l->base_layer->weight.detach(), b = l->base_layer->bias.detach();
  const double s = l->scaling;
  const auto A = l->lora_A->weight.detach().clone(), B = l->lora_B->weight.detach().clone();
  auto m0 = add(l->lora_magnitude_vector.detach(), 0.1).contiguous();  // m != n: every term nonzero
  const auto n0 = add(W0, mul(matmul(B, A), s)).norm(2, {1});        // frozen at the point
  auto frozen = [&](const In& in) {
    auto z = add(linear(in[0], W0), mul(matmul(matmul(in[0], in[1].t()), in[2].t()), s));
    return add(mul(z, div(in[3], n0)), b);
  };
  In point{leaf({4, 6}, 40), A.clone().requires_grad_(true), B.clone().requires_grad_(true),
           m0.clone().requires_grad_(true)};
  check_grad(frozen, point);
  // The layer's gradients at the point equal the frozen function's.
  auto grads = [&](auto fn) {
    In in;
    for (auto& t : point) in.push_back(t.detach().clone().requires_grad_(true));
    fn(in).backward(ones<double>({4, 5}));
    std::vector<D> out;
    for (auto& t : in) out.push_back(t.grad());
    return out;
  };
  const auto want = grads(frozen);
  const auto got = grads([&](const In& in) { bind(*l, in[1], in[2], in[3]); return (*l)(in[0]); });
  const char* names[] = {"dx", "dA", "dB", "dm"};
  for (int k = 0; k < 4; ++k) check_close(got[std::size_t(k)], want[std::size_t(k)], 1e-12, 1e-10, names[k]);
  // Not the gradient of the layer's own function (n moves with A and B): plain gradcheck fails.
  CHECK_FALSE(gradcheck([&](const In& in) { bind(*l, in[1], in[2], in[3]); return (*l)(in[0]); }, point).ok);
  l->config.dora_full_gradient = true;
  check_grad([&](const In& in) { bind(*l, in[1], in[2], in[3]); return (*l)(in[0]); }, point);
}

TEST_CASE("lora: dropout acts on the adapter input only (train), not in eval") {
  Generator g(8);
  auto base = std::make_shared<nn::Linear<double>>(6, 5, true, g);
  auto c = config(lora::Method::LoRA);
  c.dropout = 0.5;
  lora::LoRALinear<double> l(base, c, g);
  l.lora_B->weight.detach().copy_(randn<double>({5, 3}, g));
  auto x = randn<double>({64, 6}, g);
  auto base_y = base->forward(x);
  l.eval();
  auto y_eval = l(x);
  check_close(y_eval, add(base_y, mul(matmul(matmul(x, l.lora_A->weight.t()), l.lora_B->weight.t()), 2.0)), 1e-12,
              1e-12, "eval");
  l.train();
  auto y_train = l(x);
  CHECK(sub(y_train, y_eval).abs().max().item() > 1e-3);  // the adapter path is dropped
}

TEST_CASE("allora: Adam nearly cancels eta (the spec's canary); SGD does not") {
  auto run = [](double eta, bool adam) {
    Generator g(9);
    nn::Sequential<float> net;
    net.push_back(std::make_shared<nn::Linear<float>>(10, 16, true, g));
    net.push_back(std::make_shared<nn::ReLU<float>>());
    net.push_back(std::make_shared<nn::Linear<float>>(16, 3, true, g));
    auto c = config(lora::Method::ALLoRA, 2);
    c.eta = eta;
    lora::add_adapters(net, c);
    auto x = randn<float>({32, 10}, g);
    auto y = randint(0, 3, {32}, g);
    auto params = lora::adapter_parameters(net);
    optim::Adam<float> a(params, {.lr = 1e-2});
    optim::SGD<float> s(params, {.lr = 0.1});
    float loss = 0;
    for (int step = 0; step < 25; ++step) {
      auto l = cross_entropy(net(x), y);
      loss = l.item();
      a.zero_grad();
      l.backward();
      adam ? a.step() : s.step();
    }
    return loss;
  };
  const float adam1 = run(1, true), adam2 = run(2, true), sgd1 = run(1, false), sgd2 = run(2, false);
  MESSAGE("loss after 25 steps: Adam eta 1 ", adam1, ", eta 2 ", adam2, "; SGD eta 1 ", sgd1, ", eta 2 ", sgd2);
  // Measured: Adam 0.9945 / 0.9971, SGD 1.1452 / 1.1270 (a gap seven times Adam's).
  CHECK(std::fabs(adam1 - adam2) < 5e-3 * std::fabs(adam1));
  CHECK(std::fabs(sgd1 - sgd2) > 5 * std::fabs(adam1 - adam2));
}

TEST_CASE("lora: surgery on a GPT freezes the base, trains only the adapters, saves PEFT keys and merges away") {
  models::GPTConfig gc{.vocab_size = 32, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 16};
  Generator g(10);
  models::GPT<float> gpt(gc, g);
  const auto before = gpt.state_dict();
  std::map<std::string, std::vector<float>> original;
  for (auto& [k, v] : before) original[k] = v.clone().to_vector();
  auto tokens = randint(0, 32, {3, 8}, g);
  const auto logits0 = gpt(tokens).to_vector();
  auto c = config(lora::Method::LoRA, 2, 4);
  c.target_modules = {"c_attn", "attn.c_proj", "c_fc"};
  auto paths = lora::add_adapters(gpt, c);
  CHECK(paths.size() == 6);
  CHECK(gpt.get_submodule("transformer.h.0.attn.c_attn").type_name() == "LoRALinear");
  CHECK(gpt.get_submodule("transformer.h.1.mlp.c_proj").type_name() == "Linear");  // not a target
  CHECK(gpt(tokens).to_vector() == logits0);
  std::int64_t expect = 2 * ((16 + 48) * 2 + (16 + 16) * 2 + (16 + 64) * 2);
  CHECK(gpt.num_parameters(true) == expect);
  CHECK(lora::adapter_state_dict(gpt).count("base_model.model.transformer.h.1.attn.c_attn.lora_A.weight") == 1);
  CHECK(gpt.state_dict().count("transformer.h.1.attn.c_attn.base_layer.weight") == 1);
  // Train: only the adapters move.
  optim::AdamW<float> opt(lora::adapter_parameters(gpt), {.lr = 1e-2});
  for (int step = 0; step < 3; ++step) {
    auto loss = gpt.loss(tokens, tokens);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  for (auto& [k, v] : gpt.state_dict()) {
    if (k.find("lora_") != std::string::npos) continue;
    std::string key = k;
    if (auto at = key.find(".base_layer"); at != std::string::npos) key.erase(at, 11);
    REQUIRE(original.count(key));
    CHECK_MESSAGE(v.to_vector() == original[key], key);
  }
  const auto tuned = gpt(tokens);
  CHECK(sub(tuned, tensor<float>(logits0, tuned.shape())).abs().max().item() > 1e-4);
  // An adapter file round trip into a fresh copy of the base model.
  const std::string file = "/tmp/ligm_test_lora_adapter.safetensors";
  lora::save_adapter(gpt, file);
  Generator g2(10);
  models::GPT<float> other(gc, g2);
  lora::add_adapters(other, c);
  lora::load_adapter(other, file);
  CHECK(other(tokens).to_vector() == tuned.to_vector());
  // Mismatched targets or ranks are refused with the key named.
  models::GPT<float> third(gc, g2);
  auto c3 = c;
  c3.r = 3;
  lora::add_adapters(third, c3);
  std::map<std::string, std::vector<float>> third_before;
  for (auto& [k, v] : lora::adapter_state_dict(third)) third_before[k] = v.to_vector();
  check_error([&] { lora::load_adapter(third, file); }, {"size mismatch", "lora_A.weight"});
  // From the bytes in memory as from the file; a refused file changes no adapter value.
  const auto parsed = io::parse_safetensors(read_file(file, "test"));
  check_error([&] { lora::load_adapter(third, parsed); }, {"size mismatch", "lora_A.weight"});
  for (auto& [k, v] : lora::adapter_state_dict(third)) CHECK_MESSAGE(v.to_vector() == third_before[k], k);
  Generator g5(10);  // the base weights of `other`
  models::GPT<float> fifth(gc, g5);
  lora::add_adapters(fifth, c);
  lora::load_adapter(fifth, parsed);
  CHECK(fifth(tokens).to_vector() == tuned.to_vector());
  models::GPT<float> fourth(gc, g2);
  auto c4 = c;
  c4.target_modules = {"c_attn"};
  lora::add_adapters(fourth, c4);
  check_error([&] { lora::load_adapter(fourth, file); }, {"unexpected", "c_fc.lora_A.weight"});
  std::remove(file.c_str());
  // Merge and unload: the original architecture and key set, the tuned output.
  lora::merge_and_unload(gpt);
  check_close(gpt(tokens), tuned, 1e-5, 1e-4, "merged and unloaded");
  auto keys = gpt.state_dict();
  CHECK(keys.size() == before.size());
  for (auto& [k, v] : before) CHECK_MESSAGE(keys.count(k) == 1, k);
  CHECK(gpt.get_submodule("transformer.h.0.attn.c_attn").type_name() == "Linear");
}

TEST_CASE("lora: MultiheadAttention's in-projection adapts as a weight; ALLoRA's hook matches its custom backward") {
  Generator g(11);
  nn::TransformerEncoderLayer<double> block(8, 2, {.dim_feedforward = 16, .dropout = 0.0}, g);
  auto x = randn<double>({2, 5, 8}, g);
  const auto y0 = block(x).to_vector();
  auto c = config(lora::Method::DoRA, 2, 4);
  auto paths = lora::add_adapters(block, c);
  CHECK(paths == std::vector<std::string>{"self_attn.out_proj", "linear1", "linear2", "self_attn.in_proj"});
  check_close(block(x), y0, 1e-12, 1e-12, "no-op at init");
  auto adapters = lora::adapter_layers(block);
  REQUIRE(adapters.size() == 4);
  for (auto& [path, a] : adapters) a->lora_B->weight.detach().copy_(mul(randn<double>(a->lora_B->weight.shape(), g), 0.3));
  const auto y = block(x);
  lora::merge_adapters(block);
  check_close(block(x), y, 1e-10, 1e-10, "merged");
  lora::unmerge_adapters(block);
  check_close(block(x), y, 1e-10, 1e-10, "unmerged");
  lora::merge_and_unload(block);
  check_close(block(x), y, 1e-10, 1e-10, "unloaded");
  CHECK_FALSE(block.self_attn->in_proj_adapter);
  CHECK(block.state_dict().count("self_attn.in_proj_weight") == 1);

  // The weight path (a gradient hook on BA) and the Linear path (allora_delta's backward) agree.
  auto w = randn<double>({5, 6}, g);
  auto lin = std::make_shared<nn::Linear<double>>(6, 5, false, g);
  lin->weight.detach().copy_(w);
  auto ca = config(lora::Method::ALLoRA);
  lora::LoRALinear<double> by_input(lin, ca, g);
  auto frozen_w = w.clone();
  lora::LoRALayer<double> by_weight(frozen_w, ca, g);
  by_input.lora_B->weight.detach().copy_(randn<double>({5, 3}, g));
  by_weight.lora_A->weight.detach().copy_(by_input.lora_A->weight.detach());
  by_weight.lora_B->weight.detach().copy_(by_input.lora_B->weight.detach());
  auto xin = randn<double>({7, 6}, g), G = randn<double>({7, 5}, g);
  by_input(xin).backward(G);
  linear(xin, by_weight.adapt(frozen_w)).backward(G);
  check_close(by_weight.lora_A->weight.grad(), by_input.lora_A->weight.grad(), 1e-12, 1e-10, "dA");
  check_close(by_weight.lora_B->weight.grad(), by_input.lora_B->weight.grad(), 1e-12, 1e-10, "dB");
}

TEST_CASE("lora: bad configurations are refused with a clear error") {
  Generator g(12);
  auto base = std::make_shared<nn::Linear<float>>(4, 3, true, g);
  auto c = config(lora::Method::ALLoRA);
  c.dropout = 0.1;
  check_error([&] { lora::LoRALinear<float> l(base, c, g); }, {"ALLoRA has no dropout"});
  c = config(lora::Method::LoRA, 0);
  check_error([&] { lora::LoRALinear<float> l(base, c, g); }, {"rank r must be positive"});
  nn::Sequential<float> net;
  net.push_back(std::make_shared<nn::Linear<float>>(4, 3, true, g));
  c = config(lora::Method::LoRA);
  c.target_modules = {"fc"};
  check_error([&] { lora::add_adapters(net, c); }, {"no Linear, Conv2d or MultiheadAttention", "matches"});
  nn::TransformerEncoderLayer<float> block(8, 2, {.dim_feedforward = 16}, g);
  c = config(lora::Method::LoRA);
  c.dropout = 0.05;
  check_error([&] { lora::add_adapters(block, c); }, {"in-projection", "self_attn", "dropout"});
  check_error([] { lora::allora_delta(zeros<float>({2, 4}), zeros<float>({3, 5}), zeros<float>({6, 3}), zeros<float>({6})); },
              {"allora_delta", "A [r, in]", "[2, 4]"});
}

TEST_CASE("lora: unload takes the adapters out unmerged (the original model), merged ones first unmerged") {
  Generator g(13);
  nn::Sequential<double> net;
  net.push_back(std::make_shared<nn::Linear<double>>(6, 8, true, g));
  net.push_back(std::make_shared<nn::ReLU<double>>());
  net.push_back(std::make_shared<nn::Linear<double>>(8, 3, true, g));
  auto x = randn<double>({4, 6}, g);
  const auto y0 = net(x).to_vector();
  const auto keys0 = net.state_dict();
  for (bool merged : {false, true}) {
    CAPTURE(merged);
    lora::add_adapters(net, config(lora::Method::DoRA));
    for (auto& [path, a] : lora::adapter_layers(net))
      a->lora_B->weight.detach().copy_(randn<double>(a->lora_B->weight.shape(), g));
    CHECK(net(x).to_vector() != y0);
    if (merged) lora::merge_adapters(net);
    lora::unload(net);
    check_close(net(x), tensor<double>(y0, {4, 3}), 1e-12, 1e-12, "after unload");
    CHECK(net.state_dict().size() == keys0.size());
    CHECK(net.get_submodule("0").type_name() == "Linear");
    net.requires_grad_(true);
  }
}

TEST_CASE("lora: Conv2d adapters (PEFT's conv factors): no-op, merge, gradcheck, ALLoRA's oracle, DoRA's frozen norm") {
  const Conv2dOptions o{.stride = 2, .padding = 1};
  auto make = [&](lora::Method m, std::uint64_t seed) {
    Generator g(seed);
    auto base = std::make_shared<nn::Conv2d<double>>(3, 4, 3, o, true, g);
    base->requires_grad_(false);
    auto l = std::make_shared<lora::LoRAConv2d<double>>(base, config(m), g);
    return std::make_pair(base, l);
  };
  Generator gx(21);
  auto x = randn<double>({2, 3, 7, 7}, gx), G = randn<double>({2, 4, 4, 4}, gx);
  for (auto m : {lora::Method::LoRA, lora::Method::DoRA, lora::Method::ALLoRA}) {
    CAPTURE(lora::method_name(m));
    auto [base, l] = make(m, 20);
    CHECK(l->lora_A_conv->weight.shape() == Shape{3, 3, 3, 3});  // [r, in, kh, kw]
    CHECK(l->lora_B_conv->weight.shape() == Shape{4, 3, 1, 1});  // [out, r, 1, 1]
    CHECK(l->lora_A_conv->options.stride.h == 2);
    const auto y0 = base->forward(x);
    check_close(l->forward(x), y0, 1e-12, 1e-12, "no-op at init");
    l->lora_B_conv->weight.detach().copy_(mul(randn<double>({4, 3, 1, 1}, gx), 0.5));
    const auto y = l->forward(x);
    CHECK(sub(y, y0).abs().max().item() > 1e-3);
    const auto w0 = base->weight.clone();
    l->merge();
    check_close(l->forward(x), y, 1e-10, 1e-10, "merged");
    l->unmerge();
    check_close(base->weight, w0, 1e-12, 1e-12, "unmerged weight");
  }
  // LoRA: float64 gradcheck of x and the factors.
  auto [lb, lo] = make(lora::Method::LoRA, 22);
  lo->lora_B_conv->weight.detach().copy_(randn<double>({4, 3, 1, 1}, gx));
  check_grad([&, lo = lo](const In& in) {
    lo->lora_A_conv->weight = in[1];
    lo->lora_B_conv->weight = in[2];
    return (*lo)(in[0]);
  }, {leaf({1, 3, 5, 5}, 23), lo->lora_A_conv->weight.detach().clone().requires_grad_(true),
      lo->lora_B_conv->weight.detach().clone().requires_grad_(true)});
  // ALLoRA: the factors' gradients are the dense oracle's, from the true gradient of the
  // flattened weight (a plain convolution's), rows scaled by c.
  auto [ab, al] = make(lora::Method::ALLoRA, 24);
  al->lora_B_conv->weight.detach().copy_(randn<double>({4, 3, 1, 1}, gx));
  al->requires_grad_(true);
  al->base_layer->requires_grad_(false);
  al->forward(x).backward(G);
  const auto A2 = al->A().detach(), B2 = al->B().detach(), c = al->coefficient();
  auto w = add(ab->weight, matmul(B2, A2).reshape(ab->weight.shape())).detach().clone().requires_grad_(true);
  conv2d(x, w, ab->bias, o).backward(G);
  auto GW = w.grad().reshape({4, -1});
  check_close(al->lora_B_conv->weight.grad().reshape({4, 3}), matmul(rows_scaled(GW, c), A2.t()), 1e-10, 1e-9, "dB");
  check_close(al->lora_A_conv->weight.grad().reshape({3, -1}), matmul(B2.t(), rows_scaled(GW, c)), 1e-10, 1e-9, "dA");
  // DoRA: the gradients of the function with the norm frozen (per output channel).
  auto [db, dl] = make(lora::Method::DoRA, 25);
  dl->lora_B_conv->weight.detach().copy_(mul(randn<double>({4, 3, 1, 1}, gx), 0.5));
  const double s = dl->scaling;
  const auto n0 = add(db->weight.reshape({4, -1}), mul(matmul(dl->B(), dl->A()), s)).norm(2, {1}).detach();
  const Shape ch{1, 4, 1, 1};
  auto frozen = [&](const In& in) {
    auto z = add(conv2d(x, db->weight, D(), o), mul(conv2d(conv2d(x, in[0], D(), o), in[1], D(), Conv2dOptions{}), s));
    return add(mul(z, div(in[2], n0).reshape(ch)), db->bias.reshape(ch));
  };
  In point{dl->lora_A_conv->weight.detach().clone().requires_grad_(true),
           dl->lora_B_conv->weight.detach().clone().requires_grad_(true),
           add(dl->lora_magnitude_vector.detach(), 0.1).contiguous().requires_grad_(true)};
  auto grads = [&](auto fn) {
    In in;
    for (auto& t : point) in.push_back(t.detach().clone().requires_grad_(true));
    fn(in).backward(G);
    std::vector<D> out;
    for (auto& t : in) out.push_back(t.grad());
    return out;
  };
  const auto want = grads(frozen);
  const auto got = grads([&, dl = dl](const In& in) {
    dl->lora_A_conv->weight = in[0];
    dl->lora_B_conv->weight = in[1];
    dl->lora_magnitude_vector = in[2];
    return (*dl)(x);
  });
  const char* names[] = {"dA", "dB", "dm"};
  for (int k = 0; k < 3; ++k) check_close(got[std::size_t(k)], want[std::size_t(k)], 1e-12, 1e-10, names[k]);
}

TEST_CASE("lora: a CNN gets adapters on every Conv2d and Linear by default; 4-d factors in its adapter file") {
  Generator g(26);
  nn::Sequential<float> cnn(nn::Conv2d<float>(1, 4, 3, {.padding = 1}, true, g), nn::ReLU<float>(), nn::MaxPool2d<float>(2),
                            nn::Flatten<float>(), nn::Linear<float>(4 * 4 * 4, 3, true, g));
  auto x = randn<float>({2, 1, 8, 8}, g);
  const auto y0 = cnn(x).to_vector();
  auto c = config(lora::Method::LoRA, 2, 2);
  CHECK(lora::add_adapters(cnn, c) == std::vector<std::string>{"4", "0"});
  CHECK(cnn(x).to_vector() == y0);
  const auto sd = lora::adapter_state_dict(cnn);
  CHECK(sd.at("base_model.model.0.lora_A.weight").shape() == Shape{2, 1, 3, 3});
  CHECK(sd.at("base_model.model.0.lora_B.weight").shape() == Shape{4, 2, 1, 1});
  CHECK(cnn.num_parameters(true) == 2 * 9 + 4 * 2 + (64 * 2 + 2 * 3));
  for (auto& [path, a] : lora::adapter_layers(cnn)) {
    NoGradGuard no_grad;
    a->B().detach().copy_(mul(randn<float>(a->B().shape(), g), 0.5f));
  }
  const auto tuned = cnn(x);
  lora::merge_and_unload(cnn);
  check_close(cnn(x), tuned, 1e-5, 1e-5, "merged and unloaded");
  CHECK(cnn.get_submodule("0").type_name() == "Conv2d");
}

TEST_CASE("lora: LoRA and DoRA, Linear and Conv2d, match PEFT's formulas in PyTorch (goldens/lora.safetensors)") {
  const auto file = io::load_safetensors(LIGM_GOLDEN_DIR "/lora.safetensors");
  auto golden = [&](const std::string& key) {
    REQUIRE_MESSAGE(file.tensors.count(key), "no golden ", key);
    return io::from_raw<double>(file.tensors.at(key));
  };
  auto linear_layer = [](lora::Method m) -> std::shared_ptr<lora::LoRALayer<double>> {
    Generator g(1);
    return std::make_shared<lora::LoRALinear<double>>(std::make_shared<nn::Linear<double>>(5, 4, true, g),
                                                      config(m, 2, 4), g);
  };
  auto conv_layer = [](lora::Method m) -> std::shared_ptr<lora::LoRALayer<double>> {
    Generator g(1);
    auto base = std::make_shared<nn::Conv2d<double>>(3, 4, 3, Conv2dOptions{.stride = 2, .padding = 1}, true, g);
    return std::make_shared<lora::LoRAConv2d<double>>(base, config(m, 2, 4), g);
  };
  const std::vector<std::pair<std::string, std::shared_ptr<lora::LoRALayer<double>>>> cases{
      {"lora_linear", linear_layer(lora::Method::LoRA)}, {"dora_linear", linear_layer(lora::Method::DoRA)},
      {"lora_conv2d", conv_layer(lora::Method::LoRA)}, {"dora_conv2d", conv_layer(lora::Method::DoRA)}};
  for (const auto& [name, layer] : cases) {
    CAPTURE(name);
    nn::StateDict<double> sd;
    const std::string prefix = name + ".sd.";
    for (const auto& [k, raw] : file.tensors)
      if (k.rfind(prefix, 0) == 0) sd[k.substr(prefix.size())] = io::from_raw<double>(raw);
    layer->load_state_dict(sd);  // strict: PEFT's keys are ligm's
    auto x = golden(name + ".in").requires_grad_(true);
    auto y = (*layer)(x);
    check_close(y, golden(name + ".out"), 1e-12, 1e-10, "output");
    sum(mul(y, golden(name + ".cot"))).backward();
    check_close(x.grad(), golden(name + ".grad.in"), 1e-12, 1e-10, "input gradient");
    for (auto& [key, p] : layer->named_parameters()) {
      if (key.rfind("base_layer.", 0) == 0) continue;
      CAPTURE(key);
      check_close(p.grad(), golden(name + ".grad." + key), 1e-12, 1e-10, "adapter gradient");
    }
  }
}
