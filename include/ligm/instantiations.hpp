// The explicit-instantiation mode: the common types' code compiled once, in the ligm library.
//
// Every op, module and optimizer is a template, so by default each user file that calls
// relu<float> compiles relu<float> (and its backward closure, and everything below it) again:
// about 13 of the 16 seconds a small training program takes to compile. The lists below name
// what a training program uses, for the types it uses: all of it for float and double, the
// tensor class and the integer ops for std::int64_t and bool.
//
//   - With LIGM_EXTERN_TEMPLATES defined, ligm.hpp declares each of them `extern template`:
//     the user's file still sees every definition (so it may inline the small ones) but emits
//     none of them; the linker takes them from the ligm library.
//   - src/instantiate_*.cpp define them (`template ...`) once, into that library.
//
// Meson's `ligm_dep` turns the mode on (with LIGM_SEPARATE_BACKEND); header-only use never
// sees these lines. Anything not listed (another dtype, a function template's rarely used
// overload, the models/ classes) is compiled in the user's file as usual, so the mode changes
// compile time only, never behaviour. Adding an op: add it to its list; the library's build
// checks the signature.
#pragma once

// P is `extern template` (declaration) or `template` (definition); T a scalar type.

// The tensor class (all members defined out of class: views, copies, in-place ops, backward)
// and the ops that every dtype supports.
#define LIGM_INSTANTIATE_TENSOR(P, T)                                                           \
  P class Tensor<T>;                                                                            \
  P Tensor<T> empty(const Shape&, Device);                                                      \
  P Tensor<T> full(const Shape&, T, Device);                                                    \
  P Tensor<T> zeros(const Shape&, Device);                                                      \
  P Tensor<T> ones(const Shape&, Device);                                                       \
  P Tensor<T> zeros_like(const Tensor<T>&);                                                     \
  P Tensor<T> tensor(const std::vector<T>&, Shape, Device);                                     \
  P Tensor<T> scalar_tensor(T, Device);                                                         \
  P Tensor<T> add(const Tensor<T>&, const Tensor<T>&);                                          \
  P Tensor<T> sub(const Tensor<T>&, const Tensor<T>&);                                          \
  P Tensor<T> mul(const Tensor<T>&, const Tensor<T>&);                                          \
  P Tensor<T> where(const Tensor<bool>&, const Tensor<T>&, const Tensor<T>&);                   \
  P Tensor<T> masked_fill(const Tensor<T>&, const Tensor<bool>&, std::type_identity_t<T>);      \
  P Tensor<bool> ops_detail::compare_op(CompareOp, const Tensor<T>&, const Tensor<T>&, const char*); \
  P Tensor<T>& ops_detail::binary_inplace(BinaryOp, Tensor<T>&, const Tensor<T>&, const char*); \
  P Tensor<T> sum(const Tensor<T>&, const Dims&, bool);                                         \
  P Tensor<T> cat(const std::vector<Tensor<T>>&, std::int64_t);                                 \
  P Tensor<T> stack(const std::vector<Tensor<T>>&, std::int64_t);                               \
  P std::vector<Tensor<T>> split(const Tensor<T>&, std::int64_t, std::int64_t);                 \
  P std::vector<Tensor<T>> chunk(const Tensor<T>&, std::int64_t, std::int64_t);                 \
  P Tensor<T> flip(const Tensor<T>&, const Dims&);                                              \
  P Tensor<T> index_select(const Tensor<T>&, std::int64_t, const Tensor<std::int64_t>&);        \
  P Tensor<T> gather(const Tensor<T>&, std::int64_t, const Tensor<std::int64_t>&);              \
  P Tensor<T> sum_to(const Tensor<T>&, const Shape&);                                           \
  P void autograd::backward(const Tensor<T>&, Tensor<T>, bool);

