// matmul, bmm, linear: values against a naive product, broadcasting, gradchecks.
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include <ligm/backend/cpu/parallel.hpp>

#include "helpers.hpp"

using namespace th;
using T = Tensor<double>;
using In = std::vector<T>;

namespace {
std::vector<double> naive(const std::vector<double>& a, const std::vector<double>& b, int m, int k, int n) {
  std::vector<double> c(m * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j)
      for (int p = 0; p < k; ++p) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}
}  // namespace

TEST_CASE("matmul agrees with a naive product, threaded and with transposed operands") {
  Generator gen(3);
  auto a = randn<double>({67, 45}, gen), b = randn<double>({45, 31}, gen);
  check_close(matmul(a, b), naive(a.to_vector(), b.to_vector(), 67, 45, 31), 1e-10, 1e-10);
  auto at = a.t().contiguous().t();  // same values, column-major storage
  check_close(matmul(at, b), naive(a.to_vector(), b.to_vector(), 67, 45, 31), 1e-10, 1e-10);
  auto big_a = randn<float>({128, 300}, gen), big_b = randn<float>({300, 64}, gen);
  auto ref = naive(big_a.to<double>().to_vector(), big_b.to<double>().to_vector(), 128, 300, 64);
  check_close(matmul(big_a, big_b), ref, 1e-3, 1e-4);
}

TEST_CASE("matmul shapes: 1-d operands and broadcast batch dims") {
  CHECK(matmul(ones<double>({4}), ones<double>({4})).dim() == 0);
  CHECK(matmul(ones<double>({4}), ones<double>({4})).item() == 4);
  CHECK(matmul(ones<double>({4}), ones<double>({4, 3})).shape() == Shape{3});
  CHECK(matmul(ones<double>({3, 4}), ones<double>({4})).shape() == Shape{3});
  CHECK(matmul(ones<double>({2, 1, 3, 4}), ones<double>({5, 4, 2})).shape() == Shape{2, 5, 3, 2});
  CHECK(matmul(ones<double>({2, 3, 4}), ones<double>({4, 5})).shape() == Shape{2, 3, 5});
  CHECK(bmm(ones<double>({2, 3, 4}), ones<double>({2, 4, 5})).shape() == Shape{2, 3, 5});
  CHECK(linear(ones<double>({7, 4}), ones<double>({3, 4}), zeros<double>({3})).shape() == Shape{7, 3});
  CHECK(matmul(zeros<double>({0, 4}), ones<double>({4, 3})).shape() == Shape{0, 3});
  CHECK(linear(ones<double>({5, 0}), ones<double>({3, 0}), full<double>({3}, 2.0)).to_vector() ==
        std::vector<double>(15, 2.0));
  CHECK(matmul(ones<double>({2, 0}), ones<double>({0, 3})).to_vector() == std::vector<double>(6, 0.0));
}

TEST_CASE("gradcheck: matmul family") {
  check_grad([](const In& in) { return matmul(in[0], in[1]); }, {leaf({3, 4}, 1), leaf({4, 5}, 2)});
  check_grad([](const In& in) { return matmul(in[0], in[1]); }, {leaf({4}, 3), leaf({4}, 4)});
  check_grad([](const In& in) { return matmul(in[0], in[1]); }, {leaf({4}, 5), leaf({4, 3}, 6)});
  check_grad([](const In& in) { return matmul(in[0], in[1]); }, {leaf({3, 4}, 7), leaf({4}, 8)});
  check_grad([](const In& in) { return matmul(in[0], in[1]); }, {leaf({2, 1, 3, 4}, 9), leaf({5, 4, 2}, 10)});
  check_grad([](const In& in) { return matmul(in[0].t(), in[1].t()); }, {leaf({4, 3}, 11), leaf({5, 4}, 12)});
  check_grad([](const In& in) { return bmm(in[0], in[1]); }, {leaf({2, 3, 4}, 13), leaf({2, 4, 5}, 14)});
  check_grad([](const In& in) { return linear(in[0], in[1], in[2]); }, {leaf({2, 3, 4}, 15), leaf({5, 4}, 16), leaf({5}, 17)});
}

