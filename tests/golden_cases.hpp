// The PyTorch golden cases (tools/make_goldens.py -> tests/goldens/ops.safetensors): one entry
// per case, the ligm expression PyTorch evaluated. Templated on the scalar type and the device
// so the same table checks the CPU (test_golden.cpp) and CUDA (test_cuda.cpp, float64 against
// the goldens and float32 against the CPU).
//
// Every case in the file must have an entry here, and every entry a case: adding an op means
// adding it to both.
#pragma once
#include <functional>
#include <map>
#include <set>
#include <string>

#include <ligm/io/safetensors.hpp>

#include "helpers.hpp"

namespace th {

template <class S>
struct GoldenInputs {
  std::vector<Tensor<S>> f;             // float inputs (undefined where the input is an index tensor)
  std::vector<Tensor<std::int64_t>> i;  // index inputs (undefined where the input is float)
  const Tensor<S>& operator[](std::size_t k) const { return f.at(k); }
};
template <class S>
using GoldenFn = std::function<Tensor<S>(const GoldenInputs<S>&)>;

template <class S>
std::map<std::string, GoldenFn<S>> golden_ops(Device d) {
  using T = Tensor<S>;
  using Inputs = GoldenInputs<S>;
  std::map<std::string, GoldenFn<S>> m;
  // unary
  m["neg"] = [d](const Inputs& x) { return neg(x[0]); };
  m["abs"] = [d](const Inputs& x) { return abs(x[0]); };
  m["exp"] = [d](const Inputs& x) { return exp(x[0]); };
  m["log"] = [d](const Inputs& x) { return log(x[0]); };
  m["log1p"] = [d](const Inputs& x) { return log1p(x[0]); };
  m["sqrt"] = [d](const Inputs& x) { return sqrt(x[0]); };
  m["rsqrt"] = [d](const Inputs& x) { return rsqrt(x[0]); };
  m["reciprocal"] = [d](const Inputs& x) { return reciprocal(x[0]); };
  m["square"] = [d](const Inputs& x) { return square(x[0]); };
  m["pow_scalar"] = [d](const Inputs& x) { return pow(x[0], 2.5); };
  m["clamp"] = [d](const Inputs& x) { return clamp(x[0], -0.5, 0.7); };
  m["sin"] = [d](const Inputs& x) { return sin(x[0]); };
  m["cos"] = [d](const Inputs& x) { return cos(x[0]); };
  m["tanh"] = [d](const Inputs& x) { return tanh(x[0]); };
  m["sigmoid"] = [d](const Inputs& x) { return sigmoid(x[0]); };
  m["relu"] = [d](const Inputs& x) { return relu(x[0]); };
  m["leaky_relu"] = [d](const Inputs& x) { return leaky_relu(x[0], 0.2); };
  m["elu"] = [d](const Inputs& x) { return elu(x[0], 1.3); };
  m["gelu"] = [d](const Inputs& x) { return gelu(x[0]); };
  m["gelu_tanh"] = [d](const Inputs& x) { return gelu(x[0], "tanh"); };
  m["silu"] = [d](const Inputs& x) { return silu(x[0]); };
  m["softplus"] = [d](const Inputs& x) { return softplus(x[0], 2.0, 3.0); };
  m["erf"] = [d](const Inputs& x) { return erf(x[0]); };
  // binary
  m["add_bcast"] = [d](const Inputs& x) { return add(x[0], x[1]); };
  m["sub_bcast"] = [d](const Inputs& x) { return sub(x[0], x[1]); };
  m["mul_bcast"] = [d](const Inputs& x) { return mul(x[0], x[1]); };
  m["div_bcast"] = [d](const Inputs& x) { return div(x[0], x[1]); };
  m["pow_tensor"] = [d](const Inputs& x) { return pow(x[0], x[1]); };
  m["maximum"] = [d](const Inputs& x) { return maximum(x[0], x[1]); };
  m["minimum"] = [d](const Inputs& x) { return minimum(x[0], x[1]); };
  m["where"] = [d](const Inputs& x) { return where(gt(x[0], S(0)), x[1], x[2]); };
  // reductions
  m["sum_all"] = [d](const Inputs& x) { return sum(x[0]); };
  m["sum_dims_keep"] = [d](const Inputs& x) { return sum(x[0], {0, 2}, true); };
  m["mean_dim"] = [d](const Inputs& x) { return mean(x[0], {1}); };
  m["amax_dims"] = [d](const Inputs& x) { return amax(x[0], {1, 2}); };
  m["amin_all"] = [d](const Inputs& x) { return amin(x[0]); };
  m["max_dim"] = [d](const Inputs& x) { return max(x[0], 1).first; };
  m["min_dim_keep"] = [d](const Inputs& x) { return min(x[0], 0, true).first; };
  m["var_unbiased"] = [d](const Inputs& x) { return var(x[0], {1}); };
  m["var_biased_keep"] = [d](const Inputs& x) { return var(x[0], {0, 2}, false, true); };
  m["std"] = [d](const Inputs& x) { return stddev(x[0], {0}); };
  m["logsumexp"] = [d](const Inputs& x) { return logsumexp(x[0], {1}); };
  m["norm2"] = [d](const Inputs& x) { return norm(x[0], 2, {1}); };
  m["norm1"] = [d](const Inputs& x) { return norm(x[0], 1, {0}); };
  m["norm3"] = [d](const Inputs& x) { return norm(x[0], 3); };
  // movement
  m["reshape"] = [d](const Inputs& x) { return mul(x[0].reshape({4, 6}), arange<S>(0, 24, 1, d).reshape({4, 6})); };
  m["permute"] = [d](const Inputs& x) { return x[0].permute({2, 0, 1}); };
  m["transpose_contig"] = [d](const Inputs& x) { return x[0].transpose(0, 1).contiguous().reshape({-1}); };
  m["expand"] = [d](const Inputs& x) { return x[0].expand({2, 3, 4}); };
  m["squeeze_unsqueeze"] = [d](const Inputs& x) { return x[0].squeeze(1).unsqueeze(0); };
  m["narrow"] = [d](const Inputs& x) { return x[0].narrow(1, 1, 2); };
  m["slice_step"] = [d](const Inputs& x) { return x[0].slice(1, 1, x[0].size(1), 2); };
  m["select"] = [d](const Inputs& x) { return x[0].select(1, 2); };
  m["index_select"] = [d](const Inputs& x) { return index_select(x[0], 1, x.i[1]); };
  m["gather"] = [d](const Inputs& x) { return gather(x[0], 1, x.i[1]); };
  m["scatter_add"] = [d](const Inputs& x) { return scatter_add(x[0], 1, x.i[1], x[2]); };
  m["index_add"] = [d](const Inputs& x) { return index_add(x[0], 0, tensor<std::int64_t>({1, 1, 0}, {3}, d), x[1]); };
  m["masked_fill"] = [d](const Inputs& x) { return masked_fill(x[0], gt(x[1], S(0)), 2.5); };
  m["cat"] = [d](const Inputs& x) { return cat(std::vector<T>{x[0], x[1], x[2]}, 1); };
  m["stack"] = [d](const Inputs& x) { return stack(std::vector<T>{x[0], x[1]}, 1); };
  m["split"] = [d](const Inputs& x) {
    auto p = split(x[0], 2, 1);
    std::vector<T> scaled;
    for (std::size_t k = 0; k < p.size(); ++k) scaled.push_back(mul(p[k], S(k + 1)));
    return cat(scaled, 1);
  };
  m["chunk"] = [d](const Inputs& x) {
    auto p = chunk(x[0], 3, 0);
    std::vector<T> scaled;
    for (std::size_t k = 0; k < p.size(); ++k) scaled.push_back(mul(p[k], S(k + 1)));
    return cat(scaled, 0);
  };
  m["flip"] = [d](const Inputs& x) { return flip(x[0], {0, 2}); };
  m["pad"] = [d](const Inputs& x) { return pad(x[0], {1, 2, 0, 1}, 0.5); };
  m["roll"] = [d](const Inputs& x) { return roll(x[0], {1, -2}, {0, 1}); };
  // matmul
  for (const char* n : {"matmul_2d", "matmul_1d_1d", "matmul_1d_2d", "matmul_2d_1d", "matmul_bcast", "matmul_nd_2d"})
    m[n] = [d](const Inputs& x) { return matmul(x[0], x[1]); };
  m["matmul_transposed"] = [d](const Inputs& x) { return matmul(x[0].t(), x[1].t()); };
  m["bmm"] = [d](const Inputs& x) { return bmm(x[0], x[1]); };
  m["linear"] = [d](const Inputs& x) { return linear(x[0], x[1], x[2]); };
  // softmax
  m["softmax"] = [d](const Inputs& x) { return softmax(x[0], 1); };
  m["log_softmax"] = [d](const Inputs& x) { return log_softmax(x[0], -1); };
  // losses
  m["cross_entropy"] = [d](const Inputs& x) { return cross_entropy(x[0], x.i[1]); };
  m["cross_entropy_smooth"] = [d](const Inputs& x) { return cross_entropy(x[0], x.i[1], {.label_smoothing = 0.1}); };
  m["cross_entropy_ignore_weight"] = [d](const Inputs& x) { return cross_entropy(x[0], x.i[1], {.weight = x[2]}); };
  m["cross_entropy_all_options"] = [d](const Inputs& x) {
    return cross_entropy(x[0], x.i[1], {.weight = x[2], .ignore_index = 3, .label_smoothing = 0.2});
  };
  m["cross_entropy_sum"] = [d](const Inputs& x) { return cross_entropy(x[0], x.i[1], {.reduction = "sum"}); };
  m["cross_entropy_none_4d"] = [d](const Inputs& x) { return cross_entropy(x[0], x.i[1], {.reduction = "none"}); };
  m["cross_entropy_soft"] = [d](const Inputs& x) { return cross_entropy(x[0], x[1]); };
  m["cross_entropy_soft_smooth"] = [d](const Inputs& x) { return cross_entropy(x[0], x[1], {.label_smoothing = 0.3}); };
  m["nll_loss"] = [d](const Inputs& x) { return nll_loss(x[0], x.i[1]); };
  m["mse_loss"] = [d](const Inputs& x) { return mse_loss(x[0], x[1]); };
  m["l1_loss"] = [d](const Inputs& x) { return l1_loss(x[0], x[1], "sum"); };
  m["smooth_l1_loss"] = [d](const Inputs& x) { return smooth_l1_loss(x[0], x[1], "mean", 0.5); };
  m["huber_loss"] = [d](const Inputs& x) { return huber_loss(x[0], x[1], "mean", 0.7); };
  m["bce_with_logits"] = [d](const Inputs& x) { return binary_cross_entropy_with_logits(x[0], x[1], {.pos_weight = x[2]}); };
  m["bce_with_logits_weight"] = [d](const Inputs& x) {
    return binary_cross_entropy_with_logits(x[0], x[1], {.weight = x[2], .reduction = "sum"});
  };
  m["kl_div_batchmean"] = [d](const Inputs& x) { return kl_div(x[0], x[1], "batchmean"); };
  m["kl_div_log_target"] = [d](const Inputs& x) { return kl_div(x[0], x[1], "sum", true); };
  m["cosine_similarity"] = [d](const Inputs& x) { return cosine_similarity(x[0], x[1], 1); };
  // convolution, pooling, interpolation
  m["conv2d"] = [d](const Inputs& x) { return conv2d(x[0], x[1], x[2]); };
  m["conv2d_stride_pad_dil"] = [d](const Inputs& x) {
    return conv2d(x[0], x[1], {}, {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}});
  };
  m["conv2d_groups"] = [d](const Inputs& x) { return conv2d(x[0], x[1], x[2], {.padding = 1, .groups = 2}); };
  m["conv1d"] = [d](const Inputs& x) { return conv1d(x[0], x[1], x[2], {.stride = 2, .padding = 1}); };
  m["conv_transpose2d"] = [d](const Inputs& x) {
    return conv_transpose2d(x[0], x[1], x[2], {.stride = 2, .padding = 1, .output_padding = 1});
  };
  m["conv_transpose2d_groups_dil"] = [d](const Inputs& x) {
    return conv_transpose2d(x[0], x[1], {}, {.dilation = 2, .groups = 2});
  };
  m["max_pool2d"] = [d](const Inputs& x) { return max_pool2d(x[0], {.kernel_size = 2}); };
  m["max_pool2d_pad_ceil"] = [d](const Inputs& x) {
    return max_pool2d(x[0], {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true});
  };
  m["avg_pool2d"] = [d](const Inputs& x) { return avg_pool2d(x[0], {.kernel_size = 3, .stride = 2, .padding = 1}); };
  m["avg_pool2d_exclude_pad_ceil"] = [d](const Inputs& x) {
    return avg_pool2d(x[0], {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false});
  };
  m["adaptive_avg_pool2d"] = [d](const Inputs& x) { return adaptive_avg_pool2d(x[0], {3, 2}); };
  m["interpolate_nearest"] = [d](const Inputs& x) { return interpolate(x[0], {.size = Pair2{5, 7}}); };
  m["interpolate_bilinear"] = [d](const Inputs& x) { return interpolate(x[0], {.size = Pair2{5, 7}, .mode = "bilinear"}); };
  m["interpolate_nearest_scale"] = [d](const Inputs& x) { return interpolate(x[0], {.scale_factor = 1.5}); };
  m["interpolate_bilinear_scale"] = [d](const Inputs& x) {
    return interpolate(x[0], {.scale_factor = 1.5, .mode = "bilinear"});
  };
  m["interpolate_bilinear_ac"] = [d](const Inputs& x) {
    return interpolate(x[0], {.size = Pair2{6, 3}, .mode = "bilinear", .align_corners = true});
  };
  // embedding, norms, attention, sort
  m["embedding"] = [d](const Inputs& x) { return embedding(x.i[0], x[1]); };
  m["embedding_padding"] = [d](const Inputs& x) { return embedding(x.i[0], x[1], 1); };
  m["batch_norm_train"] = [d](const Inputs& x) {
    return batch_norm(x[0], zeros<S>({3}, d), ones<S>({3}, d), x[1], x[2], true);
  };
  m["batch_norm_running_stats"] = [d](const Inputs& x) {
    auto rm = x[1].clone(), rv = x[2].clone();
    batch_norm(x[0], rm, rv, T(), T(), true, 0.3);
    return cat(std::vector<T>{rm, rv}, 0);
  };
  m["batch_norm_eval"] = [d](const Inputs& x) { return batch_norm(x[0], x[3], x[4], x[1], x[2], false); };
  m["layer_norm"] = [d](const Inputs& x) { return layer_norm(x[0], {4}, x[1], x[2]); };
  m["layer_norm_2d"] = [d](const Inputs& x) { return layer_norm(x[0], {3, 4}); };
  m["group_norm"] = [d](const Inputs& x) { return group_norm(x[0], 2, x[1], x[2]); };
  m["rms_norm"] = [d](const Inputs& x) { return rms_norm(x[0], {4}, x[1], 1e-6); };
  m["sdpa"] = [d](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); };
  m["sdpa_causal"] = [d](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], AttentionOptions<S>{.is_causal = true}); };
  m["sdpa_mask"] = [d](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], AttentionOptions<S>{.attn_mask = x[3]}); };
  m["sort"] = [d](const Inputs& x) { return sort(x[0], 1, true).first; };
  m["topk"] = [d](const Inputs& x) { return topk(x[0], 3, 0).first; };
  m["packed_attention"] = [d](const Inputs& x) { return packed_attention(x[0], 2); };
  m["packed_attention_causal"] = [d](const Inputs& x) { return packed_attention(x[0], 3, true); };
  m["batch_norm_relu_train"] = [d](const Inputs& x) {
    return batch_norm_relu(x[0], zeros<S>({3}, d), ones<S>({3}, d), x[1], x[2], true);
  };
  m["batch_norm_relu_eval"] = [d](const Inputs& x) { return batch_norm_relu(x[0], x[3], x[4], x[1], x[2], false); };
  m["batch_norm_add_relu_train"] = [d](const Inputs& x) {
    return batch_norm_add_relu(x[0], x[1], zeros<S>({3}, d), ones<S>({3}, d), x[2], x[3], true);
  };
  m["batch_norm_add_relu_eval"] = [d](const Inputs& x) {
    return batch_norm_add_relu(x[0], x[1], x[4], x[5], x[2], x[3], false);
  };
  m["nan_to_num"] = [d](const Inputs& x) { return nan_to_num(x[0], 0.5, 3.0, -2.0); };
  m["binary_cross_entropy"] = [d](const Inputs& x) { return binary_cross_entropy(x[0], x[1], x[2]); };
  m["multi_margin_loss"] = [d](const Inputs& x) { return multi_margin_loss(x[0], x.i[1]); };
  m["multi_margin_loss_p2_weight"] = [d](const Inputs& x) {
    return multi_margin_loss(x[0], x.i[1], 2, 0.7, x[2], "sum");
  };
  m["hinge_embedding_loss"] = [d](const Inputs& x) { return hinge_embedding_loss(x[0], x[1], 0.8); };
  m["margin_ranking_loss"] = [d](const Inputs& x) { return margin_ranking_loss(x[0], x[1], x[2], 0.3); };
  m["triplet_margin_loss"] = [d](const Inputs& x) { return triplet_margin_loss(x[0], x[1], x[2], 0.5); };
  m["triplet_margin_loss_swap_p1"] = [d](const Inputs& x) {
    return triplet_margin_loss(x[0], x[1], x[2], 2.0, 1.0, 1e-6, true, "none");
  };
  m["cosine_embedding_loss"] = [d](const Inputs& x) { return cosine_embedding_loss(x[0], x[1], x[2], -0.2); };
  m["pairwise_distance"] = [d](const Inputs& x) { return pairwise_distance(x[0], x[1], 3.0); };
  return m;
}


