// 07: Eidetic learning — continual learning with zero forgetting and task routing
// (methods/eidetic; docs/methods/eidetic.md; the spec's Experiments A and B).
//
// split:    Fashion-MNIST as 5 two-class tasks {T-shirt, Trouser}, {Pullover, Dress},
//           {Coat, Sandal}, {Shirt, Sneaker}, {Bag, Ankle boot}; MLP 784 -> 128 -> 128 with
//           BatchNorm, one head per task, a router trained last. Then, for contrast, naive
//           fine-tuning of the same network (one head per task, nothing frozen).
// permuted: 3 tasks of 10 classes, each a fixed pixel permutation of Fashion-MNIST.
// cnn:      the split tasks with a small CNN with BatchNorm.
//
// Prints, per experiment, the accuracy matrix (row: after training task t; column: task s's
// head on its test images), whether every old head's test logits stayed bit-identical, the
// router's accuracy, the 10-class accuracy with learned and with oracle routing, and the
// capacity used per layer. --metrics PATH writes the matrices as JSON lines (tools/plot).
//
//   build/examples/07_eidetic [--experiment split|permuted|cnn|all] [--pruning taylor|l1|l2|random]
//                             [--images N] [--seed S] [--device cuda] [--metrics PATH]
// (pruning: taylor for the MLPs and l2 for the CNN unless given)
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ligm/io/metrics.hpp>
#include <ligm/ligm.hpp>
#include <ligm/methods/eidetic/eidetic.hpp>

#include "common.hpp"

using namespace ligm;
namespace eid = ligm::methods::eidetic;
using TaskData = data::TensorDataset<float>;

namespace {

struct Args {
  std::string experiment = "split", pruning, metrics;  // pruning: taylor for the MLPs, l2 for the CNN
  std::int64_t images = 4000;  // training images per task
  std::uint64_t seed = 0;
  Device device = Device::cpu();
};

Args parse(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> std::string {
      check(i + 1 < argc, "07_eidetic", s, " needs a value");
      return argv[++i];
    };
    if (s == "--experiment") a.experiment = next();
    else if (s == "--pruning") a.pruning = next();
    else if (s == "--images") a.images = std::stoll(next());
    else if (s == "--seed") a.seed = std::stoull(next());
    else if (s == "--metrics") a.metrics = next();
    else if (s == "--device") a.device = next() == "cuda" ? Device::cuda() : Device::cpu();
    else fail("07_eidetic", "unknown argument \"", s, "\"");
  }
  return a;
}

eid::Pruning pruning_of(const std::string& s) {
  if (s == "taylor") return eid::Pruning::Taylor;
  if (s == "l1") return eid::Pruning::L1;
  if (s == "l2") return eid::Pruning::L2;
  if (s == "random") return eid::Pruning::Random;
  fail("07_eidetic", "unknown pruning \"", s, "\" (taylor, l1, l2, random)");
}

// A task: its global classes, training and test data with labels 0..classes-1.
struct Task {
  std::vector<std::int64_t> classes;
  TaskData train, test;
};

// Labels mapped to their index in `classes`.
Tensor<std::int64_t> local_labels(const Tensor<std::int64_t>& y, const std::vector<std::int64_t>& classes) {
  auto out = zeros<std::int64_t>(y.shape());
  for (std::size_t k = 0; k < classes.size(); ++k) out = where(eq(y, classes[k]), full<std::int64_t>(y.shape(), std::int64_t(k)), out);
  return out;
}

std::vector<Task> split_tasks(const examples::StandardFashionMNIST& d, std::int64_t images) {
  std::vector<Task> tasks;
  for (std::int64_t t = 0; t < 5; ++t) {
    Task task;
    task.classes = {2 * t, 2 * t + 1};
    const TaskData train{d.train_x, d.train_y}, test{d.test_x, d.test_y};
    task.train = train.subset(data::class_subset_indices(d.train_y, task.classes, images / 2));
    task.test = test.subset(data::class_subset_indices(d.test_y, task.classes));
    task.train.targets = local_labels(task.train.targets, task.classes);
    task.test.targets = local_labels(task.test.targets, task.classes);
    tasks.push_back(std::move(task));
  }
  return tasks;
}

