// Eidetic learning (Dronen & Balestriero, "Eidetic Learning", arXiv 2502.09500): continual
// learning with exactly zero forgetting, and task routing in the same forward pass.
//
// Train task t densely; prune whole neurons (conv channels) step by step, retraining briefly
// after each, and roll the last step back once training accuracy falls below best * (1 - tol).
// The survivors become *owned* by task t and never change again (Persistence); every owned
// neuron reads exact zeros from neurons that are not owned by the same or an earlier task
// (Resistance); the pruned neurons are re-initialised for the next task, which may read the
// old features (forward transfer). One head per task, and a router head trained last on all
// tasks' data that predicts the task, so an input is classified without being told its task.
//
//   eidetic::EideticNet<float> net({.pruning = eidetic::Pruning::Taylor});
//   net.add_linear(784, 128).add_linear(128, 128);       // Linear(no bias) -> BatchNorm1d -> ReLU
//   for (int t = 0; t < T; ++t) net.learn_task(net.add_task(2), train[t], t + 1 < T);
//   net.learn_router(train);
//   auto [task, cls] = net.route(x);                      // one trunk pass
//
// Mechanics (spec: shared/specs/eidetic.md), built on the framework's general pieces (the
// vocabulary types in layer.hpp; the choice of neurons to prune and the masks in pruning.hpp):
// - masks are physical zeros kept in place by the optimizer's update masks (an element that
//   may not change is restored bit for bit after each step, its Adam moments too), so the
//   forward pass is the plain network's;
// - owned BatchNorm channels are BatchNorm's frozen_channels (running statistics in training
//   mode too, never updated);
// - a fresh Adam (weight decay 0) per task; old heads are outside it and require no gradient.
//
// Where the official code is wrong (spec section 7) this follows the spec's design instead:
// L1/L2 scores use only unmasked weights and never consider owned rows; random pruning skips
// owned rows; the step is a fraction of the free candidates, so pruning always terminates;
// the BatchNorm affine of a frozen channel is applied once; Taylor scores are recomputed for
// each step (the official code accumulates them across the steps of a task).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "ligm/data/data.hpp"
#include "ligm/methods/eidetic/layer.hpp"
#include "ligm/methods/eidetic/pruning.hpp"
#include "ligm/io/progress.hpp"
#include "ligm/nn/nn.hpp"
#include "ligm/optim/optim.hpp"

namespace ligm::methods::eidetic {

template <class T = float>
class EideticNet : public nn::Module<T> {
 public:
  explicit EideticNet(Options options = {}) : options_(options), gen_(options.seed) {
    progress_ = this->register_buffer("progress", full<T>({3}, T(-1)));
  }
  std::string type_name() const override { return "EideticNet"; }

