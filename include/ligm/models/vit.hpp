// Vision Transformer (Dosovitskiy et al. 2021) with timm's parameter names, so a timm
// VisionTransformer state_dict loads as it is: cls_token, pos_embed, patch_embed.proj,
// blocks.0.norm1, blocks.0.attn.qkv, blocks.0.attn.proj, blocks.0.mlp.fc1/fc2, norm, head.
//
// The defaults are the Tiny configuration (width 192, depth 12, 3 heads, MLP ratio 4) on
// 28x28 single-channel images in 4x4 patches (49 patches + the cls token).
// forward_features returns every token ([B, 1 + patches, D], after the final norm) for methods
// that need them (DINO, MAE, token-level heads); forward pools (the cls token, or the mean of
// the patch tokens) and applies the head. As in timm, mean pooling moves the final LayerNorm
// after the pooling (fc_norm) and leaves norm an Identity.
#pragma once
#include <cmath>

#include "ligm/models/common.hpp"

namespace ligm::models {

struct ViTOptions {
  std::int64_t img_size = 28, patch_size = 4, in_chans = 1, num_classes = 10;
  std::int64_t embed_dim = 192, depth = 12, num_heads = 3;
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
  bool class_token = true;
  std::string global_pool = "token";  // "token" (the cls token) or "avg" (mean of patch tokens)
  double drop_rate = 0.0, attn_drop_rate = 0.0;
  double norm_eps = 1e-6;  // timm's LayerNorm eps
};

template <class T = float>
class PatchEmbed : public nn::Module<T> {
 public:
  PatchEmbed(std::int64_t patch_size, std::int64_t in_chans, std::int64_t embed_dim, Generator& gen) {
    proj = this->register_module("proj", std::make_shared<nn::Conv2d<T>>(in_chans, embed_dim, patch_size,
                                                                        Conv2dOptions{.stride = patch_size}, true, gen));
  }
  // [B, C, H, W] -> [B, patches, D], patches in row-major order.
  Tensor<T> forward(const Tensor<T>& x) override { return (*proj)(x).flatten(2).transpose(1, 2); }
  std::string type_name() const override { return "PatchEmbed"; }
  std::shared_ptr<nn::Conv2d<T>> proj;
};

// timm's Attention: packed qkv, heads, output projection.
template <class T = float>
class Attention : public nn::Module<T> {
 public:
  Attention(std::int64_t dim, std::int64_t num_heads, bool qkv_bias, double attn_drop, Generator& gen)
      : num_heads(num_heads), attn_drop(attn_drop), gen_(&gen) {
    check(num_heads > 0 && dim % num_heads == 0, "Attention", "dim ", dim, " must be divisible by num_heads ", num_heads);
    qkv = this->register_module("qkv", std::make_shared<nn::Linear<T>>(dim, 3 * dim, qkv_bias, gen));
    proj = this->register_module("proj", std::make_shared<nn::Linear<T>>(dim, dim, true, gen));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    return packed_self_attention(*qkv, *proj, x, num_heads, false, this->is_training() ? attn_drop : 0.0, gen_);
  }
  std::string type_name() const override { return "Attention"; }
  std::int64_t num_heads;
  double attn_drop;
  std::shared_ptr<nn::Linear<T>> qkv, proj;

