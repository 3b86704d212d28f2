// ctu, the Curvature Tuning unit: the spec's invariants (shared/specs/curvature_tuning.md
// section 9) and float64 gradchecks for x, beta and c, shared and per channel.
#include <cmath>

#include <ligm/methods/curvature/steering.hpp>
#include <ligm/models/models.hpp>

#include "helpers.hpp"

using namespace th;
using D = Tensor<double>;
using In = std::vector<D>;

namespace {

// The official (literal) form with PyTorch's softplus threshold 20, in double on the host.
double literal(double x, double beta, double c) {
  const double s = 1 - beta + 1e-6, u = x / s, z = beta * u;
  const double softplus = u > 20 ? u : std::log1p(std::exp(u));
  return c * x / (1 + std::exp(-z)) + (1 - c) * s * softplus;
}

D scalar(double v) { return full<double>({1}, v); }

}  // namespace

TEST_CASE("ctu: beta = 1 is ReLU bit for bit; just below 1 it is within (1 - c) eps ln 2") {
  Generator g(1);
  auto x = mul(randn<float>({1000}, g), 3.0f);
  CHECK(ctu(x, full<float>({1}, 1.0f), full<float>({1}, 0.5f)).to_vector() == relu(x).to_vector());
  auto xd = mul(randn<double>({1000}, g), 3.0);
  for (double c : {0.0, 0.5, 0.9}) {
    auto y = ctu(xd, scalar(1 - 1e-9), scalar(c));
    CHECK(abs(sub(y, relu(xd))).max().item() <= (1 - c) * 1e-6 * std::log(2.0) + 1e-12);
  }
}

TEST_CASE("ctu: closed forms at beta = 0 and c in {0, 1}") {
  auto x = tensor<double>({-2.0, 0.0, 2.0}, {3});
  auto y = ctu(x, scalar(0.0), scalar(0.5)).to_vector();
  CHECK(y[0] == doctest::Approx(-0.43654).epsilon(1e-5));
  CHECK(y[1] == doctest::Approx(0.34657).epsilon(1e-5));
  CHECK(y[2] == doctest::Approx(1.56346).epsilon(1e-5));
  Generator g(2);
  auto xs = mul(randn<double>({200}, g), 2.0);
  for (double beta : {0.0, 0.4, 0.9}) {
    const double s = 1 - beta + 1e-6;
    // c = 1: beta-SiLU x sigmoid(beta x / s); c = 0: s softplus(x / s).
    check_close(ctu(xs, scalar(beta), scalar(1.0)), mul(xs, sigmoid(mul(xs, beta / s))).to_vector(), 1e-10, 1e-10);
    check_close(ctu(xs, scalar(beta), scalar(0.0)), mul(softplus(div(xs, s)), s).to_vector(), 1e-10, 1e-10);
  }
}

TEST_CASE("ctu: the stable form equals the literal one; nothing overflows at |x| = 1e4 and beta -> 1") {
  Generator g(3);
  auto x = mul(randn<double>({2000}, g), 3.0);
  const auto xv = x.to_vector();
  for (double beta : {0.0, 0.3, 0.7, 0.9, 0.99, 0.999})
    for (double c : {0.2, 0.5, 0.9}) {
      const auto y = ctu(x, scalar(beta), scalar(c)).to_vector();
      double worst = 0;
      for (std::size_t i = 0; i < xv.size(); ++i) worst = std::max(worst, std::fabs(y[i] - literal(xv[i], beta, c)));
      CAPTURE(beta);
      CAPTURE(c);
      CHECK(worst <= 1e-9);
    }
  auto big = tensor<float>({-1e4f, -30.0f, -1e-3f, 0.0f, 1e-3f, 30.0f, 1e4f}, {7}).requires_grad_(true);
  for (float beta : {0.0f, 0.5f, 0.999f, 1.0f - 1e-7f}) {
    auto b = full<float>({1}, beta).requires_grad_(true), c = full<float>({1}, 0.5f).requires_grad_(true);
    auto y = ctu(big, b, c);
    sum(y).backward();
    for (auto v : y.to_vector()) CHECK(std::isfinite(v));
    for (auto v : big.grad().to_vector()) CHECK(std::isfinite(v));
    CHECK(std::isfinite(b.grad().item()));
    CHECK(std::isfinite(c.grad().item()));
    big.set_grad({});
  }
}

