// ligm::models against their PyTorch counterparts (tools/make_goldens_models.py):
// - state_dict keys and shapes equal torchvision's (ResNet-18/34), timm's (ViT) and a
//   nanoGPT-style GPT's, and torch.nn.Sequential's for the MLP and CNN;
// - small models load weights that Python wrote (models.safetensors, by PyTorch key) and give
//   PyTorch's outputs and parameter gradients;
// - full-size ResNet-18 (both stems), ViT-Tiny and GPT, with weights from a formula both sides
//   compute, give PyTorch's logits;
// plus behaviour PyTorch cannot check: causality and sampling of the GPT, the U-Net's
// conditioning and gradients.
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include <ligm/io/safetensors.hpp>
#include <ligm/models/models.hpp>

#include "helpers.hpp"

using namespace th;
using D = Tensor<double>;
using I = Tensor<std::int64_t>;

namespace {

const io::SafetensorsFile& goldens() {
  static const auto file = io::load_safetensors(LIGM_GOLDEN_DIR "/models.safetensors");
  return file;
}
template <class T = double>
Tensor<T> golden(const std::string& key) {
  const auto& st = goldens().tensors;
  REQUIRE_MESSAGE(st.count(key), "no golden ", key);
  return io::from_raw<T>(st.at(key));
}
nn::StateDict<double> with_prefix(const std::string& prefix) {
  nn::StateDict<double> out;
  for (const auto& [k, raw] : goldens().tensors)
    if (k.compare(0, prefix.size(), prefix) == 0) out[k.substr(prefix.size())] = io::from_raw<double>(raw);
  return out;
}

// The keys and shapes PyTorch's model has, as a set.
std::set<std::pair<std::string, Shape>> pytorch_keys(const std::string& name) {
  static const nlohmann::json j = [] {
    std::ifstream f(LIGM_GOLDEN_DIR "/model_keys.json");
    REQUIRE(f.good());
    return nlohmann::json::parse(f);
  }();
  REQUIRE_MESSAGE(j["models"].contains(name), "no key list for ", name);
  std::set<std::pair<std::string, Shape>> out;
  for (const auto& e : j["models"][name]) out.emplace(e[0].get<std::string>(), e[1].get<Shape>());
  return out;
}
template <class T>
std::set<std::pair<std::string, Shape>> ligm_keys(const nn::Module<T>& m) {
  std::set<std::pair<std::string, Shape>> out;
  for (const auto& [k, v] : m.state_dict()) out.emplace(k, v.shape());
  return out;
}
template <class T>
void check_keys(const std::string& name, const nn::Module<T>& m) {
  const auto want = pytorch_keys(name), have = ligm_keys(m);
  for (const auto& [k, s] : want)
    CHECK_MESSAGE(have.count({k, s}), name, ": PyTorch has ", k, " ", shape_str(s), ", ligm does not");
  for (const auto& [k, s] : have)
    CHECK_MESSAGE(want.count({k, s}), name, ": ligm has ", k, " ", shape_str(s), ", PyTorch does not");
}

// The weights of make_goldens_models.py's formula_fill, key by key in sorted order.
void formula_fill(nn::Module<double>& m) {
  NoGradGuard no_grad;
  int k = 0;
  for (const auto& [key, entry] : m.state_dict()) {
    Tensor<double> t = entry;
    auto ends = [&](const std::string& s) {
      return key.size() >= s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0;
    };
    std::vector<double> v(std::size_t(t.numel()));
    const double fan_in = (ends("wte.weight") || ends("wpe.weight") || t.dim() < 2) ? 1.0 : double(t.numel() / t.shape()[0]);
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double s = std::sin(0.37 * double(i) + 1.1 * k + 0.5);
      if (ends("running_var")) v[i] = 1 + 0.3 * std::fabs(s);
      else if (ends("num_batches_tracked")) v[i] = 0;
      else if (ends("running_mean") || ends("cls_token") || ends("pos_embed") || (t.dim() == 1 && ends("bias"))) v[i] = 0.1 * s;
      else if (t.dim() == 1) v[i] = 1 + 0.2 * s;
      else v[i] = s * 1.5 / std::sqrt(fan_in);
    }
    t.copy_(tensor<double>(v, t.shape()));
    ++k;
  }
}