  // --- building --------------------------------------------------------------------------
  // Linear(in, out) -> [BatchNorm1d] -> ReLU; no bias when BatchNorm follows. A Linear after
  // a convolution reads its flattened NCHW output (in = channels * H * W).
  EideticNet& add_linear(std::int64_t in, std::int64_t out, bool batch_norm = true) {
    check_building("add_linear");
    Layer<T> l;
    l.linear = this->register_module("linear" + std::to_string(layers_.size()),
                                     std::make_shared<nn::Linear<T>>(in, out, !batch_norm, gen_));
    if (batch_norm) l.bn = register_bn(std::make_shared<nn::BatchNorm1d<T>>(out));
    add_layer(std::move(l), in);
    return *this;
  }
  // Conv2d(in, out, k, padding) -> [BatchNorm2d] -> ReLU -> [MaxPool2d(pool)].
  EideticNet& add_conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t padding = 0,
                       bool batch_norm = true, std::int64_t pool = 0) {
    check_building("add_conv");
    check(layers_.empty() || layers_.back().conv, "EideticNet", "add_conv: a convolution cannot follow a Linear layer");
    Layer<T> l;
    Conv2dOptions co;
    co.padding = padding;
    l.conv = this->register_module("conv" + std::to_string(layers_.size()),
                                   std::make_shared<nn::Conv2d<T>>(in, out, kernel, co, !batch_norm, gen_));
    if (batch_norm) l.bn = register_bn(std::make_shared<nn::BatchNorm2d<T>>(out));
    l.pool = pool;
    add_layer(std::move(l), in);
    return *this;
  }
  // A residual block as the paper's ResNets build it: Conv3x3(in, out, stride) -> BatchNorm ->
  // ReLU -> Conv3x3(out, out) -> BatchNorm, plus Conv1x1(in, out, stride) -> BatchNorm of the
  // block's input; no identity shortcut and no ReLU after the sum; then [MaxPool2d(pool)].
  // Two prunable layers; pruning channel i of the second also masks row i of the projection.
  EideticNet& add_residual_block(std::int64_t in, std::int64_t out, std::int64_t stride = 1, std::int64_t pool = 0) {
    check_building("add_residual_block");
    check(layers_.empty() || layers_.back().conv, "EideticNet",
          "add_residual_block: a convolution cannot follow a Linear layer");
    Conv2dOptions co;
    co.stride = stride;
    co.padding = 1;
    Layer<T> a;
    a.conv = this->register_module("conv" + std::to_string(layers_.size()),
                                   std::make_shared<nn::Conv2d<T>>(in, out, 3, co, false, gen_));
    a.bn = register_bn(std::make_shared<nn::BatchNorm2d<T>>(out));
    add_layer(std::move(a), in);
    Layer<T> b;
    const std::string k = std::to_string(layers_.size());
    Conv2dOptions c2;
    c2.padding = 1;
    b.conv = this->register_module("conv" + k, std::make_shared<nn::Conv2d<T>>(out, out, 3, c2, false, gen_));
    b.bn = register_bn(std::make_shared<nn::BatchNorm2d<T>>(out));
    Conv2dOptions cp;
    cp.stride = stride;
    b.proj = this->register_module("proj" + k, std::make_shared<nn::Conv2d<T>>(in, out, 1, cp, false, gen_));
    b.proj_bn = this->register_module("proj_bn" + k, std::make_shared<nn::BatchNorm2d<T>>(out));
    b.relu = false;
    b.pool = pool;
    add_layer(std::move(b), out);
    return *this;
  }
  // A new task with its own head (Linear over the last layer's neurons); returns its id.
  std::int64_t add_task(std::int64_t classes) {
    check(!layers_.empty() && layers_.back().linear, "EideticNet",
          "add_task: the network needs layers, the last one Linear, before the heads");
    check(!router_, "EideticNet", "add_task: the network has a router; it would not know the new task");
    check(classes > 0, "EideticNet", "add_task: classes must be positive, got ", classes);
    auto head = std::make_shared<nn::Linear<T>>(layers_.back().neurons(), classes, true, gen_);
    head->to(device());
    heads_.push_back(this->register_module("head" + std::to_string(heads_.size()), head));
    return std::int64_t(heads_.size()) - 1;
  }

  // --- training ----------------------------------------------------------------------------
  // Learns task t (the next one, in order) from `train` (inputs, labels 0..classes-1):
  // commits the previous task and recycles free capacity, trains densely, then (if prune)
  // prunes with rollback. The task is committed (owned, frozen) when the next one starts, or
  // by learn_router / commit().
  TaskReport learn_task(std::int64_t t, const data::TensorDataset<T>& train, bool prune = true) {
    reload();
    check(t == current_ + 1 && t < std::int64_t(heads_.size()), "EideticNet",
          "learn_task: tasks are learned in order; the next is ", current_ + 1, " (", heads_.size(),
          " heads), got ", t);
    train.check_valid();
    if (current_ >= 0) {  // the first task keeps the layers' own initialisation
      commit();
      recycle();
    }
    current_ = t;
    store();
    TaskReport r;
    r.task = t;
    auto& head = *heads_[t];
    auto opt = make_optimizer(head);
    install_masks(*opt, head);
    const Dense d = train_dense(head, train, *opt, options_.patience, options_.max_epochs, "task " + std::to_string(t));
    r.dense_epochs = d.epochs;
    r.best_train_accuracy = d.best;
    r.final_train_accuracy = d.last;
    if (prune && options_.tol >= 0) prune_loop(head, train, *opt, d.best, r);
    r.pruned.clear();
    for (auto& l : layers_) r.pruned.push_back(std::count(l.pruned.begin(), l.pruned.end(), 1));
    store();
    return r;
  }