 private:
  Generator* gen_;
};

// timm's Mlp: fc1, GELU, dropout, fc2, dropout.
template <class T = float>
class Mlp : public nn::Module<T> {
 public:
  Mlp(std::int64_t dim, std::int64_t hidden, double drop, Generator& gen) {
    fc1 = this->register_module("fc1", std::make_shared<nn::Linear<T>>(dim, hidden, true, gen));
    act = this->register_module("act", std::make_shared<nn::GELU<T>>());
    drop1 = this->register_module("drop1", std::make_shared<nn::Dropout<T>>(drop, gen));
    fc2 = this->register_module("fc2", std::make_shared<nn::Linear<T>>(hidden, dim, true, gen));
    drop2 = this->register_module("drop2", std::make_shared<nn::Dropout<T>>(drop, gen));
  }
  Tensor<T> forward(const Tensor<T>& x) override { return (*drop2)((*fc2)((*drop1)((*act)((*fc1)(x))))); }
  std::string type_name() const override { return "Mlp"; }
  std::shared_ptr<nn::Linear<T>> fc1, fc2;
  std::shared_ptr<nn::GELU<T>> act;
  std::shared_ptr<nn::Dropout<T>> drop1, drop2;
};

// Pre-norm block: x + attn(norm1(x)), then + mlp(norm2(x)).
template <class T = float>
class Block : public nn::Module<T> {
 public:
  Block(std::int64_t dim, std::int64_t num_heads, double mlp_ratio, bool qkv_bias, double drop, double attn_drop,
        double norm_eps, Generator& gen) {
    norm1 = this->register_module("norm1", std::make_shared<nn::LayerNorm<T>>(Shape{dim}, norm_eps));
    attn = this->register_module("attn", std::make_shared<Attention<T>>(dim, num_heads, qkv_bias, attn_drop, gen));
    norm2 = this->register_module("norm2", std::make_shared<nn::LayerNorm<T>>(Shape{dim}, norm_eps));
    mlp = this->register_module("mlp", std::make_shared<Mlp<T>>(dim, std::int64_t(double(dim) * mlp_ratio), drop, gen));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    auto h = add(x, (*attn)((*norm1)(x)));
    return add(h, (*mlp)((*norm2)(h)));
  }
  std::string type_name() const override { return "Block"; }
  std::shared_ptr<nn::LayerNorm<T>> norm1, norm2;
  std::shared_ptr<Attention<T>> attn;
  std::shared_ptr<Mlp<T>> mlp;
};

template <class T = float>
class VisionTransformer : public nn::Module<T> {
 public:
  explicit VisionTransformer(ViTOptions o = {}, Generator& gen = default_generator()) : options(std::move(o)) {
    const char* op = "VisionTransformer";
    check(options.patch_size > 0 && options.img_size % options.patch_size == 0, op, "img_size ", options.img_size,
          " must be a multiple of patch_size ", options.patch_size);
    check(options.global_pool == "token" || options.global_pool == "avg", op,
          "global_pool must be \"token\" or \"avg\", got \"", options.global_pool, "\"");
    check(options.global_pool != "token" || options.class_token, op, "global_pool \"token\" needs class_token");
    const std::int64_t D = options.embed_dim, grid = options.img_size / options.patch_size;
    num_patches = grid * grid;
    num_prefix_tokens = options.class_token ? 1 : 0;
    if (options.class_token) cls_token = this->register_parameter("cls_token", zeros<T>({1, 1, D}));
    pos_embed = this->register_parameter("pos_embed", zeros<T>({1, num_patches + num_prefix_tokens, D}));
    patch_embed = this->register_module("patch_embed", std::make_shared<PatchEmbed<T>>(options.patch_size, options.in_chans, D, gen));
    pos_drop = this->register_module("pos_drop", std::make_shared<nn::Dropout<T>>(options.drop_rate, gen));
    blocks = this->register_module("blocks", std::make_shared<nn::Sequential<T>>());
    for (std::int64_t i = 0; i < options.depth; ++i)
      blocks->push_back(std::make_shared<Block<T>>(D, options.num_heads, options.mlp_ratio, options.qkv_bias,
                                                   options.drop_rate, options.attn_drop_rate, options.norm_eps, gen));
    const bool avg = options.global_pool == "avg";
    auto layer_norm = [&] { return std::make_shared<nn::LayerNorm<T>>(Shape{D}, options.norm_eps); };
    norm = this->register_module("norm", avg ? std::shared_ptr<nn::Module<T>>(std::make_shared<nn::Identity<T>>())
                                             : std::shared_ptr<nn::Module<T>>(layer_norm()));
    if (avg) fc_norm = this->register_module("fc_norm", layer_norm());
    if (options.num_classes > 0)
      head = this->register_module("head", std::make_shared<nn::Linear<T>>(D, options.num_classes, true, gen));
    init_weights(gen);
  }

  // Patch embedding, cls token, positions, blocks and norm: [B, prefix + patches, D].
  Tensor<T> forward_features(const Tensor<T>& x) {
    check(x.dim() == 4 && x.shape()[1] == options.in_chans && x.shape()[2] == options.img_size &&
              x.shape()[3] == options.img_size,
          "VisionTransformer", "expects [B, ", options.in_chans, ", ", options.img_size, ", ", options.img_size,
          "] images, got ", x.describe());
    auto tokens = (*patch_embed)(x);
    if (cls_token.defined()) tokens = cat<T>({cls_token.expand({x.shape()[0], 1, options.embed_dim}), tokens}, 1);
    tokens = (*pos_drop)(add(tokens, pos_embed));
    return (*norm)((*blocks)(tokens));
  }
  // The pooled representation [B, D] of forward_features' tokens.
  Tensor<T> pool(const Tensor<T>& tokens) {
    if (options.global_pool == "token") return tokens.select(1, 0);
    return (*fc_norm)(tokens.narrow(1, num_prefix_tokens, num_patches).mean({1}));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    auto pooled = pool(forward_features(x));
    return head ? (*head)(pooled) : pooled;
  }
  std::string type_name() const override { return "VisionTransformer"; }

  ViTOptions options;
  std::int64_t num_patches = 0, num_prefix_tokens = 0;
  Tensor<T> cls_token, pos_embed;
  std::shared_ptr<PatchEmbed<T>> patch_embed;
  std::shared_ptr<nn::Dropout<T>> pos_drop;
  std::shared_ptr<nn::Sequential<T>> blocks;
  std::shared_ptr<nn::Module<T>> norm;          // LayerNorm, or Identity with mean pooling
  std::shared_ptr<nn::LayerNorm<T>> fc_norm;    // after mean pooling only
  std::shared_ptr<nn::Linear<T>> head;  // null when num_classes == 0

 private:
  // timm's default: positions trunc_normal(0.02), cls token normal(1e-6), every Linear
  // trunc_normal(0.02) with zero bias; the patch conv keeps PyTorch's default.
  void init_weights(Generator& gen) {
    nn::init::trunc_normal_(pos_embed, 0.0, 0.02, -2.0, 2.0, gen);
    if (cls_token.defined()) nn::init::normal_(cls_token, 0.0, 1e-6, gen);
    for (auto& [name, m] : this->named_modules())
      if (auto* l = dynamic_cast<nn::Linear<T>*>(m)) {
        nn::init::trunc_normal_(l->weight, 0.0, 0.02, -2.0, 2.0, gen);
        if (l->bias.defined()) nn::init::zeros_(l->bias);
      }
  }
};

// ViT-Tiny/4 for 28x28 images (the default options); others by ViTOptions.
template <class T = float>
std::shared_ptr<VisionTransformer<T>> vit_tiny(ViTOptions o = {}, Generator& gen = default_generator()) {
  o.embed_dim = 192;
  o.num_heads = 3;
  return std::make_shared<VisionTransformer<T>>(std::move(o), gen);
}

}  // namespace ligm::models
