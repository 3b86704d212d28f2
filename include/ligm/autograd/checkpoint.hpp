// Activation checkpointing (torch.utils.checkpoint): trade compute for memory. The forward runs
// fn without recording, so none of the tensors fn's ops would save for backward is kept, only
// fn's inputs and output; backward() runs fn again, this time recording, and backpropagates
// through that. A block's activations then live during its own backward only.
//
//   auto y = autograd::checkpoint([&](const std::vector<Tensor<float>>& in) { return block(in[0]); },
//                                 {x}, block.parameters());
//   // or, for a module: nn::checkpoint(block, x)   (nn/checkpoint.hpp)
//
// `params` are the tensors fn reads that are not among its inputs and need gradients (a module's
// parameters): listing them makes the output require grad even when no input does (the first
// block of a network whose input is data); their gradients are added into their .grad() when
// fn's recomputed graph is backpropagated, as without checkpointing. fn must compute the same
// function when run again: the default generator's state is put back for the recomputation (so
// dropout drawing from it draws the same mask), but a generator of fn's own is not. fn is kept
// (by value) until backward() runs or the graph is freed. A second backward() needs
// retain_graph, as for any op. As in PyTorch, a BatchNorm in training mode inside fn updates its
// running statistics twice (once per run).
#pragma once
#include <initializer_list>
#include <utility>
#include <vector>

#include "ligm/autograd/engine.hpp"
#include "ligm/core/generator.hpp"

namespace ligm::autograd {

template <class T, class F>
Tensor<T> checkpoint(F fn, const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& params = {}) {
  Generator& gen = default_generator();
  const std::uint64_t seed = gen.seed(), offset = gen.offset();
  Tensor<T> out;
  {
    NoGradGuard no_grad;
    out = fn(inputs);
  }
  check(out.defined(), "checkpoint", "the function returned an undefined tensor");
  std::vector<Tensor<T>> saved_inputs;
  for (const auto& x : inputs) saved_inputs.push_back(save(x));
  std::vector<Tensor<T>> all = inputs;
  all.insert(all.end(), params.begin(), params.end());
  const std::size_t n_inputs = inputs.size();
  return record_list("CheckpointBackward", out, all,
                     [fn = std::move(fn), xs = std::move(saved_inputs), n_inputs, seed, offset](
                         const Tensor<T>& g, const NeedsGrad& needs) -> std::vector<Tensor<T>> {
                       // Recompute with the inputs as fresh leaves and the generator as it was.
                       std::vector<Tensor<T>> leaves;
                       for (std::size_t k = 0; k < n_inputs; ++k)
                         leaves.push_back(needs[k] ? xs[k].detach().requires_grad_() : xs[k]);
                       Generator& gen = default_generator();
                       const std::uint64_t now_seed = gen.seed(), now_offset = gen.offset();
                       gen.manual_seed(seed);
                       gen.set_offset(offset);
                       Tensor<T> y;
                       {
                         EnableGradGuard grad;
                         y = fn(leaves);
                       }
                       gen.manual_seed(now_seed);
                       gen.set_offset(now_offset);
                       check(y.shape() == g.shape(), "checkpoint", "the function's output has shape ", y.shape(),
                             " when run again, ", g.shape(), " the first time");
                       // The parameters' gradients go into their .grad() here; the inputs' into the leaves.
                       if (y.requires_grad()) backward(y, g);
                       std::vector<Tensor<T>> grads(needs.flags.size());
                       for (std::size_t k = 0; k < n_inputs; ++k) {
                         if (!needs[k]) continue;
                         grads[k] = leaves[k].grad();
                         if (!grads[k].defined()) {  // fn did not use this input
                           grads[k] = Tensor<T>::empty(leaves[k].shape(), leaves[k].device());
                           backend_for<T>(grads[k].device()).fill(grads[k].ref(), T(0));
                         }
                       }
                       return grads;
                     });
}

// checkpoint(fn, {x, y}, {w}): the inputs and parameters as braced lists.
template <class T, class F>
Tensor<T> checkpoint(F fn, std::initializer_list<Tensor<T>> inputs, std::initializer_list<Tensor<T>> params = {}) {
  return checkpoint(std::move(fn), std::vector<Tensor<T>>(inputs), std::vector<Tensor<T>>(params));
}

}  // namespace ligm::autograd
