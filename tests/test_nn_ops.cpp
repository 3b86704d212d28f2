// NN ops: softmax, convolution, pooling, interpolation, norms, dropout, embedding, attention,
// sort/topk, one_hot. Values where they are easy to state, float64 gradchecks for all.
#include <ligm/backend/cpu/winograd_tile.hpp>

#include "helpers.hpp"

using namespace th;
using T = Tensor<double>;
using In = std::vector<T>;

TEST_CASE("softmax and log_softmax") {
  auto x = tensor<double>({1, 2, 3, 1000, 1000, 1000}, {2, 3});
  auto s = softmax(x, 1).to_vector();
  CHECK(s[0] + s[1] + s[2] == doctest::Approx(1.0));
  CHECK(s[3] == doctest::Approx(1.0 / 3));  // no overflow
  check_close(log_softmax(x, 1).select(0, 1), {-std::log(3.0), -std::log(3.0), -std::log(3.0)});
  check_grad([](const In& in) { return softmax(in[0], 1); }, {leaf({3, 5, 2}, 1)});
  check_grad([](const In& in) { return log_softmax(in[0], -1); }, {leaf({3, 5}, 2)});
  check_grad([](const In& in) { return softmax(in[0], 0); }, {leaf({4}, 3)});
}

TEST_CASE("conv2d: a known value and gradchecks over stride, padding, dilation, groups") {
  // 3x3 box filter over a 3x3 image of ones with padding 1: corner sees 4, edge 6, centre 9.
  auto y = conv2d(ones<double>({1, 1, 3, 3}), ones<double>({1, 1, 3, 3}), {}, {.padding = 1});
  CHECK(y.to_vector() == std::vector<double>{4, 6, 4, 6, 9, 6, 4, 6, 4});
  check_grad([](const In& in) { return conv2d(in[0], in[1], in[2]); },
             {leaf({2, 3, 5, 4}, 1), leaf({4, 3, 3, 3}, 2), leaf({4}, 3)});
  check_grad([](const In& in) { return conv2d(in[0], in[1], {}, {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}}); },
             {leaf({2, 3, 7, 6}, 4), leaf({4, 3, 3, 2}, 5)});
  check_grad([](const In& in) { return conv2d(in[0], in[1], in[2], {.padding = 1, .groups = 2}); },
             {leaf({2, 4, 4, 4}, 6), leaf({6, 2, 3, 3}, 7), leaf({6}, 8)});
  // Stride 1 with the output as wide as the input: im2col copies each tap's plane at once;
  // dilated, rows cut off at the top and bottom (kernel 3x1, no vertical padding), and a
  // padding wider than the kernel (whole taps in the zeros).
  check_grad([](const In& in) { return conv2d(in[0], in[1], {}, {.padding = {2, 2}, .dilation = {2, 2}}); },
             {leaf({2, 2, 5, 6}, 12), leaf({3, 2, 3, 3}, 13)});
  check_grad([](const In& in) { return conv2d(in[0], in[1], in[2]); },
             {leaf({2, 2, 6, 5}, 14), leaf({3, 2, 3, 1}, 15), leaf({3}, 16)});
  check_grad([](const In& in) { return conv2d(in[0], in[1], {}, {.padding = {3, 1}}); },
             {leaf({1, 2, 3, 4}, 17), leaf({2, 2, 2, 3}, 18)});
  check_grad([](const In& in) { return conv1d(in[0], in[1], in[2], {.stride = 2, .padding = 1}); },
             {leaf({2, 3, 9}, 9), leaf({4, 3, 3}, 10), leaf({4}, 11)});
  check_grad([](const In& in) { return conv_transpose2d(in[0], in[1], in[2], {.stride = 2, .padding = 1, .output_padding = 1}); },
             {leaf({2, 3, 3, 3}, 12), leaf({3, 2, 3, 3}, 13), leaf({2}, 14)});
  check_grad([](const In& in) { return conv_transpose2d(in[0], in[1], {}, {.dilation = 2, .groups = 2}); },
             {leaf({1, 4, 3, 3}, 15), leaf({4, 3, 2, 3}, 16)});
}

// A direct convolution (any stride, padding, dilation; one group): the oracle for the Winograd
// path and for im2col's strided path.
static std::vector<double> direct_conv(const T& x, const T& w, std::array<std::int64_t, 2> s,
                                       std::array<std::int64_t, 2> p, std::array<std::int64_t, 2> d) {
  const auto xs = x.shape(), ws = w.shape();
  const std::int64_t n = xs[0], ci = xs[1], h = xs[2], wd = xs[3], co = ws[0], kh = ws[2], kw = ws[3];
  const std::int64_t ho = (h + 2 * p[0] - d[0] * (kh - 1) - 1) / s[0] + 1, wo = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) / s[1] + 1;
  const auto xv = x.to_vector(), wv = w.to_vector();
  std::vector<double> y(static_cast<std::size_t>(n * co * ho * wo), 0.0);
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t o = 0; o < co; ++o)
      for (std::int64_t r = 0; r < ho; ++r)
        for (std::int64_t c = 0; c < wo; ++c) {
          double acc = 0;
          for (std::int64_t i = 0; i < ci; ++i)
            for (std::int64_t kr = 0; kr < kh; ++kr)
              for (std::int64_t kc = 0; kc < kw; ++kc) {
                const std::int64_t ir = r * s[0] - p[0] + kr * d[0], ic = c * s[1] - p[1] + kc * d[1];
                if (ir >= 0 && ir < h && ic >= 0 && ic < wd)
                  acc += xv[((b * ci + i) * h + ir) * wd + ic] * wv[((o * ci + i) * kh + kr) * kw + kc];
              }
          y[((b * co + o) * ho + r) * wo + c] = acc;
        }
  return y;
}

