// optim: update masks (frozen elements bit-identical through AdamW with weight decay),
// parameter groups, state_dict round trips, clip_grad_norm_, schedules (against PyTorch's
// schedulers, tools/make_goldens_nn.py) and weight EMA.
#include <ligm/io/safetensors.hpp>

#include "helpers.hpp"

using namespace th;
using F = Tensor<float>;

TEST_CASE("optim: masked elements stay bit-identical through 100 AdamW steps with weight decay") {
  Generator g(1);
  nn::Linear<float> lin(16, 8, true, g);
  optim::AdamW<float> opt(lin.parameters(), {.lr = 1e-2, .weight_decay = 0.1});
  // Freeze rows 0..3 of the weight and the first two biases.
  auto wmask = ones<bool>({8, 16});
  wmask.narrow(0, 0, 4).fill_(false);
  auto bmask = tensor<bool>({false, false, true, true, true, true, true, true}, {8});
  opt.set_update_mask(lin.weight, wmask);
  opt.set_update_mask(lin.bias, bmask);
  const auto w0 = lin.weight.detach().clone(), b0 = lin.bias.detach().clone();
  for (int step = 0; step < 100; ++step) {
    auto x = randn<float>({32, 16}, g);
    auto loss = sum(square(lin(x)));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  const auto w = lin.weight.to_vector(), w_start = w0.to_vector();
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (i < 4 * 16) REQUIRE(w[i] == w_start[i]);  // bit for bit
  }
  CHECK(abs(sub(lin.weight.narrow(0, 4, 4), w0.narrow(0, 4, 4))).max().item() > 1e-3);  // the rest moved
  CHECK(lin.bias.to_vector()[0] == b0.to_vector()[0]);
  CHECK(lin.bias.to_vector()[1] == b0.to_vector()[1]);
  CHECK(lin.bias.to_vector()[2] != b0.to_vector()[2]);
  // The Adam moments of frozen elements stay zero too: unfreezing starts them fresh.
  const auto* st = opt.state_of(lin.weight);
  REQUIRE(st);
  CHECK(st->buffers.at("exp_avg").narrow(0, 0, 4).abs().max().item() == 0);
  CHECK(st->buffers.at("exp_avg_sq").narrow(0, 0, 4).abs().max().item() == 0);
}

TEST_CASE("optim: every optimizer keeps masked elements and their state where they started") {
  // The state a frozen element keeps is the state's start: zeros, or Adagrad's
  // initial_accumulator_value (made before the first update by init_state).
  auto run = [](auto make, const char* buffer, float start) {
    Generator g(2);
    auto p = randn<float>({4, 5}, g).requires_grad_();
    auto opt = make(p);
    auto mask = ones<bool>({4, 5});
    mask.narrow(0, 0, 2).fill_(false);
    opt.set_update_mask(p, mask);
    const auto p0 = p.detach().clone();
    for (int step = 0; step < 5; ++step) {
      p.set_grad(randn<float>({4, 5}, g));
      opt.step();
    }
    CHECK(p.detach().narrow(0, 0, 2).to_vector() == p0.narrow(0, 0, 2).to_vector());
    CHECK(abs(sub(p.detach().narrow(0, 2, 2), p0.narrow(0, 2, 2))).min().item() > 0);
    const auto& state = opt.state_of(p)->buffers.at(buffer);
    CHECK(state.narrow(0, 0, 2).to_vector() == std::vector<float>(10, start));
    CHECK(state.narrow(0, 2, 2).to_vector() != std::vector<float>(10, start));
  };
  run([](F& p) { return optim::RMSprop<float>({p}, {.momentum = 0.9, .centered = true}); }, "square_avg", 0);
  run([](F& p) { return optim::RMSprop<float>({p}, {.momentum = 0.9, .centered = true}); }, "grad_avg", 0);
  run([](F& p) { return optim::RMSprop<float>({p}, {.momentum = 0.9}); }, "momentum_buffer", 0);
  run([](F& p) { return optim::Adagrad<float>({p}, {.initial_accumulator_value = 0.25}); }, "sum", 0.25f);
  run([](F& p) { return optim::SGD<float>({p}, {.lr = 0.1, .momentum = 0.9}); }, "momentum_buffer", 0);
  check_error([] { optim::RMSprop<float>({zeros<float>({1})}, {.alpha = 1.5}); }, {"RMSprop", "alpha", "1.5"});
  check_error([] { optim::Adagrad<float>({zeros<float>({1})}, {.lr_decay = -1}); }, {"Adagrad", "lr_decay"});
}