  // Commits the last task and trains the router head (task id as the label) on the union of
  // all tasks' training data, without pruning. After this no task can be added.
  double learn_router(const std::vector<data::TensorDataset<T>>& tasks) {
    reload();
    check(std::int64_t(tasks.size()) == std::int64_t(heads_.size()) && current_ + 1 == std::int64_t(heads_.size()),
          "EideticNet", "learn_router: needs the data of all ", heads_.size(), " tasks after all are learned (",
          current_ + 1, " learned, ", tasks.size(), " datasets)");
    check(!router_trained_, "EideticNet", "learn_router: the router is already trained");
    commit();
    recycle();
    std::vector<Tensor<T>> xs;
    std::vector<Tensor<std::int64_t>> ys;
    for (std::size_t s = 0; s < tasks.size(); ++s) {
      xs.push_back(tasks[s].inputs);
      ys.push_back(full<std::int64_t>({tasks[s].size()}, std::int64_t(s), tasks[s].targets.device()));
    }
    add_router();
    auto opt = make_optimizer(*router_);
    install_masks(*opt, *router_);
    const Dense d = train_dense(*router_, {cat(xs, 0), cat(ys, 0)}, *opt, options_.router_patience,
                                options_.router_max_epochs, "router");
    router_->requires_grad_(false);
    router_trained_ = true;
    store();
    return d.best;
  }

  // The router head (Linear over the last layer's neurons, one output per task), created once:
  // learn_router calls it; call it before load_state_dict to load a trained router.
  nn::Linear<T>& add_router() {
    check(!heads_.empty(), "EideticNet", "add_router: add the tasks first");
    if (!router_) {
      router_ = this->register_module(
          "router", std::make_shared<nn::Linear<T>>(layers_.back().neurons(), std::int64_t(heads_.size()), true, gen_));
      router_->to(device());
    }
    return *router_;
  }

  // Makes the current task's survivors owned by it (exact zeros where masked, frozen from now
  // on) and freezes its head. learn_task and learn_router call it; idempotent.
  void commit() {
    reload();
    if (current_ < 0 || current_ == committed_) return;
    apply_masks(heads_[current_].get());
    for (auto& l : layers_) {
      for (std::int64_t i = 0; i < l.neurons(); ++i) {
        if (l.is_candidate(i)) l.owner[i] = current_;  // the survivors: owned from now on
        l.pruned[i] = 0;
      }
      for (auto* bn : {l.bn.get(), l.proj_bn.get()})
        if (bn) bn->frozen_channels = frozen_channels(l);
    }
    heads_[current_]->requires_grad_(false);
    committed_ = current_;
    store();
  }

  // Prunes the given free neurons of a layer in the current task, by hand (custom pruning
  // schedules, tests): their rows, BatchNorm channels and the columns that read them become
  // exact zeros, and commit() leaves them free. Owned neurons are refused.
  void prune(std::size_t layer, const std::vector<std::int64_t>& neurons) {
    reload();
    check(current_ >= 0 && current_ != committed_, "EideticNet", "prune: no task is being learned");
    check(layer < layers_.size(), "EideticNet", "prune: no layer ", layer, " (", layers_.size(), " layers)");
    auto& l = layers_[layer];
    for (auto i : neurons) {
      check(i >= 0 && i < l.neurons(), "EideticNet", "prune: layer ", layer, " has no neuron ", i);
      check(l.owner[std::size_t(i)] < 0, "EideticNet", "prune: neuron ", i, " of layer ", layer,
            " is owned by task ", l.owner[std::size_t(i)]);
      l.pruned[std::size_t(i)] = 1;
    }
    apply_masks(heads_[std::size_t(current_)].get());
    store();
  }