// Integer and float tensors: arithmetic and reductions that make sense for numbers.
#define LIGM_INSTANTIATE_NUMERIC(P, T)                                                          \
  P Tensor<T> div(const Tensor<T>&, const Tensor<T>&);                                          \
  P Tensor<T> maximum(const Tensor<T>&, const Tensor<T>&);                                      \
  P Tensor<T> minimum(const Tensor<T>&, const Tensor<T>&);                                      \
  P Tensor<T> abs(const Tensor<T>&);                                                            \
  P Tensor<T> neg(const Tensor<T>&);                                                            \
  P Tensor<T> clamp(const Tensor<T>&, double, double);                                          \
  P Tensor<T> amax(const Tensor<T>&, const Dims&, bool);                                        \
  P Tensor<T> amin(const Tensor<T>&, const Dims&, bool);                                        \
  P std::pair<Tensor<T>, Tensor<std::int64_t>> max(const Tensor<T>&, std::int64_t, bool);       \
  P std::pair<Tensor<T>, Tensor<std::int64_t>> min(const Tensor<T>&, std::int64_t, bool);       \
  P Tensor<std::int64_t> argmax(const Tensor<T>&, std::optional<std::int64_t>, bool);           \
  P Tensor<std::int64_t> argmin(const Tensor<T>&, std::optional<std::int64_t>, bool);           \
  P Tensor<T> arange(double, double, double, Device);                                           \
  P Tensor<T> pad(const Tensor<T>&, const std::vector<std::int64_t>&, std::type_identity_t<T>); \
  P Tensor<T> roll(const Tensor<T>&, const std::vector<std::int64_t>&, const Dims&);            \
  P Tensor<T> index_add(const Tensor<T>&, std::int64_t, const Tensor<std::int64_t>&, const Tensor<T>&); \
  P Tensor<T> scatter_add(const Tensor<T>&, std::int64_t, const Tensor<std::int64_t>&, const Tensor<T>&); \
  P std::pair<Tensor<T>, Tensor<std::int64_t>> sort(const Tensor<T>&, std::int64_t, bool);     \
  P std::pair<Tensor<T>, Tensor<std::int64_t>> topk(const Tensor<T>&, std::int64_t, std::int64_t, bool);

