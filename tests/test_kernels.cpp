// The CUDA kernels' thread bodies (backend/kernels/*.hpp), run on the host: a kernel launch
// is body(i) for every i, so a loop over i emulates it exactly (one thread at a time, which
// also makes atomic_add a plain +=). Each body is checked against the CPU backend on the same
// inputs, including strided and broadcast views. This runs everywhere, GPU or not; the
// cross-device suite (test_cuda.cpp) then checks the real launches on a GPU.
#include <ligm/backend/cpu/norm_rows.hpp>
#include <ligm/backend/kernels/elementwise.hpp>
#include <ligm/backend/kernels/index.hpp>
#include <ligm/backend/kernels/loss.hpp>
#include <ligm/backend/kernels/norm.hpp>
#include <ligm/backend/kernels/pool.hpp>
#include <ligm/backend/kernels/random.hpp>
#include <ligm/backend/kernels/reduce.hpp>
#include <ligm/backend/kernels/sort.hpp>

#include <barrier>
#include <thread>

#include "helpers.hpp"

using namespace th;
namespace k = ligm::kernels;

namespace {

template <class Body>
void emulate(std::int64_t n, const Body& body) {
  for (std::int64_t i = 0; i < n; ++i) body(i);
}

// A row body run by `lanes` host threads, as a warp runs it on the GPU: all_sum is a barrier,
// every lane writes its value, every lane adds them all up.
struct LaneSum {
  int lane;
  std::vector<double>* slots;
  std::barrier<>* sync;
  template <class A>
  A operator()(A v) const {
    (*slots)[static_cast<std::size_t>(lane)] = double(v);
    sync->arrive_and_wait();
    double total = 0;
    for (double s : *slots) total += s;
    sync->arrive_and_wait();  // nobody overwrites a slot before all have read it
    return A(total);
  }
};

template <class Body>
void emulate_rows(std::int64_t rows, int lanes, const Body& body) {
  std::vector<double> slots(static_cast<std::size_t>(lanes));
  std::barrier<> sync(lanes);
  std::vector<std::thread> warp;
  for (int lane = 0; lane < lanes; ++lane)
    warp.emplace_back([&, lane] {
      for (std::int64_t i = 0; i < rows; ++i) body(i, lane, lanes, LaneSum{lane, &slots, &sync});
    });
  for (auto& t : warp) t.join();
}

using D = Tensor<double>;

D randn_cpu(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  return randn<double>(s, g);
}

// A non-contiguous view of a fresh [a, b, c] tensor: permuted and sliced.
D strided_view(std::uint64_t seed) {
  return randn_cpu({5, 4, 6}, seed).permute({2, 0, 1}).slice(0, 1, 6, 2);  // [3, 5, 4]
}

}  // namespace

TEST_CASE("kernels: Indexer offsets equal the row-major walk of every stride vector") {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    Generator g(seed);
    const auto r = randint(1, 5, {8}, g).to_vector();
    const std::size_t nd = 1 + std::size_t(r[0]) % 5;
    Shape shape(r.begin() + 1, r.begin() + 1 + nd);
    Shape a = contiguous_strides(shape), b(nd);
    for (std::size_t d = 0; d < nd; ++d) b[d] = (d % 2) ? 0 : std::int64_t(7 * d + 3);  // broadcast and gaps
    const auto ix = k::make_indexer<2>(shape, {&a, &b}, "test");
    Shape pos(nd, 0);
    for (std::int64_t i = 0; i < numel_of(shape); ++i) {
      std::int64_t off[2], ea = 0, eb = 0;
      ix.offsets(i, off);
      for (std::size_t d = 0; d < nd; ++d) {
        ea += pos[d] * a[d];
        eb += pos[d] * b[d];
      }
      REQUIRE(off[0] == ea);
      REQUIRE(off[1] == eb);
      for (std::size_t d = nd; d-- > 0;) {  // next row-major position
        if (++pos[d] < shape[d]) break;
        pos[d] = 0;
      }
    }
  }
  // Contiguous operands merge into one dim; too many separate dims is a clear error.
  Shape s{2, 3, 4}, st = contiguous_strides(s);
  CHECK(k::make_indexer<1>(s, {&st}, "test").ndim == 1);
  Shape big(11, 2), gaps(11);
  for (std::size_t d = 0; d < 11; ++d) gaps[d] = std::int64_t(1) << (2 * (11 - d));
  check_error([&] { k::make_indexer<1>(big, {&gaps}, "unary"); }, {"unary", "11 separate dims"});
}