  // --- inference -------------------------------------------------------------------------
  // The trunk's output (the heads' input). Module::operator() runs this.
  Tensor<T> forward(const Tensor<T>& x) override { return features(x); }
  // Task t's head on x, in eval mode.
  Tensor<T> task_logits(const Tensor<T>& x, std::int64_t t) {
    check(t >= 0 && t < std::int64_t(heads_.size()), "EideticNet", "task_logits: no task ", t);
    NoGradGuard no_grad;
    ModeGuard eval(*this, false);
    return (*heads_[t])(features(x));
  }
  struct Routed {
    Tensor<std::int64_t> task, cls;  // [N]: the routed task, the class within that task
  };
  // One trunk pass: the router picks the task, that task's head the class. With `oracle`
  // ([N] task ids) the given task is used instead of the router's.
  Routed route(const Tensor<T>& x, const Tensor<std::int64_t>& oracle = {}) {
    reload();
    check(router_trained_ || oracle.defined(), "EideticNet",
          "route: the router is not trained (learn_router) and no task ids were given");
    NoGradGuard no_grad;
    ModeGuard eval(*this, false);
    auto h = features(x);
    auto task = oracle.defined() ? oracle.to(h.device()) : argmax((*router_)(h), 1);
    auto cls = zeros<std::int64_t>({x.shape()[0]}, h.device());
    for (std::size_t s = 0; s < heads_.size(); ++s) {
      auto pick = eq(task, std::int64_t(s));
      cls = where(pick, argmax((*heads_[s])(h), 1), cls);
    }
    return {task, cls};
  }

  // --- state -----------------------------------------------------------------------------
  std::vector<Layer<T>>& layers() { return layers_; }
  const std::vector<std::shared_ptr<nn::Linear<T>>>& heads() const { return heads_; }
  const std::shared_ptr<nn::Linear<T>>& router() const { return router_; }
  std::int64_t tasks_learned() {
    reload();
    return current_ + 1;
  }
  const Options& options() const { return options_; }
  Options& options() { return options_; }
  std::vector<LayerCapacity> capacity() {
    reload();
    std::vector<LayerCapacity> out;
    for (auto& l : layers_) {
      LayerCapacity c;
      c.neurons = l.neurons();
      c.owned.assign(heads_.size(), 0);
      for (auto o : l.owner) {
        if (o < 0) ++c.free;
        else ++c.owned[o];
      }
      out.push_back(c);
    }
    return out;
  }
  // The update mask of a layer's weight for the current task: true where training may change
  // it (rows of free, unpruned neurons; columns of unpruned inputs).
  Tensor<bool> trainable_mask(std::size_t layer) const { return weight_mask(layers_, layer, true); }

 private:
  struct ModeGuard {  // sets train/eval mode, restores it
    ModeGuard(nn::Module<T>& m, bool on) : m(m), was(m.is_training()) { m.train(on); }
    ~ModeGuard() { m.train(was); }
    nn::Module<T>& m;
    bool was;
  };
  struct Dense {
    int epochs = 0;
    double best = 0, last = 0;
  };
  struct Snapshot {
    std::vector<Tensor<T>> tensors;  // parameters, then buffers (owners and pruned flags too)
  };

  // Where the network lives (the first layer's weight; Module::to moves everything).
  Device device() const {
    if (layers_.empty()) return Device::cpu();
    auto& l = layers_.front();
    return l.linear ? l.linear->weight.device() : l.conv->weight.device();
  }

  void check_building(const char* op) const {
    check(current_ < 0 && heads_.empty(), "EideticNet", op, ": layers are added before the tasks");
  }
  std::shared_ptr<nn::BatchNormBase<T>> register_bn(std::shared_ptr<nn::BatchNormBase<T>> bn) {
    return this->register_module("bn" + std::to_string(layers_.size()), bn);
  }
  void add_layer(Layer<T> l, std::int64_t in) {
    const std::int64_t n = l.weight().shape()[0];
    if (!layers_.empty()) {
      const std::int64_t prev = layers_.back().neurons();
      check(l.conv ? in == prev : in % prev == 0, "EideticNet", "layer ", layers_.size(), " reads ", in,
            " inputs, which does not fit the ", prev, " neurons (channels) before it");
    }
    l.owner.assign(std::size_t(n), -1);
    l.pruned.assign(std::size_t(n), 0);
    const std::string k = std::to_string(layers_.size());
    l.owner_state = this->register_buffer("owner" + k, full<T>({n}, T(-1), device()));
    l.pruned_state = this->register_buffer("pruned" + k, zeros<T>({n}, device()));
    if (!layers_.empty()) {  // join the device of the layers before it
      if (l.linear) l.linear->to(device());
      else l.conv->to(device());
      if (l.bn) l.bn->to(device());
      if (l.proj) l.proj->to(device());
      if (l.proj_bn) l.proj_bn->to(device());
    }
    layers_.push_back(std::move(l));
  }

