// The autograd graph: one Node per recorded op, pointing at the nodes of its inputs.
//
// Every recorded op has exactly one differentiable output. Multi-output ops (split, chunk,
// max with indices) are built from single-output ops, so a node receives one gradient and
// returns one gradient per input (undefined where an input needs none).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ligm/autograd/anomaly.hpp"
#include "ligm/core/tensor.hpp"

namespace ligm {

template <class T>
struct Node {
  using Hook = std::function<Tensor<T>(const Tensor<T>&)>;

  std::string name;                         // "MulBackward", shown in errors and printing
  std::vector<std::shared_ptr<Node<T>>> next;  // one per input; null where no grad is needed
  std::vector<Shape> input_shapes;          // checked against the gradients returned
  std::vector<Hook> pre_hooks;              // run on the incoming gradient, in order
  std::string context;  // in anomaly mode, the scopes open when it was recorded (anomaly.hpp)
  // Set by slice views (narrow, select, slice): the rule returns the gradient of the slice
  // alone, and backward() adds it into that part of the input's gradient, so the slices of one
  // tensor (q, k and v of a packed projection) meet in one buffer instead of each making a
  // zero-filled input-sized gradient that is then summed.
  struct Region {
    std::int64_t dim, start, end, step;
  };
  std::optional<Region> region;

  virtual ~Node() = default;
  // Given dL/d(output), returns dL/d(input_i) for every input.
  virtual std::vector<Tensor<T>> apply(const Tensor<T>& grad) = 0;
  // Frees what the backward rule saved (called after use unless retain_graph).
  virtual void release() {}

  bool needs_grad(std::size_t i) const { return i < next.size() && next[i] != nullptr; }
};

// Which inputs of a node need a gradient; passed to backward rules so that they can skip
// expensive work (the weight gradient of a frozen layer, say).
struct NeedsGrad {
  std::vector<bool> flags;
  bool operator[](std::size_t i) const { return i < flags.size() && flags[i]; }
};

// A tensor a backward rule keeps, and the version of its storage when it was kept.
struct SavedVersion {
  std::shared_ptr<Storage> storage;
  std::uint64_t version;
};

// A node whose backward rule is a closure, written next to the forward in ops/.
template <class T>
struct FunctionNode final : Node<T> {
  using Rule = std::function<std::vector<Tensor<T>>(const Tensor<T>&, const NeedsGrad&)>;
  Rule rule;
  std::vector<SavedVersion> saved;

  std::vector<Tensor<T>> apply(const Tensor<T>& grad) override {
    if (!rule)
      fail("backward", this->name,
           ": trying to backward through the graph a second time (its saved tensors were "
           "freed); pass retain_graph = true to the first backward()");
    for (const auto& s : saved)
      check(s.storage->version() == s.version, "backward", "a tensor that ", this->name,
            " saved for its gradient was modified in place afterwards (version ", s.version,
            ", now ", s.storage->version(), "); modify a clone() instead");
    NeedsGrad needs;
    for (std::size_t i = 0; i < this->next.size(); ++i) needs.flags.push_back(this->needs_grad(i));
    return rule(grad, needs);
  }
  void release() override {
    rule = nullptr;
    saved.clear();
  }
};

// The node of a leaf tensor: adds incoming gradients into leaf.grad().
template <class T>
struct AccumulateGrad final : Node<T> {
  std::weak_ptr<TensorImpl<T>> leaf;
  std::vector<Tensor<T>> apply(const Tensor<T>& grad) override;  // defined in engine.hpp
};

namespace autograd {
namespace detail {
// Versions recorded by save() since the last record(); record() hands them to its node.
inline std::vector<SavedVersion>& pending_saves() {
  thread_local std::vector<SavedVersion> saves;
  return saves;
}
}  // namespace detail

// What a backward rule captures instead of a tensor: the same data without history, with its
// storage version noted so backward() can refuse if it was modified in place since.
// Use it in the rule's capture list: [x = autograd::save(x)](...) { ... }.
template <class T>
Tensor<T> save(const Tensor<T>& t) {
  if (t.defined() && is_grad_enabled()) detail::pending_saves().push_back({t.storage(), t.storage()->version()});
  return t.defined() ? t.detach() : t;
}

// The node that gradients of `t` flow into: its grad_fn, or the accumulator of a leaf that
// requires grad; null otherwise.
template <class T>
std::shared_ptr<Node<T>> gradient_edge(const Tensor<T>& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  if (t.grad_fn()) return t.grad_fn();
  auto& impl = *t.impl();
  if (!impl.grad_accumulator) {
    auto acc = std::make_shared<AccumulateGrad<T>>();
    acc->name = "AccumulateGrad";
    acc->leaf = t.impl();
    acc->input_shapes = {t.shape()};
    impl.grad_accumulator = acc;
  }
  return impl.grad_accumulator;
}

// Records `out` as the result of op `name` on `inputs`, with backward rule `rule`, when grad
// mode is on and some input requires grad. Returns out.
//
// Rules must not capture `out` itself (that would make a reference cycle); capture
// out.detach() when the backward needs the forward's result.
template <class T, class Rule>
Tensor<T>& record_list(const char* name, Tensor<T>& out, const std::vector<Tensor<T>>& inputs,
                       Rule&& rule) {
  std::vector<SavedVersion> saved;
  saved.swap(detail::pending_saves());  // the rule's save()s, taken whether recorded or not
  if (!is_grad_enabled()) return out;
  bool any = false;
  for (const auto& in : inputs) any = any || in.requires_grad();
  if (!any) return out;
  auto node = std::make_shared<FunctionNode<T>>();
  node->name = name;
  node->saved = std::move(saved);
  for (const auto& in : inputs) {
    node->next.push_back(gradient_edge(in));
    node->input_shapes.push_back(in.defined() ? in.shape() : Shape{});
  }
  node->rule = std::forward<Rule>(rule);
  if (is_anomaly_enabled()) node->context = scope_path();
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}

template <class T, class Rule>
Tensor<T>& record(const char* name, Tensor<T>& out, std::initializer_list<Tensor<T>> inputs,
                  Rule&& rule) {
  if (!is_grad_enabled()) {
    detail::pending_saves().clear();
    return out;
  }
  return record_list(name, out, std::vector<Tensor<T>>(inputs), std::forward<Rule>(rule));
}

}  // namespace autograd
}  // namespace ligm