// The 3x3 stride-1 case (the Winograd path).
static std::vector<double> direct_conv3x3(const T& x, const T& w, std::int64_t pad) {
  return direct_conv(x, w, {1, 1}, {pad, pad}, {1, 1});
}

TEST_CASE("conv2d: 3x3 stride-1 kernels (the CPU's Winograd path) against a direct loop, and gradchecks") {
  // Odd and even sizes, paddings 0, 1, 2, one image or several chunks of images (a chunk holds
  // about 128 tile slots: 12x12 outputs are 42 slots, so 4 images a chunk).
  struct Case { Shape x; std::int64_t c_out, pad; };
  for (const Case& c : {Case{{2, 4, 5, 7}, 5, 1}, Case{{3, 5, 6, 6}, 4, 0}, Case{{1, 4, 4, 9}, 6, 2},
                        Case{{9, 4, 12, 12}, 4, 1}, Case{{2, 6, 3, 3}, 4, 0}, Case{{13, 4, 3, 4}, 4, 1}}) {
    INFO(shape_str(c.x));
    const auto x = leaf(c.x, 21), w = leaf({c.c_out, c.x[1], 3, 3}, 22);
    check_close(conv2d(x, w, {}, {.padding = c.pad}), direct_conv3x3(x, w, c.pad), 1e-12, 1e-12);
  }
  check_grad([](const In& in) { return conv2d(in[0], in[1], in[2], {.padding = 1}); },
             {leaf({5, 4, 12, 12}, 23), leaf({4, 4, 3, 3}, 24), leaf({4}, 25)});
  check_grad([](const In& in) { return conv2d(in[0], in[1], {}, {.padding = 2}); },
             {leaf({2, 4, 3, 5}, 26), leaf({5, 4, 3, 3}, 27)});
  check_grad([](const In& in) { return conv2d(in[0], in[1]); }, {leaf({2, 4, 7, 6}, 28), leaf({4, 4, 3, 3}, 29)});
  // Float32 agrees with float64 to float32's precision at a training size.
  const auto x = leaf({4, 32, 28, 28}, 30), w = leaf({32, 32, 3, 3}, 31) * 0.1;
  const auto y64 = conv2d(x, w, {}, {.padding = 1});
  const auto y32 = conv2d(x.to<float>(), w.to<float>(), {}, {.padding = 1});
  check_close(y32.to<double>(), y64, 1e-4, 1e-4);
}

TEST_CASE("conv2d: strided kernels through phase planes (im2col's strided path) against a direct loop, and gradchecks") {
  // The phase path takes strides > 1 whose output rows are as wide as the phase rows, when the
  // taps outnumber the phases: 3x3 stride 2 padding 1 on even and odd sizes, 5x5 stride 2, stride
  // 3, stride (2, 1), dilation 2, a kernel taller than the image; 1x1 stride 2 and a wider output
  // take the gather path, checked the same way.
  struct Case { Shape x, w; std::array<std::int64_t, 2> s, p, d; };
  const Case cases[] = {{{2, 3, 8, 8}, {4, 3, 3, 3}, {2, 2}, {1, 1}, {1, 1}},  {{2, 3, 7, 9}, {4, 3, 3, 3}, {2, 2}, {1, 1}, {1, 1}},
                        {{1, 2, 9, 10}, {3, 2, 5, 5}, {2, 2}, {2, 2}, {1, 1}}, {{2, 2, 9, 9}, {3, 2, 3, 3}, {3, 3}, {1, 1}, {1, 1}},
                        {{2, 2, 6, 7}, {3, 2, 3, 3}, {2, 1}, {1, 1}, {1, 1}},  {{1, 2, 9, 8}, {2, 2, 3, 3}, {2, 2}, {2, 2}, {2, 2}},
                        {{1, 2, 2, 6}, {2, 2, 5, 3}, {2, 2}, {2, 1}, {1, 1}},  {{2, 3, 8, 8}, {4, 3, 1, 1}, {2, 2}, {0, 0}, {1, 1}},
                        {{2, 3, 8, 8}, {4, 3, 3, 3}, {2, 2}, {2, 2}, {1, 1}}};
  for (const Case& c : cases) {
    INFO(shape_str(c.x) << " " << shape_str(c.w) << " stride " << c.s[0] << "," << c.s[1] << " padding " << c.p[0] << ","
                        << c.p[1] << " dilation " << c.d[0] << "," << c.d[1]);
    const auto x = leaf(c.x, 41), w = leaf(c.w, 42);
    const Conv2dOptions o{.stride = {c.s[0], c.s[1]}, .padding = {c.p[0], c.p[1]}, .dilation = {c.d[0], c.d[1]}};
    check_close(conv2d(x, w, {}, o), direct_conv(x, w, c.s, c.p, c.d), 1e-12, 1e-12);
    check_grad([&](const In& in) { return conv2d(in[0], in[1], {}, o); }, {x, w});
  }
  // Float32 takes other code on AVX-512 (each tap's plane moved in masked vectors of 16, by
  // per-tap masks of the valid outputs): its output and both gradients against float64's, over
  // several images side by side (the tail vector of one image's plane must not spill into the
  // next image's columns), for the phase path and for stride-1 "same" kernels that Winograd
  // does not take (5x5, dilated 3x3, 3x1); and 1x1 stride-2 kernels (a vector gather of every
  // second column).
  struct Case32 { Shape x, w; Conv2dOptions o; };
  const Case32 cases32[] = {{{5, 3, 14, 14}, {6, 3, 3, 3}, {.stride = 2, .padding = 1}},
                            {{4, 3, 9, 11}, {5, 3, 3, 3}, {.stride = 2, .padding = 1}},
                            {{3, 2, 9, 10}, {3, 2, 5, 5}, {.stride = 2, .padding = 2}},
                            {{3, 2, 8, 9}, {4, 2, 3, 3}, {.stride = {2, 1}, .padding = 1}},
                            {{3, 3, 13, 6}, {4, 3, 5, 5}, {.padding = 2}},
                            {{3, 2, 11, 7}, {3, 2, 3, 3}, {.padding = 2, .dilation = 2}},
                            {{3, 2, 6, 5}, {3, 2, 3, 1}, {}},
                            {{3, 4, 14, 14}, {5, 4, 1, 1}, {.stride = 2}},  // the gather path's every_second
                            {{2, 3, 9, 37}, {4, 3, 1, 1}, {.stride = 2}}};
  for (const Case32& c : cases32) {
    INFO("float32 " << shape_str(c.x) << " " << shape_str(c.w));
    const auto xd = leaf(c.x, 43), wd = leaf(c.w, 44);
    auto xf = xd.detach().to<float>().requires_grad_(), wf = wd.detach().to<float>().requires_grad_();
    const auto yd = conv2d(xd, wd, {}, c.o);
    const auto yf = conv2d(xf, wf, {}, c.o);
    check_close(yf.to<double>(), yd, 1e-5, 1e-5, "output");
    const auto gy = leaf(yd.shape(), 45).detach();
    (yd * gy).sum().backward();
    (yf * gy.to<float>()).sum().backward();
    check_close(xf.grad().to<double>(), xd.grad(), 1e-5, 1e-5, "input gradient");
    check_close(wf.grad().to<double>(), wd.grad(), 1e-4, 1e-5, "weight gradient");
  }
}