  Tensor<T> features(const Tensor<T>& x) {
    Tensor<T> h = x, block_in;
    for (auto& l : layers_) {
      if (l.linear && h.dim() > 2) h = h.flatten(1);
      Tensor<T> z = l.linear ? (*l.linear)(h) : (*l.conv)(h);
      if (capture_) {
        z.retain_grad();
        captured_.push_back(z);
      }
      if (l.bn) z = (*l.bn)(z);
      if (l.proj) {
        auto r = (*l.proj)(block_in);
        z = add(z, l.proj_bn ? (*l.proj_bn)(r) : r);
      }
      block_in = h;  // the next layer's input, a residual projection's too
      h = l.relu ? relu(z) : z;
      if (options_.dropout > 0) h = dropout(h, options_.dropout, this->is_training(), gen_);
      if (l.pool > 1) h = max_pool2d(h, MaxPool2dOptions{.kernel_size = l.pool});
    }
    return h;
  }

  // --- masks (pruning.hpp) --------------------------------------------------------------
  // Physical zeros wherever this task masked: pruned rows (weight, bias, BatchNorm affine),
  // the columns that read pruned neurons, and the current head's columns.
  void apply_masks(nn::Linear<T>* head) {
    for (std::size_t li = 0; li < layers_.size(); ++li) {
      auto& l = layers_[li];
      keep_where(l.weight(), weight_mask(layers_, li, false));
      const auto kept = neuron_mask(l, [&](std::int64_t i) { return !l.pruned[i]; });
      if (l.bias().defined()) keep_where(l.bias(), kept);
      for (auto* bn : {l.bn.get(), l.proj_bn.get()})
        if (bn && bn->weight.defined()) {
          keep_where(bn->weight, kept);
          keep_where(bn->bias, kept);
        }
      if (l.proj) keep_where(l.proj->weight, proj_mask(layers_, li, false));
    }
    if (head) keep_where(head->weight, head_mask(layers_, *head));
  }
  // The optimizer may change: free, unpruned rows (their unmasked columns), their bias and
  // BatchNorm affine, and the head's columns of unpruned neurons. Owned BatchNorm channels
  // use their running statistics.
  template <class Opt>
  void install_masks(Opt& opt, nn::Linear<T>& head) {
    for (std::size_t li = 0; li < layers_.size(); ++li) {
      auto& l = layers_[li];
      opt.set_update_mask(l.weight(), weight_mask(layers_, li, true));
      const auto free = neuron_mask(l, [&](std::int64_t i) { return l.is_candidate(i); });
      if (l.bias().defined()) opt.set_update_mask(l.bias(), free);
      if (l.proj) opt.set_update_mask(l.proj->weight, proj_mask(layers_, li, true));
      for (auto* bn : {l.bn.get(), l.proj_bn.get()}) {
        if (!bn) continue;
        if (bn->weight.defined()) {
          opt.set_update_mask(bn->weight, free);
          opt.set_update_mask(bn->bias, free);
        }
        bn->frozen_channels = frozen_channels(l);
      }
    }
    opt.set_update_mask(head.weight, head_mask(layers_, head));
  }
  std::unique_ptr<optim::Adam<T>> make_optimizer(nn::Linear<T>& head) {
    std::vector<Tensor<T>> params;
    for (auto& l : layers_) {
      params.push_back(l.weight());
      if (l.bias().defined()) params.push_back(l.bias());
      if (l.proj) params.push_back(l.proj->weight);
      for (auto* bn : {l.bn.get(), l.proj_bn.get()})
        if (bn && bn->weight.defined()) {
          params.push_back(bn->weight);
          params.push_back(bn->bias);
        }
    }
    for (auto& p : head.parameters()) params.push_back(p);
    optim::AdamOptions o;
    o.lr = options_.lr;  // weight decay 0: the spec's setting (masked updates would allow it)
    return std::make_unique<optim::Adam<T>>(params, o);
  }

