// A small U-Net with time and class conditioning, for diffusion and consistency models on
// 28x28 (or any size divisible by 2^(levels-1)) images.
//
//   conv_in -> per level: num_res_blocks ResBlocks [, Downsample]  (every output kept as a skip)
//           -> mid: two ResBlocks
//           -> per level, reversed: num_res_blocks + 1 ResBlocks, each on [h, skip] [, Upsample]
//           -> GroupNorm, SiLU, conv_out (zero-initialised: the network starts at 0)
// ResBlock: GroupNorm-SiLU-conv3x3, + Linear(SiLU(emb)) per channel, GroupNorm-SiLU-dropout-
// conv3x3, plus the input (1x1 conv where the width changes). emb = time_embed(sinusoid(t))
// [+ label_embed(y)]; t is a float per image (a timestep, or a noise level such as
// 0.25 log sigma), y an int64 class in [0, num_classes], where num_classes itself means "no
// class" (for classifier-free guidance).
#pragma once
#include <cmath>
#include <vector>

#include "ligm/models/common.hpp"

namespace ligm::models {

// Sinusoidal embedding of t [B] -> [B, dim]: [cos(t w_i), sin(t w_i)] with
// w_i = max_period^(-i / (dim/2)), as in DDPM/ADM.
template <class T>
Tensor<T> timestep_embedding(const Tensor<T>& t, std::int64_t dim, double max_period = 10000.0) {
  check(t.dim() == 1 && dim % 2 == 0, "timestep_embedding", "expects t [B] and an even dim, got ", t.describe(),
        " and dim ", dim);
  const std::int64_t half = dim / 2;
  std::vector<T> freqs(static_cast<std::size_t>(half));
  for (std::int64_t i = 0; i < half; ++i)
    freqs[std::size_t(i)] = T(std::exp(-std::log(max_period) * double(i) / double(half)));
  auto args = mul(t.unsqueeze(1), tensor<T>(freqs, {1, half}).to(t.device()));
  return cat<T>({cos(args), sin(args)}, 1);
}

struct UNetOptions {
  std::int64_t in_channels = 1, out_channels = 1;
  std::int64_t base_channels = 32;
  std::vector<std::int64_t> channel_mults = {1, 2, 2};  // 28 -> 14 -> 7
  std::int64_t num_res_blocks = 1;
  std::int64_t num_classes = 0;  // 0: unconditional
  std::int64_t groups = 8;       // GroupNorm groups
  double dropout = 0.0;
};

template <class T = float>
class ResBlock : public nn::Module<T> {
 public:
  ResBlock(std::int64_t in, std::int64_t out, std::int64_t emb_dim, std::int64_t groups, double dropout, Generator& gen) {
    norm1 = this->register_module("norm1", std::make_shared<nn::GroupNorm<T>>(std::min(groups, in), in));
    conv1 = this->register_module("conv1", std::make_shared<nn::Conv2d<T>>(in, out, 3, Conv2dOptions{.padding = 1}, true, gen));
    emb_proj = this->register_module("emb_proj", std::make_shared<nn::Linear<T>>(emb_dim, out, true, gen));
    norm2 = this->register_module("norm2", std::make_shared<nn::GroupNorm<T>>(std::min(groups, out), out));
    drop = this->register_module("drop", std::make_shared<nn::Dropout<T>>(dropout, gen));
    conv2 = this->register_module("conv2", std::make_shared<nn::Conv2d<T>>(out, out, 3, Conv2dOptions{.padding = 1}, true, gen));
    if (in != out)
      skip = this->register_module("skip", std::make_shared<nn::Conv2d<T>>(in, out, 1, Conv2dOptions{}, true, gen));
  }
  Tensor<T> run(const Tensor<T>& x, const Tensor<T>& emb) {
    auto h = (*conv1)(silu((*norm1)(x)));
    h = add(h, (*emb_proj)(silu(emb)).unsqueeze(2).unsqueeze(3));
    h = (*conv2)((*drop)(silu((*norm2)(h))));
    return add(skip ? (*skip)(x) : x, h);
  }
  Tensor<T> forward(const Tensor<T>&) override { fail("ResBlock", "needs the embedding: call run(x, emb)"); }
  std::string type_name() const override { return "ResBlock"; }
  std::shared_ptr<nn::GroupNorm<T>> norm1, norm2;
  std::shared_ptr<nn::Conv2d<T>> conv1, conv2, skip;
  std::shared_ptr<nn::Linear<T>> emb_proj;
  std::shared_ptr<nn::Dropout<T>> drop;
};

template <class T = float>
class UNet : public nn::Module<T> {
 public:
  explicit UNet(UNetOptions o = {}, Generator& gen = default_generator()) : options(std::move(o)) {
    const char* op = "UNet";
    check(!options.channel_mults.empty() && options.num_res_blocks > 0 && options.base_channels > 0, op,
          "needs channel_mults, num_res_blocks > 0 and base_channels > 0");
    const std::int64_t C = options.base_channels, E = 4 * C;
    emb_dim = E;
    time_embed = this->register_module("time_embed", std::make_shared<nn::Sequential<T>>(
                                                         nn::Linear<T>(C, E, true, gen), nn::SiLU<T>(), nn::Linear<T>(E, E, true, gen)));
    if (options.num_classes > 0)
      label_embed = this->register_module("label_embed", std::make_shared<nn::Embedding<T>>(options.num_classes + 1, E, std::nullopt, gen));
    conv_in = this->register_module("conv_in", std::make_shared<nn::Conv2d<T>>(options.in_channels, C, 3, Conv2dOptions{.padding = 1}, true, gen));

    // Down path: remember the width of every skip it produces.
    down = this->register_module("down", std::make_shared<nn::ModuleList<T>>());
    std::vector<std::int64_t> skips = {C};
    std::int64_t ch = C;
    const std::size_t levels = options.channel_mults.size();
    for (std::size_t l = 0; l < levels; ++l) {
      const std::int64_t out = C * options.channel_mults[l];
      for (std::int64_t b = 0; b < options.num_res_blocks; ++b) {
        down->push_back(make_block(ch, out, gen));
        ch = out;
        skips.push_back(ch);
      }
      if (l + 1 < levels) {
        down->push_back(nn::Conv2d<T>(ch, ch, 3, Conv2dOptions{.stride = 2, .padding = 1}, true, gen));
        skips.push_back(ch);
      }
    }
    mid = this->register_module("mid", std::make_shared<nn::ModuleList<T>>(make_block(ch, ch, gen), make_block(ch, ch, gen)));
    up = this->register_module("up", std::make_shared<nn::ModuleList<T>>());
    for (std::size_t l = levels; l-- > 0;) {
      const std::int64_t out = C * options.channel_mults[l];
      for (std::int64_t b = 0; b <= options.num_res_blocks; ++b) {
        up->push_back(make_block(ch + skips.back(), out, gen));
        skips.pop_back();
        ch = out;
      }
      if (l > 0) up->push_back(nn::Conv2d<T>(ch, ch, 3, Conv2dOptions{.padding = 1}, true, gen));  // after a 2x nearest upsample
    }
    norm_out = this->register_module("norm_out", std::make_shared<nn::GroupNorm<T>>(std::min(options.groups, ch), ch));
    conv_out = this->register_module("conv_out", std::make_shared<nn::Conv2d<T>>(ch, options.out_channels, 3, Conv2dOptions{.padding = 1}, true, gen));
    nn::init::zeros_(conv_out->weight);
    nn::init::zeros_(conv_out->bias);
  }