TEST_CASE("kernels: elementwise bodies on strided views match the CPU backend") {
  const D x = strided_view(1), y = strided_view(2);
  const Shape shape = x.shape();
  auto out = D::empty(shape);
  auto ix2 = k::make_indexer<2>(shape, {&out.strides(), &x.strides()}, "t");
  for (UnaryOp op : {UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Gelu, UnaryOp::Softplus, UnaryOp::Clamp}) {
    const UnaryParams p{op == UnaryOp::Softplus ? 1.5 : -0.3, op == UnaryOp::Softplus ? 2.0 : 0.4};
    emulate(out.numel(), k::Unary<double>{ix2, x.data_ptr(), out.data_ptr(), op, p});
    auto ref = D::empty(shape);
    backend_for<double>(Device::cpu()).unary(op, p, x.cref(), ref.ref());
    check_close(out, ref, 0, 0, "unary");
  }
  // Binary with broadcasting: y's first column against every column.
  const D col = y.narrow(2, 0, 1).expand(shape);
  auto ix3 = k::make_indexer<3>(shape, {&out.strides(), &x.strides(), &col.strides()}, "t");
  for (BinaryOp op : {BinaryOp::Sub, BinaryOp::Div, BinaryOp::Maximum}) {
    emulate(out.numel(), k::Binary<double>{ix3, x.data_ptr(), col.data_ptr(), out.data_ptr(), op});
    auto ref = D::empty(shape);
    backend_for<double>(Device::cpu()).binary(op, x.cref(), col.cref(), ref.ref());
    check_close(out, ref, 0, 0, "binary");
  }
  auto mask = Tensor<bool>::empty(shape);
  emulate(mask.numel(), k::Compare<double>{ix3, x.data_ptr(), col.data_ptr(), mask.data_ptr(), CompareOp::Gt});
  CHECK(mask.to_vector() == gt(x, col).to_vector());
  auto ix4 = k::make_indexer<4>(shape, {&out.strides(), &mask.strides(), &x.strides(), &y.strides()}, "t");
  emulate(out.numel(), k::Where<double>{ix4, mask.data_ptr(), x.data_ptr(), y.data_ptr(), out.data_ptr()});
  check_close(out, where(mask, x, y), 0, 0, "where");
  // Cast into a strided destination, and fill.
  auto ints = Tensor<std::int64_t>::empty({5, 4, 3}).permute({2, 0, 1});  // [3, 5, 4], strided
  const D scaled = mul(x, 10.0);
  auto ixc = k::make_indexer<2>(shape, {&ints.strides(), &scaled.strides()}, "t");
  emulate(ints.numel(), k::Convert<double, std::int64_t>{ixc, scaled.data_ptr(), ints.data_ptr()});
  CHECK(ints.to_vector() == scaled.to<std::int64_t>().to_vector());
  auto ixf = k::make_indexer<1>(shape, {&ints.strides()}, "t");
  emulate(ints.numel(), k::Fill<std::int64_t>{ixf, ints.data_ptr(), 7});
  CHECK(ints.to_vector() == std::vector<std::int64_t>(std::size_t(ints.numel()), 7));
  // Unary backward.
  const D xc = x.contiguous(), g = randn_cpu(shape, 3);
  auto yv = D::empty(shape), dx = D::empty(shape), ref = D::empty(shape);
  backend_for<double>(Device::cpu()).unary(UnaryOp::Silu, {}, xc.cref(), yv.ref());
  emulate(dx.numel(), k::UnaryBackward<double>{xc.data_ptr(), yv.data_ptr(), g.data_ptr(), dx.data_ptr(),
                                               UnaryOp::Silu, {}});
  backend_for<double>(Device::cpu()).unary_backward(UnaryOp::Silu, {}, xc.data_ptr(), yv.data_ptr(),
                                                     g.data_ptr(), ref.data_ptr(), ref.numel());
  check_close(dx, ref, 1e-15, 1e-14, "unary_backward");  // the library is built with FMA
}

TEST_CASE("kernels: integer pow and the integer unary ops") {
  CHECK(math::integer_pow<std::int64_t>(3, 4) == 81);
  CHECK(math::integer_pow<std::int64_t>(-2, 3) == -8);
  CHECK(math::integer_pow<std::int64_t>(5, 0) == 1);
  CHECK(math::integer_pow<std::int64_t>(2, -1) == 0);
  CHECK(math::integer_pow<std::int64_t>(-1, -3) == -1);
  CHECK(math::unary_forward<std::int64_t>(UnaryOp::Clamp, {-2, 3}, 9) == 3);
  CHECK(math::unary_supports_integers(UnaryOp::Abs));
  CHECK_FALSE(math::unary_supports_integers(UnaryOp::Exp));
}

TEST_CASE("kernels: reduction bodies match the CPU backend, NaN and ties included") {
  D x = strided_view(4);
  x.select(1, 2).fill_(std::nan(""));  // one NaN row
  for (const Dims& dims : std::vector<Dims>{{0}, {1}, {2}, {0, 2}, {0, 1, 2}}) {
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
      Shape os = x.shape();
      for (auto d : dims) os[std::size_t(d)] = 1;
      auto out = D::empty(os), ref = D::empty(os);
      emulate(out.numel(), k::make_reduction(op, x.cref(), out.ref()));
      backend_for<double>(Device::cpu()).reduce(op, x.cref(), ref.ref());
      CAPTURE(dims.size());
      check_close(out, ref, 1e-12, 1e-12, "reduce");
    }
  }
  // argmax/argmin: first index on ties, first NaN wins.
  auto t = tensor<double>({1, 3, 3, 0, std::nan(""), 2, 5, 5, 5}, {3, 3});
  for (bool is_max : {true, false}) {
    auto v = D::empty({3, 1}), rv = D::empty({3, 1});
    auto ix = Tensor<std::int64_t>::empty({3, 1}), rix = Tensor<std::int64_t>::empty({3, 1});
    emulate(3, k::make_arg_reduction(is_max, t.cref(), 1, v.ref(), ix.ref()));
    backend_for<double>(Device::cpu()).arg_reduce(is_max, t.cref(), 1, rv.ref(), rix.ref());
    CHECK(ix.to_vector() == rix.to_vector());
    check_close(v, rv, 0, 0, "arg_reduce");
  }
}

TEST_CASE("kernels: index bodies, duplicates accumulate") {
  const D src = randn_cpu({2, 5, 3}, 5);
  auto index = tensor<std::int64_t>({4, 0, 4, 2}, {4});
  auto sel = D::empty({2, 4, 3});
  emulate(sel.numel(), k::IndexSelect<double>{src.data_ptr(), 5, 3, 4, index.data_ptr(), sel.data_ptr()});
  check_close(sel, index_select(src, 1, index), 0, 0, "index_select");
  auto acc = zeros<double>({2, 5, 3});
  emulate(sel.numel(), k::IndexAdd<double>{acc.data_ptr(), 5, 3, 4, index.data_ptr(), sel.data_ptr()});
  check_close(acc, index_add(zeros<double>({2, 5, 3}), 1, index, sel), 1e-15, 0, "index_add");
  auto gidx = tensor<std::int64_t>({0, 4, 4, 1, 2, 2}, {2, 1, 3}).expand({2, 2, 3});
  auto gout = D::empty({2, 2, 3});
  emulate(gout.numel(), k::make_gather(src.cref(), 1, gidx.cref(), gout.ref()));
  check_close(gout, gather(src, 1, gidx), 0, 0, "gather");
  auto dst = zeros<double>({2, 5, 3});
  emulate(gout.numel(), k::make_scatter_add(dst.ref(), 1, gidx.cref(), gout.cref()));
  check_close(dst, scatter_add(zeros<double>({2, 5, 3}), 1, gidx.contiguous(), gout), 1e-15, 0, "scatter_add");
}