 public:
  // Re-initialises free capacity: free rows U(+-1/sqrt(fan_in)) (weight and bias), free
  // BatchNorm channels to weight 1, bias 0, mean 0, var 1. Owned rows keep their values.
  // learn_task and learn_router call it after commit().
  void recycle() {
    reload();
    NoGradGuard no_grad;
    for (auto& l : layers_) {
      const auto free = neuron_mask(l, [&](std::int64_t i) { return l.is_free(i); });
      reinit_rows(l.weight(), l.bias(), free);
      if (l.proj) reinit_rows(l.proj->weight, Tensor<T>(), free);
      for (auto* bn : {l.bn.get(), l.proj_bn.get()}) {
        if (!bn) continue;
        if (bn->weight.defined()) {
          bn->weight.copy_(where(free, ones_like(bn->weight), bn->weight));
          bn->bias.copy_(where(free, zeros_like(bn->bias), bn->bias));
        }
        if (bn->running_mean.defined()) {
          bn->running_mean.copy_(where(free, zeros_like(bn->running_mean), bn->running_mean));
          bn->running_var.copy_(where(free, ones_like(bn->running_var), bn->running_var));
        }
      }
    }
  }

 private:
  // Rows of w (and entries of bias) where `rows` is true get U(+-1/sqrt(fan_in)).
  void reinit_rows(Tensor<T>& w, Tensor<T> bias, const Tensor<bool>& rows) {
    const std::int64_t n = w.shape()[0], fan_in = w.numel() / std::max<std::int64_t>(n, 1);
    const double bound = 1.0 / std::sqrt(double(std::max<std::int64_t>(fan_in, 1)));
    Shape row_shape(std::size_t(w.dim()), 1);
    row_shape[0] = n;
    auto fresh = Tensor<T>::empty(w.shape(), w.device());
    nn::init::uniform_(fresh, -bound, bound, gen_);
    w.copy_(where(rows.reshape(row_shape), fresh, w));
    if (bias.defined()) {
      auto fb = Tensor<T>::empty(bias.shape(), w.device());
      nn::init::uniform_(fb, -bound, bound, gen_);
      bias.copy_(where(rows, fb, bias));
    }
  }

  // --- training loops --------------------------------------------------------------------
  // One epoch; returns the running training accuracy (train mode, as the official code). A
  // progress bar on a terminal (io::ProgressBar: quiet in logs).
  double train_epoch(nn::Linear<T>& head, const data::TensorDataset<T>& d, optim::Adam<T>& opt) {
    ModeGuard train(*this, true);
    data::LoaderOptions lo;
    lo.batch_size = options_.batch_size;
    lo.shuffle = true;
    lo.seed = options_.seed * 1000003 + 17;
    lo.prefetch = false;
    data::DataLoader<T> loader(d, lo);
    std::int64_t correct = 0, seen = 0;
    io::ProgressBar bar(loader.size(), &head == router_.get() ? "router" : "task " + std::to_string(current_));
    for (auto [x, y] : loader.epoch(epochs_run_++)) {
      x = x.to(device());
      y = y.to(device());
      auto logits = head(features(x));
      auto loss = cross_entropy(logits, y);
      check(std::isfinite(double(loss.item())), "EideticNet", "the training loss is not finite");
      opt.zero_grad();
      loss.backward();
      opt.step();
      NoGradGuard no_grad;
      correct += sum(eq(argmax(logits.detach(), 1), y).template to<std::int64_t>()).item();
      seen += y.numel();
      bar.update(1, {{"loss", double(loss.item())}, {"acc", double(correct) / double(seen)}});
    }
    return seen ? double(correct) / double(seen) : 0.0;
  }