  // x [B, in, H, W], t [B] (float), y int64 [B] (optional when num_classes > 0: undefined
  // means "no class") -> [B, out, H, W].
  Tensor<T> operator()(const Tensor<T>& x, const Tensor<T>& t, const Tensor<std::int64_t>& y = {}) {
    const char* op = "UNet";
    const std::int64_t down_factor = std::int64_t(1) << (options.channel_mults.size() - 1);
    check(x.dim() == 4 && x.shape()[1] == options.in_channels && x.shape()[2] % down_factor == 0 &&
              x.shape()[3] % down_factor == 0,
          op, "expects [B, ", options.in_channels, ", H, W] with H and W divisible by ", down_factor, ", got ",
          x.describe());
    check(t.dim() == 1 && t.shape()[0] == x.shape()[0], op, "expects one time per image, got t ", t.describe(),
          " for x ", x.shape());
    auto emb = (*time_embed)(timestep_embedding(t, options.base_channels));
    if (label_embed) {
      auto labels = y.defined() ? y : full<std::int64_t>({x.shape()[0]}, options.num_classes).to(x.device());
      check(labels.dim() == 1 && labels.shape()[0] == x.shape()[0], op, "expects one label per image, got y ",
            labels.describe());
      emb = add(emb, (*label_embed)(labels));
    }
    std::vector<Tensor<T>> skips;
    auto h = (*conv_in)(x);
    skips.push_back(h);
    for (std::size_t i = 0; i < down->size(); ++i) {
      h = apply_part((*down)[i], h, emb);
      skips.push_back(h);
    }
    for (std::size_t i = 0; i < mid->size(); ++i) h = apply_part((*mid)[i], h, emb);
    for (std::size_t i = 0; i < up->size(); ++i) {
      if (auto* block = dynamic_cast<ResBlock<T>*>(&(*up)[i])) {
        h = block->run(cat<T>({h, skips.back()}, 1), emb);
        skips.pop_back();
      } else {
        h = (*up)[i](interpolate(h, {.scale_factor = 2.0, .mode = "nearest"}));
      }
    }
    return (*conv_out)(silu((*norm_out)(h)));
  }
  using nn::Module<T>::operator();
  Tensor<T> forward(const Tensor<T>&) override { fail("UNet", "needs a time per image: call it as unet(x, t[, y])"); }
  std::string type_name() const override { return "UNet"; }

  UNetOptions options;
  std::int64_t emb_dim = 0;
  std::shared_ptr<nn::Sequential<T>> time_embed;
  std::shared_ptr<nn::Embedding<T>> label_embed;  // null when unconditional
  std::shared_ptr<nn::Conv2d<T>> conv_in, conv_out;
  std::shared_ptr<nn::ModuleList<T>> down, mid, up;
  std::shared_ptr<nn::GroupNorm<T>> norm_out;

 private:
  std::shared_ptr<ResBlock<T>> make_block(std::int64_t in, std::int64_t out, Generator& gen) {
    return std::make_shared<ResBlock<T>>(in, out, emb_dim, options.groups, options.dropout, gen);
  }
  static Tensor<T> apply_part(nn::Module<T>& part, const Tensor<T>& h, const Tensor<T>& emb) {
    if (auto* block = dynamic_cast<ResBlock<T>*>(&part)) return block->run(h, emb);
    return part(h);  // a stride-2 conv
  }
};

}  // namespace ligm::models
