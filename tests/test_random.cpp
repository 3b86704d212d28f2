// Generator and random ops: determinism, ranges, moments, Philox known answers.
#include <algorithm>
#include <numeric>

#include "helpers.hpp"

using namespace th;

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors") {
  // Random123's kat_vectors: philox4x32 10 rounds, counter 0 and key 0, then all-ones.
  auto z = philox::philox4x32_10(0, 0, 0);
  CHECK(z.v[0] == 0x6627e8d5u);
  CHECK(z.v[1] == 0xe169c58du);
  CHECK(z.v[2] == 0xbc57ac4cu);
  CHECK(z.v[3] == 0x9b00dbd8u);
  auto f = philox::philox4x32_10(~0ull, ~0ull, ~0ull);
  CHECK(f.v[0] == 0x408f276du);
  CHECK(f.v[1] == 0x41c83b0eu);
  CHECK(f.v[2] == 0xa20bc7c6u);
  CHECK(f.v[3] == 0x6d5451fdu);
}

TEST_CASE("a seed fixes the stream; the stream advances between calls") {
  Generator a(7), b(7);
  auto x1 = randn<float>({100}, a), y1 = randn<float>({100}, b);
  CHECK(x1.to_vector() == y1.to_vector());
  auto x2 = randn<float>({100}, a);
  CHECK(x2.to_vector() != x1.to_vector());
  a.manual_seed(7);
  CHECK(randn<float>({100}, a).to_vector() == x1.to_vector());
  // Element i depends only on (seed, offset, i): a longer draw extends a shorter one.
  Generator c(9), d(9);
  auto shorter = rand<double>({10}, c).to_vector();
  auto longer = rand<double>({20}, d).to_vector();
  CHECK(std::equal(shorter.begin(), shorter.end(), longer.begin()));
}

TEST_CASE("distributions: ranges and moments") {
  Generator g(3);
  auto u = rand<double>({200000}, g, Device::cpu(), -2, 3).to_vector();
  CHECK(*std::min_element(u.begin(), u.end()) >= -2);
  CHECK(*std::max_element(u.begin(), u.end()) < 3);
  const double mu = std::accumulate(u.begin(), u.end(), 0.0) / u.size();
  CHECK(mu == doctest::Approx(0.5).epsilon(0.02));
  auto n = randn<double>({200000}, g);
  CHECK(mean(n).item() == doctest::Approx(0).scale(1).epsilon(0.01));
  CHECK(stddev(n).item() == doctest::Approx(1).epsilon(0.01));
  auto fl = rand<float>({100000}, g).to_vector();
  CHECK(*std::max_element(fl.begin(), fl.end()) < 1.0f);
  auto r = randint(-3, 4, {10000}, g).to_vector();
  CHECK(*std::min_element(r.begin(), r.end()) == -3);
  CHECK(*std::max_element(r.begin(), r.end()) == 3);
  auto p = randperm(1000, g).to_vector();
  std::vector<std::int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < 1000; ++i) CHECK(sorted[i] == i);
  CHECK(p != sorted);
  check_error([&] { randint(3, 3, {1}, g); }, {"randint", "low (3)", "high (3)"});
}
