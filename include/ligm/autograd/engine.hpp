// The backward pass: topological sort of the recorded graph, then each node's rule in
// reverse order, summing the gradients that meet at a node, adding into leaves' .grad().
// In anomaly mode (anomaly.hpp) each gradient a node returns is checked for NaN.
#pragma once
#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ligm/autograd/node.hpp"
#include "ligm/autograd/profiler.hpp"

namespace ligm {
namespace autograd::detail {

// Small helpers on the backend directly (the engine sits below ops/).
template <class T>
Tensor<T> contiguous_copy(const Tensor<T>& t) {
  auto out = Tensor<T>::empty(t.shape(), t.device());
  backend_for<T>(t.device()).copy(t.cref(), out.ref());
  return out;
}

// a += b, elementwise, same shape.
template <class T>
void add_into(Tensor<T>& a, const Tensor<T>& b) {
  backend_for<T>(a.device()).binary(BinaryOp::Add, a.cref(), b.cref(), a.ref());
}

template <class T>
Tensor<T> ones(const Shape& shape, Device device) {
  auto out = Tensor<T>::empty(shape, device);
  backend_for<T>(device).fill(out.ref(), T(1));
  return out;
}

// Whether t holds a NaN (anomaly mode's check): NaN is the only value unequal to itself.
template <class T>
bool has_nan(const Tensor<T>& t) {
  if (t.numel() == 0) return false;
  auto unequal = Tensor<bool>::empty(t.shape(), t.device());
  backend_for<T>(t.device()).compare(CompareOp::Ne, t.cref(), t.cref(), unequal.ref());
  auto found = Tensor<bool>::empty(Shape(t.shape().size(), 1), t.device());
  backend_for<bool>(t.device()).reduce(ReduceOp::Max, unequal.cref(), found.ref());
  return found.item();
}

template <class T>
[[noreturn]] void report_nan(const Node<T>& node, std::size_t i, const Tensor<T>& grad) {
  fail("backward", node.name, " returned NaN values in its ", i, "th output (a gradient of shape ", grad.shape(),
       ", ", dtype_name<T>(), " on ", grad.device().str(), "); the op was recorded ",
       node.context.empty() ? std::string("outside every module and scope") : "in " + node.context,
       " (anomaly mode: autograd::set_detect_anomaly)");
}

// Nodes reachable from root, in an order where every node comes before its inputs' nodes.
template <class T>
std::vector<Node<T>*> topological_order(Node<T>* root) {
  std::vector<Node<T>*> post;
  std::unordered_set<Node<T>*> seen{root};
  std::vector<std::pair<Node<T>*, std::size_t>> stack{{root, 0}};
  while (!stack.empty()) {  // iterative DFS: deep graphs do not overflow the call stack
    auto& [node, i] = stack.back();
    if (i < node->next.size()) {
      Node<T>* child = node->next[i++].get();
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      post.push_back(node);
      stack.pop_back();
    }
  }
  std::reverse(post.begin(), post.end());
  return post;
}

}  // namespace autograd::detail

template <class T>
std::vector<Tensor<T>> AccumulateGrad<T>::apply(const Tensor<T>& grad) {
  auto leaf = this->leaf.lock();
  if (!leaf) return {};
  if (!leaf->grad.defined()) {
    leaf->grad = autograd::detail::contiguous_copy(grad);  // never alias the incoming buffer
  } else {
    autograd::detail::add_into(leaf->grad, grad);
  }
  return {};
}

namespace autograd {

// Runs backward from `root` with seed gradient `grad` (ones for a one-element root).
template <class T>
void backward(const Tensor<T>& root, Tensor<T> grad = {}, bool retain_graph = false) {
  check(root.requires_grad(), "backward",
        "the tensor does not require grad and has no grad_fn (", root.describe(), ")");
  if (!grad.defined()) {
    check(root.numel() == 1, "backward", "grad can be implicitly created only for a ",
          "one-element tensor; got ", root.describe(), "; pass a gradient");
    grad = detail::ones<T>(root.shape(), root.device());
  }
  check(grad.shape() == root.shape(), "backward", "gradient of shape ", grad.shape(),
        " for a tensor of shape ", root.shape());
  NoGradGuard no_grad;  // rules compute with plain ops; nothing they do is recorded
  profiler::Scope scope("backward");

  auto root_node = gradient_edge(root);
  std::unordered_map<Node<T>*, Tensor<T>> pending{{root_node.get(), grad}};
  for (Node<T>* node : detail::topological_order(root_node.get())) {
    auto it = pending.find(node);
    if (it == pending.end()) continue;
    Tensor<T> g = std::move(it->second);
    pending.erase(it);
    for (auto& hook : node->pre_hooks) {
      Tensor<T> replaced = hook(g);
      if (replaced.defined()) {
        check(replaced.shape() == g.shape(), "register_hook", "a hook returned a gradient of ",
              "shape ", replaced.shape(), " for a gradient of shape ", g.shape());
        g = replaced;
      }
    }
    std::vector<Tensor<T>> grads;
    {
      profiler::Scope node_scope([node] { return node->name; });
      grads = node->apply(g);
      if (!retain_graph) node->release();
    }
    if (is_anomaly_enabled())
      for (std::size_t i = 0; i < grads.size(); ++i)
        if (grads[i].defined() && detail::has_nan(grads[i])) detail::report_nan(*node, i, grads[i]);
    for (std::size_t i = 0; i < node->next.size(); ++i) {
      Node<T>* child = node->next[i].get();
      if (!child || i >= grads.size() || !grads[i].defined()) continue;
      const auto& region = node->region;  // a slice's gradient: into part of the input's
      auto part = [&](Tensor<T>& full) {
        return region ? full.slice(region->dim, region->start, region->end, region->step) : full;
      };
      if (region) {
        Shape sliced = node->input_shapes[i];
        sliced[region->dim] = slice_length(region->start, region->end, region->step);
        check(grads[i].shape() == sliced, "backward", node->name, " returned a gradient of shape ",
              grads[i].shape(), " for a slice of shape ", sliced);
      } else {
        check(grads[i].shape() == node->input_shapes[i], "backward", node->name,
              " returned a gradient of shape ", grads[i].shape(), " for input ", i,
              " of shape ", node->input_shapes[i]);
      }
      auto slot = pending.find(child);
      if (slot == pending.end()) {
        if (!region) {
          pending.emplace(child, grads[i]);
          continue;
        }
        Tensor<T> full = Tensor<T>::empty(node->input_shapes[i], grads[i].device());
        backend_for<T>(full.device()).fill(full.ref(), T(0));
        Tensor<T> into = part(full);
        backend_for<T>(full.device()).copy(grads[i].cref(), into.ref());
        pending.emplace(child, std::move(full));
      } else {
        // Sum in place only into a buffer nothing else can see (a rule may still hold the
        // first gradient, or return one tensor for two inputs); otherwise into a fresh one.
        Tensor<T>& acc = slot->second;
        const bool exclusive = acc.impl().use_count() == 1 && acc.storage().use_count() == 1 &&
                               acc.is_contiguous();
        if (!exclusive) acc = detail::contiguous_copy(acc);
        Tensor<T> into = part(acc);
        detail::add_into(into, grads[i]);
      }
    }
  }
}

}  // namespace autograd

template <class T>
void Tensor<T>::backward(const Tensor& grad, bool retain_graph) const {
  autograd::backward(*this, grad, retain_graph);
}

template <class T>
void Tensor<T>::register_hook(std::function<Tensor(const Tensor&)> fn) const {
  check(requires_grad(), "register_hook", "cannot register a hook on a tensor that does not ",
        "require grad (", describe(), ")");
  autograd::gradient_edge(*this)->pre_hooks.push_back(std::move(fn));
}

template <class T>
void Tensor<T>::retain_grad() const {
  check(requires_grad(), "retain_grad", "the tensor does not require grad (", describe(), ")");
  if (is_leaf()) return;  // leaves keep their gradient anyway
  std::weak_ptr<TensorImpl<T>> weak = impl();
  grad_fn()->pre_hooks.push_back([weak](const Tensor<T>& g) {
    if (auto im = weak.lock()) {
      if (!im->grad.defined()) {
        im->grad = autograd::detail::contiguous_copy(g);
      } else {
        autograd::detail::add_into(im->grad, g);
      }
    }
    return Tensor<T>();
  });
}

}  // namespace ligm