TEST_CASE("kernels: the bitonic sort is the CPU's stable sort, padding, ties and NaN included") {
  for (std::int64_t cols : {1, 2, 5, 8, 13, 64, 100}) {
    Generator gen{std::uint64_t(cols)};
    auto x = randint(0, 6, {3, cols}, gen).to<double>();  // many ties
    if (cols > 3) x.select(1, 2).fill_(std::nan(""));
    for (bool desc : {false, true}) {
      const std::int64_t p = k::sort_padded_cols(cols);
      std::vector<double> keys(std::size_t(3 * p));
      std::vector<std::int64_t> idx(std::size_t(3 * p));
      auto v = D::empty({3, cols}), rv = D::empty({3, cols});
      auto ix = Tensor<std::int64_t>::empty({3, cols}), rix = Tensor<std::int64_t>::empty({3, cols});
      k::bitonic_sort_rows(x.data_ptr(), 3, cols, desc, v.data_ptr(), ix.data_ptr(), keys.data(), idx.data(),
                           [](std::int64_t n, const auto& body) { emulate(n, body); });
      backend_for<double>(Device::cpu()).sort_rows(x.data_ptr(), 3, cols, desc, rv.data_ptr(), rix.data_ptr());
      CAPTURE(cols);
      CAPTURE(desc);
      CHECK(ix.to_vector() == rix.to_vector());
      check_close(v, rv, 0, 0, "sort values");
    }
  }
}

TEST_CASE("kernels: pooling and interpolation bodies match the CPU backend, forward and backward") {
  auto& cpu = backend_for<double>(Device::cpu());
  const D x = randn_cpu({2, 3, 7, 6}, 6);
  Pool2dGeometry g{2, 3, 7, 6, 4, 3, 3, 3, 2, 2, 1, 1};
  g.dil_h = 1;
  const std::int64_t n_out = g.n * g.c * g.h_out * g.w_out, n_in = x.numel();
  auto y = D::empty({n_out}), ry = D::empty({n_out}), gy = randn_cpu({n_out}, 7);
  auto am = Tensor<std::int64_t>::empty({n_out}), ram = Tensor<std::int64_t>::empty({n_out});
  emulate(n_out, k::MaxPool2dForward<double>{g, x.data_ptr(), y.data_ptr(), am.data_ptr()});
  cpu.max_pool2d_forward(g, x.data_ptr(), ry.data_ptr(), ram.data_ptr());
  check_close(y, ry, 0, 0, "max_pool2d");
  CHECK(am.to_vector() == ram.to_vector());
  auto gx = zeros<double>({n_in}), rgx = D::empty({n_in});
  emulate(n_out, k::MaxPool2dBackward<double>{g, gy.data_ptr(), am.data_ptr(), gx.data_ptr()});
  cpu.max_pool2d_backward(g, gy.data_ptr(), am.data_ptr(), rgx.data_ptr());
  check_close(gx, rgx, 1e-15, 0, "max_pool2d_backward");
  for (bool include_pad : {true, false}) {
    g.count_include_pad = include_pad;
    emulate(n_out, k::AvgPool2d<double, false>{g, x.data_ptr(), y.data_ptr()});
    cpu.avg_pool2d_forward(g, x.data_ptr(), ry.data_ptr());
    check_close(y, ry, 1e-15, 1e-14, "avg_pool2d");
    gx.zero_();
    emulate(n_out, k::AvgPool2d<double, true>{g, gy.data_ptr(), gx.data_ptr()});
    cpu.avg_pool2d_backward(g, gy.data_ptr(), rgx.data_ptr());
    check_close(gx, rgx, 1e-15, 1e-14, "avg_pool2d_backward");
  }
  auto ay = D::empty({6 * 3 * 4}), ary = D::empty({6 * 3 * 4}), agy = randn_cpu({6 * 3 * 4}, 8);
  emulate(ay.numel(), k::AdaptiveAvgPool2d<double, false>{7, 6, 3, 4, x.data_ptr(), ay.data_ptr()});
  cpu.adaptive_avg_pool2d_forward(6, 7, 6, 3, 4, x.data_ptr(), ary.data_ptr());
  check_close(ay, ary, 1e-15, 1e-14, "adaptive_avg_pool2d");
  gx.zero_();
  emulate(ay.numel(), k::AdaptiveAvgPool2d<double, true>{7, 6, 3, 4, agy.data_ptr(), gx.data_ptr()});
  cpu.adaptive_avg_pool2d_backward(6, 7, 6, 3, 4, agy.data_ptr(), rgx.data_ptr());
  check_close(gx, rgx, 1e-15, 1e-14, "adaptive_avg_pool2d_backward");
  for (InterpMode mode : {InterpMode::Nearest, InterpMode::Bilinear})
    for (bool ac : {false, true}) {
      const std::int64_t ho = 10, wo = 4, n = 6 * ho * wo;
      const double rh = ac ? 0 : 0.7;
      auto iy = D::empty({n}), iry = D::empty({n}), igy = randn_cpu({n}, 9);
      emulate(n, k::Interpolate<double, false>{mode, ac, 7, 6, ho, wo, rh, 0, x.data_ptr(), iy.data_ptr()});
      cpu.interpolate_forward(mode, ac, 6, 7, 6, ho, wo, rh, 0, x.data_ptr(), iry.data_ptr());
      check_close(iy, iry, 1e-15, 1e-14, "interpolate");
      gx.zero_();
      emulate(n, k::Interpolate<double, true>{mode, ac, 7, 6, ho, wo, rh, 0, igy.data_ptr(), gx.data_ptr()});
      cpu.interpolate_backward(mode, ac, 6, 7, 6, ho, wo, rh, 0, igy.data_ptr(), rgx.data_ptr());
      check_close(gx, rgx, 1e-14, 1e-13, "interpolate_backward");
    }
}

