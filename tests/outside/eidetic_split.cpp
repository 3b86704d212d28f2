// An outside user's program: Eidetic learning on a task split and an architecture of its own
// (Fashion-MNIST as 3 tasks of 3, 3 and 4 classes; a 784-200 layer without BatchNorm, then
// 200-100 with it), through the public API only. tools/outside-check compiles it header-only
// outside the project and runs it. Exit status 0 when every check holds.
#include <cstdio>
#include <string>
#include <vector>

#include <ligm/ligm.hpp>
#include <ligm/methods/eidetic/eidetic.hpp>

using namespace ligm;
namespace eid = ligm::methods::eidetic;

namespace {
int failures = 0;
void expect(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAILED", what.c_str());
  failures += ok ? 0 : 1;
}

// The images of classes [lo, hi) among the first n, flattened and scaled, labels shifted to 0.
data::TensorDataset<float> classes(const data::FashionMNIST& d, std::int64_t lo, std::int64_t hi, std::int64_t n) {
  const auto y = d.labels.narrow(0, 0, n).to_vector();
  std::vector<std::int64_t> idx, lab;
  for (std::int64_t i = 0; i < n; ++i)
    if (y[std::size_t(i)] >= lo && y[std::size_t(i)] < hi) idx.push_back(i), lab.push_back(y[std::size_t(i)] - lo);
  auto x = index_select(d.images, 0, tensor<std::int64_t>(idx, {std::int64_t(idx.size())})).reshape({-1, 784});
  return {div(sub(x, 0.286f), 0.353f), tensor<std::int64_t>(lab, {std::int64_t(lab.size())})};
}

double accuracy(const Tensor<std::int64_t>& pred, const Tensor<std::int64_t>& y) {
  return sum(eq(pred, y).to<std::int64_t>()).item() / double(y.numel());
}
}  // namespace

int main() {
  const auto train = data::FashionMNIST::load("train", data::kFashionMnistDir);
  const auto test = data::FashionMNIST::load("test", data::kFashionMnistDir);
  const std::vector<std::pair<std::int64_t, std::int64_t>> split{{0, 3}, {3, 6}, {6, 10}};
  std::vector<data::TensorDataset<float>> tr, te;
  for (auto [lo, hi] : split) {
    tr.push_back(classes(train, lo, hi, 15000));
    te.push_back(classes(test, lo, hi, 3000));
  }
  eid::Options o;
  o.max_epochs = 6;
  o.verbose = false;
  eid::EideticNet<float> net(o);
  net.add_linear(784, 200, /*batch_norm*/ false).add_linear(200, 100);
  std::vector<Tensor<float>> first_logits;
  std::vector<double> first_acc;
  for (std::size_t t = 0; t < split.size(); ++t) {
    const auto task = net.add_task(split[t].second - split[t].first);
    const auto report = net.learn_task(task, tr[t], t + 1 < split.size());
    first_logits.push_back(net.task_logits(te[t].inputs, task));
    first_acc.push_back(accuracy(argmax(first_logits.back(), 1), te[t].targets));
    std::printf("task %zu (classes %lld-%lld): test %.1f%% after training it (%d prune steps)\n", t,
                static_cast<long long>(split[t].first), static_cast<long long>(split[t].second - 1), 100 * first_acc.back(),
                report.prune_steps);
  }
  for (std::size_t t = 0; t < split.size(); ++t)
    expect(net.task_logits(te[t].inputs, std::int64_t(t)).to_vector() == first_logits[t].to_vector(),
           "task " + std::to_string(t) + ": logits bit-identical after the later tasks");
  const double router = net.learn_router(tr);
  std::int64_t correct = 0, total = 0, routed_right = 0;
  for (std::size_t t = 0; t < split.size(); ++t) {
    const auto r = net.route(te[t].inputs);
    routed_right += sum(eq(r.task, std::int64_t(t)).to<std::int64_t>()).item();
    correct += sum(mul(eq(r.task, std::int64_t(t)).to<std::int64_t>(), eq(r.cls, te[t].targets).to<std::int64_t>())).item();
    total += te[t].targets.numel();
    expect(net.task_logits(te[t].inputs, std::int64_t(t)).to_vector() == first_logits[t].to_vector(),
           "task " + std::to_string(t) + ": still bit-identical after the router");
  }
  std::printf("router: %.1f%% of the test images to their task (training %.1f%%); 10-class accuracy %.1f%%\n",
              100.0 * routed_right / total, 100 * router, 100.0 * correct / total);
  for (std::size_t t = 0; t < split.size(); ++t) expect(first_acc[t] > 0.8, "task " + std::to_string(t) + " learned");
  expect(double(routed_right) / total > 0.7, "the router routes most images to their task");
  const auto cap = net.capacity();
  for (std::size_t l = 0; l < cap.size(); ++l)
    std::printf("layer %zu: %lld neurons, %lld free\n", l, static_cast<long long>(cap[l].neurons),
                static_cast<long long>(cap[l].free));
  std::printf("%s\n", failures == 0 ? "all checks hold" : "SOME CHECKS FAILED");
  return failures == 0 ? 0 : 1;
}
