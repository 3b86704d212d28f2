// The recorded graph as Graphviz DOT text (micrograd's draw_dot, torchviz's make_dot): one box
// per backward node, one ellipse per leaf that collects a gradient (named when you pass the
// model's named_parameters()), each edge labelled with the shape that flows along it, the
// tensor itself at the top.
//
//   auto loss = cross_entropy(net(x), y);
//   std::ofstream("graph.dot") << autograd::to_dot(loss, net.named_parameters());
//   // then: dot -Tpng graph.dot -o graph.png
//
// A node recorded in anomaly mode (anomaly.hpp) also shows the scopes it was recorded in.
// The graph must not have been freed by a backward() without retain_graph (its nodes stay, so
// the picture does too, but nothing else changes: this only reads the graph).
#pragma once
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ligm/autograd/engine.hpp"

namespace ligm::autograd {

namespace detail {
inline std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}
}  // namespace detail

template <class T>
std::string to_dot(const Tensor<T>& root, const std::vector<std::pair<std::string, Tensor<T>>>& named_params = {}) {
  check(root.defined(), "to_dot", "the tensor is undefined");
  std::unordered_map<const void*, std::string> leaf_names;
  for (const auto& [name, p] : named_params)
    if (p.defined()) leaf_names[p.impl().get()] = name;

  std::string out = "digraph autograd {\n  rankdir=BT;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
                    "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  out += "  out [shape=note, label=\"" + detail::dot_escape(root.describe()) + "\"];\n";
  auto top = gradient_edge(root);
  if (!top) return out + "}\n";

  // Every node reachable from the root, numbered in topological order (the root's node first).
  const auto order = detail::topological_order(top.get());
  std::unordered_map<const Node<T>*, std::size_t> id;
  for (std::size_t i = 0; i < order.size(); ++i) id[order[i]] = i;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const Node<T>* node = order[i];
    std::string label = node->name, shape = "box", style = "";
    if (const auto* acc = dynamic_cast<const AccumulateGrad<T>*>(node)) {
      auto leaf = acc->leaf.lock();
      auto it = leaf ? leaf_names.find(leaf.get()) : leaf_names.end();
      label = (it != leaf_names.end() ? it->second : std::string("leaf")) + "\\n" +
              shape_str(node->input_shapes.empty() ? Shape{} : node->input_shapes[0]);
      shape = "ellipse";
      style = ", style=filled, fillcolor=\"#dbe9f6\"";
    } else if (!node->context.empty()) {
      label = detail::dot_escape(node->name) + "\\n" + detail::dot_escape(node->context);
    } else {
      label = detail::dot_escape(node->name);
    }
    out += "  n" + std::to_string(i) + " [shape=" + shape + style + ", label=\"" + label + "\"];\n";
  }
  out += "  n0 -> out;\n";
  for (std::size_t i = 0; i < order.size(); ++i) {
    const Node<T>* node = order[i];
    for (std::size_t k = 0; k < node->next.size(); ++k) {
      if (!node->next[k]) continue;
      out += "  n" + std::to_string(id.at(node->next[k].get())) + " -> n" + std::to_string(i) + " [label=\"" +
             shape_str(node->input_shapes[k]) + "\"];\n";
    }
  }
  return out + "}\n";
}

}  // namespace ligm::autograd
