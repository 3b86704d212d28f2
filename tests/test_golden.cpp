// Forward values and gradients against PyTorch 1.13 goldens (tools/make_goldens.py).
//
// Every case in tests/goldens/ops.safetensors must have an entry here, and every entry a case:
// adding an op means adding it to both.
#include <functional>
#include <map>
#include <set>

#include <ligm/io/safetensors.hpp>

#include "helpers.hpp"

using namespace th;
using T = Tensor<double>;
using I = Tensor<std::int64_t>;

namespace {

struct Inputs {
  std::vector<T> f;  // float inputs (undefined where the input is an index tensor)
  std::vector<I> i;  // index inputs (undefined where the input is float)
  const T& operator[](std::size_t k) const { return f.at(k); }
};
using Fn = std::function<T(const Inputs&)>;

T sdpa_ref(const T& q, const T& k, const T& v, AttentionOptions<double> o = {}) {
  return scaled_dot_product_attention(q, k, v, o);
}

std::map<std::string, Fn> ops() {
  std::map<std::string, Fn> m;
  // unary
  m["neg"] = [](const Inputs& x) { return neg(x[0]); };
  m["abs"] = [](const Inputs& x) { return abs(x[0]); };
  m["exp"] = [](const Inputs& x) { return exp(x[0]); };
  m["log"] = [](const Inputs& x) { return log(x[0]); };
  m["log1p"] = [](const Inputs& x) { return log1p(x[0]); };
  m["sqrt"] = [](const Inputs& x) { return sqrt(x[0]); };
  m["rsqrt"] = [](const Inputs& x) { return rsqrt(x[0]); };
  m["reciprocal"] = [](const Inputs& x) { return reciprocal(x[0]); };
  m["square"] = [](const Inputs& x) { return square(x[0]); };
  m["pow_scalar"] = [](const Inputs& x) { return pow(x[0], 2.5); };
  m["clamp"] = [](const Inputs& x) { return clamp(x[0], -0.5, 0.7); };
  m["sin"] = [](const Inputs& x) { return sin(x[0]); };
  m["cos"] = [](const Inputs& x) { return cos(x[0]); };
  m["tanh"] = [](const Inputs& x) { return tanh(x[0]); };
  m["sigmoid"] = [](const Inputs& x) { return sigmoid(x[0]); };
  m["relu"] = [](const Inputs& x) { return relu(x[0]); };
  m["leaky_relu"] = [](const Inputs& x) { return leaky_relu(x[0], 0.2); };
  m["elu"] = [](const Inputs& x) { return elu(x[0], 1.3); };
  m["gelu"] = [](const Inputs& x) { return gelu(x[0]); };
  m["gelu_tanh"] = [](const Inputs& x) { return gelu(x[0], "tanh"); };
  m["silu"] = [](const Inputs& x) { return silu(x[0]); };
  m["softplus"] = [](const Inputs& x) { return softplus(x[0], 2.0, 3.0); };
  m["erf"] = [](const Inputs& x) { return erf(x[0]); };
  // binary
  m["add_bcast"] = [](const Inputs& x) { return add(x[0], x[1]); };
  m["sub_bcast"] = [](const Inputs& x) { return sub(x[0], x[1]); };
  m["mul_bcast"] = [](const Inputs& x) { return mul(x[0], x[1]); };
  m["div_bcast"] = [](const Inputs& x) { return div(x[0], x[1]); };
  m["pow_tensor"] = [](const Inputs& x) { return pow(x[0], x[1]); };
  m["maximum"] = [](const Inputs& x) { return maximum(x[0], x[1]); };
  m["minimum"] = [](const Inputs& x) { return minimum(x[0], x[1]); };
  m["where"] = [](const Inputs& x) { return where(gt(x[0], 0.0), x[1], x[2]); };
  // reductions
  m["sum_all"] = [](const Inputs& x) { return sum(x[0]); };
  m["sum_dims_keep"] = [](const Inputs& x) { return sum(x[0], {0, 2}, true); };
  m["mean_dim"] = [](const Inputs& x) { return mean(x[0], {1}); };
  m["amax_dims"] = [](const Inputs& x) { return amax(x[0], {1, 2}); };
  m["amin_all"] = [](const Inputs& x) { return amin(x[0]); };
  m["max_dim"] = [](const Inputs& x) { return max(x[0], 1).first; };
  m["min_dim_keep"] = [](const Inputs& x) { return min(x[0], 0, true).first; };
  m["var_unbiased"] = [](const Inputs& x) { return var(x[0], {1}); };
  m["var_biased_keep"] = [](const Inputs& x) { return var(x[0], {0, 2}, false, true); };
  m["std"] = [](const Inputs& x) { return stddev(x[0], {0}); };
  m["logsumexp"] = [](const Inputs& x) { return logsumexp(x[0], {1}); };
  m["norm2"] = [](const Inputs& x) { return norm(x[0], 2, {1}); };
  m["norm1"] = [](const Inputs& x) { return norm(x[0], 1, {0}); };
  m["norm3"] = [](const Inputs& x) { return norm(x[0], 3); };
  // movement
  m["reshape"] = [](const Inputs& x) { return mul(x[0].reshape({4, 6}), arange<double>(0, 24).reshape({4, 6})); };
  m["permute"] = [](const Inputs& x) { return x[0].permute({2, 0, 1}); };
  m["transpose_contig"] = [](const Inputs& x) { return x[0].transpose(0, 1).contiguous().reshape({-1}); };
  m["expand"] = [](const Inputs& x) { return x[0].expand({2, 3, 4}); };
  m["squeeze_unsqueeze"] = [](const Inputs& x) { return x[0].squeeze(1).unsqueeze(0); };
  m["narrow"] = [](const Inputs& x) { return x[0].narrow(1, 1, 2); };
  m["slice_step"] = [](const Inputs& x) { return x[0].slice(1, 1, x[0].size(1), 2); };
  m["select"] = [](const Inputs& x) { return x[0].select(1, 2); };
  m["index_select"] = [](const Inputs& x) { return index_select(x[0], 1, x.i[1]); };
  m["gather"] = [](const Inputs& x) { return gather(x[0], 1, x.i[1]); };
  m["scatter_add"] = [](const Inputs& x) { return scatter_add(x[0], 1, x.i[1], x[2]); };
  m["index_add"] = [](const Inputs& x) { return index_add(x[0], 0, tensor<std::int64_t>({1, 1, 0}, {3}), x[1]); };
  m["masked_fill"] = [](const Inputs& x) { return masked_fill(x[0], gt(x[1], 0.0), 2.5); };
  m["cat"] = [](const Inputs& x) { return cat(std::vector<T>{x[0], x[1], x[2]}, 1); };
  m["stack"] = [](const Inputs& x) { return stack(std::vector<T>{x[0], x[1]}, 1); };
  m["split"] = [](const Inputs& x) {
    auto p = split(x[0], 2, 1);
    std::vector<T> scaled;
    for (std::size_t k = 0; k < p.size(); ++k) scaled.push_back(mul(p[k], double(k + 1)));
    return cat(scaled, 1);
  };
  m["chunk"] = [](const Inputs& x) {
    auto p = chunk(x[0], 3, 0);
    std::vector<T> scaled;
    for (std::size_t k = 0; k < p.size(); ++k) scaled.push_back(mul(p[k], double(k + 1)));
    return cat(scaled, 0);
  };
  m["flip"] = [](const Inputs& x) { return flip(x[0], {0, 2}); };
  m["pad"] = [](const Inputs& x) { return pad(x[0], {1, 2, 0, 1}, 0.5); };
  m["roll"] = [](const Inputs& x) { return roll(x[0], {1, -2}, {0, 1}); };
  // matmul
  for (const char* n : {"matmul_2d", "matmul_1d_1d", "matmul_1d_2d", "matmul_2d_1d", "matmul_bcast", "matmul_nd_2d"})
    m[n] = [](const Inputs& x) { return matmul(x[0], x[1]); };
  m["matmul_transposed"] = [](const Inputs& x) { return matmul(x[0].t(), x[1].t()); };
  m["bmm"] = [](const Inputs& x) { return bmm(x[0], x[1]); };
  m["linear"] = [](const Inputs& x) { return linear(x[0], x[1], x[2]); };
  // softmax
  m["softmax"] = [](const Inputs& x) { return softmax(x[0], 1); };
  m["log_softmax"] = [](const Inputs& x) { return log_softmax(x[0], -1); };
  // losses
  m["cross_entropy"] = [](const Inputs& x) { return cross_entropy(x[0], x.i[1]); };
  m["cross_entropy_smooth"] = [](const Inputs& x) { return cross_entropy(x[0], x.i[1], {.label_smoothing = 0.1}); };
  m["cross_entropy_ignore_weight"] = [](const Inputs& x) { return cross_entropy(x[0], x.i[1], {.weight = x[2]}); };
  m["cross_entropy_all_options"] = [](const Inputs& x) {
    return cross_entropy(x[0], x.i[1], {.weight = x[2], .ignore_index = 3, .label_smoothing = 0.2});
  };
  m["cross_entropy_sum"] = [](const Inputs& x) { return cross_entropy(x[0], x.i[1], {.reduction = "sum"}); };
  m["cross_entropy_none_4d"] = [](const Inputs& x) { return cross_entropy(x[0], x.i[1], {.reduction = "none"}); };
  m["cross_entropy_soft"] = [](const Inputs& x) { return cross_entropy(x[0], x[1]); };
  m["cross_entropy_soft_smooth"] = [](const Inputs& x) { return cross_entropy(x[0], x[1], {.label_smoothing = 0.3}); };
  m["nll_loss"] = [](const Inputs& x) { return nll_loss(x[0], x.i[1]); };
  m["mse_loss"] = [](const Inputs& x) { return mse_loss(x[0], x[1]); };
  m["l1_loss"] = [](const Inputs& x) { return l1_loss(x[0], x[1], "sum"); };
  m["smooth_l1_loss"] = [](const Inputs& x) { return smooth_l1_loss(x[0], x[1], "mean", 0.5); };
  m["huber_loss"] = [](const Inputs& x) { return huber_loss(x[0], x[1], "mean", 0.7); };
  m["bce_with_logits"] = [](const Inputs& x) { return binary_cross_entropy_with_logits(x[0], x[1], {.pos_weight = x[2]}); };
  m["bce_with_logits_weight"] = [](const Inputs& x) {
    return binary_cross_entropy_with_logits(x[0], x[1], {.weight = x[2], .reduction = "sum"});
  };
  m["kl_div_batchmean"] = [](const Inputs& x) { return kl_div(x[0], x[1], "batchmean"); };
  m["kl_div_log_target"] = [](const Inputs& x) { return kl_div(x[0], x[1], "sum", true); };
  m["cosine_similarity"] = [](const Inputs& x) { return cosine_similarity(x[0], x[1], 1); };
  // convolution, pooling, interpolation
  m["conv2d"] = [](const Inputs& x) { return conv2d(x[0], x[1], x[2]); };
  m["conv2d_stride_pad_dil"] = [](const Inputs& x) {
    return conv2d(x[0], x[1], {}, {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}});
  };
  m["conv2d_groups"] = [](const Inputs& x) { return conv2d(x[0], x[1], x[2], {.padding = 1, .groups = 2}); };
  m["conv1d"] = [](const Inputs& x) { return conv1d(x[0], x[1], x[2], {.stride = 2, .padding = 1}); };
  m["conv_transpose2d"] = [](const Inputs& x) {
    return conv_transpose2d(x[0], x[1], x[2], {.stride = 2, .padding = 1, .output_padding = 1});
  };
  m["conv_transpose2d_groups_dil"] = [](const Inputs& x) {
    return conv_transpose2d(x[0], x[1], {}, {.dilation = 2, .groups = 2});
  };
  m["max_pool2d"] = [](const Inputs& x) { return max_pool2d(x[0], {.kernel_size = 2}); };
  m["max_pool2d_pad_ceil"] = [](const Inputs& x) {
    return max_pool2d(x[0], {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true});
  };
  m["avg_pool2d"] = [](const Inputs& x) { return avg_pool2d(x[0], {.kernel_size = 3, .stride = 2, .padding = 1}); };
  m["avg_pool2d_exclude_pad_ceil"] = [](const Inputs& x) {
    return avg_pool2d(x[0], {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false});
  };
  m["adaptive_avg_pool2d"] = [](const Inputs& x) { return adaptive_avg_pool2d(x[0], {3, 2}); };
  m["interpolate_nearest"] = [](const Inputs& x) { return interpolate(x[0], {.size = Pair2{5, 7}}); };
  m["interpolate_bilinear"] = [](const Inputs& x) { return interpolate(x[0], {.size = Pair2{5, 7}, .mode = "bilinear"}); };
  m["interpolate_nearest_scale"] = [](const Inputs& x) { return interpolate(x[0], {.scale_factor = 1.5}); };
  m["interpolate_bilinear_scale"] = [](const Inputs& x) {
    return interpolate(x[0], {.scale_factor = 1.5, .mode = "bilinear"});
  };
  m["interpolate_bilinear_ac"] = [](const Inputs& x) {
    return interpolate(x[0], {.size = Pair2{6, 3}, .mode = "bilinear", .align_corners = true});
  };
  // embedding, norms, attention, sort
  m["embedding"] = [](const Inputs& x) { return embedding(x.i[0], x[1]); };
  m["embedding_padding"] = [](const Inputs& x) { return embedding(x.i[0], x[1], 1); };
  m["batch_norm_train"] = [](const Inputs& x) {
    return batch_norm(x[0], zeros<double>({3}), ones<double>({3}), x[1], x[2], true);
  };
  m["batch_norm_running_stats"] = [](const Inputs& x) {
    auto rm = x[1].clone(), rv = x[2].clone();
    batch_norm(x[0], rm, rv, T(), T(), true, 0.3);
    return cat(std::vector<T>{rm, rv}, 0);
  };
  m["batch_norm_eval"] = [](const Inputs& x) { return batch_norm(x[0], x[3], x[4], x[1], x[2], false); };
  m["layer_norm"] = [](const Inputs& x) { return layer_norm(x[0], {4}, x[1], x[2]); };
  m["layer_norm_2d"] = [](const Inputs& x) { return layer_norm(x[0], {3, 4}); };
  m["group_norm"] = [](const Inputs& x) { return group_norm(x[0], 2, x[1], x[2]); };
  m["rms_norm"] = [](const Inputs& x) { return rms_norm(x[0], {4}, x[1], 1e-6); };
  m["sdpa"] = [](const Inputs& x) { return sdpa_ref(x[0], x[1], x[2]); };
  m["sdpa_causal"] = [](const Inputs& x) { return sdpa_ref(x[0], x[1], x[2], {.is_causal = true}); };
  m["sdpa_mask"] = [](const Inputs& x) { return sdpa_ref(x[0], x[1], x[2], {.attn_mask = x[3]}); };
  m["sort"] = [](const Inputs& x) { return sort(x[0], 1, true).first; };
  m["topk"] = [](const Inputs& x) { return topk(x[0], 3, 0).first; };
  return m;
}

}  // namespace

