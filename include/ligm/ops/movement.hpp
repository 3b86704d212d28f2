// Movement ops. Views (view, permute, transpose, expand, squeeze, unsqueeze, narrow, slice,
// select) share storage and copy nothing; cat, stack, flip, pad, roll, index_select, gather
// and scatter_add make new tensors.
#pragma once
#include <algorithm>
#include <numeric>
#include <optional>
#include <vector>

#include "ligm/ops/elementwise.hpp"

namespace ligm {
namespace ops_detail {

// Resolves one -1 in a requested shape.
inline Shape infer_shape(Shape shape, std::int64_t numel, const char* op) {
  std::int64_t known = 1, infer = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      check(infer < 0, op, "only one dimension can be inferred in ", shape);
      infer = static_cast<std::int64_t>(i);
    } else {
      check(shape[i] >= 0, op, "invalid shape ", shape);
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    check(known != 0 && numel % known == 0, op, "shape ", shape, " is invalid for input of size ", numel);
    shape[infer] = numel / known;
  }
  check(numel_of(shape) == numel, op, "shape ", shape, " is invalid for input of size ", numel);
  return shape;
}

// Strides for viewing (old_shape, old_strides) as new_shape without a copy, if possible
// (the rule PyTorch's view follows: each group of merged/split dims must be contiguous).
inline std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides,
                                         const Shape& new_shape) {
  if (numel_of(old_shape) == 0 || old_shape.empty() || new_shape.empty())
    return contiguous_strides(new_shape);
  Shape out(new_shape.size());
  std::int64_t view_d = static_cast<std::int64_t>(new_shape.size()) - 1;
  std::int64_t chunk_base = old_strides.empty() ? 1 : old_strides.back();
  std::int64_t tensor_numel = 1, view_numel = 1;
  for (std::int64_t d = static_cast<std::int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

}  // namespace ops_detail

template <class T>
Tensor<T> Tensor<T>::view(const Shape& requested) const {
  const Shape new_shape = ops_detail::infer_shape(requested, numel(), "view");
  auto st = ops_detail::view_strides(shape(), strides(), new_shape);
  check(st.has_value(), "view", "size ", new_shape, " is not compatible with the input's size ",
        shape(), " and strides ", strides(), "; use reshape()");
  auto out = make_view(*this, new_shape, *st, storage_offset());
  return autograd::record("ViewBackward", out, {*this},
                          [s = shape()](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            return {g.reshape(s)};
                          });
}

template <class T>
Tensor<T> Tensor<T>::reshape(const Shape& requested) const {
  const Shape new_shape = ops_detail::infer_shape(requested, numel(), "reshape");
  if (ops_detail::view_strides(shape(), strides(), new_shape)) return view(new_shape);
  return clone().view(new_shape);
}

template <class T>
Tensor<T> Tensor<T>::flatten(std::int64_t start, std::int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  check(start <= end, "flatten", "start_dim ", start, " cannot come after end_dim ", end);
  Shape s(shape().begin(), shape().begin() + start);
  std::int64_t merged = 1;
  for (auto d = start; d <= end; ++d) merged *= shape()[d];
  s.push_back(merged);
  s.insert(s.end(), shape().begin() + end + 1, shape().end());
  return reshape(s);
}

template <class T>
Tensor<T> Tensor<T>::permute(const Dims& dims) const {
  check(static_cast<std::int64_t>(dims.size()) == dim(), "permute", "got ", dims.size(),
        " dims for a tensor of shape ", shape());
  Shape s(dims.size()), st(dims.size());
  Dims inverse(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const auto d = wrap_dim(dims[i], dim(), "permute");
    check(!seen[d], "permute", "repeated dim ", d, " in permutation");
    seen[d] = true;
    s[i] = shape()[d];
    st[i] = strides()[d];
    inverse[d] = static_cast<std::int64_t>(i);
  }
  auto out = make_view(*this, s, st, storage_offset());
  return autograd::record("PermuteBackward", out, {*this},
                          [inverse](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            return {g.permute(inverse)};
                          });
}

template <class T>
Tensor<T> Tensor<T>::transpose(std::int64_t d0, std::int64_t d1) const {
  if (dim() == 0) return *this;
  Dims p(static_cast<std::size_t>(dim()));
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[wrap_dim(d0, dim(), "transpose")], p[wrap_dim(d1, dim(), "transpose")]);
  return permute(p);
}

