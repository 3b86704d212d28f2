// nn::Module: a node of a model tree with named parameters, buffers and children.
//
// PyTorch's names and semantics: parameters() / named_parameters() with dotted names,
// train() / eval(), to(device), state_dict() / load_state_dict() (keys equal PyTorch's for the
// same architecture), apply, forward hooks, and a printable tree and summary. Modules are
// shared by pointer (std::shared_ptr); a derived module registers its parts in its constructor
// and keeps typed handles to them:
//
//   struct Net : nn::Module<> {
//     std::shared_ptr<nn::Linear<>> fc = register_module("fc", std::make_shared<nn::Linear<>>(4, 2));
//     Tensor<float> forward(const Tensor<float>& x) override { return (*fc)(x); }
//   };
//
// Module surgery: replace_module("block.fc", m) swaps a child anywhere in the tree, and
// replace_all<nn::ReLU<>>(factory) every child of a type. The replaced module forwards its
// calls to the replacement, so a typed handle a parent still holds (`fc` above) runs the new
// module too; a wrapper that holds the module it replaced (an adapter around a Linear) calls
// through to it without looping back.
#pragma once
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ligm/autograd/profiler.hpp"
#include "ligm/ops/copy.hpp"
#include "ligm/ops/creation.hpp"

namespace ligm::nn {

// name -> tensor; dotted names as in PyTorch ("layer1.0.conv1.weight").
template <class T>
using StateDict = std::map<std::string, Tensor<T>>;

// What a non-strict load_state_dict did not match.
struct LoadResult {
  std::vector<std::string> missing_keys, unexpected_keys;
};

// Numbers in module descriptions as Python prints them (0.1, 1e-05).
inline std::string repr_number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

template <class T = float>
class Module {
 public:
  using value_type = T;
  using Ptr = std::shared_ptr<Module>;
  using ForwardHook = std::function<void(Module&, const Tensor<T>& input, const Tensor<T>& output)>;

  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;  // a module is an identity: share it by pointer
  Module& operator=(const Module&) = delete;
  Module(Module&&) = default;  // moving a freshly built module into a container is fine
  Module& operator=(Module&&) = default;

  // --- computation -------------------------------------------------------------------------
  virtual Tensor<T> forward(const Tensor<T>& /*x*/) {
    fail(type_name(), "forward(x) is not defined for this module");
  }

  // This module and `next` (its successor in a Sequential) as one fused op on x, or nothing
  // when they do not fuse (the default): Sequential asks before calling the two one by one.
  // A module that fuses gives what next(this(x)) gives, bit for bit.
  virtual std::optional<Tensor<T>> forward_fused(Module<T>& /*next*/, const Tensor<T>& /*x*/) {
    return std::nullopt;
  }

  // forward() plus the forward hooks. A replaced module passes the call to its replacement,
  // unless the replacement is running: then the call comes from a wrapper calling the module
  // it wraps, and this module computes.
  Tensor<T> operator()(const Tensor<T>& x) {
    if (const Ptr r = replacement_.lock(); r && r->running_ == 0) return (*r)(x);
    ++running_;
    struct Leave {
      int& depth;
      ~Leave() { --depth; }
    } leave{running_};
    profiler::Scope scope([this] { return type_name(); });
    Tensor<T> y = forward(x);
    for (auto& [id, hook] : hooks_) hook(*this, x, y);
    return y;
  }

  // True when calling the module runs its own forward() and nothing else: it has not been
  // replaced by module surgery and has no forward hooks. A parent may then fuse it with its
  // neighbour (a block's batch norm with the ReLU after it); otherwise it calls them one by one.
  bool plain() const { return replacement_.expired() && hooks_.empty(); }

  // "Linear", "Conv2d", ...: the name printed in trees and summaries.
  virtual std::string type_name() const { return "Module"; }
  // The arguments shown after the type: "in_features=784, out_features=10, bias=True".
  virtual std::string extra_repr() const { return ""; }

  // --- registration ------------------------------------------------------------------------
  // Returns a handle to the same tensor: keep it as a member.
  Tensor<T> register_parameter(const std::string& name, Tensor<T> t, bool requires_grad = true) {
    check_new_name(name);
    if (t.defined()) t.requires_grad_(requires_grad);
    params_.emplace_back(name, t);
    return t;
  }
  Tensor<T> register_buffer(const std::string& name, Tensor<T> t) {
    check_new_name(name);
    buffers_.emplace_back(name, t);
    return t;
  }
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    check_new_name(name);
    check(m != nullptr, "register_module", "module \"", name, "\" is null");
    children_.emplace_back(name, std::static_pointer_cast<Module>(m));
    return m;
  }
  // Takes the child `name` out of the tree again (an optional part, such as an adapter that
  // is unloaded); returns it.
  Ptr unregister_module(const std::string& name) {
    auto it = std::find_if(children_.begin(), children_.end(), [&](auto& c) { return c.first == name; });
    check(it != children_.end(), "unregister_module", type_name(), " has no child \"", name, "\"");
    Ptr m = it->second;
    children_.erase(it);
    return m;
  }