  // Phase A (spec 3.2): early stop on the running training accuracy; one more epoch after
  // the decision, with the learning rate reduced for the pruning that follows.
  Dense train_dense(nn::Linear<T>& head, const data::TensorDataset<T>& d, optim::Adam<T>& opt, int patience,
                    int max_epochs, const std::string& what) {
    Dense r;
    int best_epoch = 0;
    bool stop = false;
    for (;;) {
      ++r.epochs;
      const double a = train_epoch(head, d, opt);
      r.last = a;
      if (options_.verbose) std::printf("  %s  epoch %2d  train accuracy %.4f\n", what.c_str(), r.epochs, a);
      if (stop) break;
      stop = a >= 1.0 || (a < r.best && r.epochs - best_epoch > patience) || r.epochs >= max_epochs;
      if (stop && options_.lr_reduce_factor > 0)
        for (auto& g : opt.param_groups()) g.options.lr /= options_.lr_reduce_factor;
      if (a > r.best) best_epoch = r.epochs;
      r.best = std::max(r.best, a);
    }
    return r;
  }

  Snapshot snapshot() const {
    Snapshot s;
    NoGradGuard no_grad;
    for (auto& p : this->parameters()) s.tensors.push_back(p.detach().clone());
    for (auto& b : this->buffers()) s.tensors.push_back(b.clone());
    return s;
  }
  void restore(const Snapshot& s) {
    NoGradGuard no_grad;
    std::size_t k = 0;
    for (auto& p : this->parameters()) p.copy_(s.tensors[k++]);
    for (auto& b : this->buffers()) b.copy_(s.tensors[k++]);
    reload();
  }

  // The per-neuron state lives in buffers (so that state_dict carries it) and, for the loops,
  // in host vectors: store() writes the vectors to the buffers, reload() reads them back.
  void store() {
    NoGradGuard no_grad;
    for (auto& l : layers_) {
      std::vector<T> o(l.owner.begin(), l.owner.end()), p(l.pruned.begin(), l.pruned.end());
      l.owner_state.copy_(tensor<T>(o, {l.neurons()}).to(l.owner_state.device()));
      l.pruned_state.copy_(tensor<T>(p, {l.neurons()}).to(l.pruned_state.device()));
    }
    progress_.copy_(tensor<T>(std::vector<T>{T(current_), T(committed_), T(router_trained_ ? 1 : -1)}, {3}).to(progress_.device()));
  }
  void reload() {
    for (auto& l : layers_) {
      const auto o = l.owner_state.to(Device::cpu()).to_vector(), p = l.pruned_state.to(Device::cpu()).to_vector();
      for (std::size_t i = 0; i < o.size(); ++i) {
        l.owner[i] = std::int64_t(o[i]);
        l.pruned[i] = p[i] != T(0);
      }
      for (auto* bn : {l.bn.get(), l.proj_bn.get()})
        if (bn) bn->frozen_channels = frozen_channels(l);
    }
    const auto pr = progress_.to(Device::cpu()).to_vector();
    current_ = std::int64_t(pr[0]);
    committed_ = std::int64_t(pr[1]);
    router_trained_ = pr[2] > T(0);
    check(current_ < std::int64_t(heads_.size()) && (!router_trained_ || router_), "EideticNet",
          "the loaded state has ", current_ + 1, " tasks", router_trained_ ? " and a router" : "", " but the network ",
          heads_.size(), " heads", router_ ? " and a router" : " and no router (add_router() before loading)");
  }