TEST_CASE("pooling and interpolation") {
  auto x = arange<double>(0, 16).reshape({1, 1, 4, 4});
  CHECK(max_pool2d(x, {.kernel_size = 2}).to_vector() == std::vector<double>{5, 7, 13, 15});
  CHECK(avg_pool2d(x, {.kernel_size = 2}).to_vector() == std::vector<double>{2.5, 4.5, 10.5, 12.5});
  CHECK(adaptive_avg_pool2d(x, 1).item() == 7.5);
  CHECK(interpolate(tensor<double>({1, 2, 3, 4}, {1, 1, 2, 2}), {.size = Pair2{4, 4}}).to_vector()[1] == 1);
  auto gx = [](std::uint64_t s) { return leaf({2, 2, 6, 5}, s); };
  check_grad([](const In& in) { return max_pool2d(in[0], {.kernel_size = 2}); }, {gx(1)});
  check_grad([](const In& in) { return max_pool2d(in[0], {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true}); }, {gx(2)});
  check_grad([](const In& in) { return avg_pool2d(in[0], {.kernel_size = 3, .stride = 2, .padding = 1}); }, {gx(3)});
  check_grad([](const In& in) {
    return avg_pool2d(in[0], {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false});
  }, {gx(4)});
  check_grad([](const In& in) { return adaptive_avg_pool2d(in[0], {3, 2}); }, {gx(5)});
  check_grad([](const In& in) { return interpolate(in[0], {.size = Pair2{5, 7}}); }, {leaf({1, 2, 3, 4}, 6)});
  check_grad([](const In& in) { return interpolate(in[0], {.size = Pair2{5, 7}, .mode = "bilinear"}); }, {leaf({1, 2, 3, 4}, 7)});
  check_grad([](const In& in) { return interpolate(in[0], {.scale_factor = 2.0, .mode = "bilinear", .align_corners = true}); },
             {leaf({1, 2, 3, 4}, 8)});
}

