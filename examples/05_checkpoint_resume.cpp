// 05: checkpoint, kill, resume. A training run is killed (SIGKILL, no clean-up) part-way; a new
// process resumes it from its last checkpoint; the resumed run's loss curve continues the
// uninterrupted run's bit for bit.
//
// The run: an MLP with Dropout on Fashion-MNIST, AdamW with a cosine schedule, shuffled
// batches with random-crop augmentation; a checkpoint (model, optimizer, schedule step, random
// generator, step) is written atomically every 40 steps. The program runs itself three times:
//   1. the reference run, uninterrupted, logging every step's loss (JSON lines);
//   2. the same run, which kills itself with SIGKILL after step 170 (last checkpoint: 160);
//   3. a resume from that checkpoint to the end, appending to the killed run's log;
// then compares the logs: every step of the killed-and-resumed run (including 161-170, which
// the kill lost and the resume recomputed) must equal the reference, bit for bit.
//
//   build/examples/05_checkpoint_resume [--dir /tmp/ligm_resume]
//   tools/plot /tmp/ligm_resume/reference.jsonl /tmp/ligm_resume/killed.jsonl --y loss -o resume.png
#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include <ligm/io/checkpoint.hpp>
#include <ligm/io/metrics.hpp>
#include <ligm/ligm.hpp>
#include <ligm/models/mlp.hpp>

using namespace ligm;

namespace {

constexpr std::int64_t kSteps = 300, kCheckpointEvery = 40, kKillAfter = 170;

// One training run from scratch or from `checkpoint`, logging each step's loss to `log`.
void train(const std::string& log_path, const std::string& checkpoint, bool resume, std::int64_t kill_after) {
  manual_seed(0);
  auto train_set = data::FashionMNIST::load("train");
  auto x = div(sub(train_set.images, 0.2860f), 0.3530f);
  models::MLP<float> net(784, 10, {.hidden = {256, 128}, .dropout = 0.2});
  optim::AdamW opt(net.parameters(), {.lr = 2e-3, .weight_decay = 1e-4});
  optim::LRScheduler sched(opt, optim::cosine_with_warmup(20, kSteps));
  data::DataLoader loader(x, train_set.labels, {.batch_size = 128, .shuffle = true, .seed = 7});
  loader.set_transform(data::RandomCrop<float>{28, 2}, 11);

  std::int64_t step = 0;
  if (resume) {
    auto c = io::load_checkpoint<float>(checkpoint);
    net.load_state_dict(c.model);
    opt.load_state_dict(c.optimizer);
    sched.set_step(c.get_int("scheduler_step"));
    c.restore_rng(default_generator());
    step = c.get_int("step");
    std::printf("  resumed from %s at step %lld\n", checkpoint.c_str(), static_cast<long long>(step));
  }
  io::MetricsLog log(log_path, /*append=*/resume);
  while (step < kSteps) {
    const std::int64_t epoch = step / loader.size();
    for (auto [bx, by] : loader.epoch(std::uint64_t(epoch), step % loader.size())) {
      auto loss = cross_entropy(net(bx), by);
      opt.zero_grad();
      loss.backward();
      opt.step();
      sched.step();
      ++step;
      log.write({{"step", step}, {"loss", double(loss.item())}});
      if (step % kCheckpointEvery == 0) {
        io::Checkpoint<float> c{net.state_dict(), opt.state_dict(), {{"step", std::to_string(step)}}};
        c.metadata["scheduler_step"] = std::to_string(sched.last_step());
        c.capture_rng(default_generator());
        io::save_checkpoint(c, checkpoint);
      }
      if (step == kill_after) {
        std::printf("  step %lld: killing this process (SIGKILL)\n", static_cast<long long>(step));
        std::fflush(stdout);
        std::raise(SIGKILL);
      }
      if (step == kSteps) break;
    }
  }
}

int run_self(const std::string& self, const std::string& args) {
  const int status = std::system(("\"" + self + "\" " + args).c_str());
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string dir = "/tmp/ligm_resume", phase;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--dir") dir = argv[i + 1];
    else if (k == "--phase") phase = argv[i + 1];
  }
  const std::string ckpt = dir + "/killed.ckpt";
  if (phase == "reference") return train(dir + "/reference.jsonl", dir + "/reference.ckpt", false, -1), 0;
  if (phase == "killed") return train(dir + "/killed.jsonl", ckpt, false, kKillAfter), 0;
  if (phase == "resume") return train(dir + "/killed.jsonl", ckpt, true, -1), 0;

  check(std::system(("mkdir -p \"" + dir + "\"").c_str()) == 0, "05_checkpoint_resume", "cannot create ", dir);
  std::remove(ckpt.c_str());
  std::printf("1. reference run, %lld steps\n", static_cast<long long>(kSteps));
  check(run_self(argv[0], "--dir \"" + dir + "\" --phase reference") == 0, "05", "the reference run failed");
  std::printf("2. the same run, killed after step %lld (checkpoints every %lld steps)\n",
              static_cast<long long>(kKillAfter), static_cast<long long>(kCheckpointEvery));
  const int killed = run_self(argv[0], "--dir \"" + dir + "\" --phase killed");
  std::printf("  exit status %d (%s)\n", killed, killed == 128 + SIGKILL ? "killed by SIGKILL" : "unexpected");
  std::printf("3. a new process resumes from the last checkpoint\n");
  check(run_self(argv[0], "--dir \"" + dir + "\" --phase resume") == 0, "05", "the resumed run failed");

  // Every record of the killed+resumed log against the reference, bit for bit.
  std::map<std::int64_t, double> reference;
  for (const auto& r : io::read_metrics(dir + "/reference.jsonl")) reference[r["step"]] = r["loss"].get<double>();
  std::int64_t compared = 0, recomputed = 0, mismatches = 0;
  std::map<std::int64_t, int> seen;
  for (const auto& r : io::read_metrics(dir + "/killed.jsonl")) {
    const std::int64_t s = r["step"];
    if (++seen[s] == 2) ++recomputed;
    ++compared;
    if (!reference.count(s) || reference[s] != r["loss"].get<double>()) ++mismatches;
  }
  const bool complete = std::int64_t(seen.size()) == kSteps && std::int64_t(reference.size()) == kSteps;
  std::printf("compared %lld logged steps (%lld of them lost by the kill and recomputed): %lld differ from the "
              "reference; final loss %.6f\n",
              static_cast<long long>(compared), static_cast<long long>(recomputed), static_cast<long long>(mismatches),
              reference[kSteps]);
  const bool ok = complete && mismatches == 0 && killed == 128 + SIGKILL;
  std::printf("the resumed run continues the original bit for bit: %s\n", ok ? "yes" : "NO");
  return ok ? 0 : 1;
}
