// Tensor<T>: a handle to a strided view of a Storage, plus its autograd state.
//
// Copying a Tensor copies the handle (like PyTorch's Python tensors): both names refer to
// the same data. clone() copies the data. Views (transpose, slice, expand, ...) share the
// storage and differ in shape, strides and offset.
//
// This header defines the data model; the methods that are ops (sum(), exp(), view(), ...)
// are declared here and defined next to their op in ops/, via ops/tensor_methods.hpp.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ligm/autograd/grad_mode.hpp"
#include "ligm/core/device.hpp"
#include "ligm/core/dtype.hpp"
#include "ligm/core/error.hpp"
#include "ligm/core/shape.hpp"
#include "ligm/core/storage.hpp"

namespace ligm {

template <class T> class Tensor;
template <class T> struct Node;
class Generator;

template <class T>
struct TensorImpl;

using Dims = std::vector<std::int64_t>;

template <class T>
class Tensor {
  static_assert(is_supported_scalar_v<T>,
                "ligm::Tensor<T>: T must be float, double, std::int64_t or bool");

 public:
  using value_type = T;

  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl<T>> impl) : impl_(std::move(impl)) {}

  // A new, uninitialised, contiguous tensor.
  static Tensor empty(const Shape& shape, Device device = Device::cpu());

  // --- metadata ----------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& sizes() const { return shape(); }
  std::int64_t size(std::int64_t dim) const;
  std::int64_t dim() const { return static_cast<std::int64_t>(shape().size()); }
  std::int64_t numel() const { return numel_of(shape()); }
  const Shape& strides() const;
  std::int64_t stride(std::int64_t dim) const;
  std::int64_t storage_offset() const;
  Device device() const;
  static constexpr DType dtype() { return dtype_of<T>(); }
  bool is_contiguous() const;
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  // "float32[2, 3] on cpu": used in error messages.
  std::string describe() const;

  // --- data access -------------------------------------------------------------------------
  T* data_ptr() const;  // first element; device memory for a CUDA tensor
  T item() const;       // the value of a one-element tensor, copied to the host
  std::vector<T> to_vector() const;  // all elements in row-major order, on the host
  Ref<T> ref() const { return {data_ptr(), shape(), strides()}; }
  Ref<const T> cref() const { return {data_ptr(), shape(), strides()}; }
  const std::shared_ptr<Storage>& storage() const;
  const std::shared_ptr<TensorImpl<T>>& impl() const { return impl_; }

  // --- autograd ----------------------------------------------------------------------------
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const;
  Tensor grad() const;                 // undefined until a backward pass reaches this leaf
  void set_grad(const Tensor& g) const;
  const std::shared_ptr<Node<T>>& grad_fn() const;
  void backward(const Tensor& grad = {}, bool retain_graph = false) const;
  Tensor detach() const;               // same data, no history
  // Points this tensor (and every handle to it) at src's data: storage, shape, strides. Its
  // identity, requires_grad and grad stay (PyTorch's `param.data = src`); how modules move to
  // a device and load weights without invalidating the handles held by optimizers.
  void set_data(const Tensor& src) const;
  void retain_grad() const;            // keep .grad() on a non-leaf
  // fn receives the incoming gradient and may return a replacement (or an undefined tensor
  // to keep it unchanged).
  void register_hook(std::function<Tensor(const Tensor&)> fn) const;

  // --- copies and conversions (ops/copy.hpp) ----------------------------------------------
  Tensor clone() const;
  Tensor contiguous() const;
  Tensor to(Device device) const;
  template <class U> Tensor<U> to() const;  // dtype conversion
  Tensor& copy_(const Tensor& src);
  Tensor& fill_(T value);
  Tensor& zero_();

  // --- in-place arithmetic (ops/elementwise.hpp); not recorded by autograd ------------------
  Tensor& add_(const Tensor& other, T alpha = T(1));
  Tensor& sub_(const Tensor& other);
  Tensor& mul_(const Tensor& other);
  Tensor& div_(const Tensor& other);
  Tensor& add_(T scalar);
  Tensor& mul_(T scalar);

