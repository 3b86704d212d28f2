// Checkpoints: save mid-run, "kill" (drop every object), rebuild, load, continue — the loss
// curve and the final weights equal the uninterrupted run's bit for bit (Dropout's random
// stream, the loader's shuffling, AdamW's moments and the schedule included). Malformed
// checkpoints are rejected.
#include <cstdio>
#include <fstream>

#include <ligm/io/checkpoint.hpp>

#include "helpers.hpp"

using namespace th;
using F = Tensor<float>;

namespace {

struct Run {
  std::shared_ptr<nn::Sequential<float>> net;
  std::unique_ptr<optim::AdamW<float>> opt;
  std::unique_ptr<optim::LRScheduler<optim::AdamW<float>>> sched;
};

Run make_run() {
  manual_seed(42);
  Run r;
  r.net = std::make_shared<nn::Sequential<float>>(nn::Linear<float>(6, 16), nn::ReLU<float>(), nn::Dropout<float>(0.2),
                                                  nn::BatchNorm1d<float>(16), nn::Linear<float>(16, 3));
  r.opt = std::make_unique<optim::AdamW<float>>(r.net->parameters(), optim::AdamWOptions{.lr = 1e-2, .weight_decay = 0.05});
  r.sched = std::make_unique<optim::LRScheduler<optim::AdamW<float>>>(*r.opt, optim::cosine_with_warmup(3, 40));
  return r;
}

// Trains steps [from, to) of a fixed schedule of epochs of 4 batches; returns the losses.
std::vector<float> train(Run& r, const data::DataLoader<>& loader, int from, int to) {
  std::vector<float> losses;
  int step = 0;
  for (std::uint64_t epoch = 0; step < to; ++epoch)
    for (auto [x, y] : loader.epoch(epoch)) {
      if (step >= to) break;
      if (step++ < from) continue;
      auto loss = cross_entropy((*r.net)(x), y);
      r.opt->zero_grad();
      loss.backward();
      r.opt->step();
      r.sched->step();
      losses.push_back(loss.item());
    }
  return losses;
}

}  // namespace

TEST_CASE("checkpoint: kill and resume continues the run bit for bit") {
  Generator g(9);
  const auto x = randn<float>({64, 6}, g);
  const auto y = randint(0, 3, {64}, g);
  data::DataLoader<> loader(x, y, {.batch_size = 16, .shuffle = true, .seed = 3});
  const std::string path = "/tmp/ligm_test_resume.ckpt";

  auto full = make_run();
  const auto all = train(full, loader, 0, 20);

  std::vector<float> resumed;
  {
    auto first = make_run();
    resumed = train(first, loader, 0, 11);
    io::Checkpoint<float> c{first.net->state_dict(), first.opt->state_dict(), {{"step", "11"}}};
    c.metadata["scheduler_step"] = std::to_string(first.sched->last_step());
    c.capture_rng(default_generator());
    io::save_checkpoint(c, path);
  }  // the first run is gone
  {
    manual_seed(123);  // whatever state the new process starts in
    auto second = make_run();
    auto c = io::load_checkpoint<float>(path);
    second.net->load_state_dict(c.model);
    second.opt->load_state_dict(c.optimizer);
    second.sched->set_step(c.get_int("scheduler_step"));
    c.restore_rng(default_generator());
    const auto rest = train(second, loader, int(c.get_int("step")), 20);
    resumed.insert(resumed.end(), rest.begin(), rest.end());
    REQUIRE(resumed.size() == all.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
      CAPTURE(i);
      CHECK(resumed[i] == all[i]);  // bit for bit
    }
    for (auto& [k, v] : full.net->state_dict()) {
      CAPTURE(k);
      CHECK(v.to_vector() == second.net->state_dict().at(k).to_vector());
    }
  }
  std::remove(path.c_str());
}