TEST_CASE("optim: ReduceLROnPlateau follows PyTorch's; its state resumes") {
  const auto file = io::load_safetensors(LIGM_GOLDEN_DIR "/nn.safetensors");
  const auto metrics = io::from_raw<double>(file.tensors.at("plateau.metrics")).to_vector();
  auto check_plateau = [&](const std::string& name, const optim::PlateauOptions& o, double sign) {
    CAPTURE(name);
    auto p = zeros<float>({1}).requires_grad_();
    optim::SGD<float> opt({p}, {.lr = 0.1});
    optim::ReduceLROnPlateau plateau(opt, o);
    const auto expected = io::from_raw<double>(file.tensors.at("plateau." + name)).to_vector();
    for (std::size_t s = 0; s < metrics.size(); ++s) {
      CAPTURE(s);
      plateau.step(sign * metrics[s]);
      CHECK(plateau.get_last_lr()[0] == doctest::Approx(expected[s]).epsilon(1e-12));
    }
    // A copy of the state carries on exactly as the original.
    optim::SGD<float> opt2({p}, {.lr = opt.param_groups()[0].options.lr});
    optim::ReduceLROnPlateau resumed(opt2, o);
    resumed.set_state(plateau.state());
    for (double m : {0.9, 0.9, 0.9, 0.7, 0.9, 0.9}) {
      plateau.step(sign * m);
      resumed.step(sign * m);
      CHECK(resumed.get_last_lr() == plateau.get_last_lr());
    }
  };
  check_plateau("min_rel", {.factor = 0.5, .patience = 2, .cooldown = 1, .min_lr = 0.02}, 1);
  check_plateau("max_abs", {.mode = "max", .factor = 0.3, .patience = 1, .threshold = 0.01, .threshold_mode = "abs"},
                -1);
  auto p = zeros<float>({1}).requires_grad_();
  optim::SGD<float> opt({p});
  check_error([&] { optim::ReduceLROnPlateau(opt, {.mode = "lowest"}); }, {"ReduceLROnPlateau", "mode", "lowest"});
  check_error([&] { optim::ReduceLROnPlateau(opt, {.factor = 1.0}); }, {"ReduceLROnPlateau", "factor"});
}