  // --- movement (ops/movement.hpp) ---------------------------------------------------------
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(std::int64_t start_dim = 0, std::int64_t end_dim = -1) const;
  Tensor permute(const Dims& dims) const;
  Tensor transpose(std::int64_t d0, std::int64_t d1) const;
  Tensor t() const;
  Tensor expand(const Shape& shape) const;
  Tensor expand_as(const Tensor& other) const { return expand(other.shape()); }
  Tensor squeeze() const;
  Tensor squeeze(std::int64_t dim) const;
  Tensor unsqueeze(std::int64_t dim) const;
  Tensor narrow(std::int64_t dim, std::int64_t start, std::int64_t length) const;
  Tensor slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step = 1) const;
  Tensor select(std::int64_t dim, std::int64_t index) const;

  // --- reductions (ops/reduce.hpp) ---------------------------------------------------------
  Tensor sum() const;
  Tensor sum(const Dims& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const Dims& dims, bool keepdim = false) const;

  Tensor var(const Dims& dims = {}, bool unbiased = true, bool keepdim = false) const;
  Tensor std(const Dims& dims = {}, bool unbiased = true, bool keepdim = false) const;
  Tensor amax(const Dims& dims = {}, bool keepdim = false) const;
  Tensor amin(const Dims& dims = {}, bool keepdim = false) const;
  Tensor max() const;
  Tensor min() const;
  std::pair<Tensor, Tensor<std::int64_t>> max(std::int64_t dim, bool keepdim = false) const;
  std::pair<Tensor, Tensor<std::int64_t>> min(std::int64_t dim, bool keepdim = false) const;
  Tensor<std::int64_t> argmax() const;
  Tensor<std::int64_t> argmax(std::int64_t dim, bool keepdim = false) const;
  Tensor<std::int64_t> argmin() const;
  Tensor<std::int64_t> argmin(std::int64_t dim, bool keepdim = false) const;
  Tensor logsumexp(const Dims& dims, bool keepdim = false) const;
  Tensor norm(double p = 2, const Dims& dims = {}, bool keepdim = false) const;

  // --- elementwise (ops/elementwise.hpp) ---------------------------------------------------
  Tensor exp() const;
  Tensor log() const;
  Tensor log1p() const;
  Tensor sqrt() const;
  Tensor rsqrt() const;
  Tensor abs() const;
  Tensor neg() const;
  Tensor sin() const;
  Tensor cos() const;
  Tensor square() const;
  Tensor pow(double exponent) const;
  Tensor clamp(double min, double max) const;
  Tensor relu() const;
  Tensor sigmoid() const;
  Tensor tanh() const;
  Tensor masked_fill(const Tensor<bool>& mask, T value) const;

  // --- indexing, matmul, softmax -----------------------------------------------------------
  Tensor index_select(std::int64_t dim, const Tensor<std::int64_t>& index) const;
  Tensor gather(std::int64_t dim, const Tensor<std::int64_t>& index) const;
  Tensor scatter_add(std::int64_t dim, const Tensor<std::int64_t>& index, const Tensor& src) const;
  Tensor flip(const Dims& dims) const;
  std::vector<Tensor> split(std::int64_t split_size, std::int64_t dim = 0) const;
  std::vector<Tensor> chunk(std::int64_t chunks, std::int64_t dim = 0) const;
  Tensor matmul(const Tensor& other) const;
  Tensor mm(const Tensor& other) const;
  Tensor softmax(std::int64_t dim) const;
  Tensor log_softmax(std::int64_t dim) const;

 private:
  std::shared_ptr<TensorImpl<T>> impl_;
};

template <class T>
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  std::int64_t offset = 0;  // in elements

  // autograd
  bool requires_grad = false;
  Tensor<T> grad;
  std::shared_ptr<Node<T>> grad_fn;           // set on results of recorded ops
  std::shared_ptr<Node<T>> grad_accumulator;  // leaves: created on first use
};

// ------------------------------------------------------------------------------------------
// Inline definitions of the data model.

