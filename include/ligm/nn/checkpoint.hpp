// nn::checkpoint(module, x): a module's forward under activation checkpointing
// (autograd/checkpoint.hpp): its activations are not kept, and backward() runs it again.
//
//   struct Net : nn::Module<> { ...  Tensor<float> forward(const Tensor<float>& x) override {
//     for (auto& block : blocks) x = nn::checkpoint(*block, x);   // memory of one block's activations
//     ... } };
#pragma once
#include "ligm/autograd/checkpoint.hpp"
#include "ligm/nn/module.hpp"

namespace ligm::nn {

template <class T>
Tensor<T> checkpoint(Module<T>& module, const Tensor<T>& x) {
  return autograd::checkpoint([&module](const std::vector<Tensor<T>>& in) { return module(in[0]); },
                              std::vector<Tensor<T>>{x}, module.parameters());
}

}  // namespace ligm::nn