// Loads small.<name>.sd.*, runs `run` in eval mode, checks the output and the parameter
// gradients of sum(out * cot).
void check_small(const std::string& name, nn::Module<double>& m, const std::function<D()>& run) {
  const std::string p = "small." + name + ".";
  m.load_state_dict(with_prefix(p + "sd."));
  m.eval();
  auto out = run();
  check_close(out, golden(p + "out"), 1e-10, 1e-9, (name + " output").c_str());
  sum(mul(out, golden(p + "cot"))).backward();
  for (const auto& [k, param] : m.named_parameters()) {
    INFO(name, " gradient of ", k);
    REQUIRE(param.grad().defined());
    check_close(param.grad(), golden(p + "grad." + k), 1e-10, 1e-8, k.c_str());
  }
}

}  // namespace

TEST_CASE("models: state_dict keys and shapes are PyTorch's") {
  using namespace models;
  check_keys("mlp", MLP<float>(784, 10));
  check_keys("mlp_bn_dropout", MLP<float>(784, 10, {.hidden = {128, 128}, .batch_norm = true, .dropout = 0.1}));
  check_keys("small_cnn", SmallCNN<float>());
  check_keys("resnet18", *resnet18<float>());
  check_keys("resnet34", *resnet34<float>({.num_classes = 10}));
  check_keys("resnet18_cifar_1ch", *resnet18<float>({.num_classes = 10, .in_channels = 1, .stem = "cifar"}));
  check_keys("vit_tiny", VisionTransformer<float>());
  check_keys("vit_avg_nocls", VisionTransformer<float>({.img_size = 32, .patch_size = 8, .in_chans = 3, .num_classes = 0,
                                                        .embed_dim = 64, .depth = 2, .num_heads = 4,
                                                        .class_token = false, .global_pool = "avg"}));
  check_keys("gpt", GPT<float>());
}

TEST_CASE("models: small models load Python-written weights and match PyTorch's outputs and gradients") {
  using namespace models;
  SUBCASE("mlp") {
    MLP<double> m(64, 5, {.hidden = {16, 12}, .batch_norm = true});
    check_small("mlp", m, [&] { return m(golden("small.mlp.in")); });
  }
  SUBCASE("small_cnn") {
    SmallCNN<double> m(2, 5, {.channels = {4, 6}, .hidden = 10, .image_size = 12});
    check_small("small_cnn", m, [&] { return m(golden("small.small_cnn.in")); });
  }
  SUBCASE("vit") {
    VisionTransformer<double> m({.img_size = 16, .patch_size = 4, .in_chans = 1, .num_classes = 5, .embed_dim = 16,
                                 .depth = 2, .num_heads = 2});
    check_small("vit", m, [&] { return m(golden("small.vit.in")); });
  }
  SUBCASE("vit without cls token, mean-pooled") {
    VisionTransformer<double> m({.img_size = 12, .patch_size = 4, .in_chans = 2, .num_classes = 3, .embed_dim = 16,
                                 .depth = 1, .num_heads = 4, .class_token = false, .global_pool = "avg"});
    check_small("vit_avg", m, [&] { return m(golden("small.vit_avg.in")); });
  }
  SUBCASE("gpt") {
    GPT<double> m({.vocab_size = 48, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 16});
    check_small("gpt", m, [&] { return m(golden<std::int64_t>("small.gpt.in")); });
  }
}

TEST_CASE("models: full-size ResNet-18, ViT-Tiny and GPT give PyTorch's logits") {
  using namespace models;
  auto run = [](const std::string& name, nn::Module<double>& m, const std::function<D()>& fwd) {
    formula_fill(m);
    m.eval();
    NoGradGuard no_grad;
    check_close(fwd(), golden("full." + name + ".out"), 1e-9, 1e-7, name.c_str());
  };
  auto r18 = resnet18<double>({.num_classes = 7});
  run("resnet18", *r18, [&] { return (*r18)(golden("full.resnet18.in")); });
  auto cifar = resnet18<double>({.num_classes = 10, .in_channels = 1, .stem = "cifar"});
  run("resnet18_cifar_1ch", *cifar, [&] { return (*cifar)(golden("full.resnet18_cifar_1ch.in")); });
  VisionTransformer<double> vit;
  run("vit_tiny", vit, [&] { return vit(golden("full.vit_tiny.in")); });
  GPT<double> gpt;
  run("gpt", gpt, [&] { return gpt(golden<std::int64_t>("full.gpt.in")); });
}

