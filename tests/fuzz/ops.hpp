// The "ops" fuzz target: the bytes are a little program of op calls on small tensors with
// shapes, dims, strides, paddings and indices drawn from the input (often wrong, sometimes at
// the ends of int64), each followed by a backward pass when it worked. The contract is the
// readers' (targets.hpp): every call works or throws ligm::Error; no crash, no undefined
// behaviour, no other exception. Values come from a seeded generator, not from the bytes: the
// target is after shape and argument handling, not arithmetic.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

#include "contract.hpp"
#include "ligm/ligm.hpp"

namespace ligm::fuzz {

// Reads the input as a stream of choices; past its end every choice is 0.
class Choices {
 public:
  Choices(const unsigned char* data, std::size_t size) : p_(data), end_(data + size) {}
  bool done() const { return p_ >= end_; }
  unsigned byte() { return p_ < end_ ? *p_++ : 0u; }
  // An integer argument: mostly small (-3 .. 8), now and then an extreme that overflows any
  // arithmetic a check forgets.
  std::int64_t arg() {
    const unsigned b = byte();
    if (b < 240) return std::int64_t(b % 12) - 3;
    constexpr std::int64_t big = std::numeric_limits<std::int64_t>::max();
    // (Extremes that overflow, or sizes that are merely large: those fail to allocate, quickly.)
    const std::int64_t ends[] = {big, -big - 1, big / 2, -(big / 2), std::int64_t(1) << 62, -(std::int64_t(1) << 62),
                                 std::int64_t(1) << 31, -(std::int64_t(1) << 31), 100, -100, 255, 256, 17, 31, 64, 0};
    return ends[b - 240];
  }
  std::int64_t size() { return std::int64_t(byte() % 6); }  // a dim of 0-5
  Shape shape(std::size_t max_rank = 4) {
    Shape s(byte() % (max_rank + 1));
    for (auto& d : s) d = size();
    return s;
  }
  std::vector<std::int64_t> args(std::size_t max_count = 4) {
    std::vector<std::int64_t> v(byte() % (max_count + 1));
    for (auto& x : v) x = arg();
    return v;
  }

