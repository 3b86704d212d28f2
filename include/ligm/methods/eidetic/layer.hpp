// Eidetic learning's vocabulary: the pruning criteria, the options, one prunable layer and its
// per-neuron ownership, and what the network reports (eidetic.hpp builds on these).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "ligm/nn/nn.hpp"

namespace ligm::methods::eidetic {

enum class Pruning { Taylor, L1, L2, Random };

inline const char* pruning_name(Pruning p) {
  switch (p) {
    case Pruning::Taylor: return "taylor";
    case Pruning::L1: return "l1";
    case Pruning::L2: return "l2";
    case Pruning::Random: return "random";
  }
  return "?";
}

struct Options {
  // Phase A, dense training: stop when the running training accuracy reaches 1 or has not
  // improved for `patience` epochs (or after max_epochs); one more epoch runs after the
  // decision, with the learning rate divided by lr_reduce_factor (0: kept) before pruning.
  double lr = 1e-3;
  std::int64_t batch_size = 256;
  int patience = 2;
  int max_epochs = 30;
  double lr_reduce_factor = 2;
  // Phase B, pruning: `step` of the free candidates per step (Taylor: one global threshold;
  // L1/L2/random: that fraction of each layer's candidates); the step that takes the training
  // accuracy below best * (1 - tol) is rolled back; at most max_recovery_epochs of retraining
  // after each step; at most max_masking_ratio of the task's candidate neurons pruned.
  Pruning pruning = Pruning::Taylor;
  double step = 0.1;
  double tol = 0.01;
  int max_recovery_epochs = 2;
  double max_masking_ratio = 0.95;
  // The router: dense training on all tasks' data, no pruning.
  int router_patience = 5;
  int router_max_epochs = 30;
  double dropout = 0;       // after each hidden ReLU, in training
  std::uint64_t seed = 0;   // shuffling, re-initialisation, random pruning
  bool verbose = true;      // one line per epoch and per pruning step
};

// One prunable layer: Linear or Conv2d, optionally followed by BatchNorm, then ReLU (and an
// optional max-pool). Neuron i is row i of the weight (output channel i for a convolution).
// In the state_dict: layer k is "linear<k>" or "conv<k>" and "bn<k>" (a block's projection
// "proj<k>", "proj_bn<k>"), with its owners and pruned flags as buffers "owner<k>" and
// "pruned<k>"; heads are "head<t>", the router "router"; "progress" holds the task being
// learned, the last committed task and whether the router is trained. So a state_dict saved
// between tasks resumes exactly: build the same network, add the same tasks (and, if it was
// trained, add_router()), load_state_dict, continue.
template <class T>
struct Layer {
  std::shared_ptr<nn::Linear<T>> linear;  // exactly one of linear, conv
  std::shared_ptr<nn::Conv2d<T>> conv;
  std::shared_ptr<nn::BatchNormBase<T>> bn;  // or null
  std::int64_t pool = 0;                     // max-pool kernel after the ReLU (0: none)
  bool relu = true;
  // The second layer of a residual block adds proj (a 1x1 convolution with its own BatchNorm)
  // of the block's input, the input of the layer before it. proj's rows belong to this
  // layer's neurons: channel i of the sum is neuron i.
  std::shared_ptr<nn::Conv2d<T>> proj;
  std::shared_ptr<nn::BatchNormBase<T>> proj_bn;
  std::vector<std::int64_t> owner;           // per neuron: owning task, -1 = free
  std::vector<char> pruned;                  // per neuron: pruned in the current task
  Tensor<T> owner_state, pruned_state;       // the same as buffers "owner<k>", "pruned<k>" (state_dict)

  Tensor<T>& weight() { return linear ? linear->weight : conv->weight; }
  Tensor<T>& bias() { return linear ? linear->bias : conv->bias; }
  const Tensor<T>& weight() const { return linear ? linear->weight : conv->weight; }
  std::int64_t neurons() const { return std::int64_t(owner.size()); }
  // Free: owned by no task. A candidate for pruning: free and not pruned yet.
  bool is_free(std::int64_t i) const { return owner[std::size_t(i)] < 0; }
  bool is_candidate(std::int64_t i) const { return is_free(i) && !pruned[std::size_t(i)]; }
};

// Neurons per layer: free, and owned by each task so far.
struct LayerCapacity {
  std::int64_t neurons = 0, free = 0;
  std::vector<std::int64_t> owned;  // [task]
};

// What learn_task did.
struct TaskReport {
  std::int64_t task = 0;
  int dense_epochs = 0, prune_steps = 0, recovery_epochs = 0;
  double best_train_accuracy = 0;  // running training accuracy, train mode
  double final_train_accuracy = 0;
  std::vector<std::int64_t> pruned;  // per layer, after the rollback
  bool rolled_back = false;
};

}  // namespace ligm::methods::eidetic