TEST_CASE("normalizations: statistics and gradchecks") {
  Generator gen(5);
  auto x = randn<double>({8, 3, 4, 4}, gen) * 3.0 + 2.0;
  auto rm = zeros<double>({3}), rv = ones<double>({3});
  auto y = batch_norm(x, rm, rv, {}, {}, true, 0.1, 1e-5);
  auto m = mean(y, {0, 2, 3}).to_vector();
  auto v = var(y, {0, 2, 3}, false).to_vector();
  for (int c = 0; c < 3; ++c) {
    CHECK(m[c] == doctest::Approx(0).epsilon(1e-9).scale(1));
    CHECK(v[c] == doctest::Approx(1).epsilon(1e-3));
  }
  auto batch_mean = mean(x, {0, 2, 3}).to_vector();
  CHECK(rm.to_vector()[0] == doctest::Approx(0.1 * batch_mean[0]));
  check_grad([](const In& in) { return batch_norm(in[0], T(), T(), in[1], in[2], true); },
             {leaf({4, 3, 2, 2}, 1), leaf({3}, 2), leaf({3}, 3)});
  auto erm = randn<double>({3}), erv = rand<double>({3}) + 0.5;
  check_grad([&](const In& in) { return batch_norm(in[0], erm, erv, in[1], in[2], false); },
             {leaf({4, 3, 5}, 4), leaf({3}, 5), leaf({3}, 6)});
  check_grad([](const In& in) { return layer_norm(in[0], {4}, in[1], in[2]); }, {leaf({2, 3, 4}, 7), leaf({4}, 8), leaf({4}, 9)});
  check_grad([](const In& in) { return layer_norm(in[0], {3, 4}); }, {leaf({2, 3, 4}, 10)});
  check_grad([](const In& in) { return group_norm(in[0], 2, in[1], in[2]); }, {leaf({2, 4, 3, 2}, 11), leaf({4}, 12), leaf({4}, 13)});
  check_grad([](const In& in) { return rms_norm(in[0], {4}, in[1], 1e-6); }, {leaf({2, 3, 4}, 14), leaf({4}, 15)});
  auto ln = layer_norm(x, {4}).to_vector();
  double s = 0;
  for (int i = 0; i < 4; ++i) s += ln[i];
  CHECK(s == doctest::Approx(0).scale(1));
}

TEST_CASE("dropout: scaling, eval identity, gradient through the mask") {
  Generator gen(11);
  auto x = ones<double>({10000});
  auto y = dropout(x, 0.3, true, gen);
  auto v = y.to_vector();
  int zeros_seen = 0;
  for (double e : v) {
    CHECK((e == 0 || std::fabs(e - 1 / 0.7) < 1e-12));
    zeros_seen += e == 0;
  }
  CHECK(zeros_seen == doctest::Approx(3000).epsilon(0.1));
  CHECK(dropout(x, 0.3, false).is_same(x));
  Generator g1(5), g2(5);
  CHECK(dropout(x, 0.5, true, g1).to_vector() == dropout(x, 0.5, true, g2).to_vector());
  check_grad([](const In& in) {
    Generator g(3);  // the same mask on every evaluation
    return dropout(in[0], 0.4, true, g);
  }, {leaf({4, 5}, 12)});
}

TEST_CASE("embedding, one_hot, sort, topk") {
  auto w = arange<double>(0, 12).reshape({4, 3});
  auto idx = tensor<std::int64_t>({3, 0, 3}, {3});
  CHECK(embedding(idx, w).to_vector() == std::vector<double>{9, 10, 11, 0, 1, 2, 9, 10, 11});
  check_grad([&](const In& in) { return embedding(idx.reshape({1, 3}), in[0]); }, {leaf({4, 3}, 1)});
  auto wp = leaf({4, 3}, 2);
  embedding(tensor<std::int64_t>({1, 2, 1}, {3}), wp, 1).sum().backward();
  CHECK(wp.grad().select(0, 1).to_vector() == std::vector<double>{0, 0, 0});
  CHECK(wp.grad().select(0, 2).to_vector() == std::vector<double>{1, 1, 1});
  CHECK(one_hot(tensor<std::int64_t>({2, 0}, {2}), 3).to_vector() == std::vector<std::int64_t>{0, 0, 1, 1, 0, 0});
  auto [sv, si] = sort(tensor<double>({3, 1, 2, 1}, {4}));
  CHECK(sv.to_vector() == std::vector<double>{1, 1, 2, 3});
  CHECK(si.to_vector() == std::vector<std::int64_t>{1, 3, 2, 0});  // stable
  auto [tv, ti] = topk(tensor<double>({3, 9, 2, 7}, {4}), 2);
  CHECK(tv.to_vector() == std::vector<double>{9, 7});
  CHECK(ti.to_vector() == std::vector<std::int64_t>{1, 3});
  check_grad([](const In& in) { return sort(in[0], 1, true).first; }, {leaf({3, 6}, 3)});
  check_grad([](const In& in) { return topk(in[0], 3, 0).first; }, {leaf({5, 4}, 4)});
  check_error([] { one_hot(tensor<std::int64_t>({3}, {1}), 3); }, {"one_hot", "3", "out of range"});
  check_error([] { topk(zeros<float>({4}), 5); }, {"topk", "k (5)", "size 4"});
}

