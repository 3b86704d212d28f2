// An outside user's program: a model of its own (not ligm::models), adapted by LoRA, DoRA and
// ALLoRA and steered by Curvature Tuning through the public API only. tools/outside-check
// compiles it in a temporary folder against include/, header-only, as a user would, and runs it.
// Exit status 0 when every check holds.
#include <cstdio>
#include <map>
#include <string>

#include <ligm/ligm.hpp>
#include <ligm/methods/curvature/steering.hpp>
#include <ligm/methods/lora/lora.hpp>

using namespace ligm;
namespace lora = ligm::methods::lora;

namespace {

int failures = 0;
void expect(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAILED", what.c_str());
  failures += ok ? 0 : 1;
}

// Sequences of 6 feature vectors of width 8 -> 2 classes: an embedding, one attention block,
// and a ReLU MLP head whose ReLU module is called twice.
struct SeqClassifier : nn::Module<float> {
  explicit SeqClassifier(Generator& g) {
    embed = register_module("embed", std::make_shared<nn::Linear<float>>(8, 32, true, g));
    block = register_module("block", std::make_shared<nn::TransformerEncoderLayer<float>>(
                                         32, 4, nn::TransformerOptions{.dim_feedforward = 64, .dropout = 0.0}, g));
    hidden1 = register_module("hidden1", std::make_shared<nn::Linear<float>>(32, 32, true, g));
    hidden2 = register_module("hidden2", std::make_shared<nn::Linear<float>>(32, 32, true, g));
    act = register_module("act", std::make_shared<nn::ReLU<float>>());
    out = register_module("out", std::make_shared<nn::Linear<float>>(32, 2, true, g));
  }
  Tensor<float> forward(const Tensor<float>& x) override {
    auto h = (*block)((*embed)(x)).mean({1});
    h = (*act)((*hidden1)(h));
    h = (*act)((*hidden2)(h));
    return (*out)(h);
  }
  std::shared_ptr<nn::Linear<float>> embed, hidden1, hidden2, out;
  std::shared_ptr<nn::TransformerEncoderLayer<float>> block;
  std::shared_ptr<nn::ReLU<float>> act;
};

// Task `feature`: the class is whether the sequence mean of that feature is positive.
std::pair<Tensor<float>, Tensor<std::int64_t>> task(int feature, std::int64_t n, std::uint64_t seed) {
  Generator g(seed);
  auto x = randn<float>({n, 6, 8}, g);
  auto y = gt(x.select(2, feature).mean({1}), 0.0f).to<std::int64_t>();
  return {x, y};
}

double accuracy(nn::Module<float>& m, const Tensor<float>& x, const Tensor<std::int64_t>& y) {
  NoGradGuard no_grad;
  return sum(eq(argmax(m(x), 1), y).to<std::int64_t>()).item() / double(y.numel());
}

void train(nn::Module<float>& m, const std::vector<Tensor<float>>& params, const Tensor<float>& x,
           const Tensor<std::int64_t>& y, double lr, int steps) {
  optim::Adam<float> opt(params, {.lr = lr});
  Generator g(5);
  for (int s = 0; s < steps; ++s) {
    auto idx = randint(0, x.shape()[0], {64}, g);
    auto loss = cross_entropy(m(index_select(x, 0, idx)), index_select(y, 0, idx));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
}

}  // namespace

int main() {
  auto [xa, ya] = task(0, 2000, 1);
  auto [xb, yb] = task(1, 2000, 2);
  auto [xb_test, yb_test] = task(1, 1000, 3);
  Generator g(0);
  SeqClassifier pretrained(g);
  train(pretrained, pretrained.parameters(), xa, ya, 3e-3, 300);
  const auto weights = pretrained.state_dict();
  std::printf("pretrained on task A: %.1f%%; task B before adaptation: %.1f%%\n", 100 * accuracy(pretrained, xa, ya),
              100 * accuracy(pretrained, xb_test, yb_test));

  for (auto method : {lora::Method::LoRA, lora::Method::DoRA, lora::Method::ALLoRA}) {
    std::printf("%s:\n", lora::method_name(method));
    Generator g2(0);
    SeqClassifier model(g2);
    model.load_state_dict(weights);
    const auto base_logits = model(xb_test);
    lora::Config c{.method = method, .r = 4, .alpha = 8};
    const auto paths = lora::add_adapters(model, c);  // every Linear and the attention in-projection
    expect(paths.size() == 8, "8 adapted projections (" + std::to_string(paths.size()) + ")");
    expect(model(xb_test).to_vector() == base_logits.to_vector() || method == lora::Method::DoRA,
           "a no-op at initialisation");
    std::map<std::string, std::vector<float>> frozen;
    for (auto& [k, v] : model.state_dict())
      if (k.find("lora_") == std::string::npos) frozen[k] = v.clone().to_vector();
    train(model, lora::adapter_parameters(model), xb, yb, 3e-3, 200);
    const double acc = accuracy(model, xb_test, yb_test);
    std::printf("  task B after 200 steps: %.1f%% (%lld trainable of %lld)\n", 100 * acc,
                static_cast<long long>(model.num_parameters(true)), static_cast<long long>(model.num_parameters()));
    expect(acc > 0.8, "the adapters learn task B");
    bool unchanged = true;
    for (auto& [k, v] : model.state_dict())
      if (frozen.count(k)) unchanged = unchanged && v.to_vector() == frozen[k];
    expect(unchanged, "every base weight bit-identical after training");
    const auto tuned = model(xb_test);
    lora::save_adapter(model, "/tmp/ligm_outside_adapter.safetensors");
    Generator g3(0);
    SeqClassifier fresh(g3);
    fresh.load_state_dict(weights);
    lora::add_adapters(fresh, c);
    lora::load_adapter(fresh, "/tmp/ligm_outside_adapter.safetensors");
    expect(fresh(xb_test).to_vector() == tuned.to_vector(), "an adapter file reproduces the logits bit for bit");
    lora::merge_and_unload(model);
    expect(sub(model(xb_test), tuned).abs().max().item() < 1e-4, "merge_and_unload keeps the output");
    expect(model.state_dict().size() == weights.size(), "and the original architecture");
  }

  std::printf("Curvature Tuning steering:\n");
  Generator g4(0);
  SeqClassifier model(g4);
  model.load_state_dict(weights);
  const auto relu_logits = model(xa);
  {
    methods::curvature::Steering<float> ct(model);
    expect(ct.sites() == 1, "one ReLU module (called at two sites) swapped");
    expect(model(xa).to_vector() == relu_logits.to_vector(), "beta = 1 is the ReLU model bit for bit");
    for (double beta : {0.9, 0.7, 0.5}) {
      ct.set_beta(beta);
      std::printf("  beta %.1f: task A %.1f%%\n", beta, 100 * accuracy(model, xa, ya));
    }
    expect(sub(model(xa), relu_logits).abs().max().item() > 1e-3, "beta 0.5 changes the logits");
  }
  expect(model(xa).to_vector() == relu_logits.to_vector(), "the ReLUs are back after the steering ends");
  std::printf("%s\n", failures == 0 ? "all checks hold" : "SOME CHECKS FAILED");
  return failures == 0 ? 0 : 1;
}