// Floating point: the differentiable math, losses, layers' functionals, initialisers.
#define LIGM_INSTANTIATE_FLOATING_OPS(P, T)                                                     \
  P Tensor<T> ops_detail::unary_op(const char*, UnaryOp, const Tensor<T>&, UnaryParams);         \
  P Tensor<T> exp(const Tensor<T>&);                                                            \
  P Tensor<T> log(const Tensor<T>&);                                                            \
  P Tensor<T> sqrt(const Tensor<T>&);                                                           \
  P Tensor<T> rsqrt(const Tensor<T>&);                                                          \
  P Tensor<T> tanh(const Tensor<T>&);                                                           \
  P Tensor<T> sigmoid(const Tensor<T>&);                                                        \
  P Tensor<T> relu(const Tensor<T>&);                                                           \
  P Tensor<T> silu(const Tensor<T>&);                                                           \
  P Tensor<T> gelu(const Tensor<T>&, std::string_view);                                         \
  P Tensor<T> leaky_relu(const Tensor<T>&, double);                                             \
  P Tensor<T> softplus(const Tensor<T>&, double, double);                                       \
  P Tensor<T> pow(const Tensor<T>&, double);                                                    \
  P Tensor<T> pow(const Tensor<T>&, const Tensor<T>&);                                          \
  P Tensor<T> square(const Tensor<T>&);                                                         \
  P Tensor<T> mean(const Tensor<T>&, const Dims&, bool);                                        \
  P Tensor<T> var(const Tensor<T>&, const Dims&, bool, bool);                                   \
  P Tensor<T> stddev(const Tensor<T>&, const Dims&, bool, bool);                                \
  P Tensor<T> logsumexp(const Tensor<T>&, const Dims&, bool);                                   \
  P Tensor<T> norm(const Tensor<T>&, double, const Dims&, bool);                                \
  P Tensor<T> softmax(const Tensor<T>&, std::int64_t);                                          \
  P Tensor<T> log_softmax(const Tensor<T>&, std::int64_t);                                      \
  P Tensor<T> matmul(const Tensor<T>&, const Tensor<T>&);                                       \
  P Tensor<T> mm(const Tensor<T>&, const Tensor<T>&);                                           \
  P Tensor<T> bmm(const Tensor<T>&, const Tensor<T>&);                                          \
  P Tensor<T> linear(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&);                     \
  P Tensor<T> conv2d(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&); \
  P Tensor<T> conv1d(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv1dOptions&); \
  P Tensor<T> conv_transpose2d(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,             \
                               const ConvTranspose2dOptions&);                                   \
  P std::pair<Tensor<T>, Tensor<std::int64_t>> max_pool2d_with_indices(const Tensor<T>&,         \
                                                                      const MaxPool2dOptions&);  \
  P Tensor<T> max_pool2d(const Tensor<T>&, const MaxPool2dOptions&);                            \
  P Tensor<T> avg_pool2d(const Tensor<T>&, const AvgPool2dOptions&);                            \
  P Tensor<T> adaptive_avg_pool2d(const Tensor<T>&, Pair2);                                     \
  P Tensor<T> interpolate(const Tensor<T>&, const InterpolateOptions&);                         \
  P Tensor<T> batch_norm(const Tensor<T>&, Tensor<T>, Tensor<T>, const Tensor<T>&, const Tensor<T>&, \
                         bool, double, double);                                                 \
  P Tensor<T> batch_norm_relu(const Tensor<T>&, Tensor<T>, Tensor<T>, const Tensor<T>&, const Tensor<T>&, \
                              bool, double, double);                                            \
  P Tensor<T> batch_norm_add_relu(const Tensor<T>&, const Tensor<T>&, Tensor<T>, Tensor<T>, const Tensor<T>&, \
                                  const Tensor<T>&, bool, double, double);                      \
  P Tensor<T> layer_norm(const Tensor<T>&, const Shape&, const Tensor<T>&, const Tensor<T>&, double); \
  P Tensor<T> group_norm(const Tensor<T>&, std::int64_t, const Tensor<T>&, const Tensor<T>&, double); \
  P Tensor<T> rms_norm(const Tensor<T>&, const Shape&, const Tensor<T>&, std::optional<double>); \
  P Tensor<T> dropout(const Tensor<T>&, double, bool, Generator&);                              \
  P Tensor<T> embedding(const Tensor<std::int64_t>&, const Tensor<T>&, std::optional<std::int64_t>); \
  P Tensor<T> scaled_dot_product_attention(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                           const AttentionOptions<T>&);                         \
  P Tensor<T> packed_attention(const Tensor<T>&, std::int64_t, bool, std::optional<double>);    \
  P Tensor<T> ctu(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, std::int64_t);          \
  P Tensor<T> nll_loss(const Tensor<T>&, const Tensor<std::int64_t>&, const NllOptions<T>&);    \
  P Tensor<T> cross_entropy(const Tensor<T>&, const Tensor<std::int64_t>&, const CrossEntropyOptions<T>&); \
  P Tensor<T> cross_entropy(const Tensor<T>&, const Tensor<T>&, const CrossEntropyOptions<T>&); \
  P Tensor<T> mse_loss(const Tensor<T>&, const Tensor<T>&, std::string_view);                   \
  P Tensor<T> l1_loss(const Tensor<T>&, const Tensor<T>&, std::string_view);                    \
  P Tensor<T> binary_cross_entropy_with_logits(const Tensor<T>&, const Tensor<T>&,              \
                                               const BceWithLogitsOptions<T>&);                 \
  P Tensor<T> rand(const Shape&, Generator&, Device, double, double);                           \
  P Tensor<T> randn(const Shape&, Generator&, Device, double, double);                          \
  P void nn::init::uniform_(const Tensor<T>&, double, double, Generator&);                      \
  P void nn::init::normal_(const Tensor<T>&, double, double, Generator&);                       \
  P void nn::init::constant_(const Tensor<T>&, double);                                         \
  P void nn::init::kaiming_uniform_(const Tensor<T>&, double, std::string_view, std::string_view, \
                                    Generator&);                                                \
  P void nn::init::trunc_normal_(const Tensor<T>&, double, double, double, double, Generator&);

