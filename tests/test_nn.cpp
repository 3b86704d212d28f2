// nn: the Module tree (names, state_dict, modes, devices, hooks, surgery, printing), the
// layers' shapes and initialisation, and the containers.
#include <cmath>
#include <sstream>

#include "helpers.hpp"

using namespace th;
using F = Tensor<float>;

namespace {

// A custom module with typed handles to its children, as users write them.
struct Block : nn::Module<float> {
  std::shared_ptr<nn::Linear<float>> fc = register_module("fc", std::make_shared<nn::Linear<float>>(4, 4));
  std::shared_ptr<nn::ReLU<float>> act = register_module("act", std::make_shared<nn::ReLU<float>>());
  F forward(const F& x) override { return (*act)((*fc)(x)); }
  std::string type_name() const override { return "Block"; }
};

struct Net : nn::Module<float> {
  std::shared_ptr<Block> block = register_module("block", std::make_shared<Block>());
  std::shared_ptr<nn::Linear<float>> head = register_module("head", std::make_shared<nn::Linear<float>>(4, 2));
  F scale = register_buffer("scale", full<float>({1}, 2.0f));
  F forward(const F& x) override { return mul((*head)((*block)(x)), scale); }
  std::string type_name() const override { return "Net"; }
};

// Adds a learned offset to what the wrapped module computes (the shape of an adapter).
struct Offset : nn::Module<float> {
  explicit Offset(std::shared_ptr<nn::Module<float>> base) : base(register_module("base", std::move(base))) {
    delta = register_parameter("delta", full<float>({1}, 100.0f));
  }
  F forward(const F& x) override { return add((*base)(x), delta); }
  std::shared_ptr<nn::Module<float>> base;
  F delta;
};

std::vector<std::string> keys(const nn::StateDict<float>& sd) {
  std::vector<std::string> k;
  for (auto& [n, t] : sd) k.push_back(n);
  return k;
}

}  // namespace

TEST_CASE("nn: dotted names, parameters, buffers and state_dict keys as in PyTorch") {
  Net net;
  std::vector<std::string> names;
  for (auto& [n, p] : net.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"block.fc.weight", "block.fc.bias", "head.weight", "head.bias"});
  CHECK(net.parameters().size() == 4);
  CHECK(net.num_parameters() == 4 * 4 + 4 + 2 * 4 + 2);
  CHECK(keys(net.state_dict()) ==
        std::vector<std::string>{"block.fc.bias", "block.fc.weight", "head.bias", "head.weight", "scale"});
  // A CNN in a Sequential: PyTorch's keys, BatchNorm's buffers included.
  nn::Sequential cnn(nn::Conv2d(1, 4, 3, {.padding = 1}), nn::BatchNorm2d(4), nn::ReLU(), nn::Flatten(),
                     nn::Linear(4 * 5 * 5, 3));
  CHECK(keys(cnn.state_dict()) ==
        std::vector<std::string>{"0.bias", "0.weight", "1.bias", "1.num_batches_tracked", "1.running_mean",
                                 "1.running_var", "1.weight", "4.bias", "4.weight"});
  CHECK(cnn(randn<float>({2, 1, 5, 5})).shape() == Shape{2, 3});
  std::vector<std::string> mods;
  for (auto& [n, m] : net.named_modules()) mods.push_back(n);
  CHECK(mods == std::vector<std::string>{"", "block", "block.fc", "block.act", "head"});
  CHECK(&net.get_submodule("block.fc") == net.block->fc.get());
  check_error([&] { net.get_submodule("block.conv"); }, {"get_submodule", "block.conv", "conv"});
  check_error([&] { net.register_parameter("head", zeros<float>({1})); }, {"already has", "head"});
}

TEST_CASE("nn: load_state_dict copies values, checks keys and shapes, remaps names") {
  Net a, b;
  auto x = randn<float>({3, 4});
  CHECK(max(abs(sub(a(x), b(x)))).item() > 0);
  b.load_state_dict(a.state_dict());
  CHECK(a(x).to_vector() == b(x).to_vector());
  // Values are copied, not shared.
  {
    NoGradGuard g;
    a.head->weight.fill_(0.0f);
  }
  CHECK(b.head->weight.abs().sum().item() > 0);
  auto sd = a.state_dict();
  sd.erase("scale");
  sd["extra"] = zeros<float>({1});
  check_error([&] { b.load_state_dict(sd); }, {"load_state_dict", "missing scale", "unexpected extra"});
  auto r = b.load_state_dict(sd, false);
  CHECK(r.missing_keys == std::vector<std::string>{"scale"});
  CHECK(r.unexpected_keys == std::vector<std::string>{"extra"});
  sd = a.state_dict();
  sd["head.weight"] = zeros<float>({3, 4});
  check_error([&] { b.load_state_dict(sd); }, {"size mismatch for head.weight", "[3, 4]", "[2, 4]"});
  // A "module." prefix (DataParallel checkpoints) stripped by a remap.
  nn::StateDict<float> prefixed;
  for (auto& [k, v] : a.state_dict()) prefixed["module." + k] = v;
  b.load_state_dict(prefixed, true, [](const std::string& k) { return k.substr(7); });
  CHECK(b.head->weight.abs().sum().item() == 0);
}