TEST_CASE("optim: parameter groups have their own options; state_dict resumes exactly") {
  auto make = [] {
    Generator g(2);
    return std::make_shared<nn::Sequential<float>>(nn::Linear<float>(4, 8, true, g), nn::Tanh<float>(),
                                                   nn::Linear<float>(8, 2, true, g));
  };
  auto run = [](nn::Module<float>& net, optim::SGD<float>& opt, int from, int to) {
    for (int s = from; s < to; ++s) {
      Generator g(100 + std::uint64_t(s));
      auto loss = sum(square(net(randn<float>({8, 4}, g))));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  };
  auto a = make();
  auto& first = a->get_submodule("0");
  auto& last = a->get_submodule("2");
  optim::SGD<float> opt_a({{first.parameters(), {.lr = 0.05, .momentum = 0.9}},
                           {last.parameters(), {.lr = 0.01, .momentum = 0.9}}},
                          {});
  CHECK(opt_a.param_groups().size() == 2);
  run(*a, opt_a, 0, 10);
  // Resume: a fresh model and optimizer load both state dicts and continue identically.
  auto b = make();
  b->load_state_dict(a->state_dict());
  optim::SGD<float> opt_b({{b->get_submodule("0").parameters(), {.lr = 0.05, .momentum = 0.9}},
                           {b->get_submodule("2").parameters(), {.lr = 0.01, .momentum = 0.9}}},
                          {});
  opt_b.load_state_dict(opt_a.state_dict());
  run(*a, opt_a, 10, 15);
  run(*b, opt_b, 10, 15);
  for (auto& [k, v] : a->state_dict()) {
    CAPTURE(k);
    CHECK(v.to_vector() == b->state_dict().at(k).to_vector());
  }
  check_error([] { optim::SGD<float>({ones<float>({1})}, {.lr = 0.1, .dampening = 0.5, .nesterov = true}); },
              {"SGD", "Nesterov"});
  check_error([] { optim::Adam<float>({ones<float>({1})}, {.beta1 = 1.0}); }, {"Adam", "betas"});
}

TEST_CASE("optim: clip_grad_norm_ scales gradients to the global norm") {
  auto a = ones<float>({3}).requires_grad_(), b = ones<float>({4}).requires_grad_();
  a.set_grad(full<float>({3}, 3.0f));
  b.set_grad(full<float>({4}, 4.0f));
  const double total = optim::clip_grad_norm_<float>({a, b}, 1.0);
  CHECK(total == doctest::Approx(std::sqrt(27.0 + 64.0)));
  const double after = std::sqrt(double(square(a.grad()).sum().item() + square(b.grad()).sum().item()));
  CHECK(after == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(optim::clip_grad_norm_<float>({a, b}, 10.0) == doctest::Approx(1.0).epsilon(1e-5));  // no change
  // clip_grad_value_ clamps each element.
  auto q = zeros<float>({4}).requires_grad_();
  q.set_grad(tensor<float>({-3, 0.5f, 2, -0.25f}, {4}));
  optim::clip_grad_value_<float>({q}, 1.0);
  CHECK(q.grad().to_vector() == std::vector<float>{-1, 0.5f, 1, -0.25f});
  check_error([&] { optim::clip_grad_value_<float>({q}, -1.0); }, {"clip_grad_value_", "-1"});
}

TEST_CASE("optim: learning-rate schedules follow PyTorch's schedulers; warm-up and EMA") {
  const auto file = io::load_safetensors(LIGM_GOLDEN_DIR "/nn.safetensors");
  auto check_schedule = [&](const std::string& name, optim::Schedule schedule) {
    CAPTURE(name);
    auto p = zeros<float>({1}).requires_grad_();
    optim::SGD<float> opt({p}, {.lr = 0.1});
    optim::LRScheduler sched(opt, std::move(schedule));
    const auto expected = io::from_raw<double>(file.tensors.at("sched." + name)).to_vector();
    for (std::size_t s = 0; s < expected.size(); ++s) {
      CAPTURE(s);
      CHECK(opt.param_groups()[0].options.lr == doctest::Approx(expected[s]).epsilon(1e-12));
      sched.step();
    }
  };
  check_schedule("step", optim::step_lr(3, 0.5));
  check_schedule("multistep", optim::multistep_lr({2, 5, 11}, 0.1));
  check_schedule("onecycle", optim::one_cycle(20));
  check_schedule("cosine", optim::cosine_with_warmup(0, 20));
  // Warm-up: 1/4, 2/4, 3/4, 4/4, then the cosine down to min_factor.
  auto warm = optim::cosine_with_warmup(4, 12, 0.1);
  CHECK(warm(0) == doctest::Approx(0.25));
  CHECK(warm(3) == doctest::Approx(1.0));
  CHECK(warm(4) == doctest::Approx(1.0));
  CHECK(warm(8) == doctest::Approx(0.55));
  CHECK(warm(12) == doctest::Approx(0.1));
  CHECK(warm(100) == doctest::Approx(0.1));
  // EMA: target <- 0.9 target + 0.1 source.
  auto target = full<float>({3}, 1.0f), source = full<float>({3}, 2.0f);
  optim::ema_update_<float>({target}, {source}, 0.9);
  CHECK(target.to_vector() == std::vector<float>(3, 1.1f));
  check_error([&] { optim::ema_update_<float>({target}, {zeros<float>({2})}, 0.9); }, {"ema_update_", "[3]", "[2]"});
}

TEST_CASE("optim: LARS scales each weight's step by its trust ratio; 1-d tensors plain SGD") {
  auto w = tensor<double>({3.0, 4.0}, {1, 2}).requires_grad_();  // ||w|| = 5
  auto b = tensor<double>({1.0, -1.0}, {2}).requires_grad_();
  optim::LARS<double> opt({w, b}, {.lr = 0.5, .momentum = 0.9, .weight_decay = 0.1, .eta = 0.01});
  w.set_grad(tensor<double>({0.0, 2.0}, {1, 2}));  // ||g|| = 2
  b.set_grad(tensor<double>({1.0, 1.0}, {2}));
  opt.step();
  const double trust = 0.01 * 5 / (2 + 0.1 * 5 + 1e-8);
  const std::vector<double> dw{trust * (0 + 0.3), trust * (2 + 0.4)};
  check_close(w, std::vector<double>{3 - 0.5 * dw[0], 4 - 0.5 * dw[1]}, 1e-14, 1e-12, "weight");
  check_close(b, std::vector<double>{0.5, -1.5}, 1e-14, 1e-12, "bias: no decay, no trust ratio");
  // Momentum: the second step adds 0.9 x the first.
  w.set_grad(tensor<double>({0.0, 2.0}, {1, 2}));
  b.set_grad(tensor<double>({1.0, 1.0}, {2}));
  opt.step();
  check_close(b, std::vector<double>{0.5 - 0.5 * 1.9, -1.5 - 0.5 * 1.9}, 1e-14, 1e-12, "bias momentum");
}

TEST_CASE("optim: the fused Adam/AdamW step equals the elementwise one (strided parameters take that path)") {
  for (bool decoupled : {false, true}) {
    CAPTURE(decoupled);
    Generator gen(17);
    auto base = randn<double>({5, 7}, gen);
    auto fused = base.clone().requires_grad_(true);                // contiguous: backend adam_step
    auto strided = base.t().contiguous().t().requires_grad_(true);  // a transposed layout: elementwise ops
    REQUIRE_FALSE(strided.is_contiguous());
    auto run = [&](const Tensor<double>& p) {
      std::vector<double> out;
      auto step = [&](auto& opt) {
        for (int s = 0; s < 5; ++s) {
          Generator g(100 + std::uint64_t(s));
          p.set_grad(randn<double>({5, 7}, g));
          opt.step();
        }
      };
      if (decoupled) {
        optim::AdamW<double> opt({p}, {.lr = 0.05, .weight_decay = 0.1});
        step(opt);
      } else {
        optim::Adam<double> opt({p}, {.lr = 0.05, .weight_decay = 0.1});
        step(opt);
      }
      return p.detach().contiguous().to_vector();
    };
    const auto a = run(fused), b = run(strided);
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-14));
  }
}