TEST_CASE("scaled_dot_product_attention: masks, causal, gradients") {
  // With a causal mask the first query sees only the first key.
  auto q = leaf({1, 3, 4}, 1), k = leaf({1, 3, 4}, 2), v = leaf({1, 3, 2}, 3);
  auto out = scaled_dot_product_attention(q, k, v, {.is_causal = true});
  check_close(out.select(1, 0), v.detach().select(1, 0).reshape({1, 2}).to_vector());
  check_grad([](const In& in) { return scaled_dot_product_attention(in[0], in[1], in[2]); },
             {leaf({2, 3, 4, 8}, 4), leaf({2, 3, 5, 8}, 5), leaf({2, 3, 5, 6}, 6)});
  check_grad([](const In& in) { return scaled_dot_product_attention(in[0], in[1], in[2], {.is_causal = true}); },
             {leaf({2, 4, 8}, 7), leaf({2, 4, 8}, 8), leaf({2, 4, 8}, 9)});
  // The causal softmax kernel (no mask tensor) against the same mask given as a tensor, with
  // fewer and with more queries than keys: outputs and all three gradients.
  for (auto [L, S] : {std::pair<std::int64_t, std::int64_t>{3, 5}, {6, 4}}) {
    auto tril = le(arange<std::int64_t>(0, double(S)).unsqueeze(0), arange<std::int64_t>(0, double(L)).unsqueeze(1));
    auto run = [&](bool kernel) {
      auto ql = leaf({2, 2, L, 4}, 20), kl = leaf({2, 2, S, 4}, 21), vl = leaf({2, 2, S, 3}, 22);
      AttentionOptions<double> o;
      if (kernel) o.is_causal = true; else o.attn_mask_bool = tril;
      auto out = scaled_dot_product_attention(ql, kl, vl, o);
      Generator gen(23);
      sum(mul(out, randn<double>(out.shape(), gen))).backward();
      return std::vector<Tensor<double>>{out.detach(), ql.grad(), kl.grad(), vl.grad()};
    };
    const auto a = run(true), b = run(false);
    for (std::size_t i = 0; i < a.size(); ++i) check_close(a[i], b[i], 1e-14, 1e-12);
  }
  check_grad([](const In& in) { return softmax(in[0], 1); }, {leaf({3, 4, 2}, 24)});
  check_grad([](const In& in) { return log_softmax(in[0], 0); }, {leaf({3, 4}, 25)});
  auto mask = randn<double>({3, 5});
  check_grad([&](const In& in) { return scaled_dot_product_attention(in[0], in[1], in[2], {.attn_mask = mask}); },
             {leaf({2, 3, 4}, 10), leaf({2, 5, 4}, 11), leaf({2, 5, 4}, 12)});
  auto allow = gt(randn<double>({3, 5}), -0.5);
  allow = where(eq(arange<std::int64_t>(0, 5).unsqueeze(0), std::int64_t(0)), tensor<bool>({true}, {1}), allow);
  check_grad([&](const In& in) { return scaled_dot_product_attention(in[0], in[1], in[2], {.attn_mask_bool = allow}); },
             {leaf({2, 3, 4}, 13), leaf({2, 5, 4}, 14), leaf({2, 5, 4}, 15)});
}

// packed_attention is the composite attention over a packed projection as one op: the same
// output and qkv gradient as reshape/permute/select + scaled_dot_product_attention + head
// merge (causal or not, a non-contiguous qkv, an explicit scale), float64 gradchecks.
TEST_CASE("packed_attention: equals the composite form, values and gradients; gradcheck") {
  const std::int64_t B = 2, N = 5, H = 3, Dh = 4;
  auto composite = [&](const Tensor<double>& qkv, bool causal, std::optional<double> scale) {
    auto packed = qkv.reshape({B, N, 3, H, Dh}).permute({2, 0, 3, 1, 4});
    AttentionOptions<double> o;
    o.is_causal = causal;
    o.scale = scale;
    auto y = scaled_dot_product_attention(packed.select(0, 0), packed.select(0, 1), packed.select(0, 2), o);
    return y.transpose(1, 2).reshape({B, N, H * Dh});
  };
  for (const bool causal : {false, true})
    for (const bool strided : {false, true})
      for (const std::optional<double> scale : {std::optional<double>{}, std::optional<double>{0.3}}) {
        auto run = [&](bool fused) {
          auto base = leaf({B, 3 * H * Dh, N}, 40);  // strided: qkv as a transposed view
          auto flat = leaf({B, N, 3 * H * Dh}, 41);
          auto qkv = strided ? base.transpose(1, 2) : flat;
          auto y = fused ? packed_attention(qkv, H, causal, scale) : composite(qkv, causal, scale);
          Generator gen(42);
          sum(mul(y, randn<double>(y.shape(), gen))).backward();
          return std::vector<Tensor<double>>{y.detach(), strided ? base.grad() : flat.grad()};
        };
        INFO("causal " << causal << " strided " << strided << " scale " << scale.value_or(-1));
        const auto a = run(true), b = run(false);
        check_close(a[0], b[0], 1e-14, 1e-12);
        check_close(a[1], b[1], 1e-14, 1e-12);
      }
  check_grad([](const In& in) { return packed_attention(in[0], 2); }, {leaf({2, 4, 18}, 43)});
  check_grad([](const In& in) { return packed_attention(in[0], 3, true); }, {leaf({2, 5, 18}, 44)});
  check_error([] { packed_attention(zeros<float>({2, 5, 16}), 3); },
              {"packed_attention", "[2, 5, 16]", "3 heads", "float32", "cpu"});
}

