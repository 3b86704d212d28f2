// Autograd engine: accumulation, retain_graph, no_grad, detach, hooks, graph shapes.
#include "helpers.hpp"

using namespace th;

TEST_CASE("micrograd's README expression: value and gradients") {
  auto a = scalar_tensor<double>(-4.0).requires_grad_();
  auto b = scalar_tensor<double>(2.0).requires_grad_();
  auto c = a + b;
  auto d = a * b + pow(b, 3.0);
  c = c + (c + 1.0);
  c = c + (1.0 + c + (-a));
  d = d + (d * 2.0 + relu(b + a));
  d = d + (3.0 * d + relu(b - a));
  auto e = c - d;
  auto f = pow(e, 2.0);
  auto g = f / 2.0;
  g = g + 10.0 / f;
  CHECK(g.item() == doctest::Approx(24.7041).epsilon(1e-5));
  g.backward();
  CHECK(a.grad().item() == doctest::Approx(138.8338).epsilon(1e-5));
  CHECK(b.grad().item() == doctest::Approx(645.5773).epsilon(1e-5));
}

TEST_CASE("gradients accumulate across backward calls and over shared inputs") {
  auto x = leaf({3}, 1);
  auto y = (x * x).sum();  // dy/dx = 2x
  y.backward();
  auto g1 = x.grad().to_vector();
  auto z = (x * 3.0).sum();
  z.backward();
  auto g2 = x.grad().to_vector();
  auto xv = x.to_vector();
  for (int i = 0; i < 3; ++i) {
    CHECK(g1[i] == doctest::Approx(2 * xv[i]));
    CHECK(g2[i] == doctest::Approx(2 * xv[i] + 3));
  }
  // A diamond: x feeds two branches that meet again.
  auto w = leaf({2}, 2);
  auto a = w * 2.0, b = w * 5.0;
  (a + b).sum().backward();
  CHECK(w.grad().to_vector() == std::vector<double>{7, 7});
}

TEST_CASE("gradients meeting at a node are summed in place only into buffers nobody else holds") {
  // A hook keeps the gradient that the add passes through unchanged to `a`; the other branch's
  // gradient meets it at `a`. Whichever arrives first, the kept tensor must not change.
  auto x = leaf({3}, 3);
  auto a = x * 1.0;
  auto b = a + 0.0;
  Tensor<double> kept;
  b.register_hook([&](const Tensor<double>& g) { kept = g; return Tensor<double>(); });
  ((b * 2.0).sum() + (a * 3.0).sum()).backward();
  CHECK(kept.to_vector() == std::vector<double>{2, 2, 2});
  CHECK(x.grad().to_vector() == std::vector<double>{5, 5, 5});
  // Three uses of one input through disjoint slices, and one rule returning one tensor twice.
  auto w = leaf({3, 2}, 4);
  auto s = w.select(0, 0) * 1.0 + w.select(0, 1) * 2.0 + w.select(0, 2) * 3.0;
  auto u = w * 1.0;
  ((u + u).sum() + s.sum()).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{3, 3, 4, 4, 5, 5});
}

TEST_CASE("slices pass their gradient into their part of the input's gradient") {
  // q, k, v of a packed [N, 3, D] tensor, a strided slice, a slice of a slice, overlapping
  // slices and a slice whose gradient meets a full-size one: each input gradient summed exactly.
  auto x = leaf({2, 3, 4}, 5);
  auto q = x.select(1, 0), k = x.select(1, 1), v = x.select(1, 2);
  auto every_other = x.slice(2, 0, 4, 2);                 // columns 0 and 2
  auto inner = x.narrow(2, 1, 3).narrow(2, 1, 1);         // column 2
  auto overlap = x.narrow(0, 0, 2).narrow(2, 0, 2);       // columns 0 and 1
  auto y = (q * 1.0).sum() + (k * 2.0).sum() + (v * 3.0).sum() + (every_other * 10.0).sum() +
           (inner * 100.0).sum() + (overlap * 1000.0).sum() + (x * 0.5).sum();
  y.backward();
  std::vector<double> expect;
  for (int n = 0; n < 2; ++n)
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 4; ++c)
        expect.push_back(0.5 + (r + 1) + (c % 2 == 0 ? 10 : 0) + (c == 2 ? 100 : 0) + (c < 2 ? 1000 : 0));
  CHECK(x.grad().to_vector() == expect);
  // A slice of a non-leaf: the gradient reaches the leaf through the slice and the product.
  auto w = leaf({4, 3}, 6);
  auto m = w * 2.0;
  (m.narrow(0, 1, 2) * 3.0).sum().backward();
  CHECK(w.grad().to_vector() == std::vector<double>{0, 0, 0, 6, 6, 6, 6, 6, 6, 0, 0, 0});
  check_grad([](const std::vector<Tensor<double>>& in) {
    auto p = in[0].reshape({2, 3, 5});
    return p.select(1, 0) * p.select(1, 1) + p.select(1, 2).slice(1, 1, 5, 2).sum();
  }, {leaf({2, 15}, 7)});
}