TEST_CASE("nn: train/eval switch Dropout and BatchNorm; to() keeps handles; hooks and apply") {
  nn::Sequential net(nn::Linear(8, 8), nn::Dropout(0.5), nn::BatchNorm1d(8));
  auto x = randn<float>({16, 8});
  auto bn = net.at<nn::BatchNorm1d<float>>(2);
  REQUIRE(bn);
  net.train();
  auto y1 = net(x);
  CHECK(bn->num_batches_tracked.item() == 1);
  CHECK(bn->running_mean.abs().sum().item() > 0);
  net.eval();
  CHECK_FALSE(bn->is_training());
  CHECK(net(x).to_vector() == net(x).to_vector());  // deterministic in eval
  CHECK(bn->num_batches_tracked.item() == 1);
  // to(): same tensor objects (optimizers hold them), data moved (here cpu -> cpu, a no-op).
  auto w = net.parameters()[0];
  net.to(Device::cpu());
  CHECK(w.is_same(net.parameters()[0]));
  // set_data: the mechanism behind to() and load_state_dict.
  F handle = w;
  w.set_data(zeros<float>({8, 8}));
  CHECK(handle.abs().sum().item() == 0);
  CHECK(handle.requires_grad());
  // Forward hooks see input and output; apply visits children first.
  Shape seen;
  const int id = net.register_forward_hook([&](nn::Module<float>&, const F&, const F& y) { seen = y.shape(); });
  net(x);
  CHECK(seen == Shape{16, 8});
  net.remove_forward_hook(id);
  std::vector<std::string> order;
  net.apply([&](nn::Module<float>& m) { order.push_back(m.type_name()); });
  CHECK(order == std::vector<std::string>{"Linear", "Dropout", "BatchNorm1d", "Sequential"});
  net.requires_grad_(false);
  CHECK(net.num_parameters(true) == 0);
}

TEST_CASE("nn: surgery replaces by path or by type, and typed handles follow") {
  Net net;
  auto x = randn<float>({5, 4});
  const auto before = net(x);
  // Every ReLU becomes a LeakyReLU: the Block's typed `act` handle runs the new module.
  const int n = net.replace_all<nn::ReLU<float>>(
      [](const std::string&, std::shared_ptr<nn::ReLU<float>>) { return std::make_shared<nn::LeakyReLU<float>>(0.5); });
  CHECK(n == 1);
  CHECK(net.get_submodule("block.act").type_name() == "LeakyReLU");
  auto h = net.block->fc->forward(x);
  check_close(net.block->forward(x), leaky_relu(h, 0.5), 0, 0, "replaced activation");
  // Wrapping: each Linear inside an Offset that calls the Linear it wraps (no loop).
  const int m = net.replace_all<nn::Linear<float>>(
      [](const std::string&, std::shared_ptr<nn::Linear<float>> lin) { return std::make_shared<Offset>(lin); });
  CHECK(m == 2);
  auto fc_out = (*net.block->fc)(x);  // the typed handle reaches the wrapper
  check_close(fc_out, add(net.block->fc->forward(x), 100.0f), 0, 0, "wrapped linear");
  std::vector<std::string> names;
  for (auto& [k, p] : net.named_parameters()) names.push_back(k);
  CHECK(names == std::vector<std::string>{"block.fc.delta", "block.fc.base.weight", "block.fc.base.bias",
                                          "head.delta", "head.base.weight", "head.base.bias"});
  CHECK(net(x).shape() == before.shape());
  // A container that calls its children directly reaches the wrapper once: the wrapper's call
  // into the module it wraps computes that module, not the wrapper again.
  nn::Sequential<float> seq;
  auto lin = std::make_shared<nn::Linear<float>>(4, 3);
  seq.push_back(lin);
  seq.replace_module("0", std::make_shared<Offset>(lin));
  check_close(seq(x), add(lin->forward(x), 100.0f), 0, 0, "wrapped child of a Sequential");
  check_close((*lin)(x), add(lin->forward(x), 100.0f), 0, 0, "the old handle");
  check_error([&] { net.replace_module("block.nothing", std::make_shared<nn::ReLU<float>>()); },
              {"replace_module", "block.nothing"});
}