TEST_CASE("models: shapes, options and errors") {
  using namespace models;
  NoGradGuard no_grad;
  auto x = randn<float>({2, 1, 28, 28});
  SUBCASE("ResNet: the benchmark's three-stage ResNet-small, features without a classifier") {
    ResNet<float> small({.layers = {1, 1, 1}, .widths = {32, 64, 128}, .num_classes = 10, .in_channels = 1, .stem = "cifar"});
    CHECK(small(x).shape() == Shape{2, 10});
    CHECK(small.get_submodule("layer2.0.downsample.0").type_name() == "Conv2d");
    CHECK_THROWS_AS(small.get_submodule("layer1.0.downsample"), Error);  // 32 -> 32, stride 1: identity shortcut
    ResNet<float> features({.num_classes = 0, .in_channels = 1, .stem = "cifar"});
    CHECK(features(x).shape() == Shape{2, 512});
    auto zero = resnet18<float>({.zero_init_residual = true});
    CHECK(zero->stages[0]->at<BasicBlock<float>>(0)->bn2->weight.abs().max().item() == 0.0f);
    check_error([&] { small(randn<float>({2, 3, 28, 28})); }, {"ResNet", "[B, 1, H, W]"});
    check_error([] { ResNet<float>({.layers = {1, 1}, .widths = {8}}); }, {"ResNet", "one entry per stage"});
  }
  SUBCASE("ViT: all tokens on request, Tiny by default") {
    VisionTransformer<float> vit({.depth = 2});
    CHECK(vit.forward_features(x).shape() == Shape{2, 50, 192});
    CHECK(vit(x).shape() == Shape{2, 10});
    CHECK(vit_tiny<float>()->num_parameters() == 5'353'738);  // timm's count for this configuration (model_keys.json)
    check_error([&] { vit(randn<float>({2, 1, 32, 32})); }, {"VisionTransformer", "[B, 1, 28, 28]"});
    check_error([] { VisionTransformer<float>({.patch_size = 5}); }, {"multiple of patch_size"});
  }
  SUBCASE("MLP and SmallCNN") {
    CHECK(MLP<float>(784, 10)(x).shape() == Shape{2, 10});
    CHECK(MLP<float>(784, 10, {.activation = "gelu"}).get_submodule("2").type_name() == "GELU");
    CHECK(SmallCNN<float>()(x).shape() == Shape{2, 10});
    check_error([] { MLP<float>(4, 2, {.activation = "swish"}); }, {"unknown activation", "swish"});
  }
}