std::vector<Task> permuted_tasks(const examples::StandardFashionMNIST& d, std::int64_t images, int count) {
  std::vector<Task> tasks;
  Generator gen(1234);
  const TaskData train{d.train_x, d.train_y};
  const auto first = train.subset(data::class_subset_indices(d.train_y, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, images / 10));
  for (int t = 0; t < count; ++t) {
    auto perm = t == 0 ? arange<std::int64_t>(784) : randperm(784, gen);  // task 0: the plain images
    auto permute = [&](const Tensor<float>& x) { return index_select(x.reshape({x.shape()[0], 784}), 1, perm); };
    Task task;
    task.classes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    task.train = {permute(first.inputs), first.targets};
    task.test = {permute(d.test_x), d.test_y};
    tasks.push_back(std::move(task));
  }
  return tasks;
}

double accuracy(const Tensor<float>& logits, const Tensor<std::int64_t>& y) {
  return double(sum(eq(argmax(logits, 1), y.to(logits.device())).to<std::int64_t>()).item()) / double(y.numel());
}

void print_matrix(const std::vector<std::vector<double>>& m) {
  std::printf("  after task |");
  for (std::size_t s = 0; s < m.size(); ++s) std::printf(" task %zu", s);
  std::printf("\n");
  for (std::size_t t = 0; t < m.size(); ++t) {
    std::printf("  %10zu |", t);
    for (std::size_t s = 0; s < m.size(); ++s) {
      if (s <= t) std::printf(" %5.1f%%", 100 * m[t][s]);
      else std::printf("       ");
    }
    std::printf("\n");
  }
}

void log_matrix(std::optional<io::MetricsLog>& log, const std::string& experiment, const std::string& method,
                const std::vector<std::vector<double>>& m) {
  if (!log) return;
  for (std::size_t t = 0; t < m.size(); ++t) {
    nlohmann::json r{{"experiment", experiment}, {"method", method}, {"after_task", t}};
    for (std::size_t s = 0; s <= t; ++s) r["task" + std::to_string(s)] = m[t][s];
    log->write(r);
  }
}