  // Phase B (spec 3.3): prune, retrain, roll the last step back when accuracy falls too far.
  void prune_loop(nn::Linear<T>& head, const data::TensorDataset<T>& d, optim::Adam<T>& opt, double best,
                  TaskReport& r) {
    const std::int64_t at_start = candidates(layers_);
    if (at_start == 0) return;  // no free capacity: nothing to prune
    double a = best;
    Snapshot s = snapshot();
    for (;;) {
      if (a < best * (1 - options_.tol)) {
        restore(s);
        r.rolled_back = true;
        break;
      }
      if (double(at_start - candidates(layers_)) / double(at_start) > options_.max_masking_ratio) {
        restore(s);
        r.rolled_back = true;
        break;
      }
      s = snapshot();
      if (!prune_step(head, d)) {
        restore(s);
        break;
      }
      ++r.prune_steps;
      install_masks(opt, head);
      for (int e = 0; e < options_.max_recovery_epochs; ++e) {
        a = train_epoch(head, d, opt);
        ++r.recovery_epochs;
        const bool within = a >= best * (1 - options_.tol);
        best = std::max(best, a);
        if (within) break;
      }
      if (options_.verbose) {
        std::printf("  task %lld  prune step %d (%s)  pruned", static_cast<long long>(current_), r.prune_steps,
                    pruning_name(options_.pruning));
        for (auto& l : layers_)
          std::printf(" %lld/%lld", static_cast<long long>(std::count(l.pruned.begin(), l.pruned.end(), 1)),
                      static_cast<long long>(l.neurons()));
        std::printf("  train accuracy %.4f\n", a);
      }
    }
    install_masks(opt, head);
    r.best_train_accuracy = best;
  }

  // One pruning step; false when there is nothing to prune.
  bool prune_step(nn::Linear<T>& head, const data::TensorDataset<T>& d) {
    const Chosen chosen = options_.pruning == Pruning::Taylor
                              ? choose_by_threshold(layers_, taylor_scores(head, d), options_.step)
                              : choose_per_layer(layers_, options_.pruning, options_.step, gen_);
    if (chosen.empty()) return false;
    for (std::size_t li = 0; li < layers_.size(); ++li)
      for (auto i : chosen[li]) layers_[li].pruned[std::size_t(i)] = 1;
    apply_masks(&head);
    store();
    return true;
  }

  // Taylor importance (Molchanov et al. 2017): per neuron, the mean over batch and positions
  // of |z * dL/dz| for the layer's output z (before BatchNorm), summed over the task's data,
  // in eval mode; +inf for owned and pruned neurons.
  std::vector<std::vector<double>> taylor_scores(nn::Linear<T>& head, const data::TensorDataset<T>& d) {
    std::vector<std::vector<double>> s;
    for (auto& l : layers_) s.emplace_back(std::size_t(l.neurons()), 0.0);
    ModeGuard eval(*this, false);
    data::LoaderOptions lo;
    lo.batch_size = options_.batch_size;
    lo.prefetch = false;
    data::DataLoader<T> loader(d, lo);
    capture_ = true;
    for (auto [x, y] : loader.epoch(0)) {
      captured_.clear();
      auto loss = cross_entropy(head(features(x.to(device()))), y.to(device()));
      loss.backward();
      NoGradGuard no_grad;
      for (std::size_t li = 0; li < layers_.size(); ++li) {
        auto& z = captured_[li];
        const std::int64_t n = layers_[li].neurons();
        auto zg = abs(mul(z.detach(), z.grad())).transpose(0, 1).reshape({n, -1});
        auto v = mean(zg, {1}).template to<double>().to(Device::cpu()).to_vector();
        for (std::int64_t i = 0; i < n; ++i) s[li][std::size_t(i)] += v[std::size_t(i)];
      }
    }
    capture_ = false;
    captured_.clear();
    this->zero_grad();
    for (std::size_t li = 0; li < layers_.size(); ++li)
      for (std::int64_t i = 0; i < layers_[li].neurons(); ++i)
        if (!layers_[li].is_candidate(i)) s[li][std::size_t(i)] = std::numeric_limits<double>::infinity();
    return s;
  }

  Options options_;
  Generator gen_;
  std::vector<Layer<T>> layers_;
  std::vector<std::shared_ptr<nn::Linear<T>>> heads_;
  std::shared_ptr<nn::Linear<T>> router_;
  Tensor<T> progress_;  // [current_, committed_, router trained ? 1 : -1], a buffer
  std::int64_t current_ = -1, committed_ = -1;
  bool router_trained_ = false;
  std::uint64_t epochs_run_ = 0;
  bool capture_ = false;
  std::vector<Tensor<T>> captured_;
};

}  // namespace ligm::methods::eidetic