TEST_CASE("kernels: the CPU's 2x2 stride-2 max-pool fast path matches the kernel bodies, ties and NaN included") {
  auto& cpu = backend_for<float>(Device::cpu());
  // Values from a small set (many ties, -inf included) with a few NaNs; odd sizes leave a row
  // and a column out of every window.
  for (std::int64_t h : {6, 7})
    for (std::int64_t w : {8, 9, 33}) {
      Pool2dGeometry g{2, 3, h, w, h / 2, w / 2, 2, 2, 2, 2, 0, 0};
      std::vector<float> xs(static_cast<std::size_t>(g.n * g.c * h * w));
      std::uint64_t state = 12345 + h * 100 + w;
      for (auto& v : xs) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        const auto r = (state >> 33) % 16;
        v = r == 0 ? std::numeric_limits<float>::quiet_NaN() : r == 1 ? -std::numeric_limits<float>::infinity()
                                                                      : static_cast<float>(r % 4);
      }
      const auto x = tensor<float>(xs, {static_cast<std::int64_t>(xs.size())});
      const std::int64_t n_out = g.n * g.c * g.h_out * g.w_out;
      auto y = Tensor<float>::empty({n_out}), ry = Tensor<float>::empty({n_out});
      auto am = Tensor<std::int64_t>::empty({n_out}), ram = Tensor<std::int64_t>::empty({n_out});
      emulate(n_out, k::MaxPool2dForward<float>{g, x.data_ptr(), y.data_ptr(), am.data_ptr()});
      cpu.max_pool2d_forward(g, x.data_ptr(), ry.data_ptr(), ram.data_ptr());
      INFO(h, "x", w);
      CHECK(am.to_vector() == ram.to_vector());
      const auto yv = y.to_vector(), ryv = ry.to_vector();
      for (std::size_t i = 0; i < yv.size(); ++i)
        if (!(yv[i] == ryv[i] || (std::isnan(yv[i]) && std::isnan(ryv[i])))) FAIL_CHECK("y[", i, "] = ", ryv[i], ", expected ", yv[i]);
      // Backward: the CPU must write every input element (its buffer starts at 42), the body
      // scatters into zeros.
      const std::int64_t n_in = g.n * g.c * h * w;
      auto gy = Tensor<float>::empty({n_out});
      for (std::int64_t i = 0; i < n_out; ++i) gy.data_ptr()[i] = static_cast<float>(i % 7) - 3.0f;
      auto gx = zeros<float>({n_in}), rgx = full<float>({n_in}, 42.0f);
      emulate(n_out, k::MaxPool2dBackward<float>{g, gy.data_ptr(), am.data_ptr(), gx.data_ptr()});
      cpu.max_pool2d_backward(g, gy.data_ptr(), am.data_ptr(), rgx.data_ptr());
      CHECK(gx.to_vector() == rgx.to_vector());
    }
}

TEST_CASE("kernels: random bodies draw the CPU's Philox stream") {
  std::vector<float> u(1001), ru(1001), nrm(1001), rn(1001);
  emulate(1001, k::RandomUniform<float>{u.data(), 42, 17, -1.0, 3.0});
  backend_for<float>(Device::cpu()).random_uniform(ru.data(), 1001, 42, 17, -1.0, 3.0);
  CHECK(u == ru);
  emulate(1001, k::RandomNormal<float>{nrm.data(), 42, 17, 0.5, 2.0});
  backend_for<float>(Device::cpu()).random_normal(rn.data(), 1001, 42, 17, 0.5, 2.0);
  CHECK(nrm == rn);
}

TEST_CASE("kernels: fused cross-entropy bodies against the composite formula") {
  // Per-row loss and gradient from log_softmax written out, weights and smoothing included.
  const std::int64_t rows = 6, cols = 5;
  const D x = randn_cpu({rows, cols}, 10);
  auto target = tensor<std::int64_t>({0, 4, -1, 2, 2, 1}, {rows});
  const D w = tensor<double>({0.5, 1.0, 2.0, 0.3, 1.7}, {cols});
  const double eps = 0.2;
  auto loss = D::empty({rows}), lse = D::empty({rows});
  emulate(rows, k::CrossEntropyForward<double>{x.data_ptr(), cols, target.data_ptr(), w.data_ptr(), -1, eps,
                                               loss.data_ptr(), lse.data_ptr()});
  const auto logp = log_softmax(x, 1).to_vector();
  const auto wv = w.to_vector();
  const auto tv = target.to_vector();
  std::vector<double> expect(rows, 0.0);
  for (std::int64_t i = 0; i < rows; ++i) {
    if (tv[i] == -1) continue;
    double smooth = 0;
    for (std::int64_t c = 0; c < cols; ++c) smooth -= wv[c] * logp[i * cols + c];
    expect[i] = -(1 - eps) * wv[tv[i]] * logp[i * cols + tv[i]] + eps / cols * smooth;
  }
  check_close(loss, expect, 1e-14, 1e-12, "loss");
  const D g = randn_cpu({rows}, 11), total = sum(w);
  auto grad = D::empty({rows, cols});
  emulate(rows * cols, k::CrossEntropyBackward<double>{x.data_ptr(), lse.data_ptr(), cols, target.data_ptr(),
                                                       w.data_ptr(), total.data_ptr(), -1, eps, g.data_ptr(),
                                                       grad.data_ptr()});
  // The gradient of sum(g * loss) through the composite ops.
  auto xl = x.detach().requires_grad_();
  auto lp = log_softmax(xl, 1);
  auto valid = ne(target, std::int64_t(-1));
  auto safe = where(valid, target, std::int64_t(0));
  auto nll = neg(gather(lp, 1, safe.unsqueeze(1)).squeeze(1));
  auto per_row = add(mul(mul(nll, index_select(w, 0, safe)), 1 - eps), mul(neg(sum(mul(lp, w), {1})), eps / cols));
  sum(mul(where(valid, per_row, 0.0), g)).backward();
  check_close(grad, xl.grad(), 1e-14, 1e-12, "gradient");
}