template <class T>
Tensor<T> Tensor<T>::empty(const Shape& shape, Device device) {
  // Every stride (the product of the dims after it, zero dims counted as one) and the byte
  // count must fit in 63 bits: a shape of zero elements can still name absurd dims.
  std::int64_t span = 1;
  for (auto d : shape) {
    check(d >= 0, "empty", "negative size in shape ", shape);
    check(!__builtin_mul_overflow(span, d > 0 ? d : 1, &span) &&
              span <= std::numeric_limits<std::int64_t>::max() / std::int64_t(sizeof(T)),
          "empty", "shape ", shape, " is too large to index");
  }
  auto impl = std::make_shared<TensorImpl<T>>();
  impl->storage = std::make_shared<Storage>(numel_of(shape) * sizeof(T), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  return Tensor(std::move(impl));
}

namespace detail {
template <class T>
const TensorImpl<T>& checked_impl(const std::shared_ptr<TensorImpl<T>>& p) {
  if (!p) throw Error("ligm::Tensor: use of an undefined tensor");
  return *p;
}
}  // namespace detail

template <class T> const Shape& Tensor<T>::shape() const { return detail::checked_impl(impl_).shape; }
template <class T> const Shape& Tensor<T>::strides() const { return detail::checked_impl(impl_).strides; }
template <class T> std::int64_t Tensor<T>::storage_offset() const { return detail::checked_impl(impl_).offset; }
template <class T> Device Tensor<T>::device() const { return detail::checked_impl(impl_).storage->device(); }
template <class T> const std::shared_ptr<Storage>& Tensor<T>::storage() const { return detail::checked_impl(impl_).storage; }

template <class T>
std::int64_t Tensor<T>::size(std::int64_t d) const {
  return shape()[wrap_sized_dim(d, dim(), "size")];
}
template <class T>
std::int64_t Tensor<T>::stride(std::int64_t d) const {
  return strides()[wrap_sized_dim(d, dim(), "stride")];
}

template <class T>
bool Tensor<T>::is_contiguous() const {
  return is_contiguous_strides(shape(), strides());
}

template <class T>
std::string Tensor<T>::describe() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name<T>()) + shape_str(shape()) + " on " + device().str();
}

template <class T>
T* Tensor<T>::data_ptr() const {
  const auto& im = detail::checked_impl(impl_);
  // An empty storage has no memory: a view into it (offset > 0 after a slice) has no address.
  T* base = static_cast<T*>(im.storage->data());
  return base ? base + im.offset : nullptr;
}

template <class T>
bool Tensor<T>::requires_grad() const {
  return impl_ && impl_->requires_grad;
}

template <class T>
Tensor<T>& Tensor<T>::requires_grad_(bool on) {
  if constexpr (!is_floating_v<T>) {
    check(!on, "requires_grad_", "only floating-point tensors can require gradients, got ",
          describe());
  }
  check(is_leaf() || on, "requires_grad_",
        "cannot turn off requires_grad on a non-leaf tensor; use detach()");
  detail::checked_impl(impl_);
  impl_->requires_grad = on;
  return *this;
}

template <class T>
bool Tensor<T>::is_leaf() const {
  return !impl_ || impl_->grad_fn == nullptr;
}

template <class T>
Tensor<T> Tensor<T>::grad() const {
  return detail::checked_impl(impl_).grad;
}

template <class T>
void Tensor<T>::set_grad(const Tensor& g) const {
  detail::checked_impl(impl_);
  if (g.defined())
    check(g.shape() == shape(), "set_grad", "gradient of shape ", g.shape(),
          " for a tensor of shape ", shape());
  impl_->grad = g;
}

template <class T>
const std::shared_ptr<Node<T>>& Tensor<T>::grad_fn() const {
  return detail::checked_impl(impl_).grad_fn;
}

template <class T>
void Tensor<T>::set_data(const Tensor& src) const {
  auto& im = const_cast<TensorImpl<T>&>(detail::checked_impl(impl_));
  const auto& s = detail::checked_impl(src.impl_);
  im.storage = s.storage;
  im.shape = s.shape;
  im.strides = s.strides;
  im.offset = s.offset;
}

template <class T>
Tensor<T> Tensor<T>::detach() const {
  const auto& im = detail::checked_impl(impl_);
  auto out = std::make_shared<TensorImpl<T>>();
  out->storage = im.storage;
  out->shape = im.shape;
  out->strides = im.strides;
  out->offset = im.offset;
  return Tensor(std::move(out));
}

// A view of `base` with new geometry and no autograd history (ops add it).
template <class T>
Tensor<T> make_view(const Tensor<T>& base, Shape shape, Shape strides, std::int64_t offset) {
  auto out = std::make_shared<TensorImpl<T>>();
  out->storage = base.storage();
  out->shape = std::move(shape);
  out->strides = std::move(strides);
  out->offset = offset;
  return Tensor<T>(std::move(out));
}

}  // namespace ligm