 private:
  const unsigned char* p_;
  const unsigned char* end_;
};

inline void ops(const std::vector<unsigned char>& bytes) {
  using T = float;
  using I = std::int64_t;
  Choices in(bytes.data(), bytes.size());
  Generator gen(1);
  auto floats = [&](const Shape& s) { return randn<T>(s, gen).requires_grad_(); };
  auto indices = [&](const Shape& s) {  // in [-3, 8): some out of range for any small dim
    return randint(-3, 8, s, gen);
  };
  auto pair = [&] { return Pair2(in.arg(), in.arg()); };
  auto backward = [](const Tensor<T>& y) {
    if (y.defined() && y.requires_grad() && y.numel() > 0) y.sum().backward();
  };
  for (int step = 0; step < 8 && !in.done(); ++step) {
    const unsigned op = in.byte() % 50;
    auto x = floats(in.shape());
    expect_ok_or_error([&] {
      switch (op) {
        case 0: backward(x.reshape(in.shape())); break;
        case 1: backward(x.view(in.shape())); break;
        case 2: backward(x.permute(in.args())); break;
        case 3: backward(x.transpose(in.arg(), in.arg())); break;
        case 4: backward(x.expand(in.shape(5))); break;
        case 5: backward(x.narrow(in.arg(), in.arg(), in.arg())); break;
        case 6: backward(x.slice(in.arg(), in.arg(), in.arg(), in.arg())); break;
        case 7: backward(x.select(in.arg(), in.arg())); break;
        case 8: backward(x.flatten(in.arg(), in.arg())); break;
        case 9: backward(x.squeeze(in.arg()).unsqueeze(in.arg())); break;
        case 10: backward(cat(std::vector<Tensor<T>>{x, floats(in.shape())}, in.arg())); break;
        case 11: backward(stack(std::vector<Tensor<T>>{x, floats(in.shape())}, in.arg())); break;
        case 12: backward(flip(x, in.args())); break;
        case 13: backward(pad(x, in.args(6), T(0.5))); break;
        case 14: backward(roll(x, in.args(2), in.args(2))); break;
        case 15: backward(index_select(x, in.arg(), indices(in.shape(1)))); break;
        case 16: backward(gather(x, in.arg(), indices(in.shape()))); break;
        case 17: backward(scatter_add(x, in.arg(), indices(in.shape()), floats(in.shape()))); break;
        case 18: backward(index_add(x, in.arg(), indices(in.shape(1)), floats(in.shape()))); break;
        case 19: backward(sum(x, in.args(), in.byte() & 1)); break;
        case 20: backward(var(x, in.args(), in.byte() & 1, in.byte() & 1)); break;
        case 21: backward(logsumexp(x, in.args(), in.byte() & 1)); break;
        case 22: backward(softmax(x, in.arg())); break;
        case 23: backward(log_softmax(x, in.arg())); break;
        case 24: backward(matmul(x, floats(in.shape()))); break;
        case 25: backward(linear(x, floats(in.shape(2)), floats(in.shape(1)))); break;
        case 26: {
          Conv2dOptions o{pair(), pair(), pair(), in.arg()};
          backward(conv2d(x, floats(in.shape()), floats(in.shape(1)), o));
          break;
        }
        case 27: {
          ConvTranspose2dOptions o{pair(), pair(), pair(), pair(), in.arg()};
          backward(conv_transpose2d(x, floats(in.shape()), {}, o));
          break;
        }
        case 28: {
          MaxPool2dOptions o{pair(), pair(), pair(), pair(), bool(in.byte() & 1)};
          backward(max_pool2d(x, o));
          break;
        }
        case 29: {
          AvgPool2dOptions o{pair(), pair(), pair(), bool(in.byte() & 1), bool(in.byte() & 1), in.arg()};
          backward(avg_pool2d(x, o));
          break;
        }
        case 30: backward(adaptive_avg_pool2d(x, pair())); break;
        case 31: {
          InterpolateOptions o;
          if (in.byte() & 1) o.size = pair();
          else o.scale_factor = double(in.arg()) / 2;
          o.mode = in.byte() & 1 ? "bilinear" : "nearest";
          o.align_corners = in.byte() & 1;
          backward(interpolate(x, o));
          break;
        }
        case 32: backward(layer_norm(x, in.shape(2), floats(in.shape(2)), floats(in.shape(2)))); break;
        case 33: backward(group_norm(x, in.arg(), floats(in.shape(1)), floats(in.shape(1)))); break;
        case 34: {
          auto mean = zeros<T>(in.shape(1)), var = ones<T>(in.shape(1));
          backward(batch_norm(x, mean, var, floats(in.shape(1)), floats(in.shape(1)), in.byte() & 1));
          break;
        }
        case 35: {
          CrossEntropyOptions<T> o;
          o.ignore_index = in.arg();
          o.label_smoothing = double(in.byte() % 4) / 4;
          o.reduction = in.byte() & 1 ? "sum" : "mean";
          backward(cross_entropy(x, indices(in.shape()), o));
          break;
        }
        case 36: {
          NllOptions<T> o;
          o.ignore_index = in.arg();
          if (in.byte() & 1) o.weight = floats(in.shape(1)).detach();
          backward(nll_loss(x, indices(in.shape()), o));
          break;
        }
        case 37: backward(embedding(indices(in.shape()), x)); break;
        case 38: {
          AttentionOptions<T> o;
          o.is_causal = in.byte() & 1;
          backward(scaled_dot_product_attention(x, floats(in.shape()), floats(in.shape()), o));
          break;
        }
        case 39: backward(ctu(x, floats(in.shape(1)), floats(in.shape(1)), in.arg())); break;
        case 40: backward(nan_to_num(x, double(in.arg()), double(in.arg()), double(in.arg()))); break;
        case 41: {
          const auto nans = isnan(div(x, floats(in.shape())));
          (void)(in.byte() & 1 ? any(nans, in.args(), in.byte() & 1) : all(logical_or(nans, isinf(x)), in.args()));
          break;
        }
        case 42: backward(binary_cross_entropy(sigmoid(x), floats(in.shape()).detach(), floats(in.shape()))); break;
        case 43:
          backward(multi_margin_loss(x, indices(in.shape()), int(in.arg()), double(in.arg()), floats(in.shape(1))));
          break;
        case 44: backward(hinge_embedding_loss(x, floats(in.shape()), double(in.arg()))); break;
        case 45: backward(margin_ranking_loss(x, floats(in.shape()), floats(in.shape()), double(in.arg()))); break;
        case 46:
          backward(triplet_margin_loss(x, floats(in.shape()), floats(in.shape()), double(in.arg()), double(in.arg()),
                                       1e-6, in.byte() & 1));
          break;
        case 47: backward(cosine_embedding_loss(x, floats(in.shape()), floats(in.shape()), double(in.arg()))); break;
        default: {
          nn::Unflatten<T> unflatten(in.arg(), in.shape());
          backward(unflatten(x));
          break;
        }
      }
    });
  }
}

}  // namespace ligm::fuzz
