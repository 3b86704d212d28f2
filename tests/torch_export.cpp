// Writes ligm checkpoints of trained models, with inputs and the logits ligm computes for them,
// for tools/torch_load_check.py: PyTorch loads each checkpoint into its own architecture
// (torchvision, timm, nanoGPT-style) and must reproduce the logits. Run by tools/torch-interop.
//
//   torch_export DIR
#include <cstdio>
#include <string>

#include <ligm/io/checkpoint.hpp>
#include <ligm/ligm.hpp>
#include <ligm/models/models.hpp>

using namespace ligm;

namespace {

// Three AdamW steps on random data (the weights move off their initial values), twenty
// training-mode forwards (BatchNorm's running statistics settle), then eval-mode logits for
// `probe`; model and logits saved under DIR/<name>.*
template <class Net, class X, class Loss>
void export_model(const std::string& dir, const std::string& name, const std::string& config, Net& net, const X& probe,
                  const Loss& loss_fn) {
  optim::AdamW opt(net.parameters(), {.lr = 1e-3});
  for (int step = 0; step < 3; ++step) {
    auto loss = loss_fn();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  NoGradGuard no_grad;
  for (int i = 0; i < 20; ++i) loss_fn();
  net.eval();
  auto logits = net(probe);
  io::Checkpoint<float> c{net.state_dict(), opt.state_dict(), {{"arch", name}, {"config", config}, {"step", "3"}}};
  io::save_checkpoint(c, dir + "/" + name + ".ckpt");
  io::SafetensorsFile f;
  f.tensors["input"] = io::to_raw(probe);
  f.tensors["logits"] = io::to_raw(logits);
  io::save_safetensors(f, dir + "/" + name + ".probe.safetensors");
  std::printf("torch_export: %s (%lld parameters)\n", name.c_str(), static_cast<long long>(net.num_parameters()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: torch_export DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  manual_seed(1);
  auto images = randn<float>({8, 1, 28, 28});
  auto labels = randint(0, 10, {8});
  auto probe = randn<float>({4, 1, 28, 28});

  models::MLP<float> mlp(784, 10, {.hidden = {64, 32}, .batch_norm = true});
  export_model(dir, "mlp", R"({"hidden": [64, 32], "batch_norm": true})", mlp, probe,
               [&] { return cross_entropy(mlp(images), labels); });
  models::SmallCNN<float> cnn;
  export_model(dir, "small_cnn", "{}", cnn, probe, [&] { return cross_entropy(cnn(images), labels); });
  auto resnet = models::resnet18<float>({.num_classes = 10, .in_channels = 1, .stem = "cifar"});
  export_model(dir, "resnet18_cifar", "{}", *resnet, probe, [&] { return cross_entropy((*resnet)(images), labels); });
  models::VisionTransformer<float> vit({.patch_size = 7, .embed_dim = 32, .depth = 2, .num_heads = 2});
  export_model(dir, "vit", R"({"patch_size": 7, "embed_dim": 32, "depth": 2, "num_heads": 2})", vit, probe,
               [&] { return cross_entropy(vit(images), labels); });
  models::GPT<float> gpt({.vocab_size = 256, .block_size = 32, .n_layer = 2, .n_head = 2, .n_embd = 32});
  auto tokens = randint(0, 256, {4, 32});
  export_model(dir, "gpt", R"({"vocab_size": 256, "block_size": 32, "n_layer": 2, "n_head": 2, "n_embd": 32})", gpt,
               randint(0, 256, {2, 20}), [&] { return gpt.loss(tokens.narrow(1, 0, 31), tokens.narrow(1, 1, 31)); });
  return 0;
}