TEST_CASE("ctu: the distance to ReLU shrinks as beta grows (2.9e-3 at 0.99, 5.3e-5 at 0.999)") {
  auto x = linspace<double>(-0.2, 0.2, 40001);
  auto sup = [&](double beta) { return abs(sub(ctu(x, scalar(beta), scalar(0.5)), relu(x))).max().item(); };
  double last = 1e9;
  for (double beta : {0.5, 0.7, 0.9, 0.99, 0.999}) {
    const double d = sup(beta);
    CHECK(d < last);
    last = d;
  }
  CHECK(sup(0.99) == doctest::Approx(2.9e-3).epsilon(0.05));
  CHECK(sup(0.999) == doctest::Approx(5.3e-5).epsilon(0.05));
}

TEST_CASE("gradcheck: ctu in x, beta and c, shared and per channel, and through the sigmoid parameters") {
  // x away from 0 is not needed: CTU is smooth for beta < 1.
  check_grad([](const In& in) { return ctu(in[0], in[1], in[2]); },
             {leaf({3, 4}, 1), leaf({1}, 2, 0.2, 0.9), leaf({1}, 3, 0.1, 0.9)});
  check_grad([](const In& in) { return ctu(in[0], in[1], in[2], 1); },  // NCHW, per channel
             {leaf({2, 3, 2, 2}, 4), leaf({3}, 5, 0.1, 0.95), leaf({3}, 6, 0.0, 1.0)});
  check_grad([](const In& in) { return ctu(in[0], in[1], in[2], -1); },  // [B, L, D], last dim
             {leaf({2, 3, 4}, 7), leaf({4}, 8, 0.1, 0.95), leaf({4}, 9, 0.0, 1.0)});
  check_grad([](const In& in) { return ctu(in[0], sigmoid(in[1]), sigmoid(in[2]), 1); },  // T-CT's rho
             {leaf({4, 3}, 10), leaf({3}, 11), leaf({3}, 12)});
  check_grad([](const In& in) { return ctu(mul(in[0], 4.0), in[1], in[2]); },  // larger |x|
             {leaf({20}, 13), leaf({1}, 14, 0.5, 0.99), leaf({1}, 15, 0.2, 0.8)});
}

TEST_CASE("ctu: bad beta and c are refused with the shapes") {
  auto x = zeros<double>({2, 3});
  check_error([&] { ctu(x, zeros<double>({2}), zeros<double>({2})); }, {"ctu", "dim 1", "[2, 3]"});
  check_error([&] { ctu(x, zeros<double>({3}), zeros<double>({1})); }, {"ctu", "same number"});
  check_error([&] { ctu(zeros<std::int64_t>({2}), zeros<std::int64_t>({1}), zeros<std::int64_t>({1})); }, {"ctu"});
}

TEST_CASE("nn::CTU: beta and c behind a sigmoid, shared or per channel; beta = 1 is ReLU") {
  nn::CTU<double> shared(0.8, 0.5);
  CHECK(shared.rho_beta.shape() == Shape{1});
  CHECK(shared.beta().item() == doctest::Approx(0.8));
  CHECK(shared.c().item() == doctest::Approx(0.5));
  auto x = leaf({4, 3}, 20);
  check_close(shared(x), ctu(x, scalar(0.8), scalar(0.5)).to_vector(), 1e-12, 1e-12);
  shared.set_beta(1.0);
  CHECK(shared(x).to_vector() == relu(x).to_vector());
  nn::CTU<double> per(0.8, 0.5, 3, 1);  // T-CT: 2 x 3 parameters
  CHECK(per.num_parameters() == 6);
  auto img = leaf({2, 3, 2, 2}, 21);
  sum(per(img)).backward();
  CHECK(per.rho_beta.grad().shape() == Shape{3});
  CHECK(per.rho_c.grad().shape() == Shape{3});
}