TEST_CASE("kernels: normalisation rows in place in NCHW, 4 lanes against one, with the per-row affine") {
  // batch_norm's layout: the rows are the channels of [N, C, HW]; HW = 7 leaves lanes idle.
  const std::int64_t N = 3, C = 5, HW = 7;
  const auto layout = k::RowLayout::channels(N, C, HW);
  const D x = randn_cpu({N, C, HW}, 20), w = randn_cpu({C}, 21), b = randn_cpu({C}, 22), g = randn_cpu({N, C, HW}, 23);
  auto run = [&](int lanes) {
    auto y = D::empty({N, C, HW}), mean = D::empty({C}), rstd = D::empty({C});
    auto dx = D::empty({N, C, HW}), dw = D::empty({C}), db = D::empty({C});
    emulate_rows(C, lanes, k::NormalizeRows<double>{x.data_ptr(), layout, true, 1e-5, w.data_ptr(), b.data_ptr(),
                                                    y.data_ptr(), mean.data_ptr(), rstd.data_ptr()});
    emulate_rows(C, lanes, k::NormalizeRowsBackward<double>{x.data_ptr(), mean.data_ptr(), rstd.data_ptr(),
                                                            w.data_ptr(), g.data_ptr(), layout, true, dx.data_ptr(),
                                                            dw.data_ptr(), db.data_ptr()});
    return std::vector<D>{y, mean, rstd, dx, dw, db};
  };
  const auto one = run(1), four = run(4);
  for (std::size_t i = 0; i < one.size(); ++i) check_close(four[i], one[i], 1e-13, 1e-12, "4 lanes vs 1");
  // The forward against the formula: per channel over (N, HW), biased variance.
  auto mean = x.mean({0, 2}, true), var = x.var({0, 2}, false, true);
  auto expect = add(mul(div(sub(x, mean), sqrt(add(var, 1e-5))), w.reshape({1, C, 1})), b.reshape({1, C, 1}));
  check_close(one[0], expect, 1e-12, 1e-12, "y");
  // The backward against autograd through that formula.
  auto xl = x.detach().requires_grad_(), wl = w.detach().requires_grad_(), bl = b.detach().requires_grad_();
  auto ml = xl.mean({0, 2}, true), vl = xl.var({0, 2}, false, true);
  sum(mul(add(mul(div(sub(xl, ml), sqrt(add(vl, 1e-5))), wl.reshape({1, C, 1})), bl.reshape({1, C, 1})), g)).backward();
  check_close(one[3], xl.grad(), 1e-11, 1e-11, "dx");
  check_close(one[4], wl.grad(), 1e-11, 1e-11, "dweight");
  check_close(one[5], bl.grad(), 1e-11, 1e-11, "dbias");

  // The matrix layout without centring (rms_norm's rows), 32 lanes on rows of 5.
  const auto mat = k::RowLayout::matrix(5);
  const D xm = randn_cpu({4, 5}, 24);
  auto y1 = D::empty({4, 5}), y32 = D::empty({4, 5}), m = D::empty({4}), r = D::empty({4});
  emulate_rows(4, 1, k::NormalizeRows<double>{xm.data_ptr(), mat, false, 1e-6, nullptr, nullptr, y1.data_ptr(),
                                              m.data_ptr(), r.data_ptr()});
  emulate_rows(4, 32, k::NormalizeRows<double>{xm.data_ptr(), mat, false, 1e-6, nullptr, nullptr, y32.data_ptr(),
                                               m.data_ptr(), r.data_ptr()});
  check_close(y32, y1, 1e-13, 1e-12, "rms rows, 32 lanes");
  check_close(y1, mul(xm, rsqrt(add(square(xm).mean({1}, true), 1e-6))), 1e-12, 1e-12, "rms rows");
}

TEST_CASE("kernels: the CPU's two-pass normalisation (norm_rows.hpp) equals the row bodies, in float far from zero") {
  // Float rows whose mean (1000) is far from zero against the three-pass double bodies on the same
  // values: the shifted one-pass sums must not cancel. Plane sizes cover whole vector pairs,
  // single vectors, narrower tails and many flushes of the float sums (4000 values a run).
  for (const std::int64_t HW : {1, 7, 17, 49, 50, 200, 4000}) {
    CAPTURE(HW);
    const std::int64_t N = 3, C = 4;
    const auto layout = k::RowLayout::channels(N, C, HW);
    const D xd = add(randn_cpu({N, C, HW}, 30), 1000.0), w = randn_cpu({C}, 31), b = randn_cpu({C}, 32),
            g = add(randn_cpu({N, C, HW}, 33), 0.5);
    const auto xf = xd.to<float>(), wf = w.to<float>(), bf = b.to<float>(), gf = g.to<float>();
    const D x = xf.to<double>(), gr = gf.to<double>();  // the float values, exactly, in double
    auto y = D::empty({N, C, HW}), mean = D::empty({C}), rstd = D::empty({C});
    auto dx = D::empty({N, C, HW}), dw = D::empty({C}), db = D::empty({C});
    emulate_rows(C, 1, k::NormalizeRows<double>{x.data_ptr(), layout, true, 1e-5, w.to<float>().to<double>().data_ptr(),
                                                b.to<float>().to<double>().data_ptr(), y.data_ptr(), mean.data_ptr(),
                                                rstd.data_ptr()});
    const D wr = wf.to<double>();
    using F = Tensor<float>;
    auto yf = F::empty({N, C, HW}), mf = F::empty({C}), rf = F::empty({C});
    auto dxf = F::empty({N, C, HW}), dwf = F::empty({C}), dbf = F::empty({C});
    const k::NormalizeRows<float> fwd{xf.data_ptr(), layout, true, 1e-5, wf.data_ptr(), bf.data_ptr(),
                                      yf.data_ptr(), mf.data_ptr(), rf.data_ptr()};
    const k::NormalizeRowsBackward<float> bwd{xf.data_ptr(), mf.data_ptr(), rf.data_ptr(), wf.data_ptr(),
                                              gf.data_ptr(), layout, true, dxf.data_ptr(), dwf.data_ptr(),
                                              dbf.data_ptr()};
    cpu::norm::forward(fwd, C);
    cpu::norm::backward(bwd, C);
    // x's float spacing at 1000 is 6e-5: the float mean differs from the double one by that much.
    check_close(mf.to<double>(), mean, 1e-4, 1e-7, "mean");
    check_close(rf.to<double>(), rstd, 1e-6, 1e-4, "rstd");
    check_close(yf.to<double>(), y, 5e-4, 1e-4, "y");
    // The backward of a float forward uses its float mean (as the bodies do); the double
    // reference is given the same statistics, so what is left is the float arithmetic.
    const D ms = mf.to<double>(), rs = rf.to<double>();
    emulate_rows(C, 1, k::NormalizeRowsBackward<double>{x.data_ptr(), ms.data_ptr(), rs.data_ptr(), wr.data_ptr(),
                                                        gr.data_ptr(), layout, true, dx.data_ptr(), dw.data_ptr(),
                                                        db.data_ptr()});
    check_close(dbf.to<double>(), db, 1e-4, 1e-5, "dbias");
    check_close(dwf.to<double>(), dw, 1e-4, 1e-5, "dweight");
    check_close(dxf.to<double>(), dx, 1e-5, 1e-4, "dx");
    // The double instantiation agrees with the bodies to rounding.
    auto y2 = D::empty({N, C, HW}), m2 = D::empty({C}), r2 = D::empty({C});
    auto dx2 = D::empty({N, C, HW}), dw2 = D::empty({C}), db2 = D::empty({C});
    cpu::norm::forward(k::NormalizeRows<double>{x.data_ptr(), layout, true, 1e-5, wr.data_ptr(),
                                                bf.to<double>().data_ptr(), y2.data_ptr(), m2.data_ptr(),
                                                r2.data_ptr()}, C);
    cpu::norm::backward(k::NormalizeRowsBackward<double>{x.data_ptr(), m2.data_ptr(), r2.data_ptr(), wr.data_ptr(),
                                                         gr.data_ptr(), layout, true, dx2.data_ptr(),
                                                         dw2.data_ptr(), db2.data_ptr()}, C);
    check_close(y2, y, 1e-9, 1e-9, "y, double");
    check_close(m2, mean, 1e-9, 1e-12, "mean, double");
    auto dx3 = D::empty({N, C, HW}), dw3 = D::empty({C}), db3 = D::empty({C});
    emulate_rows(C, 1, k::NormalizeRowsBackward<double>{x.data_ptr(), m2.data_ptr(), r2.data_ptr(), wr.data_ptr(),
                                                        gr.data_ptr(), layout, true, dx3.data_ptr(), dw3.data_ptr(),
                                                        db3.data_ptr()});
    check_close(dx2, dx3, 1e-9, 1e-9, "dx, double");
    check_close(dw2, dw3, 1e-8, 1e-9, "dweight, double");
  }
  // Without centring (rms_norm's rows of a matrix), rows of 37: the sums are unshifted.
  const D xm = randn_cpu({6, 37}, 34);
  const auto xmf = xm.to<float>();
  auto yf = Tensor<float>::empty({6, 37}), mf = Tensor<float>::empty({6}), rf = Tensor<float>::empty({6});
  cpu::norm::forward(k::NormalizeRows<float>{xmf.data_ptr(), k::RowLayout::matrix(37), false, 1e-6, nullptr, nullptr,
                                             yf.data_ptr(), mf.data_ptr(), rf.data_ptr()}, 6);
  const D xr = xmf.to<double>();
  check_close(yf.to<double>(), mul(xr, rsqrt(add(square(xr).mean({1}, true), 1e-6))), 1e-6, 1e-5, "rms rows");
}