TEST_CASE("matmul over batch dims that do not merge (heads split from a packed projection) copies nothing and agrees") {
  // [B, N, 3, H, Dh] permuted to [3, B, H, N, Dh]: q, k, v have batch strides [N*3*H*Dh, Dh].
  const std::int64_t B = 3, N = 5, H = 2, Dh = 4;
  auto packed = leaf({B, N, 3, H, Dh}, 21);
  auto heads = packed.permute({2, 0, 3, 1, 4});
  auto q = heads.select(0, 0), k = heads.select(0, 1);
  auto scores = matmul(q, k.transpose(-2, -1));
  auto expect = matmul(q.contiguous(), k.transpose(-2, -1).contiguous());
  CHECK(scores.shape() == Shape{B, H, N, N});
  // The same products; a transposed operand may be packed by another route and summed in
  // another order on some CPUs (an AMD EPYC VM differs in the last bit, the Intel one did not).
  check_close(scores, expect, 1e-13, 1e-13, "strided batch dims");
  // A broadcast leading dim against a non-merging operand, and the gradients.
  check_grad([](const In& in) {
    auto h = in[0].permute({2, 0, 3, 1, 4});
    return matmul(h.select(0, 0), h.select(0, 1).transpose(-2, -1)).sum() * 0.5 +
           matmul(in[1], h.select(0, 2)).pow(2).sum();
  }, {leaf({2, 3, 3, 2, 4}, 22), leaf({1, 2, 5, 3}, 23)});
}

TEST_CASE("matmul errors name the shapes, dtype and device") {
  check_error([] { matmul(ones<float>({2, 3}), ones<float>({4, 5})); },
              {"ligm::matmul", "[2, 3]", "[4, 5]", "float32", "cpu"});
  check_error([] { matmul(ones<std::int64_t>({2, 2}), ones<std::int64_t>({2, 2})); }, {"matmul", "int64"});
  check_error([] { linear(ones<float>({2, 3}), ones<float>({4, 5})); }, {"linear", "[2, 3]", "[4, 5]"});
  check_error([] { bmm(ones<float>({2, 3, 4}), ones<float>({3, 4, 5})); }, {"bmm", "[2, 3, 4]"});
}

TEST_CASE("CPU results do not depend on whether the thread pool is free (a prefetch thread may hold it)") {
  Generator g(5);
  auto a = randn<float>({300, 500}, g), b = randn<float>({500, 200}, g);
  const auto free_pool = matmul(a, b).to_vector();
  std::mutex m;
  std::condition_variable cv;
  bool held = false, release = false;
  std::thread holder([&] {
    std::lock_guard<std::mutex> pool(cpu::detail::pool_mutex());
    std::unique_lock<std::mutex> lk(m);
    held = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
  });
  {
    std::unique_lock<std::mutex> lk(m);
    cv.wait(lk, [&] { return held; });
  }
  const auto busy_pool = matmul(a, b).to_vector();  // runs the same chunks on this thread
  {
    std::lock_guard<std::mutex> lk(m);
    release = true;
  }
  cv.notify_all();
  holder.join();
  CHECK(busy_pool == free_pool);
}

// The float32 GEMM (sgemm.hpp where the backend targets AVX2 or AVX-512) across its edges:
// row counts around the micro-kernel's MR (6 or 14), column counts around NR (16 or 32) and the
// four-panel threshold between packed and in-place operands, an inner dimension across the
// KC = 256 blocking, more than NC = 768 columns, leading dimensions wider than the matrix,
// alpha and beta (beta = 0 must not read C: it starts as NaN), all four transpositions, batches.
TEST_CASE("float32 gemm agrees with a float64 loop across its blocking edges") {
  auto& be = backend_for<float>(Device::cpu());
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  struct Case { std::int64_t m, n, k; };
  const Case cases[] = {{1, 1, 1},    {3, 5, 7},     {6, 16, 9},    {7, 17, 33},    {13, 31, 64},
                        {14, 32, 256}, {15, 33, 257}, {28, 64, 5},   {57, 129, 100}, {60, 50, 64},
                        {99, 200, 300}, {200, 40, 513}, {5, 1030, 3}, {130, 7, 20},
                        {64, 800, 40},  {70, 300, 20}};  // B packed by row in groups of 8 panels, and past them
  int checked = 0;
  for (const auto& cs : cases)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      const std::int64_t m = cs.m, n = cs.n, k = cs.k, batch = 2;
      const std::int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
      const std::int64_t sa = (ta ? k : m) * lda, sb = (tb ? n : k) * ldb, sc = m * ldc;
      std::vector<float> a(sa * batch), b(sb * batch);
      for (auto& x : a) x = u(rng);
      for (auto& x : b) x = u(rng);
      for (const float beta : {0.0f, 1.5f}) {
        std::vector<float> c(sc * batch, beta == 0.0f ? std::nanf("") : 0.25f);
        const std::vector<float> c0 = c;
        be.gemm(ta, tb, m, n, k, 0.5f, a.data(), lda, sa, b.data(), ldb, sb, beta, c.data(), ldc, sc,
                batch);
        double worst = 0.0;
        for (std::int64_t bi = 0; bi < batch; ++bi)
          for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < n; ++j) {
              double s = 0.0;
              for (std::int64_t p = 0; p < k; ++p)
                s += double(a[bi * sa + (ta ? p * lda + i : i * lda + p)]) *
                     double(b[bi * sb + (tb ? j * ldb + p : p * ldb + j)]);
              const std::int64_t at = bi * sc + i * ldc + j;
              const double expect = 0.5 * s + (beta == 0.0f ? 0.0 : double(beta) * c0[at]);
              worst = std::max(worst, std::abs(double(c[at]) - expect));
            }
        // The padding columns of C are never written.
        bool padding_kept = true;
        for (std::int64_t i = 0; i < m * batch; ++i)
          for (std::int64_t j = n; j < ldc && i * ldc + j < sc * batch; ++j)
            padding_kept &= std::isnan(c0[i * ldc + j]) ? std::isnan(c[i * ldc + j])
                                                        : c[i * ldc + j] == c0[i * ldc + j];
        INFO("m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb << " beta=" << beta);
        CHECK(worst <= 1e-5 * double(k) + 1e-6);
        CHECK(padding_kept);
        ++checked;
      }
      // gemm_bias (the Linear layer): C = op(A) op(B) + bias in every row, C never read.
      std::vector<float> bias(n), c(sc, std::nanf(""));
      for (auto& x : bias) x = u(rng);
      be.gemm_bias(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, bias.data(), c.data(), ldc);
      double worst = 0.0;
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          double s = bias[j];
          for (std::int64_t p = 0; p < k; ++p)
            s += double(a[ta ? p * lda + i : i * lda + p]) * double(b[tb ? j * ldb + p : p * ldb + j]);
          worst = std::max(worst, std::abs(double(c[i * ldc + j]) - s));
        }
      INFO("gemm_bias m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb);
      CHECK(worst <= 1e-5 * double(k) + 1e-6);
      ++checked;
    }
  CHECK(checked == static_cast<int>(std::size(cases)) * 4 * 3);
}

