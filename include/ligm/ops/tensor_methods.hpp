// Tensor<T> member functions that forward to ops (x.sum(), x.exp(), ...).
#pragma once
#include "ligm/ops/reduce.hpp"

namespace ligm {

template <class T> Tensor<T> Tensor<T>::sum() const { return ligm::sum(*this); }
template <class T> Tensor<T> Tensor<T>::sum(const Dims& d, bool k) const { return ligm::sum(*this, d, k); }
template <class T> Tensor<T> Tensor<T>::mean() const { return ligm::mean(*this); }
template <class T> Tensor<T> Tensor<T>::mean(const Dims& d, bool k) const { return ligm::mean(*this, d, k); }
template <class T> Tensor<T> Tensor<T>::exp() const { return ligm::exp(*this); }
template <class T> Tensor<T> Tensor<T>::log() const { return ligm::log(*this); }
template <class T> Tensor<T> Tensor<T>::sqrt() const { return ligm::sqrt(*this); }
template <class T> Tensor<T> Tensor<T>::abs() const { return ligm::abs(*this); }
template <class T> Tensor<T> Tensor<T>::neg() const { return ligm::neg(*this); }
template <class T> Tensor<T> Tensor<T>::pow(double e) const { return ligm::pow(*this, e); }
template <class T> Tensor<T> Tensor<T>::relu() const { return ligm::relu(*this); }
template <class T> Tensor<T> Tensor<T>::sigmoid() const { return ligm::sigmoid(*this); }
template <class T> Tensor<T> Tensor<T>::tanh() const { return ligm::tanh(*this); }

}  // namespace ligm