  // --- traversal ---------------------------------------------------------------------------
  std::vector<std::pair<std::string, Tensor<T>>> named_parameters(bool recurse = true) const {
    return collect(recurse, &Module::params_);
  }
  std::vector<std::pair<std::string, Tensor<T>>> named_buffers(bool recurse = true) const {
    return collect(recurse, &Module::buffers_);
  }
  std::vector<Tensor<T>> parameters(bool recurse = true) const {
    std::vector<Tensor<T>> out;
    for (auto& [n, p] : named_parameters(recurse)) out.push_back(p);
    return out;
  }
  std::vector<Tensor<T>> buffers(bool recurse = true) const {
    std::vector<Tensor<T>> out;
    for (auto& [n, b] : named_buffers(recurse)) out.push_back(b);
    return out;
  }
  const std::vector<std::pair<std::string, Ptr>>& named_children() const { return children_; }
  std::vector<Ptr> children() const {
    std::vector<Ptr> out;
    for (auto& [n, c] : children_) out.push_back(c);
    return out;
  }
  // Every module below this one (this one first, name ""), depth first, each once.
  std::vector<std::pair<std::string, Module*>> named_modules() {
    std::vector<std::pair<std::string, Module*>> out;
    std::set<const Module*> seen;
    walk("", seen, [&](const std::string& n, Module& m) { out.emplace_back(n, &m); });
    return out;
  }
  // The module at a dotted path ("layer1.0.conv1"); "" is this module.
  Module& get_submodule(const std::string& path) {
    Module* m = this;
    for (const auto& part : split_path(path)) {
      auto it = std::find_if(m->children_.begin(), m->children_.end(),
                             [&](auto& c) { return c.first == part; });
      check(it != m->children_.end(), "get_submodule", type_name(), " has no submodule \"", path,
            "\" (no child \"", part, "\" in ", m->type_name(), ")");
      m = it->second.get();
    }
    return *m;
  }
  std::int64_t num_parameters(bool trainable_only = false) const {
    std::int64_t n = 0;
    for (auto& p : parameters())
      if (!trainable_only || p.requires_grad()) n += p.numel();
    return n;
  }