namespace {
// deinterleave<m> then interleave<m> over n groups: every value where it belongs, and back.
template <int m, class T>
void check_interleave(std::int64_t n) {
  std::vector<T> in(static_cast<std::size_t>(n * m)), back(in.size(), T(-1));
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = T(i);
  std::vector<std::vector<T>> rows(m, std::vector<T>(static_cast<std::size_t>(n), T(-1)));
  T* out[m];
  const T* rin[m];
  for (int p = 0; p < m; ++p) out[p] = rows[p].data(), rin[p] = rows[p].data();
  ligm::cpu::deinterleave<m>(in.data(), n, out);
  for (std::int64_t k = 0; k < n; ++k)
    for (int p = 0; p < m; ++p) REQUIRE(rows[p][k] == in[k * m + p]);
  ligm::cpu::interleave<m>(rin, n, back.data());
  CHECK(back == in);
}
}  // namespace

// The tests build for the baseline instruction set (16-byte vectors here); the backend's wider
// vectors run these functions in the Winograd and strided convolution tests.
TEST_CASE("kernels: the CPU's vector deinterleave and interleave, every width from scalars to overlapping blocks") {
  for (std::int64_t n = 0; n <= 70; ++n) {
    INFO("n " << n);
    check_interleave<2, float>(n);
    check_interleave<4, float>(n);
    check_interleave<2, double>(n);
    check_interleave<4, double>(n);
  }
}

// every_second(in, n, out): out[k] = in[2 k] for every n up to a few vectors (each vector width
// and the scalar tail), writing exactly n values.
template <class T>
void check_every_second(std::int64_t n) {
  std::vector<T> in(static_cast<std::size_t>(2 * n + 1)), out(static_cast<std::size_t>(n + 3), T(-7));
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = T(i) + T(0.5);
  cpu::every_second(in.data(), n, out.data());
  for (std::int64_t k = 0; k < n; ++k) CHECK(out[k] == in[2 * k]);
  for (std::int64_t k = n; k < n + 3; ++k) CHECK(out[k] == T(-7));
}
TEST_CASE("kernels: the CPU's vector gather of every second value, every width") {
  for (std::int64_t n = 0; n <= 70; ++n) {
    INFO("n " << n);
    check_every_second<float>(n);
    check_every_second<double>(n);
  }
}

