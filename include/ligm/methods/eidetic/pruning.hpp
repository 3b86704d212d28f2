// Which neurons a pruning step takes, and the masks that make a pruning physical and keep owned
// weights frozen: functions of the layers' ownership alone (eidetic.hpp calls them).
//
// Masks are element masks of a weight (true = kept, or for the optimizer, may change): a row is
// a neuron of the layer, a column group reads one neuron of the layer before (a convolution's
// kh * kw taps of one input channel, a Linear's columns of one flattened channel).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "ligm/methods/eidetic/layer.hpp"

namespace ligm::methods::eidetic {

// Neurons to prune, per layer.
using Chosen = std::vector<std::vector<std::int64_t>>;

// A [rows, per_row] mask shaped `shape`: row i kept where row_ok(i), and within it the column
// groups whose input neuron is not pruned (all of them without in_pruned).
template <class RowOk>
Tensor<bool> element_mask(std::int64_t rows, std::int64_t per_row, const std::vector<char>* in_pruned, RowOk row_ok,
                          const Shape& shape, Device device) {
  const std::int64_t groups = in_pruned ? std::int64_t(in_pruned->size()) : 1, s = per_row / groups;
  std::vector<std::int64_t> m(std::size_t(rows * per_row), 0);
  for (std::int64_t i = 0; i < rows; ++i) {
    if (!row_ok(i)) continue;
    for (std::int64_t j = 0; j < groups; ++j)
      if (!in_pruned || !(*in_pruned)[std::size_t(j)]) std::fill_n(m.begin() + (i * per_row + j * s), s, std::int64_t(1));
  }
  return tensor<std::int64_t>(m, shape).template to<bool>().to(device);
}

// Whether row i of a layer's weight (or of its projection) is kept: not pruned, and for
// `trainable` also free.
template <class T>
auto kept_row(const Layer<T>& l, bool trainable) {
  return [&l, trainable](std::int64_t i) { return !l.pruned[std::size_t(i)] && (!trainable || l.is_free(i)); };
}

// Layer li's weight: its unpruned rows (and, for `trainable`, only the free ones), the columns
// of the unpruned neurons of the layer before.
template <class T>
Tensor<bool> weight_mask(const std::vector<Layer<T>>& layers, std::size_t li, bool trainable) {
  const auto& l = layers[li];
  const Tensor<T>& w = l.weight();
  const std::int64_t n = w.shape()[0], per_row = w.numel() / std::max<std::int64_t>(n, 1);
  const std::vector<char>* in_pruned = li == 0 ? nullptr : &layers[li - 1].pruned;
  return element_mask(n, per_row, in_pruned, kept_row(l, trainable), w.shape(), w.device());
}

// The projection of a residual block (layer li): rows are layer li's neurons, columns the
// block's input neurons (the input of layer li - 1).
template <class T>
Tensor<bool> proj_mask(const std::vector<Layer<T>>& layers, std::size_t li, bool trainable) {
  const auto& l = layers[li];
  const Tensor<T>& w = l.proj->weight;
  const std::vector<char>* in_pruned = li < 2 ? nullptr : &layers[li - 2].pruned;
  return element_mask(w.shape()[0], w.numel() / w.shape()[0], in_pruned, kept_row(l, trainable), w.shape(),
                      w.device());
}

// A head's weight: every row kept; the columns of pruned last-layer neurons masked.
template <class T>
Tensor<bool> head_mask(const std::vector<Layer<T>>& layers, const nn::Linear<T>& head) {
  const auto& w = head.weight;
  return element_mask(w.shape()[0], w.shape()[1], &layers.back().pruned, [](std::int64_t) { return true; }, w.shape(),
                      w.device());
}

// A per-neuron mask [N] from a predicate on the neuron's index.
template <class T, class F>
Tensor<bool> neuron_mask(const Layer<T>& l, F f) {
  std::vector<std::int64_t> m(l.owner.size());
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = f(std::int64_t(i)) ? 1 : 0;
  return tensor<std::int64_t>(m, {std::int64_t(m.size())}).template to<bool>().to(l.weight().device());
}

// BatchNorm's frozen_channels for a layer: its owned channels (undefined while none is owned:
// plain BatchNorm, one normalisation instead of two).
template <class T>
Tensor<bool> frozen_channels(const Layer<T>& l) {
  const bool any = std::any_of(l.owner.begin(), l.owner.end(), [](std::int64_t o) { return o >= 0; });
  return any ? neuron_mask(l, [&](std::int64_t i) { return !l.is_free(i); }) : Tensor<bool>();
}

// p's values where mask is true, exact zeros elsewhere.
template <class T>
void keep_where(Tensor<T>& p, const Tensor<bool>& mask) {
  NoGradGuard no_grad;
  p.copy_(where(mask, p, zeros_like(p)));
}

// Free neurons not pruned yet, over all layers.
template <class T>
std::int64_t candidates(const std::vector<Layer<T>>& layers) {
  std::int64_t c = 0;
  for (auto& l : layers)
    for (std::int64_t i = 0; i < l.neurons(); ++i) c += l.is_candidate(i);
  return c;
}

// ||row i||_p of a layer's weight; masked entries are physical zeros, so they add nothing.
template <class T>
std::vector<double> row_norms(const Layer<T>& l, int p) {
  NoGradGuard no_grad;
  auto w = l.weight().detach().reshape({l.neurons(), -1});
  auto n = p == 1 ? sum(abs(w), {1}) : sqrt(sum(mul(w, w), {1}));
  return n.template to<double>().to(Device::cpu()).to_vector();
}

// Taylor pruning: floor(step * candidates) neurons in all, by one global threshold on the
// scores (the spec's L2 normalisation does not change the order); ties at the threshold all go.
// Empty when that is none.
template <class T>
Chosen choose_by_threshold(const std::vector<Layer<T>>& layers, const std::vector<std::vector<double>>& scores,
                           double step) {
  Chosen chosen(layers.size());
  std::vector<std::pair<double, std::pair<std::size_t, std::int64_t>>> cand;
  for (std::size_t li = 0; li < layers.size(); ++li)
    for (std::int64_t i = 0; i < layers[li].neurons(); ++i)
      if (layers[li].is_candidate(i)) cand.push_back({scores[li][std::size_t(i)], {li, i}});
  const auto k = std::int64_t(std::floor(step * double(cand.size())));
  if (k == 0) return {};
  std::vector<double> s;
  for (auto& c : cand) s.push_back(c.first);
  std::nth_element(s.begin(), s.begin() + (k - 1), s.end());
  const double tau = s[std::size_t(k - 1)];
  for (auto& c : cand)
    if (c.first <= tau) chosen[c.second.first].push_back(c.second.second);
  return chosen;
}

// L1, L2 and random pruning: round(step * candidates) of each layer's own candidates, the
// smallest row norms (owned rows are never candidates, whatever their norm) or a random draw.
// Empty when no layer has one to give.
template <class T>
Chosen choose_per_layer(const std::vector<Layer<T>>& layers, Pruning pruning, double step, Generator& gen) {
  Chosen chosen(layers.size());
  bool any = false;
  for (std::size_t li = 0; li < layers.size(); ++li) {
    const auto& l = layers[li];
    std::vector<std::int64_t> cand;
    for (std::int64_t i = 0; i < l.neurons(); ++i)
      if (l.is_candidate(i)) cand.push_back(i);
    const auto n = std::min<std::int64_t>(std::llround(step * double(cand.size())), std::int64_t(cand.size()));
    if (n <= 0) continue;
    any = true;
    if (pruning == Pruning::Random) {
      auto perm = randperm(std::int64_t(cand.size()), gen).to_vector();
      for (std::int64_t j = 0; j < n; ++j) chosen[li].push_back(cand[std::size_t(perm[std::size_t(j)])]);
    } else {
      const auto norms = row_norms(l, pruning == Pruning::L1 ? 1 : 2);
      std::stable_sort(cand.begin(), cand.end(), [&](auto a, auto b) { return norms[std::size_t(a)] < norms[std::size_t(b)]; });
      chosen[li].assign(cand.begin(), cand.begin() + n);
    }
  }
  return any ? chosen : Chosen{};
}

}  // namespace ligm::methods::eidetic