TEST_CASE("curvature steering: every ReLU module swapped for one shared unit, beta = 1 bit-exact, restored, training-free") {
  manual_seed(1);
  auto net = nn::Sequential<float>(nn::Linear<float>(6, 8), nn::ReLU<float>(), nn::Linear<float>(8, 8), nn::ReLU<float>(),
                                   nn::Linear<float>(8, 3));
  auto x = randn<float>({5, 6});
  const auto relu_logits = net(x).to_vector();
  auto weights = net.state_dict();
  {
    methods::curvature::Steering<float> ct(net);
    CHECK(ct.sites() == 2);
    CHECK(net.num_parameters(true) == 6 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3);  // no trainable parameter added
    CHECK(net(x).to_vector() == relu_logits);                          // beta = 1: ReLU, bit for bit
    ct.set_beta(0.7);
    const auto smooth = net(x).to_vector();
    CHECK(smooth != relu_logits);
    ct.restore();
    CHECK(net(x).to_vector() == relu_logits);
    ct.set_beta(0.5);  // the unit is out of the model now
    CHECK(net(x).to_vector() == relu_logits);
  }
  for (auto& [k, v] : net.state_dict()) CHECK(v.to_vector() == weights.at(k).to_vector());  // nothing moved
  // A model that calls a typed ReLU member twice (forwarded through the surgery): both sites
  // share the unit; the destructor restores.
  struct Net : nn::Module<float> {
    Net() {
      fc1 = register_module("fc1", std::make_shared<nn::Linear<float>>(6, 8));
      fc2 = register_module("fc2", std::make_shared<nn::Linear<float>>(8, 3));
      act = register_module("act", std::make_shared<nn::ReLU<float>>());
    }
    Tensor<float> forward(const Tensor<float>& x) override { return (*fc2)((*act)((*fc1)((*act)(x)))); }
    std::shared_ptr<nn::Linear<float>> fc1, fc2;
    std::shared_ptr<nn::ReLU<float>> act;
  } typed;
  const auto before = typed(x).to_vector();
  {
    methods::curvature::Steering<float> ct(typed, 0.6);
    CHECK(ct.sites() == 1);
    CHECK(typed(x).to_vector() != before);
    ct.set_beta(1.0);
    CHECK(typed(x).to_vector() == before);
    ct.set_beta(0.6);
  }
  CHECK(typed(x).to_vector() == before);
  // The MLP model of models/ (a Sequential): two sites.
  models::MLPOptions mo;
  mo.hidden = {8, 8};
  models::MLP<float> mlp(6, 3, mo);
  methods::curvature::Steering<float> ct(mlp, 0.6);
  CHECK(ct.sites() == 2);
}

TEST_CASE("curvature: trainable CT puts per-channel units where the ReLUs were; 2 parameters per channel") {
  manual_seed(2);
  models::SmallCNNOptions so;
  auto cnn = models::SmallCNN<float>(1, 10, so);
  auto x = randn<float>({2, 1, 28, 28});
  const auto before = cnn(x).to_vector();
  const auto n_before = cnn.num_parameters();
  auto units = methods::curvature::make_trainable(cnn, x);
  std::int64_t channels = 0;
  for (auto& u : units) channels += u->channels;
  CHECK(units.size() >= 3);
  CHECK(cnn.num_parameters() == n_before + 2 * channels);
  for (auto& u : units) u->set_beta(1.0);
  CHECK(cnn(x).to_vector() == before);  // beta = 1 everywhere: the ReLU network, bit for bit
  for (auto& u : units) u->set_beta(0.8);
  cnn.requires_grad_(false);
  for (auto& u : units) u->requires_grad_(true);
  sum(cnn(x)).backward();
  for (auto& u : units) {
    CHECK(u->rho_beta.grad().defined());
    CHECK(abs(u->rho_beta.grad()).max().item() > 0);
  }
}