TEST_CASE("checkpoint: files that are not checkpoints are rejected with the path named") {
  const std::string plain = "/tmp/ligm_test_plain.safetensors";
  io::SafetensorsFile f;
  f.tensors["w"] = io::to_raw(ones<float>({2}));
  io::save_safetensors(f, plain);
  check_error([&] { io::load_checkpoint<float>(plain); }, {"load_checkpoint", plain, "not a ligm checkpoint"});
  const std::string truncated = "/tmp/ligm_test_truncated.ckpt";
  io::Checkpoint<float> c{{{"w", ones<float>({100})}}, {}, {}};
  io::save_checkpoint(c, truncated);
  {
    std::ifstream in(truncated, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(truncated, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size() - 10));
  }
  check_error([&] { io::load_checkpoint<float>(truncated); }, {truncated});
  check_error([&] { c.restore_rng(default_generator()); }, {"restore_rng", "capture_rng"});
  std::remove(plain.c_str());
  std::remove(truncated.c_str());
}

TEST_CASE("checkpoint: hostile metadata and optimizer state are errors, not exceptions of the standard library") {
  io::Checkpoint<float> c;
  c.metadata = {{"step", "12abc"}, {"ligm.rng_seed", "-1"}, {"ligm.rng_offset", "3"}};
  check_error([&] { c.get_int("step"); }, {"get_int", "\"step\"", "12abc", "not an integer"});
  Generator g;
  check_error([&] { c.restore_rng(g); }, {"restore_rng", "ligm.rng_seed", "-1"});
  c.metadata = {{"step", "99999999999999999999"}, {"ligm.rng_seed", "5"}, {"ligm.rng_offset", "7"}};
  check_error([&] { c.get_int("step"); }, {"get_int", "99999999999999999999"});
  c.restore_rng(g);
  CHECK(g.seed() == 5);
  CHECK(g.offset() == 7);
  CHECK(c.get_int("absent", 4) == 4);
  // An optimizer step count must be a whole number a step counter can hold (1e25 once reached
  // an undefined float-to-integer cast; tests/fuzz/corpus/checkpoint/ keeps that file).
  auto w = zeros<float>({2}).requires_grad_();
  optim::AdamW opt({w});
  w.sum().backward();
  opt.step();
  for (float bad : {1e25f, 2.5f, -1.0f, std::nanf("")}) {
    auto sd = opt.state_dict();
    sd["state.0.step"] = scalar_tensor<float>(bad);
    check_error([&] { opt.load_state_dict(sd); }, {"load_state_dict", "state.0.step", "not a step count"});
  }
  // A failed load changed nothing (it used to clear the state first).
  CHECK(opt.state_dict().at("state.0.step").item() == 1.0f);
  auto sd = opt.state_dict();
  sd["state.0.step"] = scalar_tensor<float>(5.0f);
  opt.load_state_dict(sd);
  CHECK(opt.state_dict().at("state.0.step").item() == 5.0f);
  // A model: a strict load that finds an unexpected key, or a shape that does not fit after
  // keys that do, leaves every parameter as it was.
  manual_seed(3);
  nn::Sequential model(nn::Linear(4, 3), nn::Linear(3, 2));
  const auto before = model.state_dict();
  auto other = before;
  for (auto& [k, v] : other) v = v + 1.0f;
  other["extra"] = zeros<float>({1});
  check_error([&] { model.load_state_dict(other); }, {"load_state_dict", "unexpected extra"});
  other.erase("extra");
  other["1.weight"] = zeros<float>({5, 5});
  check_error([&] { model.load_state_dict(other); }, {"size mismatch for 1.weight"});
  for (const auto& [k, v] : model.state_dict()) CHECK(v.to_vector() == before.at(k).to_vector());
  // A shape of no elements whose strides would overflow 64 bits.
  check_error([] { Tensor<float>::empty({0, std::int64_t(1) << 40, std::int64_t(1) << 40}); }, {"empty", "too large"});
  CHECK(Tensor<float>::empty({0, std::int64_t(1) << 20, std::int64_t(1) << 20}).numel() == 0);
}