TEST_CASE("every op matches PyTorch in float64, forward and backward") {
  const auto file = io::load_safetensors(LIGM_GOLDEN_DIR "/ops.safetensors");
  const auto& st = file.tensors;
  std::set<std::string> cases;
  for (const auto& [key, _] : st)
    if (key.size() > 4 && key.compare(key.size() - 4, 4, ".out") == 0) cases.insert(key.substr(0, key.size() - 4));
  auto table = ops();
  CHECK(cases.size() == table.size());
  for (const auto& [name, _] : table) {
    CAPTURE(name);
    CHECK_MESSAGE(cases.count(name), "no golden for ", name, ": rerun tools/make_goldens.py");
  }
  for (const auto& name : cases) {
    CAPTURE(name);
    auto it = table.find(name);
    REQUIRE_MESSAGE(it != table.end(), "golden case ", name, " has no C++ counterpart in test_golden.cpp");
    Inputs in;
    for (int k = 0; st.count(name + ".in" + std::to_string(k)); ++k) {
      const auto& raw = st.at(name + ".in" + std::to_string(k));
      if (raw.dtype == "I64") {
        in.f.emplace_back();
        in.i.push_back(io::from_raw<std::int64_t>(raw));
      } else {
        auto t = io::from_raw<double>(raw);
        if (st.count(name + ".grad" + std::to_string(k))) t.requires_grad_(true);
        in.f.push_back(t);
        in.i.emplace_back();
      }
    }
    const T expected = io::from_raw<double>(st.at(name + ".out"));
    auto out = it->second(in);
    check_close(out, expected, 1e-9, 1e-7, "forward");
    if (!st.count(name + ".cot")) continue;
    out.backward(io::from_raw<double>(st.at(name + ".cot")));
    for (std::size_t k = 0; k < in.f.size(); ++k) {
      const std::string gkey = name + ".grad" + std::to_string(k);
      if (!st.count(gkey)) continue;
      CAPTURE(k);
      REQUIRE(in.f[k].grad().defined());
      check_close(in.f[k].grad(), io::from_raw<double>(st.at(gkey)), 1e-9, 1e-7, "gradient");
    }
  }
}