TEST_CASE("retain_graph allows a second backward; without it the error is clear") {
  auto x = leaf({2}, 3);
  auto y = exp(x).sum();
  y.backward({}, true);
  y.backward();
  auto e = exp(x.detach()).to_vector();
  CHECK(x.grad().to_vector()[0] == doctest::Approx(2 * e[0]));
  check_error([&] { y.backward(); }, {"backward", "second time", "retain_graph"});
}

TEST_CASE("NoGradGuard, detach and requires_grad") {
  auto x = leaf({2}, 4);
  {
    NoGradGuard g;
    auto y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  auto y = x * 2.0;
  CHECK(y.requires_grad());
  CHECK_FALSE(y.is_leaf());
  CHECK(y.grad_fn()->name == "MulBackward");
  auto d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.storage() == y.storage());
  check_error([&] { d.sum().backward(); }, {"backward", "does not require grad"});
  check_error([] { zeros<std::int64_t>({2}).requires_grad_(); }, {"requires_grad_", "int64"});
  check_error([&] { y.requires_grad_(false); }, {"requires_grad_", "non-leaf"});
}

TEST_CASE("hooks can read and rewrite gradients; retain_grad keeps non-leaf grads") {
  auto x = leaf({3}, 5);
  auto y = x * 2.0;
  Tensor<double> seen;
  y.register_hook([&](const Tensor<double>& g) {
    seen = g.clone();
    return g * 10.0;  // rewrite what flows on
  });
  y.retain_grad();
  y.sum().backward();
  CHECK(seen.to_vector() == std::vector<double>{1, 1, 1});
  CHECK(x.grad().to_vector() == std::vector<double>{20, 20, 20});
  CHECK(y.grad().to_vector() == std::vector<double>{10, 10, 10});
  // A hook on a leaf runs before accumulation.
  auto w = leaf({2}, 6);
  w.register_hook([](const Tensor<double>& g) { return g * 0.5; });
  (w * 4.0).sum().backward();
  CHECK(w.grad().to_vector() == std::vector<double>{2, 2});
}

TEST_CASE("backward of a non-scalar needs an explicit gradient") {
  auto x = leaf({2, 2}, 7);
  auto y = x * 3.0;
  check_error([&] { y.backward(); }, {"backward", "one-element", "[2, 2]"});
  y.backward(ones<double>({2, 2}));
  CHECK(x.grad().to_vector() == std::vector<double>(4, 3.0));
  check_error([&] { (x * 1.0).backward(ones<double>({3})); }, {"backward", "[3]", "[2, 2]"});
}

TEST_CASE("in-place ops on tensors in the graph are refused, allowed under no_grad") {
  auto x = leaf({2}, 8);
  check_error([&] { x.add_(ones<double>({2})); }, {"add_", "requires grad", "NoGradGuard"});
  {
    NoGradGuard g;
    x.add_(ones<double>({2}));  // an optimizer step
  }
  CHECK(x.requires_grad());
}

TEST_CASE("a very deep graph runs backward without exhausting the stack") {
  auto x = leaf({1}, 9);
  auto y = x;
  for (int i = 0; i < 20000; ++i) y = y + 1.0;
  y.sum().backward();
  CHECK(x.grad().item() == 1.0);
}

TEST_CASE("gradcheck itself catches a wrong backward rule") {
  // A deliberately wrong op: forward x^2, backward claims 3x.
  auto bad = [](const std::vector<Tensor<double>>& in) {
    auto x = in[0];
    Tensor<double> out;
    {
      NoGradGuard g;
      out = x * x;
    }
    out = out.detach();
    return autograd::record("BadBackward", out, {x},
                            [x = x.detach()](const Tensor<double>& g, const NeedsGrad&) -> std::vector<Tensor<double>> {
                              return {g * x * 3.0};
                            });
  };
  auto r = gradcheck(bad, {leaf({3}, 10)});
  CHECK_FALSE(r.ok);
  CHECK(r.message.find("analytic") != std::string::npos);
  // ... and one that overwrites instead of accumulating.
  auto good = [](const std::vector<Tensor<double>>& in) { return in[0] * in[0]; };
  CHECK(gradcheck(good, {leaf({3}, 11)}).ok);
  CHECK(gradcheck(good, {leaf({40, 40}, 12)}).ok);  // random-projection mode
}