// batch_norm_relu is relu(batch_norm(...)) as one op: in training the same bits as the two
// ops (values, the gradients of x, weight and bias, the running statistics), float32 on long
// channels (the vectorised passes) and float64 gradchecks; in eval the composite.
TEST_CASE("batch_norm_relu: the same bits as relu(batch_norm), gradients, running statistics; gradcheck") {
  // Runs of 99, 784, 1, 20 and 35 values (the CPU's mask bits: whole 16-value words, a word
  // filled by narrower vectors, one bit a word); one image (its channels' runs row by row).
  for (const Shape& shape : {Shape{4, 3, 9, 11}, Shape{64, 5, 28, 28}, Shape{6, 2}, Shape{3, 2, 20}, Shape{1, 3, 5, 7}}) {
    const std::int64_t C = shape[1];
    auto run = [&](bool fused, bool training) {
      Generator gen(50);
      auto x = randn<float>(shape, gen).requires_grad_();
      auto w = randn<float>({C}, gen).requires_grad_(), b = randn<float>({C}, gen).requires_grad_();
      auto rm = randn<float>({C}, gen), rv = add(rand<float>({C}, gen), 0.5f);
      auto y = fused ? batch_norm_relu(x, rm, rv, w, b, training, 0.2) : relu(batch_norm(x, rm, rv, w, b, training, 0.2));
      sum(mul(y, randn<float>(shape, gen))).backward();
      return std::vector<std::vector<float>>{y.detach().to_vector(), x.grad().to_vector(), w.grad().to_vector(),
                                             b.grad().to_vector(), rm.to_vector(), rv.to_vector()};
    };
    INFO("shape " << shape_str(shape));
    CHECK(run(true, true) == run(false, true));
    CHECK(run(true, false) == run(false, false));
  }
  check_grad([](const In& in) { return batch_norm_relu(in[0], Tensor<double>(), Tensor<double>(), in[1], in[2], true); },
             {leaf({4, 3, 5, 2}, 51), leaf({3}, 52), leaf({3}, 53)});
  check_error([] { batch_norm_relu(zeros<float>({2, 3, 4}), Tensor<float>(), Tensor<float>(), ones<float>({4}), Tensor<float>(), true); },
              {"batch_norm_relu", "[4]", "[2, 3, 4]"});
}

// batch_norm_add_relu is relu(batch_norm(x, ...) + residual) as one op (a residual block's
// end): in training the same bits as the three ops (values, the gradients of x, residual,
// weight and bias, the running statistics), in eval the composite; float64 gradchecks of all
// four inputs; a residual of another shape is refused.
TEST_CASE("batch_norm_add_relu: the same bits as relu(batch_norm + residual), gradients, running statistics; gradcheck") {
  for (const Shape& shape : {Shape{4, 3, 9, 11}, Shape{64, 5, 28, 28}, Shape{6, 2}, Shape{2, 4, 7, 7}, Shape{1, 2, 3, 13}}) {
    const std::int64_t C = shape[1];
    auto run = [&](bool fused, bool training) {
      Generator gen(55);
      auto x = randn<float>(shape, gen).requires_grad_(), r = randn<float>(shape, gen).requires_grad_();
      auto w = randn<float>({C}, gen).requires_grad_(), b = randn<float>({C}, gen).requires_grad_();
      auto rm = randn<float>({C}, gen), rv = add(rand<float>({C}, gen), 0.5f);
      auto y = fused ? batch_norm_add_relu(x, r, rm, rv, w, b, training, 0.2)
                     : relu(add(batch_norm(x, rm, rv, w, b, training, 0.2), r));
      sum(mul(y, randn<float>(shape, gen))).backward();
      return std::vector<std::vector<float>>{y.detach().to_vector(), x.grad().to_vector(), r.grad().to_vector(),
                                             w.grad().to_vector(),   b.grad().to_vector(), rm.to_vector(),
                                             rv.to_vector()};
    };
    INFO("shape " << shape_str(shape));
    const auto fused = run(true, true);
    CHECK(fused == run(false, true));
    CHECK(run(true, false) == run(false, false));
    CHECK(std::count(fused[0].begin(), fused[0].end(), 0.0f) > 0);  // the ReLU cuts something
  }
  check_grad([](const In& in) {
    return batch_norm_add_relu(in[0], in[1], Tensor<double>(), Tensor<double>(), in[2], in[3], true);
  }, {leaf({4, 3, 5, 2}, 56), leaf({4, 3, 5, 2}, 57), leaf({3}, 58), leaf({3}, 59)});
  check_grad([](const In& in) { return batch_norm_add_relu(in[0], in[1], Tensor<double>(), Tensor<double>(), {}, {}, true); },
             {leaf({3, 2, 4}, 60), leaf({3, 2, 4}, 61)});  // no affine, no running statistics: batch statistics
  check_error([] { batch_norm_add_relu(zeros<float>({2, 3, 4}), zeros<float>({2, 3, 5}), Tensor<float>(), Tensor<float>(), Tensor<float>(), Tensor<float>(), true); },
              {"batch_norm_add_relu", "residual", "[2, 3, 4]", "[2, 3, 5]", "float32", "cpu"});
  check_error([] { batch_norm_add_relu(zeros<float>({2, 3, 4}), Tensor<float>(), Tensor<float>(), Tensor<float>()); },
              {"batch_norm_add_relu", "residual"});
}