TEST_CASE("nn: surgery keeps no cycle (a wrapped model is freed) and old handles reach the latest replacement") {
  std::weak_ptr<nn::Linear<float>> fc, head;
  std::weak_ptr<nn::Module<float>> wrapper;
  {
    Net net;
    fc = net.block->fc, head = net.head;
    net.replace_all<nn::Linear<float>>([&](const std::string&, std::shared_ptr<nn::Linear<float>> lin) {
      auto w = std::make_shared<Offset>(lin);
      wrapper = w;
      return w;
    });
    CHECK(!wrapper.expired());
    net(randn<float>({2, 4}));
  }
  // The wrappers hold the Linears and the Linears forward to the wrappers: both freed with the tree.
  CHECK(fc.expired());
  CHECK(head.expired());
  CHECK(wrapper.expired());

  // Replaced twice, the second replacement not holding the first: the typed handle runs the
  // module in the tree, not the dropped one in between (nor itself).
  Net net;
  auto x = randn<float>({3, 4});
  net.replace_module("block.act", std::make_shared<nn::LeakyReLU<float>>(0.5));
  net.replace_module("block.act", std::make_shared<nn::LeakyReLU<float>>(0.25));
  const auto h = net.block->fc->forward(x);
  check_close(net.block->forward(x), leaky_relu(h, 0.25), 0, 0, "the latest replacement");
  // Put back, the original runs itself again.
  auto original = net.block->act;
  CHECK(!original->plain());
  net.replace_module("block.act", original);
  CHECK(original->plain());
  check_close(net.block->forward(x), relu(h), 0, 0, "the original put back");
}

TEST_CASE("nn: printing the tree and a summary with output shapes and parameter counts") {
  nn::Sequential net(nn::Conv2d(1, 8, 3, {.padding = 1}), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                     nn::Linear(8 * 14 * 14, 10));
  std::ostringstream os;
  os << net;
  const std::string tree = os.str();
  CHECK(tree.find("Sequential(\n  (0): Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))") == 0);
  CHECK(tree.find("(4): Linear(in_features=1568, out_features=10, bias=True)") != std::string::npos);
  const std::string s = net.summary(randn<float>({2, 1, 28, 28}));
  CHECK(s.find("[2, 8, 14, 14]") != std::string::npos);
  CHECK(s.find("[2, 10]") != std::string::npos);
  CHECK(s.find("parameters: 15770 (trainable 15770)") != std::string::npos);
}

TEST_CASE("nn: layers' shapes and PyTorch's default initialisation") {
  Generator g(3);
  nn::Linear<double> lin(400, 300, true, g);
  const double bound = 1 / std::sqrt(400.0);
  CHECK(lin.weight.abs().max().item() <= bound);
  CHECK(lin.weight.abs().max().item() > 0.99 * bound);
  CHECK(std::fabs(lin.weight.var().item() - bound * bound / 3) < 0.05 * bound * bound / 3);
  nn::Conv2d<double> conv(8, 16, 3, {.groups = 2}, true, g);
  CHECK(conv.weight.shape() == Shape{16, 4, 3, 3});
  CHECK(conv.weight.abs().max().item() <= 1 / std::sqrt(36.0));
  nn::ConvTranspose2d<double> up(8, 4, 2, {.stride = 2}, true, g);
  CHECK(up.weight.shape() == Shape{8, 4, 2, 2});
  CHECK(up(randn<double>({1, 8, 5, 5})).shape() == Shape{1, 4, 10, 10});
  nn::Conv1d<double> c1(3, 5, 3, {.padding = 1});
  CHECK(c1(randn<double>({2, 3, 7})).shape() == Shape{2, 5, 7});
  nn::Embedding<double> emb(10, 6, 0, g);
  CHECK(emb.weight.select(0, 0).abs().sum().item() == 0);
  CHECK(emb(tensor<std::int64_t>({1, 0, 9}, {3})).shape() == Shape{3, 6});
  nn::LayerNorm<double> ln(6);
  CHECK(ln.weight.to_vector() == std::vector<double>(6, 1.0));
  nn::GroupNorm<double> gn(2, 4);
  CHECK(gn(randn<double>({2, 4, 3, 3})).shape() == Shape{2, 4, 3, 3});
  nn::RMSNorm<double> rms(6);
  CHECK(rms(randn<double>({2, 6})).shape() == Shape{2, 6});
  nn::AdaptiveAvgPool2d<double> gap(1);
  CHECK(gap(randn<double>({2, 3, 5, 5})).shape() == Shape{2, 3, 1, 1});
  // Initialisers.
  auto w = Tensor<double>::empty({64, 32});
  nn::init::orthogonal_(w, 1.0, g);
  check_close(matmul(w.t(), w), eye<double>(32), 1e-12, 0, "orthogonal columns");
  nn::init::trunc_normal_(w, 0, 1, -0.5, 0.5, g);
  CHECK(w.abs().max().item() <= 0.5);
  nn::init::xavier_uniform_(w, 1.0, g);
  CHECK(w.abs().max().item() <= std::sqrt(6.0 / 96));
  CHECK(nn::init::calculate_gain("relu") == doctest::Approx(std::sqrt(2.0)));
}