// The cases in a golden file (tests/goldens/<which>.safetensors): name -> (inputs, output,
// cotangent, gradients) as raw tensors. "ops": random inputs; "ops_at_zero": the same cases with
// every float input zero (index inputs kept), where kinks and removable singularities decide
// the values (tools/make_goldens.py --at-zero).
inline const io::SafetensorsFile& golden_file(const std::string& which = "ops") {
  static std::map<std::string, io::SafetensorsFile> files;
  auto it = files.find(which);
  if (it == files.end())
    it = files.emplace(which, io::load_safetensors(std::string(LIGM_GOLDEN_DIR "/") + which + ".safetensors")).first;
  return it->second;
}

inline std::set<std::string> golden_case_names(const std::string& which = "ops") {
  std::set<std::string> cases;
  for (const auto& [key, _] : golden_file(which).tensors)
    if (key.size() > 4 && key.compare(key.size() - 4, 4, ".out") == 0) cases.insert(key.substr(0, key.size() - 4));
  return cases;
}

// One case evaluated in scalar type S on `device`: the output and the gradient of each float
// input that has a golden gradient (undefined elsewhere), all copied back to the CPU.
template <class S>
struct GoldenRun {
  Tensor<S> out;
  std::vector<Tensor<S>> grads;
};

template <class S>
GoldenRun<S> run_golden_case(const std::string& name, const GoldenFn<S>& fn, Device device,
                             const std::string& which = "ops") {
  const auto& st = golden_file(which).tensors;
  GoldenInputs<S> in;
  for (int k = 0; st.count(name + ".in" + std::to_string(k)); ++k) {
    const auto& raw = st.at(name + ".in" + std::to_string(k));
    if (raw.dtype == "I64") {
      in.f.emplace_back();
      in.i.push_back(io::from_raw<std::int64_t>(raw).to(device));
    } else {
      auto t = io::from_raw<double>(raw).template to<S>().to(device);
      if (st.count(name + ".grad" + std::to_string(k))) t.requires_grad_(true);
      in.f.push_back(t);
      in.i.emplace_back();
    }
  }
  GoldenRun<S> run;
  auto out = fn(in);
  run.out = out.detach().to(Device::cpu());
  run.grads.resize(in.f.size());
  if (!st.count(name + ".cot")) return run;
  out.backward(io::from_raw<double>(st.at(name + ".cot")).template to<S>().to(device));
  for (std::size_t k = 0; k < in.f.size(); ++k)
    if (st.count(name + ".grad" + std::to_string(k)) && in.f[k].grad().defined())
      run.grads[k] = in.f[k].grad().to(Device::cpu());
  return run;
}

// Checks a run against the PyTorch goldens (converted to S).
template <class S>
void check_against_golden(const std::string& name, const GoldenRun<S>& run, double atol, double rtol,
                          const std::string& which = "ops") {
  const auto& st = golden_file(which).tensors;
  check_close(run.out, io::from_raw<double>(st.at(name + ".out")).template to<S>(), atol, rtol, "forward");
  for (std::size_t k = 0; k < run.grads.size(); ++k) {
    const std::string gkey = name + ".grad" + std::to_string(k);
    if (!st.count(gkey)) continue;
    CAPTURE(k);
    REQUIRE_MESSAGE(run.grads[k].defined(), "no gradient reached input ", k);
    check_close(run.grads[k], io::from_raw<double>(st.at(gkey)).template to<S>(), atol, rtol, "gradient");
  }
}

}  // namespace th