template <class T>
Tensor<T> Tensor<T>::t() const {
  check(dim() <= 2, "t", "expects a tensor with <= 2 dims, got shape ", shape());
  return dim() < 2 ? *this : transpose(0, 1);
}

template <class T>
Tensor<T> Tensor<T>::expand(const Shape& requested) const {
  check(requested.size() >= shape().size(), "expand", "cannot expand shape ", shape(), " to ",
        requested, " (fewer dims)");
  const std::size_t n = requested.size(), k = shape().size();
  Shape s(n), st(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const bool old = i >= n - k;
    const std::int64_t have = old ? shape()[i - (n - k)] : 1;
    const std::int64_t want = requested[i] == -1 ? have : requested[i];
    check(old || requested[i] != -1, "expand", "-1 is not allowed in a new leading dim (", requested, ")");
    check(want >= 0, "expand", "negative size ", want, " in ", requested);
    check(have == want || have == 1, "expand", "cannot expand shape ", shape(), " to ", requested);
    s[i] = want;
    st[i] = old && have == want ? strides()[i - (n - k)] : 0;
  }
  auto out = make_view(*this, s, st, storage_offset());
  return autograd::record("ExpandBackward", out, {*this},
                          [in = shape()](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            return {sum_to(g, in)};
                          });
}

template <class T>
Tensor<T> Tensor<T>::squeeze() const {
  Shape s;
  for (auto d : shape()) if (d != 1) s.push_back(d);
  return view(s);
}

template <class T>
Tensor<T> Tensor<T>::squeeze(std::int64_t d) const {
  if (dim() == 0) return *this;
  d = wrap_dim(d, dim(), "squeeze");
  if (shape()[d] != 1) return *this;
  Shape s = shape();
  s.erase(s.begin() + d);
  return view(s);
}

template <class T>
Tensor<T> Tensor<T>::unsqueeze(std::int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return view(s);
}