// One product on several threads is split along the longer side of C (rows when m >= n,
// columns in blocks of 32 when n > m): every thread count gives the same bits as one thread,
// and the float64 loop's values, with bias, beta, strides and all four transpositions.
TEST_CASE("one gemm split over threads by rows or by columns gives one thread's bits") {
  auto& be = backend_for<float>(Device::cpu());
  const int before = get_num_threads();
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  struct Case { std::int64_t m, n, k; };
  const Case cases[] = {{20, 300, 40}, {7, 97, 300}, {130, 784, 64}, {300, 20, 40}, {64, 64, 33}, {3, 33, 5}};
  for (const auto& cs : cases)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      const std::int64_t m = cs.m, n = cs.n, k = cs.k;
      const std::int64_t lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 3;
      std::vector<float> a((ta ? k : m) * lda), b((tb ? n : k) * ldb), c0(m * ldc), bias(n);
      for (auto* v : {&a, &b, &c0, &bias})
        for (auto& x : *v) x = u(rng);
      std::vector<std::vector<float>> plain, biased;
      for (const int threads : {1, 2, 3, 4}) {
        set_num_threads(threads);
        plain.push_back(c0);
        be.gemm(ta, tb, m, n, k, 0.5f, a.data(), lda, 0, b.data(), ldb, 0, 1.5f, plain.back().data(), ldc, 0, 1);
        biased.push_back(c0);
        be.gemm_bias(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, bias.data(), biased.back().data(), ldc);
      }
      set_num_threads(before);
      INFO("m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb);
      for (std::size_t i = 1; i < plain.size(); ++i) {
        CHECK(plain[i] == plain[0]);
        CHECK(biased[i] == biased[0]);
      }
      double worst = 0.0;
      bool padding_kept = true;
      for (std::int64_t i = 0; i < m; ++i) {
        for (std::int64_t j = 0; j < n; ++j) {
          double s = 0.0;
          for (std::int64_t p = 0; p < k; ++p)
            s += double(a[ta ? p * lda + i : i * lda + p]) * double(b[tb ? j * ldb + p : p * ldb + j]);
          worst = std::max(worst, std::abs(double(plain[0][i * ldc + j]) - (0.5 * s + 1.5 * c0[i * ldc + j])));
          worst = std::max(worst, std::abs(double(biased[0][i * ldc + j]) - (s + bias[j])));
        }
        for (std::int64_t j = n; j < ldc; ++j)
          padding_kept &= plain[0][i * ldc + j] == c0[i * ldc + j] && biased[0][i * ldc + j] == c0[i * ldc + j];
      }
      CHECK(worst <= 1e-5 * double(k) + 1e-6);
      CHECK(padding_kept);
    }
}