// batch_norm_relu's bodies: the device body (4 lanes) and the CPU's two vectorised passes agree
// with each other and with batch norm followed by a ReLU (the gradient masked where y is 0).
TEST_CASE("kernels: normalisation rows with the fused ReLU, device body against the CPU passes") {
  const std::int64_t N = 4, C = 3, HW = 37;
  const auto layout = k::RowLayout::channels(N, C, HW);
  const D x = randn_cpu({N, C, HW}, 30), w = randn_cpu({C}, 31), b = randn_cpu({C}, 32), g = randn_cpu({N, C, HW}, 33);
  auto run = [&](bool device, bool relu) {
    auto y = D::empty({N, C, HW}), mean = D::empty({C}), rstd = D::empty({C});
    auto dx = D::empty({N, C, HW}), dw = D::empty({C}), db = D::empty({C});
    auto gin = relu ? g : g.clone();
    const k::NormalizeRows<double> fwd{x.data_ptr(), layout, true, 1e-5, w.data_ptr(), b.data_ptr(),
                                       y.data_ptr(), mean.data_ptr(), rstd.data_ptr(), relu};
    if (device) emulate_rows(C, 4, fwd);
    else cpu::norm::forward(fwd, C);
    if (!relu) {  // the unfused reference: a separate ReLU, its gradient masked by its input
      y = ligm::relu(y);
      gin = where(gt(y, 0.0), g, 0.0);
    }
    const k::NormalizeRowsBackward<double> bwd{x.data_ptr(), mean.data_ptr(), rstd.data_ptr(), w.data_ptr(),
                                               gin.data_ptr(), layout, true, dx.data_ptr(), dw.data_ptr(),
                                               db.data_ptr(), relu ? y.data_ptr() : nullptr};
    if (device) emulate_rows(C, 4, bwd);
    else cpu::norm::backward(bwd, C);
    return std::vector<D>{y, dx, dw, db};
  };
  const auto device = run(true, true), host = run(false, true), reference = run(false, false);
  CHECK(sum(eq(device[0], 0.0)).item() > 0);  // the ReLU has something to cut
  for (std::size_t i = 0; i < device.size(); ++i) {
    check_close(device[i], host[i], 1e-13, 1e-12, "device body vs CPU passes");
    check_close(host[i], reference[i], 1e-13, 1e-12, "fused vs BN then ReLU");
  }
}

// The CPU's fused ReLU mask as bits (kernels::ReluBits, written by the forward, read by the
// backward in place of y): the same bits as masking by y, in float and double, for runs whose
// values fill whole words, part of one, or one value a word, one image (row by row) or several
// (in memory order), with and without the residual. Every word the runs own is written.
template <class T>
void check_relu_bits() {
  using Tt = Tensor<T>;
  for (const std::int64_t N : {1, 3})
    for (const std::int64_t HW : {1, 7, 16, 20, 37, 49})
      for (const bool residual : {false, true}) {
        INFO("N " << N << " HW " << HW << (residual ? ", residual" : "") << " " << sizeof(T));
        const std::int64_t C = 3;
        const auto layout = k::RowLayout::channels(N, C, HW);
        const Tt x = randn_cpu({N, C, HW}, 70).to<T>(), r = randn_cpu({N, C, HW}, 71).to<T>(),
                 w = randn_cpu({C}, 72).to<T>(), b = randn_cpu({C}, 73).to<T>(), g = randn_cpu({N, C, HW}, 74).to<T>();
        auto run = [&](bool bits) {
          auto y = Tt::empty({N, C, HW}), mean = Tt::empty({C}), rstd = Tt::empty({C});
          auto dx = Tt::empty({N, C, HW}), dw = Tt::empty({C}), db = Tt::empty({C}), dr = Tt::empty({N, C, HW});
          std::vector<std::uint16_t> mask(static_cast<std::size_t>(k::ReluBits::words(layout, C)), 0xdead);
          k::NormalizeRows<T> fwd{x.data_ptr(), layout, true, 1e-5, w.data_ptr(), b.data_ptr(),
                                  y.data_ptr(), mean.data_ptr(), rstd.data_ptr(), true};
          if (residual) fwd.residual = r.data_ptr();
          if (bits) fwd.relu_bits = mask.data();
          cpu::norm::forward(fwd, C);
          k::NormalizeRowsBackward<T> bwd{x.data_ptr(), mean.data_ptr(), rstd.data_ptr(), w.data_ptr(),
                                          g.data_ptr(), layout, true, dx.data_ptr(), dw.data_ptr(),
                                          db.data_ptr(), bits ? nullptr : y.data_ptr()};
          if (residual) bwd.dresidual = dr.data_ptr();
          if (bits) bwd.relu_bits = mask.data();
          cpu::norm::backward(bwd, C);
          if (bits) {  // bit k of run q's words is y > 0 there, the bits past the run 0
            const auto yv = y.to_vector();
            const std::int64_t per = k::ReluBits::per_run(HW);
            for (std::int64_t q = 0; q < N * C; ++q)
              for (std::int64_t kk = 0; kk < per * 16; ++kk) {
                const bool on = (mask[static_cast<std::size_t>(q * per + kk / 16)] >> (kk % 16)) & 1;
                REQUIRE(on == (kk < HW && yv[static_cast<std::size_t>(q * HW + kk)] > T(0)));
              }
          }
          return std::vector<std::vector<T>>{y.to_vector(), dx.to_vector(), dw.to_vector(), db.to_vector(),
                                             residual ? dr.to_vector() : std::vector<T>{}};
        };
        CHECK(run(true) == run(false));
      }
}
TEST_CASE("kernels: the CPU's fused ReLU mask as bits gives the bits of masking by y") {
  CHECK(k::ReluBits::per_run(16) == 1);
  CHECK(k::ReluBits::per_run(17) == 2);
  CHECK(k::ReluBits::words(k::RowLayout::channels(3, 4, 49), 4) == 3 * 4 * 4);
  check_relu_bits<float>();
  check_relu_bits<double>();
}