// Eidetic learning on `tasks`: the accuracy matrix, bit-identity of old heads, the router and
// routed accuracies, capacity.
void run_eidetic(const std::string& name, const std::vector<Task>& tasks, eid::EideticNet<float>& net,
                 std::optional<io::MetricsLog>& log, Device device) {
  const auto start = std::chrono::steady_clock::now();
  const std::size_t T = tasks.size();
  net.to(device);
  for (auto& task : tasks) net.add_task(std::int64_t(task.classes.size()));
  std::vector<std::vector<double>> acc(T, std::vector<double>(T, 0));
  std::vector<Tensor<float>> logits_at_end(T);
  bool identical = true;
  for (std::size_t t = 0; t < T; ++t) {
    std::printf("[%s] task %zu: classes", name.c_str(), t);
    for (auto c : tasks[t].classes) std::printf(" %lld", static_cast<long long>(c));
    std::printf(", %lld training images\n", static_cast<long long>(tasks[t].train.size()));
    // Every task is pruned: the router, trained last, learns on the capacity left free.
    const auto r = net.learn_task(std::int64_t(t), tasks[t].train, true);
    std::printf("[%s] task %zu: %d dense epochs, %d pruning steps%s, best train accuracy %.4f, pruned", name.c_str(), t,
                r.dense_epochs, r.prune_steps, r.rolled_back ? " (last rolled back)" : "", r.best_train_accuracy);
    for (auto p : r.pruned) std::printf(" %lld", static_cast<long long>(p));
    std::printf("\n");
    logits_at_end[t] = net.task_logits(tasks[t].test.inputs.to(device), std::int64_t(t));
    for (std::size_t s = 0; s <= t; ++s) {
      auto logits = net.task_logits(tasks[s].test.inputs.to(device), std::int64_t(s));
      acc[t][s] = accuracy(logits, tasks[s].test.targets);
      if (s < t) identical = identical && logits.to_vector() == logits_at_end[s].to_vector();
    }
  }
  std::vector<TaskData> train;
  for (auto& task : tasks) train.push_back(task.train);
  std::printf("[%s] router: training on all %zu tasks' data\n", name.c_str(), T);
  net.learn_router(train);
  for (std::size_t s = 0; s < T; ++s)
    identical = identical && net.task_logits(tasks[s].test.inputs.to(device), std::int64_t(s)).to_vector() ==
                                 logits_at_end[s].to_vector();
  std::printf("[%s] Eidetic learning, test accuracy of each task's head (%.0f s):\n", name.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  print_matrix(acc);
  log_matrix(log, name, "eidetic", acc);
  std::printf("[%s] old heads' test logits bit-identical after every later task and the router: %s\n", name.c_str(),
              identical ? "yes" : "NO");
  // Routing over the union of the tasks' test sets.
  std::int64_t routed_right = 0, learned_right = 0, oracle_right = 0, total = 0;
  for (std::size_t s = 0; s < T; ++s) {
    const auto& test = tasks[s].test;
    auto oracle = full<std::int64_t>({test.size()}, std::int64_t(s));
    auto learned = net.route(test.inputs.to(device));
    auto given = net.route(test.inputs.to(device), oracle);
    auto y = test.targets.to(device);
    routed_right += sum(eq(learned.task, std::int64_t(s)).to<std::int64_t>()).item();
    learned_right += sum(mul(eq(learned.task, std::int64_t(s)).to<std::int64_t>(), eq(learned.cls, y).to<std::int64_t>())).item();
    oracle_right += sum(eq(given.cls, y).to<std::int64_t>()).item();
    total += test.size();
  }
  const double router = double(routed_right) / double(total), learned = double(learned_right) / double(total),
               oracle = double(oracle_right) / double(total);
  std::printf("[%s] router accuracy %.2f%%; accuracy over all tasks' test images: learned routing %.2f%%, oracle "
              "routing %.2f%%\n", name.c_str(), 100 * router, 100 * learned, 100 * oracle);
  std::printf("[%s] capacity per layer (neurons: free, owned by task 0..%zu):", name.c_str(), T - 1);
  nlohmann::json cap = nlohmann::json::array();
  for (auto& c : net.capacity()) {
    std::printf("  %lld: %lld free,", static_cast<long long>(c.neurons), static_cast<long long>(c.free));
    for (auto o : c.owned) std::printf(" %lld", static_cast<long long>(o));
    cap.push_back({{"neurons", c.neurons}, {"free", c.free}, {"owned", c.owned}});
  }
  std::printf("\n");
  if (log)
    log->write({{"experiment", name}, {"method", "eidetic"}, {"router_accuracy", router},
                {"learned_routing_accuracy", learned}, {"oracle_routing_accuracy", oracle},
                {"bit_identical", identical}, {"capacity", cap}});
}

// Naive fine-tuning: the same MLP trunk and one head per task, every parameter trained on
// each task in turn (fresh Adam per task, same early stopping), nothing frozen.
void run_naive(const std::string& name, const std::vector<Task>& tasks, const eid::Options& o,
               std::optional<io::MetricsLog>& log, Device device) {
  Generator gen(o.seed);
  auto trunk = nn::Sequential(nn::Flatten(), nn::Linear(784, 128, false, gen), nn::BatchNorm1d(128), nn::ReLU(),
                              nn::Linear(128, 128, false, gen), nn::BatchNorm1d(128), nn::ReLU());
  trunk.to(device);
  std::vector<std::shared_ptr<nn::Linear<float>>> heads;
  const std::size_t T = tasks.size();
  std::vector<std::vector<double>> acc(T, std::vector<double>(T, 0));
  auto eval = [&](std::size_t s) {
    NoGradGuard ng;
    trunk.eval();
    auto a = accuracy((*heads[s])(trunk(tasks[s].test.inputs.to(device))), tasks[s].test.targets);
    trunk.train();
    return a;
  };
  for (std::size_t t = 0; t < T; ++t) {
    heads.push_back(std::make_shared<nn::Linear<float>>(128, std::int64_t(tasks[t].classes.size()), true, gen));
    heads.back()->to(device);
    auto params = trunk.parameters();
    for (auto& p : heads.back()->parameters()) params.push_back(p);
    optim::Adam<float> opt(params, {.lr = o.lr});
    data::DataLoader loader(tasks[t].train, {.batch_size = o.batch_size, .shuffle = true, .seed = o.seed + t});
    double best = 0;
    int best_epoch = 0, epoch = 0;
    bool stop = false;
    for (;;) {  // the same stopping rule as Eidetic's dense phase
      ++epoch;
      std::int64_t right = 0;
      for (auto [x, y] : loader.epoch(std::uint64_t(epoch))) {
        auto logits = (*heads.back())(trunk(x.to(device)));
        auto loss = cross_entropy(logits, y.to(device));
        opt.zero_grad();
        loss.backward();
        opt.step();
        right += sum(eq(argmax(logits.detach(), 1), y.to(device)).to<std::int64_t>()).item();
      }
      const double a = double(right) / double(tasks[t].train.size());
      if (stop) break;
      stop = a >= 1.0 || (a < best && epoch - best_epoch > o.patience) || epoch >= o.max_epochs;
      if (a > best) best_epoch = epoch;
      best = std::max(best, a);
    }
    for (std::size_t s = 0; s <= t; ++s) acc[t][s] = eval(s);
  }
  std::printf("[%s] naive fine-tuning, test accuracy of each task's head:\n", name.c_str());
  print_matrix(acc);
  log_matrix(log, name, "naive", acc);
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  manual_seed(args.seed);
  const auto data = examples::load_fashion_mnist(Device::cpu());
  std::optional<io::MetricsLog> log;
  if (!args.metrics.empty()) log.emplace(args.metrics);
  eid::Options o;  // the spec's small-scale settings (section 5)
  o.lr = 1e-3;
  o.batch_size = 256;
  o.patience = 2;
  o.pruning = pruning_of(args.pruning.empty() ? "taylor" : args.pruning);
  o.step = 0.1;
  o.tol = 0.01;
  o.max_recovery_epochs = 2;
  o.seed = args.seed;
  o.verbose = false;
  const bool all = args.experiment == "all";
  check(all || args.experiment == "split" || args.experiment == "permuted" || args.experiment == "cnn", "07_eidetic",
        "unknown experiment \"", args.experiment, "\" (split, permuted, cnn, all)");
  if (all || args.experiment == "split") {
    const auto tasks = split_tasks(data, args.images);
    eid::EideticNet<float> net(o);
    net.add_linear(784, 128).add_linear(128, 128);
    run_eidetic("split", tasks, net, log, args.device);
    run_naive("split", tasks, o, log, args.device);
  }
  if (all || args.experiment == "permuted") {
    const auto tasks = permuted_tasks(data, args.images, 3);
    eid::EideticNet<float> net(o);
    net.add_linear(784, 128).add_linear(128, 128);
    run_eidetic("permuted", tasks, net, log, args.device);
  }
  if (all || args.experiment == "cnn") {
    const auto tasks = split_tasks(data, args.images);
    // L1/L2 for convolutions, as the paper (Taylor's one global threshold prunes the conv
    // layers far harder than the Linear one); at most 10 dense epochs per task.
    auto oc = o;
    oc.pruning = pruning_of(args.pruning.empty() ? "l2" : args.pruning);
    oc.max_epochs = 10;
    eid::EideticNet<float> net(oc);
    net.add_conv(1, 16, 3, 1, true, 2).add_conv(16, 32, 3, 1, true, 2).add_linear(32 * 7 * 7, 64);
    run_eidetic("cnn", tasks, net, log, args.device);
  }
  return 0;
}