TEST_CASE("modifying a saved tensor in place before backward is caught") {
  auto w = leaf({3}, 13);
  auto x = ones<double>({3});
  auto y = (w * x).sum();  // MulBackward saves x
  x.add_(ones<double>({3}));
  check_error([&] { y.backward(); }, {"backward", "MulBackward", "modified in place", "clone()"});
  // Ops that save nothing do not mind: AddBackward needs no input values.
  auto z = ones<double>({3});
  auto s = (w + z).sum();
  z.mul_(2.0);
  s.backward();
  // An optimizer-style update after backward is fine.
  auto v = leaf({3}, 14);
  auto loss = (v * v).sum();
  loss.backward();
  {
    NoGradGuard g;
    v.sub_(v.grad() * 0.1);
  }
  CHECK(v.grad().defined());
}

TEST_CASE("anomaly mode names the node that first returns a NaN gradient, and where it was recorded") {
  // sqrt at 0 has an infinite derivative; times a zero gradient from above, NaN (0 * inf).
  auto nan_backward = [] {
    auto x = tensor<double>({0, 1}, {2}).requires_grad_();
    mul(sqrt(x), 0.0).sum().backward();
    return x.grad();
  };
  CHECK(!autograd::is_anomaly_enabled());
  CHECK(std::isnan(nan_backward().to_vector()[0]));  // off: the NaN flows into .grad silently
  {
    autograd::DetectAnomalyGuard anomaly;
    CHECK(autograd::is_anomaly_enabled());
    check_error(nan_backward, {"backward", "SqrtBackward", "NaN", "0th output", "[2]", "float64", "cpu",
                               "outside every module"});
    // Inside modules and users' scopes: the path of scopes open when the op was recorded.
    Generator g(3);
    nn::Sequential<double> net(nn::Linear<double>(3, 4, true, g), nn::ReLU<double>(), nn::Linear<double>(4, 2, true, g));
    {
      NoGradGuard no_grad;
      auto w = net.parameters()[2];  // the second Linear's weight
      w.fill_(std::numeric_limits<double>::quiet_NaN());
    }
    auto x = randn<double>({5, 3}, g).requires_grad_();
    Tensor<double> loss;
    {
      profiler::Scope step("train step");
      loss = net(x).sum();
    }
    try {
      loss.backward();
      FAIL("no error");
    } catch (const Error& e) {
      const std::string what = e.what();
      CHECK(what.find("in train step > Sequential > Linear") != std::string::npos);
      CHECK(what.find("[5, 4]") != std::string::npos);  // the gradient into the ReLU's output
    }
    CHECK(autograd::detail::scope_names().empty());  // every scope closed, error or not
    // Infinities pass (as PyTorch): only NaN is an anomaly.
    auto y = tensor<double>({0, 4}, {2}).requires_grad_();
    sqrt(y).sum().backward();
    CHECK(std::isinf(y.grad().to_vector()[0]));
    {
      autograd::DetectAnomalyGuard off(false);
      CHECK(!autograd::is_anomaly_enabled());
      CHECK(std::isnan(nan_backward().to_vector()[0]));
    }
    CHECK(autograd::is_anomaly_enabled());
  }
  CHECK(!autograd::is_anomaly_enabled());
  // Off, nodes note no context and no scope names are kept.
  auto z = tensor<double>({1}, {1}).requires_grad_();
  profiler::Scope outer("outer");
  auto out = exp(z);
  CHECK(out.grad_fn()->context.empty());
  CHECK(autograd::detail::scope_names().empty());
}

