// clone, contiguous, device and dtype conversion, copy_, fill_, zero_.
#pragma once
#include <vector>

#include "ligm/ops/creation.hpp"

namespace ligm {

template <class T>
Tensor<T> Tensor<T>::clone() const {
  auto out = Tensor<T>::empty(shape(), device());
  ops_detail::be(*this).copy(cref(), out.ref());
  return autograd::record("CloneBackward", out, {*this},
                          [](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> { return {g}; });
}

template <class T>
Tensor<T> Tensor<T>::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

template <class T>
Tensor<T> Tensor<T>::to(Device target) const {
  if (device() == target) return *this;
  auto src = contiguous();
  auto out = Tensor<T>::empty(shape(), target);
  const std::size_t bytes = numel() * sizeof(T);
  if (bytes) {
    if (src.device().is_cpu()) {
      allocator_for(target).copy_from_host(out.data_ptr(), src.data_ptr(), bytes);
    } else if (target.is_cpu()) {
      allocator_for(src.device()).copy_to_host(out.data_ptr(), src.data_ptr(), bytes);
    } else {  // between two GPUs: through the host
      std::vector<unsigned char> host(bytes);
      allocator_for(src.device()).copy_to_host(host.data(), src.data_ptr(), bytes);
      allocator_for(target).copy_from_host(out.data_ptr(), host.data(), bytes);
    }
  }
  const Device from = device();
  return autograd::record("ToDeviceBackward", out, {*this},
                          [from](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            return {g.to(from)};
                          });
}

// dtype conversion. Gradients do not flow across dtypes (the graph is per scalar type).
template <class T>
template <class U>
Tensor<U> Tensor<T>::to() const {
  if constexpr (std::is_same_v<T, U>) {
    return *this;
  } else {
    auto out = Tensor<U>::empty(shape(), device());
    ops_detail::be(*this).cast(cref(), out.ref());
    return out;
  }
}

template <class T>
T Tensor<T>::item() const {
  check(numel() == 1, "item", "a tensor with ", numel(), " elements cannot be converted to a ",
        "scalar (", describe(), ")");
  T value;
  allocator_for(device()).copy_to_host(&value, data_ptr(), sizeof(T));
  return value;
}

template <class T>
std::vector<T> Tensor<T>::to_vector() const {
  NoGradGuard no_grad;  // reading values records nothing
  auto c = contiguous().to(Device::cpu());
  const T* p = c.data_ptr();
  return std::vector<T>(p, p + c.numel());
}

// Copies src into this tensor (broadcasting src), in place.
template <class T>
Tensor<T>& Tensor<T>::copy_(const Tensor<T>& src) {
  ops_detail::check_inplace(*this, "copy_");
  ops_detail::defined_or_fail(src, "copy_", "the source");
  check(src.shape().size() <= shape().size() &&
            broadcast_shapes(src.shape(), shape(), "copy_") == shape(),
        "copy_", "source of shape ", src.shape(), " cannot be broadcast to ", shape());
  Tensor<T> s = src.device() == device() ? src : src.to(device());
  ops_detail::be(*this).copy(ops_detail::broadcast_ref(s, shape()), ref());
  return *this;
}

template <class T>
Tensor<T>& Tensor<T>::fill_(T value) {
  ops_detail::check_inplace(*this, "fill_");
  ops_detail::be(*this).fill(ref(), value);
  return *this;
}

template <class T>
Tensor<T>& Tensor<T>::zero_() {
  return fill_(T(0));
}

}  // namespace ligm