TEST_CASE("models: the GPT is causal, samples reproducibly and trains") {
  using namespace models;
  manual_seed(3);
  GPT<float> lm({.vocab_size = 32, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 16});
  lm.eval();
  I tokens = tensor<std::int64_t>({1, 5, 7, 3, 9, 2, 4, 8}, {1, 8});
  I changed = tensor<std::int64_t>({1, 5, 7, 3, 9, 2, 4, 30}, {1, 8});
  {
    NoGradGuard no_grad;
    // Changing the last token leaves the logits of every earlier position unchanged.
    auto a = lm(tokens), b = lm(changed);
    check_close(a.narrow(1, 0, 7), b.narrow(1, 0, 7), 0, 0, "earlier positions");
    CHECK(sub(a.select(1, 7), b.select(1, 7)).abs().max().item() > 1e-4f);
  }
  Generator g1(11), g2(11);
  auto s1 = lm.generate(tokens, 20, {.temperature = 0.9, .top_k = 5}, g1);
  auto s2 = lm.generate(tokens, 20, {.temperature = 0.9, .top_k = 5}, g2);
  CHECK(s1.shape() == Shape{1, 28});  // crops its context to block_size as it goes
  CHECK(s1.to_vector() == s2.to_vector());
  CHECK(s1.narrow(1, 0, 8).contiguous().to_vector() == tokens.to_vector());
  // top_k = 1 is greedy decoding.
  auto greedy = lm.generate(tokens, 1, {.top_k = 1});
  {
    NoGradGuard no_grad;
    CHECK(greedy.select(1, 8).item() == argmax(lm(tokens).select(1, 7), -1).item());
  }
  // A few AdamW steps on one sequence lower its loss.
  lm.train();
  optim::AdamW opt(lm.parameters(), {.lr = 1e-2});
  const float before = lm.loss(tokens.narrow(1, 0, 7), tokens.narrow(1, 1, 7)).item();
  for (int i = 0; i < 20; ++i) {
    auto loss = lm.loss(tokens.narrow(1, 0, 7), tokens.narrow(1, 1, 7));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  CHECK(lm.loss(tokens.narrow(1, 0, 7), tokens.narrow(1, 1, 7)).item() < 0.5f * before);
  check_error([&] { lm(tensor<std::int64_t>(std::vector<std::int64_t>(17, 0), {1, 17})); }, {"GPT", "T <= 16"});
}

TEST_CASE("models: the U-Net starts at zero, is conditioned on time and class, and its gradients are right") {
  using namespace models;
  manual_seed(5);
  UNet<float> unet({.in_channels = 1, .out_channels = 1, .base_channels = 16, .num_classes = 10});
  auto x = randn<float>({2, 1, 28, 28});
  auto t = tensor<float>({0.1f, 0.7f}, {2});
  auto y = tensor<std::int64_t>({3, 7}, {2});
  {
    NoGradGuard no_grad;
    CHECK(unet(x, t, y).shape() == Shape{2, 1, 28, 28});
    CHECK(unet(x, t, y).abs().max().item() == 0.0f);  // conv_out starts at zero
    nn::init::normal_(unet.conv_out->weight, 0, 0.1);
    auto base = unet(x, t, y);
    CHECK(sub(base, unet(x, tensor<float>({0.2f, 0.7f}, {2}), y)).select(0, 0).abs().max().item() > 1e-5f);
    CHECK(sub(base, unet(x, t, tensor<std::int64_t>({4, 7}, {2}))).select(0, 0).abs().max().item() > 1e-5f);
    CHECK(sub(base, unet(x, t)).abs().max().item() > 1e-5f);  // no label = the "no class" embedding
    check_error([&] { unet(randn<float>({2, 1, 27, 28}), t); }, {"UNet", "divisible by 4"});
    check_error([&] { unet(x, tensor<float>({0.1f}, {1})); }, {"UNet", "one time per image"});
  }
  // float64 gradcheck of a tiny U-Net with respect to its input and the time input.
  UNet<double> tiny({.in_channels = 1, .out_channels = 2, .base_channels = 4, .channel_mults = {1, 2}, .num_classes = 3,
                     .groups = 2});
  nn::init::normal_(tiny.conv_out->weight, 0, 0.3);
  auto labels = tensor<std::int64_t>({0, 2}, {2});
  check_grad([&](const std::vector<D>& in) { return tiny(in[0], in[1], labels); },
             {leaf({2, 1, 4, 4}, 1), leaf({2}, 2, 0, 1)});
}

// One training step's bits: the output, every parameter's gradient, every buffer.
static std::vector<std::vector<float>> step_bits(nn::Module<float>& net, const Tensor<float>& x,
                                                 const Tensor<std::int64_t>& y) {
  net.zero_grad();
  auto out = net(x);
  cross_entropy(out, y).backward();
  std::vector<std::vector<float>> r{out.detach().to_vector()};
  for (auto& p : net.parameters()) r.push_back(p.grad().to_vector());
  for (auto& [name, b] : net.named_buffers()) r.push_back(b.to_vector());
  return r;
}

// A no-op forward hook on every ReLU module of net (so none fuses with its batch norm); returns
// how many were hooked and counts their calls in `calls`.
static int hook_relus(nn::Module<float>& net, int& calls) {
  int hooks = 0;
  net.template replace_all<nn::ReLU<float>>([&](const std::string&, std::shared_ptr<nn::ReLU<float>> relu) {
    relu->register_forward_hook([&calls](nn::Module<float>&, const Tensor<float>&, const Tensor<float>&) { ++calls; });
    ++hooks;
    return relu;
  });
  return hooks;
}

// ResNet's blocks fuse each batch norm with the ReLU after it (batch_norm_relu) only while
// both modules are plain: the fused model gives the same bits as the same model with a no-op
// hook on its ReLUs (which runs them one by one), forward and backward, with the same running
// statistics; a ReLU swapped for another module by surgery runs as that module.
TEST_CASE("models: ResNet's batch norm + ReLU fusion is exact and gives way to hooks and surgery") {
  using F = float;
  auto make = [] {
    Generator gen(5);
    return std::make_shared<models::ResNet<F>>(
        models::ResNetOptions{.layers = {1, 1}, .widths = {8, 16}, .num_classes = 3, .in_channels = 2, .stem = "cifar"},
        gen);
  };
  Generator g(6);
  const auto x = randn<F>({4, 2, 12, 12}, g);
  const auto y = randint(0, 3, {4}, g);
  auto run = [&](models::ResNet<F>& net) { return step_bits(net, x, y); };
  auto fused = make(), hooked = make();
  int calls = 0;
  CHECK(hook_relus(*hooked, calls) == 3);  // the stem's and each block's (a block calls its one ReLU twice)
  CHECK(run(*fused) == run(*hooked));
  CHECK(calls == 5);
  // The stem's ReLU swapped for a leaky one: the fused path gives way, the output changes.
  auto swapped = make();
  const auto before = run(*swapped)[0];
  swapped->replace_module("relu", std::make_shared<nn::LeakyReLU<F>>(0.5));
  CHECK(run(*swapped)[0] != before);
}

// Sequential asks each child to fuse with the next (Module::forward_fused): a plain
// BatchNorm2d or BatchNorm1d followed by a plain ReLU runs as batch_norm_relu (one autograd node)
// and gives the bits of the two run one by one (a no-op hook on the ReLU keeps them apart),
// forward, gradients and running statistics; in eval, and with a hook, each runs as itself.
TEST_CASE("nn: Sequential fuses a plain batch norm with the ReLU after it, exactly") {
  using F = float;
  auto make = [] {
    Generator gen(7);
    return std::make_shared<models::SmallCNN<F>>(1, 10, models::SmallCNNOptions{.channels = {4, 8}, .hidden = 16, .image_size = 12},
                                                 gen);
  };
  Generator g(8);
  const auto x = randn<F>({6, 1, 12, 12}, g);
  const auto y = randint(0, 10, {6}, g);
  auto fused = make(), hooked = make();
  int calls = 0;
  CHECK(hook_relus(*hooked, calls) == 3);
  CHECK(step_bits(*fused, x, y) == step_bits(*hooked, x, y));
  CHECK(calls == 3);  // every hooked ReLU ran as itself
  // The fused model's first stage ends in one node: batch norm with the ReLU.
  nn::Sequential<F> stage(nn::Conv2d<F>(1, 4, 3, {.padding = 1}), nn::BatchNorm2d<F>(4), nn::ReLU<F>());
  CHECK(stage(x).grad_fn()->name == "NormalizeReluBackward");
  nn::Sequential<F> flat(nn::Linear<F>(5, 3), nn::BatchNorm1d<F>(3), nn::ReLU<F>());
  const auto x2 = randn<F>({7, 5}, g);
  CHECK(flat(x2).grad_fn()->name == "NormalizeReluBackward");
  flat.eval();
  NoGradGuard no_grad;
  const auto eval_out = flat(x2);
  CHECK(eval_out.to_vector() == relu((*flat.at<nn::BatchNorm1d<F>>(1))((*flat.at<nn::Linear<F>>(0))(x2))).to_vector());
}

// "No allocation in the steady state": once warm, a training step takes its memory from the
// caching allocator and the kept scratch buffers, not from fresh pages (which the kernel
// faults in and clears). ResNet-small at batch 16 (Winograd F4 and F2, strided im2col
// convolutions, batch norm) and a ViT; the bound leaves room for malloc's small blocks (0-24
// faults in 4 steps here; the Winograd kernels' buffers, made fresh each call, cost 4480).
// Under AddressSanitizer freed memory waits in a quarantine instead of being reused, and every
// allocation faults in fresh shadow pages: the count measures the sanitizer, so it is skipped.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
TEST_CASE("models: a warm training step takes no fresh pages" * doctest::skip(kAddressSanitizer)) {
  using F = float;
  auto minor_faults = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<long>(u.ru_minflt);
  };
  Generator gen(3);
  auto resnet = std::make_shared<models::ResNet<F>>(
      models::ResNetOptions{.layers = {1, 1, 1}, .widths = {32, 64, 128}, .num_classes = 10, .in_channels = 1, .stem = "cifar"},
      gen);
  auto vit = std::make_shared<models::VisionTransformer<F>>(
      models::ViTOptions{.img_size = 28, .patch_size = 4, .in_chans = 1, .num_classes = 10, .embed_dim = 64,
                         .depth = 2, .num_heads = 2},
      gen);
  const auto x = randn<F>({16, 1, 28, 28}, gen);
  const auto y = randint(0, 10, {16}, gen);
  for (std::shared_ptr<nn::Module<F>> net : {std::shared_ptr<nn::Module<F>>(resnet), std::shared_ptr<nn::Module<F>>(vit)}) {
    optim::AdamW opt(net->parameters(), {.lr = 1e-3});
    auto step = [&] {
      opt.zero_grad();
      cross_entropy((*net)(x), y).backward();
      opt.step();
    };
    for (int i = 0; i < 3; ++i) step();
    const long before = minor_faults();
    for (int i = 0; i < 4; ++i) step();
    CHECK(minor_faults() - before < 40);
  }
}