// The thread count does not change a bit of batch norm (fused with ReLU) or layer norm:
// forward, the three gradients and the running statistics, on shapes with fewer runs than
// norm_rows.hpp's groups, more, and rows of one run (layer norm's path). (The runs' float sums
// go into double, where adding a few hundred of them is most often exact in any order; a
// change that let float sums span a thread's share of the runs would show here.)
// layer_norm's and rms_norm's affine in the normalisation's own passes on the CPU
// (Backend::normalizes_columns): the same values and gradients as the affine applied by
// separate ops (what other backends run), for row counts around the column sums' blocks of 32,
// column counts around the vector widths, weight and bias alone or together, a 2-d
// normalized_shape, float and double.
template <class S>
void layer_norm_affine_matches_separate_ops(double tol) {
  using TS = Tensor<S>;
  struct Case {
    Shape x, norm;
  };
  for (const Case& c : {Case{{1, 5}, {5}}, Case{{31, 16}, {16}}, Case{{32, 17}, {17}}, Case{{2, 33, 37}, {37}},
                        Case{{100, 1}, {1}}, Case{{7, 3, 4}, {3, 4}}, Case{{65, 192}, {192}}})
    for (const int affine : {1, 2, 3}) {  // weight, bias, both
      for (const bool rms : {false, true}) {
        if (rms && affine != 1) continue;  // rms_norm has a weight only
        CAPTURE(shape_str(c.x));
        CAPTURE(affine);
        CAPTURE(rms);
        Generator gen(90);
        auto x = add(mul(randn<S>(c.x, gen), S(2)), S(3)).requires_grad_();
        auto w = (affine & 1) ? randn<S>(c.norm, gen).requires_grad_() : TS();
        auto b = (affine & 2) ? randn<S>(c.norm, gen).requires_grad_() : TS();
        const auto gy = randn<S>(c.x, gen);
        auto y = rms ? rms_norm(x, c.norm, w, 1e-5) : layer_norm(x, c.norm, w, b);  // fused on the CPU
        sum(mul(y, gy)).backward();
        auto x2 = x.detach().clone().requires_grad_();
        auto w2 = w.defined() ? w.detach().clone().requires_grad_() : TS();
        auto b2 = b.defined() ? b.detach().clone().requires_grad_() : TS();
        auto y2 = rms ? rms_norm(x2, c.norm, TS(), 1e-5) : layer_norm(x2, c.norm);  // no affine: nothing to fuse
        if (w2.defined()) y2 = mul(y2, w2);
        if (b2.defined()) y2 = add(y2, b2);
        sum(mul(y2, gy)).backward();
        check_close(y, y2, tol, tol, "y");
        check_close(x.grad(), x2.grad(), tol, tol, "dx");
        if (w.defined()) check_close(w.grad(), w2.grad(), tol, tol, "dweight");
        if (b.defined()) check_close(b.grad(), b2.grad(), tol, tol, "dbias");
      }
    }
}

TEST_CASE("layer_norm and rms_norm: the affine in the normalisation's passes equals separate ops") {
  layer_norm_affine_matches_separate_ops<double>(1e-10);
  layer_norm_affine_matches_separate_ops<float>(2e-4);
}

TEST_CASE("batch_norm and layer_norm: 1 to 4 threads give one thread's bits") {
  const int before = get_num_threads();
  for (const Shape& shape : {Shape{64, 32, 28, 28}, Shape{3, 5, 7, 7}, Shape{70, 3, 2}, Shape{8, 300}, Shape{100, 37},
                             Shape{3200, 192}}) {
    const std::int64_t C = shape[1];
    std::vector<std::vector<std::vector<float>>> runs;
    for (const int threads : {1, 2, 3, 4}) {
      set_num_threads(threads);
      Generator gen(60);
      auto x = add(mul(randn<float>(shape, gen), 3.0f), 5.0f).detach().requires_grad_();
      auto w = randn<float>({C}, gen).requires_grad_(), b = randn<float>({C}, gen).requires_grad_();
      auto rm = zeros<float>({C}), rv = ones<float>({C});
      auto y = shape.size() > 2 ? batch_norm_relu(x, rm, rv, w, b, true, 0.1)
                                : layer_norm(x, {shape[1]}, w, b);
      sum(mul(y, randn<float>(shape, gen))).backward();
      runs.push_back({y.detach().to_vector(), x.grad().to_vector(), w.grad().to_vector(), b.grad().to_vector(),
                      rm.to_vector(), rv.to_vector()});
    }
    set_num_threads(before);
    INFO("shape " << shape_str(shape));
    for (std::size_t t = 1; t < runs.size(); ++t) CHECK(runs[t] == runs[0]);
  }
}