// Batch norm's rows on the device (kernels::channel_passes: partial sums by a warp per (part,
// channel), a thread per channel to finish, a thread per element to apply), emulated with 4
// lanes, against the CPU's passes: forward and backward, with and without the ReLU and the
// residual, the split the device takes and one of short parts (the last one shorter).
TEST_CASE("kernels: batch norm's channels as the device's three passes, against the CPU passes") {
  const std::int64_t N = 37, C = 3, HW = 21;
  const auto layout = k::RowLayout::channels(N, C, HW);
  const D x = add(randn_cpu({N, C, HW}, 40), 3.0), r = randn_cpu({N, C, HW}, 41), w = randn_cpu({C}, 42),
          b = randn_cpu({C}, 43), g = randn_cpu({N, C, HW}, 44);
  CHECK(k::ChannelSplit::applies(layout, C));
  CHECK(!k::ChannelSplit::applies(k::RowLayout::matrix(HW), C));
  const auto natural = k::ChannelSplit::of(layout, C);
  CHECK(natural.parts * natural.per >= N);
  // About 4096 warps, no empty part: ResNet-small's 32 and 128 channels of 64 images, and
  // channels too many for more than one part.
  auto split = [](std::int64_t n, std::int64_t c) {
    const auto s = k::ChannelSplit::of(k::RowLayout::channels(n, c, 49), c);
    return std::pair{s.parts, s.per};
  };
  CHECK(split(64, 32) == std::pair<std::int64_t, std::int64_t>{64, 1});
  CHECK(split(64, 128) == std::pair<std::int64_t, std::int64_t>{32, 2});
  CHECK(split(50, 100) == std::pair<std::int64_t, std::int64_t>{25, 2});
  CHECK(split(64, 5000) == std::pair<std::int64_t, std::int64_t>{1, 64});
  for (const auto& split : {natural, k::ChannelSplit{10, 4}, k::ChannelSplit{1, N}}) {
    for (const bool relu : {false, true}) {
      for (const bool residual : {false, true}) {
        INFO("parts " << split.parts << " of " << split.per << (relu ? ", ReLU" : "") << (residual ? ", residual" : ""));
        auto run = [&](bool device) {
          auto y = D::empty({N, C, HW}), mean = D::empty({C}), rstd = D::empty({C});
          auto dx = D::empty({N, C, HW}), dw = D::empty({C}), db = D::empty({C}), dr = D::empty({N, C, HW});
          k::NormalizeRows<double> fwd{x.data_ptr(), layout, true, 1e-5, w.data_ptr(), b.data_ptr(),
                                       y.data_ptr(), mean.data_ptr(), rstd.data_ptr(), relu};
          if (residual) fwd.residual = r.data_ptr();
          k::NormalizeRowsBackward<double> bwd{x.data_ptr(), mean.data_ptr(), rstd.data_ptr(), w.data_ptr(),
                                               g.data_ptr(), layout, true, dx.data_ptr(), dw.data_ptr(),
                                               db.data_ptr(), relu ? y.data_ptr() : nullptr};
          if (residual) bwd.dresidual = dr.data_ptr();
          if (device) {
            std::vector<k::Pair<double>> partial(static_cast<std::size_t>(split.parts * C));
            std::vector<double> coef(static_cast<std::size_t>(4 * C));
            auto rows = [](std::int64_t n, const auto& body) { emulate_rows(n, 4, body); };
            auto each = [](std::int64_t n, const auto& body) {
              for (std::int64_t i = 0; i < n; ++i) body(i);
            };
            k::channel_passes(fwd, C, split, partial.data(), coef.data(), rows, each, true);
            k::channel_passes(bwd, C, split, partial.data(), coef.data(), rows, each, true);
          } else {
            cpu::norm::forward(fwd, C);
            cpu::norm::backward(bwd, C);
          }
          return residual ? std::vector<D>{y, mean, rstd, dx, dw, db, dr} : std::vector<D>{y, mean, rstd, dx, dw, db};
        };
        const auto device = run(true), host = run(false);
        for (std::size_t i = 0; i < device.size(); ++i) check_close(device[i], host[i], 1e-12, 1e-11, "device passes vs CPU");
      }
    }
  }
}

// With a residual (batch_norm_add_relu's bodies): y = relu(bn(x) + r) and the residual's
// gradient (g masked by y) from the device body (4 lanes) and from the CPU passes, against batch
// norm, an add and a ReLU; also without the ReLU (y = bn(x) + r, dr = g), and the residual's
// gradient alone (no dx asked for).
TEST_CASE("kernels: normalisation rows with a residual, device body against the CPU passes") {
  const std::int64_t N = 3, C = 4, HW = 45;
  const auto layout = k::RowLayout::channels(N, C, HW);
  const D x = randn_cpu({N, C, HW}, 34), r = randn_cpu({N, C, HW}, 35), w = randn_cpu({C}, 36), b = randn_cpu({C}, 37),
          g = randn_cpu({N, C, HW}, 38);
  for (const bool relu : {true, false}) {
    auto run = [&](int how, bool want_dx) {  // 0 device body, 1 CPU passes, 2 reference
      auto y = D::empty({N, C, HW}), mean = D::empty({C}), rstd = D::empty({C});
      auto dx = D::empty({N, C, HW}), dw = D::empty({C}), db = D::empty({C}), dr = D::empty({N, C, HW});
      k::NormalizeRows<double> fwd{x.data_ptr(), layout, true, 1e-5, w.data_ptr(), b.data_ptr(),
                                   y.data_ptr(), mean.data_ptr(), rstd.data_ptr(), relu && how != 2};
      if (how != 2) fwd.residual = r.data_ptr();
      if (how == 0) emulate_rows(C, 4, fwd);
      else cpu::norm::forward(fwd, C);
      auto gin = g.clone();
      if (how == 2) {  // the unfused reference
        y = add(y, r);
        if (relu) y = ligm::relu(y), gin = where(gt(y, 0.0), g, 0.0);
        dr = gin.clone();
      }
      k::NormalizeRowsBackward<double> bwd{x.data_ptr(), mean.data_ptr(), rstd.data_ptr(), w.data_ptr(),
                                           gin.data_ptr(), layout, true, want_dx ? dx.data_ptr() : nullptr,
                                           dw.data_ptr(), db.data_ptr(), relu && how != 2 ? y.data_ptr() : nullptr};
      if (how != 2) bwd.dresidual = dr.data_ptr();
      if (how == 0) emulate_rows(C, 4, bwd);
      else cpu::norm::backward(bwd, C);
      return want_dx ? std::vector<D>{y, dx, dw, db, dr} : std::vector<D>{y, dw, db, dr};
    };
    INFO((relu ? "with the ReLU" : "without the ReLU"));
    for (const bool want_dx : {true, false}) {
      const auto device = run(0, want_dx), host = run(1, want_dx), reference = run(2, want_dx);
      if (relu) CHECK(sum(eq(device[0], 0.0)).item() > 0);
      for (std::size_t i = 0; i < device.size(); ++i) {
        check_close(device[i], host[i], 1e-13, 1e-12, "device body vs CPU passes");
        check_close(host[i], reference[i], 1e-13, 1e-12, "fused vs BN, add, ReLU");
      }
    }
  }
}
