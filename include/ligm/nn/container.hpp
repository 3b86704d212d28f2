// Containers: Sequential (calls its children in order), ModuleList and ModuleDict (hold
// children by index or name; their owner decides how to call them). Children are named "0",
// "1", ... or by their key, as in PyTorch, so state_dict keys match.
#pragma once
#include <memory>
#include <string>
#include <type_traits>

#include "ligm/nn/module.hpp"

namespace ligm::nn {
namespace detail {
// A module given by value (moved into a new shared_ptr) or already shared.
template <class T, class M>
std::shared_ptr<Module<T>> share(M&& m) {
  using D = std::decay_t<M>;
  if constexpr (std::is_convertible_v<D, std::shared_ptr<Module<T>>>) {
    return m;
  } else {
    static_assert(std::is_base_of_v<Module<T>, D>, "expected a module of the same scalar type");
    return std::make_shared<D>(std::forward<M>(m));
  }
}
template <class M>
struct module_value {
  using type = typename std::decay_t<M>::value_type;
};
template <class M>
struct module_value<std::shared_ptr<M>> {
  using type = typename M::value_type;
};
}  // namespace detail

template <class T = float>
class ModuleList : public Module<T> {
 public:
  ModuleList() = default;
  template <class... Ms>
  explicit ModuleList(Ms&&... ms) {
    (push_back(std::forward<Ms>(ms)), ...);
  }
  template <class M>
  ModuleList& push_back(M&& m) {
    this->register_module(std::to_string(this->named_children().size()), detail::share<T>(std::forward<M>(m)));
    return *this;
  }
  std::size_t size() const { return this->named_children().size(); }
  Module<T>& operator[](std::size_t i) const {
    check(i < size(), type_name(), "index ", i, " is out of range for ", size(), " modules");
    return *this->named_children()[i].second;
  }
  // The child as its own type (nullptr if it is another type).
  template <class M>
  std::shared_ptr<M> at(std::size_t i) const {
    (void)(*this)[i];
    return std::dynamic_pointer_cast<M>(this->named_children()[i].second);
  }
  std::string type_name() const override { return "ModuleList"; }
};

template <class T = float>
class Sequential : public ModuleList<T> {
 public:
  using ModuleList<T>::ModuleList;
  // The children in order; a child and the next one as one op where the child offers it
  // (Module::forward_fused: a batch norm and the ReLU after it).
  Tensor<T> forward(const Tensor<T>& x) override {
    const auto& children = this->named_children();
    Tensor<T> h = x;
    for (std::size_t i = 0; i < children.size(); ++i) {
      Module<T>& m = *children[i].second;
      if (i + 1 < children.size())
        if (auto y = m.forward_fused(*children[i + 1].second, h)) {
          h = std::move(*y);
          ++i;
          continue;
        }
      h = m(h);
    }
    return h;
  }
  std::string type_name() const override { return "Sequential"; }
};

// Class template argument deduction: nn::Sequential(nn::Linear(2, 3), nn::ReLU()) holds floats.
template <class M, class... Ms>
Sequential(M&&, Ms&&...) -> Sequential<typename detail::module_value<std::decay_t<M>>::type>;
template <class M, class... Ms>
ModuleList(M&&, Ms&&...) -> ModuleList<typename detail::module_value<std::decay_t<M>>::type>;

template <class T = float>
class ModuleDict : public Module<T> {
 public:
  template <class M>
  ModuleDict& insert(const std::string& key, M&& m) {
    this->register_module(key, detail::share<T>(std::forward<M>(m)));
    return *this;
  }
  Module<T>& operator[](const std::string& key) { return this->get_submodule(key); }
  bool contains(const std::string& key) const {
    for (auto& [n, m] : this->named_children())
      if (n == key) return true;
    return false;
  }
  std::size_t size() const { return this->named_children().size(); }
  std::string type_name() const override { return "ModuleDict"; }
};

}  // namespace ligm::nn