// Both Winograd tile sizes, forced in turn (conv2d picks F4 on large planes only):
// each against the direct loop, each backward against its forward by the adjoint identity
// <conv(x, w), gy> = <x, dL/dx> = <w, dL/dw> for L = <conv(x, w), gy>, and float64 gradchecks.
TEST_CASE("Winograd F(2x2, 3x3) and F(4x4, 3x3): values, adjoint identities, gradchecks") {
  namespace wg = ligm::cpu::winograd;
  struct Restore { ~Restore() { wg::forced_tile = 0, wg::forced_layout = 0; } } restore;
  struct Case { Shape x; std::int64_t c_out, pad; };
  for (const int variant : {2, 4, 12, 14}) {  // F2, F4; phase planes, gathered (the tens)
    const int tile = variant % 10;
    wg::forced_tile = tile;
    wg::forced_layout = variant > 10 ? 2 : 1;
    for (const Case& c : {Case{{2, 4, 5, 7}, 5, 1}, Case{{3, 5, 6, 6}, 4, 0}, Case{{1, 4, 4, 9}, 6, 2},
                          Case{{9, 4, 12, 12}, 4, 1}, Case{{2, 6, 3, 3}, 4, 0}, Case{{13, 4, 3, 4}, 4, 1},
                          Case{{3, 4, 11, 10}, 5, 1}, Case{{2, 4, 9, 37}, 5, 1},
                          Case{{40, 4, 7, 7}, 4, 1}}) {
      INFO("F" << tile << (variant > 10 ? " image-major " : " phase planes ") << shape_str(c.x) << " pad " << c.pad);
      const auto x = leaf(c.x, 41), w = leaf({c.c_out, c.x[1], 3, 3}, 42);
      const auto y = conv2d(x, w, {}, {.padding = c.pad});
      check_close(y, direct_conv3x3(x, w, c.pad), 1e-12, 1e-12);
      const auto gy = leaf(y.shape(), 43);
      (y * gy).sum().backward();
      const double lhs = (y * gy).sum().item();
      CHECK((x * x.grad()).sum().item() == doctest::Approx(lhs).epsilon(1e-12));
      CHECK((w * w.grad()).sum().item() == doctest::Approx(lhs).epsilon(1e-12));
    }
    check_grad([](const In& in) { return conv2d(in[0], in[1], in[2], {.padding = 1}); },
               {leaf({3, 4, 9, 10}, 44), leaf({4, 4, 3, 3}, 45), leaf({4}, 46)});
    // The combined backward (dY transformed once for both gradients, what autograd calls) gives
    // exactly what the two separate ones give, over several chunks of images; and one gradient
    // alone when the other is not wanted.
    for (const Case& c : {Case{{9, 4, 12, 12}, 5, 1}, Case{{13, 6, 7, 7}, 4, 1}}) {
      INFO("F" << tile << (variant > 10 ? " image-major" : " phase planes") << " combined backward " << shape_str(c.x));
      auto& be = backend_for<double>(Device::cpu());
      const auto x = leaf(c.x, 49), w = leaf({c.c_out, c.x[1], 3, 3}, 50);
      const std::int64_t h = c.x[2] + 2 * c.pad - 2, wd = c.x[3] + 2 * c.pad - 2;
      const Conv2dGeometry g{c.x[0], c.x[1], c.x[2], c.x[3], c.c_out, h, wd, 3, 3, 1, 1, c.pad, c.pad, 1, 1, 1};
      const auto gy = leaf({c.x[0], c.c_out, h, wd}, 51);
      auto gx1 = T::empty(x.shape(), x.device()), gw1 = T::empty(w.shape(), w.device());
      auto gx2 = T::empty(x.shape(), x.device()), gw2 = T::empty(w.shape(), w.device());
      auto gx3 = T::empty(x.shape(), x.device());
      be.conv2d_backward(g, x.data_ptr(), gy.data_ptr(), w.data_ptr(), gx1.data_ptr(), gw1.data_ptr());
      be.conv2d_backward_input(g, gy.data_ptr(), w.data_ptr(), gx2.data_ptr());
      be.conv2d_backward_weight(g, x.data_ptr(), gy.data_ptr(), gw2.data_ptr());
      be.conv2d_backward(g, x.data_ptr(), gy.data_ptr(), w.data_ptr(), gx3.data_ptr(), nullptr);
      CHECK(gx1.to_vector() == gx2.to_vector());
      CHECK(gw1.to_vector() == gw2.to_vector());
      CHECK(gx3.to_vector() == gx2.to_vector());
    }
    // Float32 agrees with float64 to float32's precision at a training size.
    const auto x = leaf({4, 32, 28, 28}, 47), w = leaf({32, 32, 3, 3}, 48) * 0.1;
    check_close(conv2d(x.to<float>(), w.to<float>(), {}, {.padding = 1}).to<double>(),
                conv2d(x, w, {}, {.padding = 1}), 1e-4, 1e-4);
    // So do its gradients, on planes whose rows are no whole number of vectors (the phase split
    // and join run on float vectors of 16, 8 and 4 lanes and then scalars) and over chunks of
    // images that are not (the image-major layout's vectors).
    for (const Shape& shape : {Shape{3, 8, 19, 37}, Shape{37, 8, 5, 7}}) {
      INFO("F" << tile << (variant > 10 ? " image-major" : " phase planes") << " float32 gradients " << shape_str(shape));
      const auto xd = leaf(shape, 52), wd = leaf({8, 8, 3, 3}, 53);
      auto xf = xd.detach().to<float>().requires_grad_(), wf = wd.detach().to<float>().requires_grad_();
      const auto gy = leaf({shape[0], 8, shape[2], shape[3]}, 54).detach();
      (conv2d(xd, wd, {}, {.padding = 1}) * gy).sum().backward();
      (conv2d(xf, wf, {}, {.padding = 1}) * gy.to<float>()).sum().backward();
      check_close(xf.grad().to<double>(), xd.grad(), 1e-4, 1e-4, "input gradient");
      check_close(wf.grad().to<double>(), wd.grad(), 1e-3, 1e-4, "weight gradient");
    }
  }
  wg::forced_tile = 0, wg::forced_layout = 0;
  CHECK(wg::tile_for(64, 28, 28) == 4);
  CHECK(wg::tile_for(64, 14, 14) == 4);
  CHECK(wg::tile_for(64, 7, 7) == 4);
  CHECK(wg::tile_for(64, 2, 2) == 2);
  CHECK(wg::tile_for(64, 1, 9) == 2);
  CHECK(wg::tile_for(64, 1, 17) == 2);
  CHECK(wg::tile_for(1, 7, 7) == 2);   // one image: phase planes, F2
  CHECK(wg::tile_for(8, 14, 14) == 2);
  CHECK(wg::image_major_tiles(16, 7, 7));
  CHECK(wg::image_major_tiles(64, 14, 14));
  CHECK(wg::image_major_tiles(64, 16, 3));
  CHECK_FALSE(wg::image_major_tiles(15, 7, 7));
  CHECK_FALSE(wg::image_major_tiles(64, 28, 28));
  CHECK_FALSE(wg::image_major_tiles(64, 3, 17));
}
