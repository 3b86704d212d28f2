// TensorDataset and samplers: which examples a DataLoader visits, in which order.
//
//   data::TensorDataset<> train{images, labels};
//   auto task = train.subset(data::class_subset_indices(train.targets, {0, 1}));   // a two-class task
//   auto lt = data::long_tail_indices(train.targets, 100.0, gen);                   // imbalance 100:1
//   data::DataLoader loader(train, {.batch_size = 128,
//                                   .sampler = data::SubsetSampler::make(lt, true)}); // shuffled each epoch
#pragma once
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "ligm/ops/creation.hpp"
#include "ligm/ops/movement.hpp"

namespace ligm::data {

// Inputs [N, ...] and targets [N, ...] that belong together.
template <class X = float, class Y = std::int64_t>
struct TensorDataset {
  Tensor<X> inputs;
  Tensor<Y> targets;
  std::int64_t size() const { return inputs.shape()[0]; }
  void check_valid() const {
    check(inputs.defined() && targets.defined() && inputs.dim() >= 1 && targets.dim() >= 1 &&
              inputs.shape()[0] == targets.shape()[0],
          "TensorDataset", "inputs ", inputs.shape(), " and targets ", targets.shape(), " must have the same first dim");
  }
  // The examples at `indices` (copied), in that order.
  TensorDataset subset(const std::vector<std::int64_t>& indices) const {
    check_valid();
    auto idx = tensor<std::int64_t>(indices, {std::int64_t(indices.size())}).to(inputs.device());
    return {index_select(inputs, 0, idx), index_select(targets, 0, idx.to(targets.device()))};
  }
};

// Indices of the examples whose label is in `classes`, in dataset order; at most
// per_class_limit of each class (the first ones) when given.
inline std::vector<std::int64_t> class_subset_indices(const Tensor<std::int64_t>& labels,
                                                      const std::vector<std::int64_t>& classes,
                                                      std::int64_t per_class_limit = -1) {
  const std::set<std::int64_t> wanted(classes.begin(), classes.end());
  std::map<std::int64_t, std::int64_t> taken;
  std::vector<std::int64_t> out;
  const auto v = labels.to(Device::cpu()).contiguous().to_vector();
  for (std::size_t i = 0; i < v.size(); ++i)
    if (wanted.count(v[i]) && (per_class_limit < 0 || taken[v[i]]++ < per_class_limit)) out.push_back(std::int64_t(i));
  return out;
}

// Labels mapped to their position in `classes` (classes {5, 9} -> labels 0, 1); a label not
// in `classes` is an error.
inline Tensor<std::int64_t> remap_labels(const Tensor<std::int64_t>& labels, const std::vector<std::int64_t>& classes) {
  std::map<std::int64_t, std::int64_t> pos;
  for (std::size_t i = 0; i < classes.size(); ++i) pos[classes[i]] = std::int64_t(i);
  auto v = labels.to(Device::cpu()).contiguous().to_vector();
  for (auto& l : v) {
    auto it = pos.find(l);
    check(it != pos.end(), "remap_labels", "label ", l, " is not one of the ", classes.size(), " classes given");
    l = it->second;
  }
  return tensor<std::int64_t>(v, labels.shape()).to(labels.device());
}

// A class-imbalanced subset: class c keeps n_max * imbalance^(-r_c / (C - 1)) of its
// examples, r_c its rank in `class_order` (default: by label), the CIFAR-LT profile; which
// examples are kept is drawn from gen. imbalance = n_most / n_fewest.
inline std::vector<std::int64_t> long_tail_indices(const Tensor<std::int64_t>& labels, double imbalance, Generator& gen,
                                                   std::vector<std::int64_t> class_order = {}) {
  check(imbalance >= 1, "long_tail_indices", "imbalance must be >= 1, got ", imbalance);
  const auto v = labels.to(Device::cpu()).contiguous().to_vector();
  std::map<std::int64_t, std::vector<std::int64_t>> by_class;
  for (std::size_t i = 0; i < v.size(); ++i) by_class[v[i]].push_back(std::int64_t(i));
  if (class_order.empty())
    for (auto& [c, idx] : by_class) class_order.push_back(c);
  std::size_t n_max = 0;
  for (auto& [c, idx] : by_class) n_max = std::max(n_max, idx.size());
  const double C = double(class_order.size());
  std::vector<std::int64_t> out;
  for (std::size_t r = 0; r < class_order.size(); ++r) {
    auto& idx = by_class[class_order[r]];
    const double frac = C > 1 ? std::pow(imbalance, -double(r) / (C - 1)) : 1.0;
    const std::size_t keep = std::min(idx.size(), std::size_t(std::max(1.0, std::floor(double(n_max) * frac))));
    const auto perm = randperm(std::int64_t(idx.size()), gen).to_vector();
    for (std::size_t i = 0; i < keep; ++i) out.push_back(idx[std::size_t(perm[i])]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Per-example counts of each class: {label: count}.
inline std::map<std::int64_t, std::int64_t> class_counts(const Tensor<std::int64_t>& labels) {
  std::map<std::int64_t, std::int64_t> n;
  for (auto l : labels.to(Device::cpu()).contiguous().to_vector()) ++n[l];
  return n;
}

// Chooses the dataset indices of each epoch; DataLoader asks it for an epoch's order.
class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual std::int64_t size() const = 0;                            // indices per epoch
  virtual std::vector<std::int64_t> indices(std::uint64_t epoch) const = 0;
};

// A fixed list of indices, in order or shuffled per epoch (seed + epoch).
class SubsetSampler : public Sampler {
 public:
  SubsetSampler(std::vector<std::int64_t> indices, bool shuffle = false, std::uint64_t seed = 0)
      : idx_(std::move(indices)), shuffle_(shuffle), seed_(seed) {}
  static std::shared_ptr<const Sampler> make(std::vector<std::int64_t> indices, bool shuffle = false,
                                             std::uint64_t seed = 0) {
    return std::make_shared<SubsetSampler>(std::move(indices), shuffle, seed);
  }
  std::int64_t size() const override { return std::int64_t(idx_.size()); }
  std::vector<std::int64_t> indices(std::uint64_t epoch) const override {
    if (!shuffle_) return idx_;
    Generator gen(seed_ + epoch);
    std::vector<std::int64_t> out;
    for (auto p : randperm(size(), gen).to_vector()) out.push_back(idx_[std::size_t(p)]);
    return out;
  }

 private:
  std::vector<std::int64_t> idx_;
  bool shuffle_;
  std::uint64_t seed_;
};

// PyTorch's WeightedRandomSampler: num_samples indices drawn with probability proportional
// to weights (with or without replacement). class_balanced_weights gives each class equal
// total weight, which re-balances an imbalanced dataset.
class WeightedRandomSampler : public Sampler {
 public:
  WeightedRandomSampler(std::vector<double> weights, std::int64_t num_samples, bool replacement = true,
                        std::uint64_t seed = 0)
      : w_(std::move(weights)), n_(num_samples), replacement_(replacement), seed_(seed) {
    double total = 0;
    for (double v : w_) {
      check(v >= 0 && std::isfinite(v), "WeightedRandomSampler", "weights must be finite and non-negative, got ", v);
      total += v;
    }
    check(total > 0, "WeightedRandomSampler", "weights sum to zero");
    check(replacement || num_samples <= std::int64_t(std::count_if(w_.begin(), w_.end(), [](double v) { return v > 0; })),
          "WeightedRandomSampler", "cannot draw ", num_samples, " samples without replacement from ", w_.size(),
          " weights");
  }
  static std::shared_ptr<const Sampler> make(std::vector<double> weights, std::int64_t num_samples,
                                             bool replacement = true, std::uint64_t seed = 0) {
    return std::make_shared<WeightedRandomSampler>(std::move(weights), num_samples, replacement, seed);
  }
  std::int64_t size() const override { return n_; }
  std::vector<std::int64_t> indices(std::uint64_t epoch) const override {
    Generator gen(seed_ + epoch);
    const auto u = rand<double>({replacement_ ? n_ : std::int64_t(w_.size())}, gen).to_vector();
    std::vector<std::int64_t> out;
    if (replacement_) {  // inverse CDF
      std::vector<double> cdf(w_.size());
      double acc = 0;
      for (std::size_t i = 0; i < w_.size(); ++i) cdf[i] = (acc += w_[i]);
      for (double r : u) {
        const auto at = std::upper_bound(cdf.begin(), cdf.end(), r * acc) - cdf.begin();
        out.push_back(std::min<std::int64_t>(at, std::int64_t(w_.size()) - 1));
      }
    } else {  // the n largest keys log(u_i) / w_i (Efraimidis-Spirakis)
      std::vector<std::pair<double, std::int64_t>> keys;
      for (std::size_t i = 0; i < w_.size(); ++i)
        if (w_[i] > 0) keys.emplace_back(std::log(u[i]) / w_[i], std::int64_t(i));
      std::partial_sort(keys.begin(), keys.begin() + n_, keys.end(), std::greater<>());
      for (std::int64_t k = 0; k < n_; ++k) out.push_back(keys[std::size_t(k)].second);
    }
    return out;
  }

 private:
  std::vector<double> w_;
  std::int64_t n_;
  bool replacement_;
  std::uint64_t seed_;
};

// 1 / (count of the example's class): every class gets the same total weight.
inline std::vector<double> class_balanced_weights(const Tensor<std::int64_t>& labels) {
  const auto counts = class_counts(labels);
  std::vector<double> w;
  for (auto l : labels.to(Device::cpu()).contiguous().to_vector()) w.push_back(1.0 / double(counts.at(l)));
  return w;
}

}  // namespace ligm::data