TEST_CASE("nn: attention blocks — causal masking, PyTorch's keys, shapes") {
  nn::TransformerEncoderLayer<double> block(8, 2, {.dim_feedforward = 16, .dropout = 0.0, .causal = true});
  std::vector<std::string> names;
  for (auto& [k, v] : block.state_dict()) names.push_back(k);
  CHECK(names == std::vector<std::string>{"linear1.bias", "linear1.weight", "linear2.bias", "linear2.weight",
                                          "norm1.bias", "norm1.weight", "norm2.bias", "norm2.weight",
                                          "self_attn.in_proj_bias", "self_attn.in_proj_weight",
                                          "self_attn.out_proj.bias", "self_attn.out_proj.weight"});
  // Causal: changing the last token leaves the outputs at earlier positions unchanged.
  auto x = randn<double>({2, 6, 8});
  auto x2 = x.clone();
  {
    NoGradGuard g;
    x2.select(1, 5).fill_(3.0);
  }
  auto y = block(x), y2 = block(x2);
  check_close(y2.narrow(1, 0, 5), y.narrow(1, 0, 5), 1e-12, 0, "earlier tokens");
  CHECK(max(abs(sub(y2.select(1, 5), y.select(1, 5)))).item() > 1e-3);
  check_error([] { nn::MultiheadAttention<float>(10, 3); }, {"MultiheadAttention", "divisible"});
}

TEST_CASE("Unflatten, Upsample, Softmax and ELU modules: shapes, printing, errors") {
  nn::Unflatten<float> unflatten(1, {2, 3});
  CHECK(unflatten(zeros<float>({4, 6, 5})).shape() == Shape{4, 2, 3, 5});
  CHECK(nn::Unflatten<float>(-1, {3, 2})(zeros<float>({4, 6})).shape() == Shape{4, 3, 2});
  check_error([&] { unflatten(zeros<float>({4, 7})); }, {"Unflatten", "[2, 3]", "[4, 7]"});
  check_error([&] { unflatten(zeros<float>({})); }, {"Unflatten", "0-dim"});  // (the fuzzer's find)
  check_error([&] { nn::Unflatten<float>(0, {-2, -3})(zeros<float>({6})); }, {"Unflatten", "[-2, -3]"});
  check_error([&] { nn::Unflatten<float>(0, {1LL << 40, 1LL << 40})(zeros<float>({6})); }, {"Unflatten"});
  nn::Sequential<float> net(nn::Linear<float>(4, 12), nn::Unflatten<float>(1, {3, 2, 2}),
                            nn::Upsample<float>({.scale_factor = 2.0}), nn::Softmax<float>(1));
  const auto y = net(zeros<float>({5, 4}));
  CHECK(y.shape() == Shape{5, 3, 4, 4});
  check_close(sum(y, {1}), ones<float>({5, 4, 4}), 1e-6, 1e-6, "softmax over dim 1");
  std::ostringstream printed;
  printed << net;
  CHECK(printed.str().find("Unflatten(dim=1, unflattened_size=[3, 2, 2])") != std::string::npos);
  CHECK(printed.str().find("Upsample(scale_factor=2, mode='nearest')") != std::string::npos);
  CHECK(printed.str().find("Softmax(dim=1)") != std::string::npos);
  std::ostringstream elu;
  elu << nn::ELU<float>(0.5);
  CHECK(elu.str() == "ELU(alpha=0.5)");
}