TEST_CASE("to_dot draws the recorded graph: nodes, named leaves, shapes on the edges") {
  auto a = tensor<double>({1, 2}, {2}).requires_grad_();
  auto b = tensor<double>({3, 4, 5, 6}, {2, 2}).requires_grad_();
  auto c = add(mul(a, b), a).sum();  // a is used twice: one leaf, two edges out of it
  const std::string dot = autograd::to_dot(c, {{"a", a}, {"b", b}});
  auto count = [&](const std::string& s) {
    std::size_t n = 0;
    for (auto at = dot.find(s); at != std::string::npos; at = dot.find(s, at + 1)) ++n;
    return n;
  };
  CHECK(dot.rfind("digraph autograd {", 0) == 0);
  CHECK(dot.substr(dot.size() - 2) == "}\n");
  // Three op nodes and two leaves, in topological order from the root's node (n0).
  CHECK(count("[shape=box") == 3);
  CHECK(count("[shape=ellipse") == 2);
  CHECK(dot.find("n0 [shape=box, label=\"SumBackward\"]") != std::string::npos);
  CHECK(dot.find("label=\"a\\n[2]\"") != std::string::npos);
  CHECK(dot.find("label=\"b\\n[2, 2]\"") != std::string::npos);
  // Edges: a -> Mul, b -> Mul, Mul -> Add, a -> Add, Add -> Sum, and Sum -> the output.
  CHECK(count(" -> ") == 6);
  CHECK(count("[label=\"[2, 2]\"]") == 3);  // b and the product into Mul/Add, the sum into Sum
  CHECK(count("[label=\"[2]\"]") == 2);     // a, into Mul and into Add (broadcast)
  // Unnamed leaves are "leaf"; a tensor without history is the output alone.
  CHECK(autograd::to_dot(mul(a, a)).find("label=\"leaf\\n[2]\"") != std::string::npos);
  CHECK(autograd::to_dot(tensor<double>({1}, {1})).find(" -> ") == std::string::npos);
  // Recorded in anomaly mode, a node shows its scopes.
  autograd::DetectAnomalyGuard anomaly;
  profiler::Scope scope("block");
  CHECK(autograd::to_dot(exp(a)).find("ExpBackward\\nblock") != std::string::npos);
}

TEST_CASE("checkpoint: the same gradients, fewer activations kept, dropout replayed") {
  // Six blocks Linear-GELU-Linear; each block checkpointed or not.
  auto make = [](std::uint64_t seed) {
    Generator g(seed);
    std::vector<std::shared_ptr<nn::Sequential<double>>> blocks;
    for (int b = 0; b < 6; ++b)
      blocks.push_back(std::make_shared<nn::Sequential<double>>(nn::Linear<double>(64, 64, true, g), nn::GELU<double>(),
                                                                nn::Dropout<double>(0.2),
                                                                nn::Linear<double>(64, 64, true, g)));
    return blocks;
  };
  auto run = [&](bool checkpointed, bool input_grad, std::int64_t* held) {
    auto blocks = make(7);
    Generator g(8);
    auto x = randn<double>({128, 64}, g);
    if (input_grad) x.requires_grad_();
    manual_seed(9);  // the dropout masks come from the default generator
    const auto before = memory_allocated();
    auto h = x;
    for (auto& b : blocks) h = checkpointed ? nn::checkpoint(*b, h) : (*b)(h);
    if (held) *held = memory_allocated() - before;
    mul(h, h).sum().backward();
    std::vector<Tensor<double>> grads;
    for (auto& b : blocks)
      for (auto& p : b->parameters()) grads.push_back(p.grad());
    if (input_grad) grads.push_back(x.grad());
    return grads;
  };
  for (bool input_grad : {false, true}) {
    CAPTURE(input_grad);
    std::int64_t plain_held = 0, ckpt_held = 0;
    const auto plain = run(false, input_grad, &plain_held), ckpt = run(true, input_grad, &ckpt_held);
    REQUIRE(plain.size() == ckpt.size());
    for (std::size_t i = 0; i < plain.size(); ++i) {
      CAPTURE(i);
      REQUIRE(ckpt[i].defined());
      CHECK(ckpt[i].to_vector() == plain[i].to_vector());  // the same ops on the same values
    }
    // Kept between forward and backward: each block's output only, not its four saved tensors.
    CHECK(ckpt_held * 3 < plain_held);
  }
  // Without retain_graph the recorded function cannot run twice; an unused input gets zeros.
  auto x = randn<double>({3}).requires_grad_();
  auto unused = randn<double>({2}).requires_grad_();
  auto y = autograd::checkpoint([](const std::vector<Tensor<double>>& in) { return exp(in[0]); }, {x, unused});
  y.sum().backward();
  check_close(x.grad(), exp(x.detach()), 1e-15, 1e-15, "d exp");
  CHECK(unused.grad().to_vector() == std::vector<double>{0, 0});
  check_error([&] { y.sum().backward(); }, {"backward", "retain_graph"});
  // A function that recomputes a different shape is an error, not a wrong gradient.
  int calls = 0;
  auto z = autograd::checkpoint(
      [&calls](const std::vector<Tensor<double>>& in) { return ++calls == 1 ? in[0] * 2.0 : in[0].narrow(0, 0, 2); }, {x});
  check_error([&] { z.sum().backward(); }, {"checkpoint", "[2]", "[3]"});
}