  // --- modes and devices -------------------------------------------------------------------
  Module& train(bool on = true) {
    for (auto& [n, m] : named_modules()) m->training_ = on;
    return *this;
  }
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }

  // Moves every parameter and buffer (and existing gradients) to `device`, in place: handles
  // held elsewhere (an optimizer's) see the moved tensors.
  Module& to(Device device) {
    NoGradGuard no_grad;
    auto move = [&](const Tensor<T>& t) {
      if (!t.defined() || t.device() == device) return;
      t.set_data(t.detach().to(device));
      if (t.grad().defined()) t.set_grad(t.grad().to(device));
    };
    for (auto& [n, p] : named_parameters()) move(p);
    for (auto& [n, b] : named_buffers()) move(b);
    return *this;
  }

  // Sets requires_grad on every parameter (freezing a backbone: requires_grad_(false)).
  Module& requires_grad_(bool on = true) {
    for (auto& p : parameters()) p.requires_grad_(on);
    return *this;
  }
  void zero_grad() {
    for (auto& p : parameters()) p.set_grad({});
  }

  // fn(module) on every module of the tree, children before their parent (as PyTorch).
  Module& apply(const std::function<void(Module&)>& fn) {
    for (auto& [n, c] : children_) c->apply(fn);
    fn(*this);
    return *this;
  }

  // hook(module, input, output) after every forward; returns an id for remove_forward_hook.
  int register_forward_hook(ForwardHook hook) {
    hooks_.emplace_back(++last_hook_id_, std::move(hook));
    return last_hook_id_;
  }
  void remove_forward_hook(int id) {
    hooks_.erase(std::remove_if(hooks_.begin(), hooks_.end(), [&](auto& h) { return h.first == id; }),
                 hooks_.end());
  }

  // --- state -------------------------------------------------------------------------------
  // Parameters and buffers by dotted name, sharing data with the module (detached).
  StateDict<T> state_dict() const {
    StateDict<T> sd;
    for (auto& [n, p] : named_parameters()) sd[n] = p.detach();
    for (auto& [n, b] : named_buffers()) sd[n] = b.detach();
    return sd;
  }

  // Copies the values of `sd` into the parameters and buffers (on their devices). Incoming
  // keys first pass through `remap` (e.g. to strip a "module." prefix). Strict: every key
  // must match both ways, else a ligm::Error lists the missing and unexpected keys; a shape
  // mismatch is always an error that names the key.
  LoadResult load_state_dict(const StateDict<T>& sd, bool strict = true,
                             const std::function<std::string(const std::string&)>& remap = {}) {
    const char* op = "load_state_dict";
    StateDict<T> in;
    for (auto& [k, v] : sd) in[remap ? remap(k) : k] = v;
    LoadResult r;
    std::set<std::string> used;
    // All or nothing: every key and shape is checked before any tensor is replaced, so a file
    // that does not fit leaves the model as it was.
    std::vector<std::pair<Tensor<T>, const Tensor<T>*>> assign;  // destination, source
    auto match = [&](const std::string& name, const Tensor<T>& dst) {
      auto it = in.find(name);
      if (it == in.end()) {
        r.missing_keys.push_back(name);
        return;
      }
      used.insert(name);
      check(it->second.shape() == dst.shape(), op, "size mismatch for ", name, ": the checkpoint has ",
            it->second.shape(), ", the model ", dst.shape());
      assign.emplace_back(dst, &it->second);
    };
    for (auto& [n, p] : named_parameters()) match(n, p);
    for (auto& [n, b] : named_buffers()) match(n, b);
    for (auto& [k, v] : in)
      if (!used.count(k)) r.unexpected_keys.push_back(k);
    if (strict && (!r.missing_keys.empty() || !r.unexpected_keys.empty()))
      fail(op, "keys do not match for ", type_name(), ": missing ", join(r.missing_keys),
           "; unexpected ", join(r.unexpected_keys));
    NoGradGuard no_grad;
    std::vector<Tensor<T>> values;  // copied to the devices first: the last step cannot fail half-way
    for (auto& [dst, src] : assign) values.push_back(src->detach().to(dst.device()).clone());
    for (std::size_t i = 0; i < assign.size(); ++i) assign[i].first.set_data(values[i]);
    return r;
  }

  // --- surgery -----------------------------------------------------------------------------
  // Puts `m` in place of the module at `path`; the old module forwards to it from then on.
  Ptr replace_module(const std::string& path, Ptr m) {
    check(!path.empty() && m != nullptr, "replace_module", "needs a child path and a module");
    auto parts = split_path(path);
    const std::string leaf = parts.back();
    parts.pop_back();
    Module* parent = this;
    std::string prefix;
    for (const auto& p : parts) prefix += (prefix.empty() ? "" : ".") + p;
    if (!prefix.empty()) parent = &get_submodule(prefix);
    auto it = std::find_if(parent->children_.begin(), parent->children_.end(),
                           [&](auto& c) { return c.first == leaf; });
    check(it != parent->children_.end(), "replace_module", type_name(), " has no submodule \"",
          path, "\"");
    Ptr old = it->second;
    it->second = m;
    if (old != m) redirect(old, m);
    return old;
  }

  // Replaces every module of type M below this one by factory(path, module); returns how
  // many were replaced. The factory may wrap the module it is given.
  template <class M>
  int replace_all(const std::function<Ptr(const std::string&, std::shared_ptr<M>)>& factory) {
    std::vector<std::pair<std::string, std::shared_ptr<M>>> found;
    find_children<M>("", found);
    for (auto& [path, m] : found) replace_module(path, factory(path, m));
    return static_cast<int>(found.size());
  }

  // --- printing ----------------------------------------------------------------------------
  // The tree, as PyTorch prints it:  Sequential(\n  (0): Linear(in_features=...)\n ...)
  std::string repr(int indent = 0) const {
    std::ostringstream os;
    os << type_name() << "(" << extra_repr();
    if (!children_.empty()) {
      os << "\n";
      for (auto& [n, c] : children_)
        os << std::string(indent + 2, ' ') << "(" << n << "): " << c->repr(indent + 2) << "\n";
      os << std::string(indent, ' ');
    }
    os << ")";
    return os.str();
  }

  // One line per module: name, type, output shape for `input`, parameters; then the totals.
  std::string summary(const Tensor<T>& input) {
    std::map<const Module*, Shape> shapes;
    std::vector<std::pair<Module*, int>> hooked;
    auto mods = named_modules();
    for (auto& [n, m] : mods)
      hooked.emplace_back(m, m->register_forward_hook([&shapes](Module& mod, const Tensor<T>&, const Tensor<T>& y) {
        shapes[&mod] = y.shape();
      }));
    {
      NoGradGuard no_grad;
      struct Unhook {
        std::vector<std::pair<Module*, int>>& h;
        ~Unhook() {
          for (auto& [m, id] : h) m->remove_forward_hook(id);
        }
      } unhook{hooked};
      (*this)(input);
    }
    std::ostringstream os;
    char line[256];
    std::snprintf(line, sizeof line, "%-32s %-22s %-20s %12s\n", "module", "type", "output", "params");
    os << line << std::string(89, '-') << "\n";
    for (auto& [n, m] : mods) {
      std::int64_t own = 0;
      for (auto& p : m->parameters(false)) own += p.numel();
      const std::string shape = shapes.count(m) ? shape_str(shapes[m]) : "-";
      std::snprintf(line, sizeof line, "%-32s %-22s %-20s %12lld\n", n.empty() ? "(root)" : n.c_str(),
                    m->type_name().c_str(), shape.c_str(), static_cast<long long>(own));
      os << line;
    }
    os << std::string(89, '-') << "\n"
       << "parameters: " << num_parameters() << " (trainable " << num_parameters(true) << ")\n";
    return os.str();
  }

 protected:
  bool training_ = true;

 private:
  using Named = std::vector<std::pair<std::string, Tensor<T>>>;

  void check_new_name(const std::string& name) const {
    check(!name.empty() && name.find('.') == std::string::npos, "register", "invalid name \"", name,
          "\" in ", type_name(), " (non-empty, no dots)");
    auto taken = [&](const auto& v) {
      return std::any_of(v.begin(), v.end(), [&](auto& e) { return e.first == name; });
    };
    check(!taken(params_) && !taken(buffers_) && !taken(children_), "register", type_name(),
          " already has a member named \"", name, "\"");
  }

  template <class F>
  void walk(const std::string& prefix, std::set<const Module*>& seen, const F& visit) {
    if (!seen.insert(this).second) return;
    visit(prefix, *this);
    for (auto& [n, c] : children_) c->walk(prefix.empty() ? n : prefix + "." + n, seen, visit);
  }

  Named collect(bool recurse, Named Module::*member) const {
    Named out;
    std::set<const void*> seen;  // a tensor shared by two modules is listed once
    auto add = [&](const std::string& prefix, const Module& m) {
      for (auto& [n, t] : m.*member)
        if (t.defined() && seen.insert(t.impl().get()).second)
          out.emplace_back(prefix.empty() ? n : prefix + "." + n, t);
    };
    if (!recurse) {
      add("", *this);
      return out;
    }
    std::set<const Module*> mods;
    const_cast<Module*>(this)->walk("", mods, [&](const std::string& p, Module& m) { add(p, m); });
    return out;
  }

  template <class M>
  void find_children(const std::string& prefix,
                     std::vector<std::pair<std::string, std::shared_ptr<M>>>& found) {
    for (auto& [n, c] : children_) {
      const std::string path = prefix.empty() ? n : prefix + "." + n;
      if (auto typed = std::dynamic_pointer_cast<M>(c)) {
        found.emplace_back(path, typed);
      } else {
        c->template find_children<M>(path, found);
      }
    }
  }

  static std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> parts;
    std::string cur;
    for (char ch : path) {
      if (ch == '.') {
        parts.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    if (!path.empty()) parts.push_back(cur);
    return parts;
  }

  static std::string join(const std::vector<std::string>& v) {
    if (v.empty()) return "(none)";
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  }

  // Calls to `from`, and to every module that forwarded to it, go to `to` from now on (`to`
  // itself, put back where it was replaced, runs its own forward again). The links are weak:
  // a wrapper holds the module it replaced, and a strong link back made a cycle that kept both
  // (a model with adapters was never freed); the tree holds `to`, so it lives as long as the
  // tree does. Every forwarder points at the module in the tree, not along a chain of earlier
  // replacements, which nothing may hold any more.
  static void redirect(const Ptr& from, const Ptr& to) {
    std::vector<std::weak_ptr<Module>> moved = std::move(from->replaced_);
    from->replaced_.clear();
    moved.push_back(from);
    std::erase_if(to->replaced_, [](const std::weak_ptr<Module>& w) { return w.expired(); });
    for (const auto& w : moved) {
      const Ptr r = w.lock();
      if (!r) continue;
      if (r == to) {
        r->replacement_.reset();
        continue;
      }
      r->replacement_ = to;
      to->replaced_.push_back(r);
    }
  }

  Named params_, buffers_;
  std::vector<std::pair<std::string, Ptr>> children_;
  std::vector<std::pair<int, ForwardHook>> hooks_;
  int last_hook_id_ = 0;
  std::weak_ptr<Module> replacement_;              // the module that runs in this one's place
  std::vector<std::weak_ptr<Module>> replaced_;    // the modules that forward to this one
  int running_ = 0;  // operator() calls of this module in progress
};

template <class T>
std::ostream& operator<<(std::ostream& os, const Module<T>& m) {
  return os << m.repr();
}

}  // namespace ligm::nn