// Modules, optimizers and the loader.
#define LIGM_INSTANTIATE_MODULES(P, T)                                                          \
  P class nn::Module<T>;                                                                        \
  P class nn::ModuleList<T>;                                                                    \
  P class nn::Sequential<T>;                                                                    \
  P class nn::ModuleDict<T>;                                                                    \
  P class nn::Linear<T>;                                                                        \
  P class nn::Identity<T>;                                                                      \
  P class nn::Flatten<T>;                                                                       \
  P class nn::ReLU<T>;                                                                          \
  P class nn::SiLU<T>;                                                                          \
  P class nn::Tanh<T>;                                                                          \
  P class nn::Sigmoid<T>;                                                                       \
  P class nn::LeakyReLU<T>;                                                                     \
  P class nn::GELU<T>;                                                                          \
  P class nn::Softplus<T>;                                                                      \
  P class nn::Dropout<T>;                                                                       \
  P class nn::Conv2d<T>;                                                                        \
  P class nn::Conv1d<T>;                                                                        \
  P class nn::ConvTranspose2d<T>;                                                               \
  P class nn::Embedding<T>;                                                                     \
  P class nn::PositionalEmbedding<T>;                                                           \
  P class nn::BatchNormBase<T>;                                                                 \
  P class nn::BatchNorm1d<T>;                                                                   \
  P class nn::BatchNorm2d<T>;                                                                   \
  P class nn::LayerNorm<T>;                                                                     \
  P class nn::GroupNorm<T>;                                                                     \
  P class nn::RMSNorm<T>;                                                                       \
  P class nn::MaxPool2d<T>;                                                                     \
  P class nn::AvgPool2d<T>;                                                                     \
  P class nn::AdaptiveAvgPool2d<T>;                                                             \
  P class nn::MultiheadAttention<T>;                                                            \
  P class nn::TransformerEncoderLayer<T>;                                                       \
  P class optim::Optimizer<T, optim::SGDOptions>;                                               \
  P class optim::SGD<T>;                                                                        \
  P class optim::Optimizer<T, optim::AdamOptions>;                                              \
  P class optim::Optimizer<T, optim::AdamWOptions>;                                             \
  P class optim::AdamBase<T, false, optim::AdamOptions>;                                        \
  P class optim::AdamBase<T, true, optim::AdamWOptions>;                                        \
  P class optim::Adam<T>;                                                                       \
  P class optim::AdamW<T>;                                                                      \
  P class optim::Optimizer<T, optim::LARSOptions>;                                              \
  P class optim::LARS<T>;                                                                       \
  P double optim::clip_grad_norm_(const std::vector<Tensor<T>>&, double, double);               \
  P class data::DataLoader<T, std::int64_t>;

// Everything for one floating-point type.
#define LIGM_INSTANTIATE_FLOATING(P, T) \
  LIGM_INSTANTIATE_TENSOR(P, T)         \
  LIGM_INSTANTIATE_NUMERIC(P, T)        \
  LIGM_INSTANTIATE_FLOATING_OPS(P, T)   \
  LIGM_INSTANTIATE_MODULES(P, T)

#if defined(LIGM_EXTERN_TEMPLATES)
#if !defined(LIGM_SEPARATE_BACKEND)
#error "LIGM_EXTERN_TEMPLATES needs LIGM_SEPARATE_BACKEND too (and both libraries, ligm and ligm_backend)"
#endif
namespace ligm {
LIGM_INSTANTIATE_FLOATING(extern template, float)
LIGM_INSTANTIATE_FLOATING(extern template, double)
LIGM_INSTANTIATE_TENSOR(extern template, std::int64_t)
LIGM_INSTANTIATE_NUMERIC(extern template, std::int64_t)
LIGM_INSTANTIATE_TENSOR(extern template, bool)
}  // namespace ligm
#endif