template <class T>
Tensor<T> Tensor<T>::slice(std::int64_t d, std::int64_t start, std::int64_t end,
                           std::int64_t step) const {
  d = wrap_sized_dim(d, dim(), "slice");
  check(step > 0, "slice", "step must be positive, got ", step);
  const std::int64_t size = shape()[d];
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<std::int64_t>(start, 0, size);
  end = std::clamp<std::int64_t>(end, start, size);
  Shape s = shape(), st = strides();
  s[d] = slice_length(start, end, step);
  if (s[d] > 1) st[d] *= step;  // (step < size here: no overflow; one element needs no stride)
  auto out = make_view(*this, s, st, storage_offset() + start * strides()[d]);
  // The rule passes the slice's gradient on as it is; backward() adds it into the slice of the
  // input's gradient (Node::region).
  autograd::record("SliceBackward", out, {*this},
                   [](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> { return {g}; });
  if (out.grad_fn()) out.grad_fn()->region = typename Node<T>::Region{d, start, end, step};
  return out;
}

template <class T>
Tensor<T> Tensor<T>::narrow(std::int64_t d, std::int64_t start, std::int64_t length) const {
  d = wrap_sized_dim(d, dim(), "narrow");
  if (start < 0) start += shape()[d];
  check(start >= 0 && length >= 0 && start <= shape()[d] && length <= shape()[d] - start, "narrow", "start ", start,
        " + length ", length, " exceeds dim ", d, " of size ", shape()[d], " (shape ", shape(), ")");
  return slice(d, start, start + length);
}

template <class T>
Tensor<T> Tensor<T>::select(std::int64_t d, std::int64_t index) const {
  d = wrap_sized_dim(d, dim(), "select");
  const std::int64_t size = shape()[d];
  check(index >= -size && index < size, "select", "index ", index, " is out of range for dim ", d,
        " of size ", size, " (shape ", shape(), ")");
  if (index < 0) index += size;
  return narrow(d, index, 1).squeeze(d);
}

// --- concatenation and splitting --------------------------------------------------------------
template <class T>
Tensor<T> cat(const std::vector<Tensor<T>>& xs, std::int64_t dim = 0) {
  check(!xs.empty(), "cat", "expects a non-empty list of tensors");
  const auto& first = xs[0];
  dim = wrap_sized_dim(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (const auto& x : xs) {
    ops_detail::same_device(first, x, "cat");
    bool ok = x.dim() == first.dim();
    for (std::int64_t d = 0; ok && d < x.dim(); ++d) ok = d == dim || x.shape()[d] == first.shape()[d];
    check(ok, "cat", "shapes ", first.shape(), " and ", x.shape(), " differ outside dim ", dim);
    out_shape[dim] += x.shape()[dim];
  }
  auto out = Tensor<T>::empty(out_shape, first.device());
  std::vector<std::int64_t> starts;
  {
    NoGradGuard g;
    std::int64_t at = 0;
    for (const auto& x : xs) {
      starts.push_back(at);
      ops_detail::be(out).copy(x.cref(), out.narrow(dim, at, x.shape()[dim]).ref());
      at += x.shape()[dim];
    }
  }
  std::vector<std::int64_t> sizes;
  for (const auto& x : xs) sizes.push_back(x.shape()[dim]);
  return autograd::record_list("CatBackward", out, xs,
                               [dim, starts, sizes](const Tensor<T>& g, const NeedsGrad& n) {
                                 std::vector<Tensor<T>> gs(starts.size());
                                 for (std::size_t i = 0; i < starts.size(); ++i)
                                   if (n[i]) gs[i] = g.narrow(dim, starts[i], sizes[i]);
                                 return gs;
                               });
}

template <class T>
Tensor<T> stack(const std::vector<Tensor<T>>& xs, std::int64_t dim = 0) {
  check(!xs.empty(), "stack", "expects a non-empty list of tensors");
  dim = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor<T>> parts;
  for (const auto& x : xs) {
    check(x.shape() == xs[0].shape(), "stack", "all tensors must have the same shape, got ",
          xs[0].shape(), " and ", x.shape());
    parts.push_back(x.unsqueeze(dim));
  }
  return cat(parts, dim);
}

// Pieces of `split_size` along dim (the last may be smaller).
template <class T>
std::vector<Tensor<T>> split(const Tensor<T>& x, std::int64_t split_size, std::int64_t dim = 0) {
  check(split_size > 0, "split", "split_size must be positive, got ", split_size);
  dim = wrap_sized_dim(dim, x.dim(), "split");
  std::vector<Tensor<T>> out;
  for (std::int64_t at = 0; at < x.shape()[dim]; at += split_size)
    out.push_back(x.narrow(dim, at, std::min(split_size, x.shape()[dim] - at)));
  return out;
}

template <class T>
std::vector<Tensor<T>> chunk(const Tensor<T>& x, std::int64_t chunks, std::int64_t dim = 0) {
  check(chunks > 0, "chunk", "chunks must be positive, got ", chunks);
  dim = wrap_sized_dim(dim, x.dim(), "chunk");
  const std::int64_t size = x.shape()[dim];
  return split(x, std::max<std::int64_t>(1, (size + chunks - 1) / chunks), dim);
}

template <class T>
Tensor<T> flip(const Tensor<T>& x, const Dims& dims) {
  Shape st = x.strides();
  std::int64_t offset = x.storage_offset();
  for (auto d : dims) {
    d = wrap_sized_dim(d, x.dim(), "flip");
    if (x.shape()[d] > 0) offset += (x.shape()[d] - 1) * st[d];
    st[d] = -st[d];
  }
  auto reversed = make_view(x.detach(), x.shape(), st, offset);  // negative strides
  auto out = Tensor<T>::empty(x.shape(), x.device());
  ops_detail::be(x).copy(reversed.cref(), out.ref());
  return autograd::record("FlipBackward", out, {x},
                          [dims](const Tensor<T>& g, const NeedsGrad&) -> std::vector<Tensor<T>> {
                            return {flip(g, dims)};
                          });
}

// Constant padding. pads = {left, right} for the last dim, then {top, bottom} for the one
// before, ... as in torch.nn.functional.pad.
template <class T>
Tensor<T> pad(const Tensor<T>& x, const std::vector<std::int64_t>& pads, std::type_identity_t<T> value = T(0)) {
  check(pads.size() % 2 == 0 && static_cast<std::int64_t>(pads.size() / 2) <= x.dim(), "pad",
        "padding of length ", pads.size(), " is invalid for a tensor of shape ", x.shape());
  Shape s = x.shape();
  std::vector<std::pair<std::int64_t, std::int64_t>> where_dims;
  for (std::size_t i = 0; i < pads.size() / 2; ++i) {
    const std::int64_t d = x.dim() - 1 - static_cast<std::int64_t>(i);
    check(pads[2 * i] >= 0 && pads[2 * i + 1] >= 0, "pad", "negative padding is not supported (", pads.size(), " pads)");
    check(!__builtin_add_overflow(s[d], pads[2 * i], &s[d]) && !__builtin_add_overflow(s[d], pads[2 * i + 1], &s[d]),
          "pad", "padding (", pads[2 * i], ", ", pads[2 * i + 1], ") of dim ", d, " of shape ", x.shape(), " is too large");
    where_dims.push_back({d, pads[2 * i]});
  }
  auto out = full<T>(s, value, x.device());
  auto interior = out;
  for (auto [d, before] : where_dims) interior = interior.narrow(d, before, x.shape()[d]);
  ops_detail::be(x).copy(x.cref(), interior.ref());
  return autograd::record("PadBackward", out, {x},
                          [where_dims, in = x.shape()](const Tensor<T>& g, const NeedsGrad&)
                              -> std::vector<Tensor<T>> {
                            auto r = g;
                            for (auto [d, before] : where_dims) r = r.narrow(d, before, in[d]);
                            return {r};
                          });
}

template <class T>
Tensor<T> roll(const Tensor<T>& x, const std::vector<std::int64_t>& shifts, const Dims& dims) {
  check(shifts.size() == dims.size(), "roll", "shifts (", shifts.size(), ") and dims (",
        dims.size(), ") must have the same length");
  Tensor<T> out = x;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const auto d = wrap_sized_dim(dims[i], x.dim(), "roll");
    const std::int64_t n = x.shape()[d];
    if (n == 0) continue;
    const std::int64_t s = ((shifts[i] % n) + n) % n;
    if (s == 0) continue;
    out = cat(std::vector<Tensor<T>>{out.narrow(d, n - s, s), out.narrow(d, 0, n - s)}, d);
  }
  return out;
}

// --- indexing ---------------------------------------------------------------------------------
namespace ops_detail {
inline void check_indices(const Tensor<std::int64_t>& index, std::int64_t size, const char* op,
                          const Shape& src_shape, std::int64_t dim) {
  for (auto i : index.to_vector())
    check(i >= 0 && i < size, op, "index ", i, " is out of bounds for dim ", dim, " with size ",
          size, " (shape ", src_shape, ")");
}
inline std::int64_t prod(const Shape& s, std::int64_t lo, std::int64_t hi) {
  std::int64_t p = 1;
  for (auto i = lo; i < hi; ++i) p *= s[i];
  return p;
}
}  // namespace ops_detail

template <class T>
Tensor<T> index_add(const Tensor<T>& base, std::int64_t dim, const Tensor<std::int64_t>& index,
                    const Tensor<T>& src);

template <class T>
Tensor<T> index_select(const Tensor<T>& x, std::int64_t dim, const Tensor<std::int64_t>& index) {
  ops_detail::same_device(x, index, "index_select");
  check(index.dim() <= 1, "index_select", "index must be 1-d, got shape ", index.shape());
  dim = wrap_sized_dim(dim, x.dim(), "index_select");
  ops_detail::check_indices(index, x.dim() ? x.shape()[dim] : 1, "index_select", x.shape(), dim);
  auto xc = x.contiguous();
  auto ic = index.contiguous();
  Shape s = x.shape();
  if (x.dim()) s[dim] = ic.numel();
  auto out = Tensor<T>::empty(s, x.device());
  ops_detail::be(x).index_select(xc.data_ptr(), ops_detail::prod(x.shape(), 0, dim),
                                 x.dim() ? x.shape()[dim] : 1,
                                 ops_detail::prod(x.shape(), dim + 1, x.dim()), ic.data_ptr(),
                                 ic.numel(), out.data_ptr());
  return autograd::record("IndexSelectBackward", out, {x},
                          [in = x.shape(), dim, ic](const Tensor<T>& g, const NeedsGrad&)
                              -> std::vector<Tensor<T>> {
                            return {index_add(zeros<T>(in, g.device()), dim, ic, g)};
                          });
}

// Returns base with src's slices added at the given indices along dim (out of place).
template <class T>
Tensor<T> index_add(const Tensor<T>& base, std::int64_t dim, const Tensor<std::int64_t>& index,
                    const Tensor<T>& src) {
  ops_detail::same_device(base, index, "index_add");
  dim = wrap_sized_dim(dim, base.dim(), "index_add");
  Shape expect = base.shape();
  if (base.dim()) expect[dim] = index.numel();
  check(src.shape() == expect, "index_add", "source of shape ", src.shape(), " does not match ",
        expect, " (base ", base.shape(), ", ", index.numel(), " indices along dim ", dim, ")");
  ops_detail::check_indices(index, base.dim() ? base.shape()[dim] : 1, "index_add", base.shape(), dim);
  auto out = Tensor<T>::empty(base.shape(), base.device());
  ops_detail::be(base).copy(base.cref(), out.ref());
  auto sc = src.contiguous();
  auto ic = index.contiguous();
  ops_detail::be(base).index_add(out.data_ptr(), ops_detail::prod(base.shape(), 0, dim),
                                 base.dim() ? base.shape()[dim] : 1,
                                 ops_detail::prod(base.shape(), dim + 1, base.dim()),
                                 ic.data_ptr(), ic.numel(), sc.data_ptr());
  return autograd::record("IndexAddBackward", out, {base, src},
                          [dim, ic](const Tensor<T>& g, const NeedsGrad& n) -> std::vector<Tensor<T>> {
                            return {g, n[1] ? index_select(g, dim, ic) : Tensor<T>()};
                          });
}

template <class T>
Tensor<T> scatter_add(const Tensor<T>& base, std::int64_t dim, const Tensor<std::int64_t>& index,
                      const Tensor<T>& src);

// out[i][j] = x[i][index[i][j]] (dim = 1), and so on for other dims.
template <class T>
Tensor<T> gather(const Tensor<T>& x, std::int64_t dim, const Tensor<std::int64_t>& index) {
  ops_detail::same_device(x, index, "gather");
  dim = wrap_sized_dim(dim, x.dim(), "gather");
  check(index.dim() == x.dim(), "gather", "index of shape ", index.shape(),
        " must have as many dims as the input of shape ", x.shape());
  for (std::int64_t d = 0; d < x.dim(); ++d)
    check(d == dim || index.shape()[d] <= x.shape()[d], "gather", "index of shape ",
          index.shape(), " is larger than the input of shape ", x.shape(), " outside dim ", dim);
  ops_detail::check_indices(index, x.shape()[dim], "gather", x.shape(), dim);
  auto out = Tensor<T>::empty(index.shape(), x.device());
  Ref<const T> src{x.data_ptr(), index.shape(), x.strides()};
  ops_detail::be(x).gather(src, dim, index.cref(), out.ref());
  return autograd::record("GatherBackward", out, {x},
                          [in = x.shape(), dim, index](const Tensor<T>& g, const NeedsGrad&)
                              -> std::vector<Tensor<T>> {
                            return {scatter_add(zeros<T>(in, g.device()), dim, index, g)};
                          });
}

// Returns base with src added at positions named by index along dim (out of place).
template <class T>
Tensor<T> scatter_add(const Tensor<T>& base, std::int64_t dim, const Tensor<std::int64_t>& index,
                      const Tensor<T>& src) {
  ops_detail::same_device(base, index, "scatter_add");
  ops_detail::same_device(base, src, "scatter_add");
  dim = wrap_sized_dim(dim, base.dim(), "scatter_add");
  check(index.dim() == base.dim() && src.dim() == base.dim(), "scatter_add", "index ",
        index.shape(), ", src ", src.shape(), " and base ", base.shape(), " must have the same number of dims");
  for (std::int64_t d = 0; d < base.dim(); ++d)
    check(index.shape()[d] <= src.shape()[d] && (d == dim || index.shape()[d] <= base.shape()[d]),
          "scatter_add", "index of shape ", index.shape(), " does not fit src ", src.shape(),
          " and base ", base.shape());
  ops_detail::check_indices(index, base.shape()[dim], "scatter_add", base.shape(), dim);
  auto out = Tensor<T>::empty(base.shape(), base.device());
  ops_detail::be(base).copy(base.cref(), out.ref());
  Ref<const T> s{src.data_ptr(), index.shape(), src.strides()};
  ops_detail::be(base).scatter_add({out.data_ptr(), index.shape(), out.strides()}, dim, index.cref(), s);
  return autograd::record("ScatterAddBackward", out, {base, src},
                          [dim, index, src_shape = src.shape()](const Tensor<T>& g, const NeedsGrad& n)
                              -> std::vector<Tensor<T>> {
                            Tensor<T> gs;
                            if (n[1]) {
                              gs = gather(g, dim, index);
                              if (gs.shape() != src_shape) {  // src entries no index names get 0
                                auto full_g = zeros<T>(src_shape, g.device());
                                auto part = full_g;
                                for (std::int64_t d = 0; d < part.dim(); ++d)
                                  part = part.narrow(d, 0, index.shape()[d]);
                                part.copy_(gs);
                                gs = full_g;
                              }
                            }
                            return {g, gs};
                          });
}

}  // namespace ligm
