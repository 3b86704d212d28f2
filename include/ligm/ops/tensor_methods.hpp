// Tensor<T> member functions that forward to ops (x.sum(), x.exp(), ...), as in PyTorch.
#pragma once
#include "ligm/ops/matmul.hpp"
#include "ligm/ops/reduce.hpp"
#include "ligm/ops/softmax.hpp"

namespace ligm {

#define LIGM_FORWARD0(R, name, call) template <class T> R Tensor<T>::name() const { return call; }
LIGM_FORWARD0(Tensor<T>, sum, ligm::sum(*this))
LIGM_FORWARD0(Tensor<T>, mean, ligm::mean(*this))
LIGM_FORWARD0(Tensor<T>, max, ligm::amax(*this))
LIGM_FORWARD0(Tensor<T>, min, ligm::amin(*this))
LIGM_FORWARD0(Tensor<std::int64_t>, argmax, ligm::argmax(*this))
LIGM_FORWARD0(Tensor<std::int64_t>, argmin, ligm::argmin(*this))
LIGM_FORWARD0(Tensor<T>, exp, ligm::exp(*this))
LIGM_FORWARD0(Tensor<T>, log, ligm::log(*this))
LIGM_FORWARD0(Tensor<T>, log1p, ligm::log1p(*this))
LIGM_FORWARD0(Tensor<T>, sqrt, ligm::sqrt(*this))
LIGM_FORWARD0(Tensor<T>, rsqrt, ligm::rsqrt(*this))
LIGM_FORWARD0(Tensor<T>, abs, ligm::abs(*this))
LIGM_FORWARD0(Tensor<T>, neg, ligm::neg(*this))
LIGM_FORWARD0(Tensor<T>, sin, ligm::sin(*this))
LIGM_FORWARD0(Tensor<T>, cos, ligm::cos(*this))
LIGM_FORWARD0(Tensor<T>, square, ligm::square(*this))
LIGM_FORWARD0(Tensor<T>, relu, ligm::relu(*this))
LIGM_FORWARD0(Tensor<T>, sigmoid, ligm::sigmoid(*this))
LIGM_FORWARD0(Tensor<T>, tanh, ligm::tanh(*this))
#undef LIGM_FORWARD0

template <class T> Tensor<T> Tensor<T>::sum(const Dims& d, bool k) const { return ligm::sum(*this, d, k); }
template <class T> Tensor<T> Tensor<T>::mean(const Dims& d, bool k) const { return ligm::mean(*this, d, k); }
template <class T> Tensor<T> Tensor<T>::var(const Dims& d, bool u, bool k) const { return ligm::var(*this, d, u, k); }
template <class T> Tensor<T> Tensor<T>::std(const Dims& d, bool u, bool k) const { return ligm::stddev(*this, d, u, k); }
template <class T> Tensor<T> Tensor<T>::amax(const Dims& d, bool k) const { return ligm::amax(*this, d, k); }
template <class T> Tensor<T> Tensor<T>::amin(const Dims& d, bool k) const { return ligm::amin(*this, d, k); }
template <class T>
std::pair<Tensor<T>, Tensor<std::int64_t>> Tensor<T>::max(std::int64_t d, bool k) const { return ligm::max(*this, d, k); }
template <class T>
std::pair<Tensor<T>, Tensor<std::int64_t>> Tensor<T>::min(std::int64_t d, bool k) const { return ligm::min(*this, d, k); }
template <class T> Tensor<std::int64_t> Tensor<T>::argmax(std::int64_t d, bool k) const { return ligm::argmax(*this, d, k); }
template <class T> Tensor<std::int64_t> Tensor<T>::argmin(std::int64_t d, bool k) const { return ligm::argmin(*this, d, k); }
template <class T> Tensor<T> Tensor<T>::logsumexp(const Dims& d, bool k) const { return ligm::logsumexp(*this, d, k); }
template <class T> Tensor<T> Tensor<T>::norm(double p, const Dims& d, bool k) const { return ligm::norm(*this, p, d, k); }
template <class T> Tensor<T> Tensor<T>::pow(double e) const { return ligm::pow(*this, e); }
template <class T> Tensor<T> Tensor<T>::clamp(double lo, double hi) const { return ligm::clamp(*this, lo, hi); }
template <class T> Tensor<T> Tensor<T>::masked_fill(const Tensor<bool>& m, T v) const { return ligm::masked_fill(*this, m, v); }
template <class T> Tensor<T> Tensor<T>::index_select(std::int64_t d, const Tensor<std::int64_t>& i) const { return ligm::index_select(*this, d, i); }
template <class T> Tensor<T> Tensor<T>::gather(std::int64_t d, const Tensor<std::int64_t>& i) const { return ligm::gather(*this, d, i); }
template <class T>
Tensor<T> Tensor<T>::scatter_add(std::int64_t d, const Tensor<std::int64_t>& i, const Tensor& s) const { return ligm::scatter_add(*this, d, i, s); }
template <class T> Tensor<T> Tensor<T>::flip(const Dims& d) const { return ligm::flip(*this, d); }
template <class T> std::vector<Tensor<T>> Tensor<T>::split(std::int64_t s, std::int64_t d) const { return ligm::split(*this, s, d); }
template <class T> std::vector<Tensor<T>> Tensor<T>::chunk(std::int64_t c, std::int64_t d) const { return ligm::chunk(*this, c, d); }
template <class T> Tensor<T> Tensor<T>::matmul(const Tensor& o) const { return ligm::matmul(*this, o); }
template <class T> Tensor<T> Tensor<T>::mm(const Tensor& o) const { return ligm::mm(*this, o); }
template <class T> Tensor<T> Tensor<T>::softmax(std::int64_t d) const { return ligm::softmax(*this, d); }
template <class T> Tensor<T> Tensor<T>::log_softmax(std::int64_t d) const { return ligm::log_softmax(*this, d); }

// Free-function forms of the views and copies, as torch.reshape(x, ...) etc.
template <class T> Tensor<T> reshape(const Tensor<T>& x, const Shape& s) { return x.reshape(s); }
template <class T> Tensor<T> view(const Tensor<T>& x, const Shape& s) { return x.view(s); }
template <class T> Tensor<T> flatten(const Tensor<T>& x, std::int64_t a = 0, std::int64_t b = -1) { return x.flatten(a, b); }
template <class T> Tensor<T> permute(const Tensor<T>& x, const Dims& d) { return x.permute(d); }
template <class T> Tensor<T> transpose(const Tensor<T>& x, std::int64_t a, std::int64_t b) { return x.transpose(a, b); }
template <class T> Tensor<T> t(const Tensor<T>& x) { return x.t(); }
template <class T> Tensor<T> expand(const Tensor<T>& x, const Shape& s) { return x.expand(s); }
template <class T> Tensor<T> squeeze(const Tensor<T>& x) { return x.squeeze(); }
template <class T> Tensor<T> squeeze(const Tensor<T>& x, std::int64_t d) { return x.squeeze(d); }
template <class T> Tensor<T> unsqueeze(const Tensor<T>& x, std::int64_t d) { return x.unsqueeze(d); }
template <class T> Tensor<T> narrow(const Tensor<T>& x, std::int64_t d, std::int64_t s, std::int64_t n) { return x.narrow(d, s, n); }
template <class T> Tensor<T> select(const Tensor<T>& x, std::int64_t d, std::int64_t i) { return x.select(d, i); }
template <class T> Tensor<T> clone(const Tensor<T>& x) { return x.clone(); }
template <class T> Tensor<T> clamp_min(const Tensor<T>& x, double lo) { return clamp(x, lo); }
template <class T>
Tensor<T> clamp_max(const Tensor<T>& x, double hi) { return clamp(x, -std::numeric_limits<double>::infinity(), hi); }

// torch.max(a, b) / torch.min(a, b): the elementwise forms.
template <class T> Tensor<T> max(const Tensor<T>& a, const Tensor<T>& b) { return maximum(a, b); }
template <class T> Tensor<T> min(const Tensor<T>& a, const Tensor<T>& b) { return minimum(a, b); }

}  // namespace ligm
