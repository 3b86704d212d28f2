// data: image-batch transforms, TensorDataset and samplers, the loader's transform and
// sampler hooks, the byte tokenizer and the text dataset.
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "helpers.hpp"

using namespace th;
using F = Tensor<float>;

namespace {
F images(std::int64_t b, std::int64_t c, std::int64_t h, std::int64_t w, std::uint64_t seed = 1) {
  Generator gen(seed);
  return rand<float>({b, c, h, w}, gen);
}
float max_diff(const F& a, const F& b) { return sub(a, b).abs().max().item(); }
}  // namespace

TEST_CASE("transforms: crops, flips and rotations move pixels exactly where they belong") {
  Generator gen(3);
  auto x = images(6, 2, 8, 8);
  SUBCASE("RandomCrop") {
    CHECK(max_diff(data::RandomCrop<float>{8, 0}(x, gen), x) == 0.0f);  // full-size crop, no padding
    auto y = data::RandomCrop<float>{8, 2}(x, gen);
    auto padded = pad(x, {2, 2, 2, 2});
    std::set<std::pair<int, int>> offsets;
    for (std::int64_t b = 0; b < 6; ++b) {
      bool found = false;
      for (int top = 0; top <= 4 && !found; ++top)
        for (int left = 0; left <= 4 && !found; ++left)
          if (max_diff(y.select(0, b), padded.select(0, b).narrow(1, top, 8).narrow(2, left, 8)) == 0.0f) {
            found = true;
            offsets.insert({top, left});
          }
      CHECK_MESSAGE(found, "image ", b, " is not an exact window of the padded image");
    }
    CHECK(offsets.size() > 1);  // per-image positions
    check_error([&] { data::RandomCrop<float>{12, 1}(x, gen); }, {"RandomCrop", "larger than the padded image"});
  }
  SUBCASE("RandomResizedCrop: scale 1 and ratio 1 of a square image is the image") {
    data::RandomResizedCrop<float> whole{8, {1.0, 1.0}, {1.0, 1.0}};
    CHECK(max_diff(whole(x, gen), x) == 0.0f);
    auto small = data::RandomResizedCrop<float>{4, {0.2, 0.6}}(x, gen);
    CHECK(small.shape() == Shape{6, 2, 4, 4});
    CHECK(small.min().item() >= 0.0f);
    CHECK(small.max().item() <= 1.0f);
  }
  SUBCASE("RandomHorizontalFlip") {
    CHECK(max_diff(data::RandomHorizontalFlip<float>{1.0}(x, gen), flip(x, {3})) == 0.0f);
    CHECK(max_diff(data::RandomHorizontalFlip<float>{0.0}(x, gen), x) == 0.0f);
    auto many = images(400, 1, 2, 2);
    auto flipped = ne(data::RandomHorizontalFlip<float>{}(many, gen), many).to<float>().amax({1, 2, 3});
    const float share = flipped.mean().item();
    CHECK(share > 0.4f);
    CHECK(share < 0.6f);
  }
  SUBCASE("rotate: 0 degrees is exact, 90 degrees turns counter-clockwise") {
    CHECK(max_diff(data::rotate(x, std::vector<double>(6, 0.0)), x) == 0.0f);
    CHECK(max_diff(data::rotate(x, std::vector<double>(6, 90.0)), x.transpose(2, 3).flip({2})) < 1e-5f);
    CHECK(max_diff(data::RandomRotation<float>{0.0}(x, gen), x) == 0.0f);
    auto r = data::RandomRotation<float>{30.0}(x, gen);
    CHECK(r.shape() == x.shape());
    CHECK(r.select(2, 0).select(2, 0).abs().max().item() < x.max().item());  // corners are mostly fill
  }
}

TEST_CASE("transforms: blur, noise, solarize, colour, normalize, compose and two views") {
  Generator gen(4);
  auto x = images(8, 3, 10, 10);
  SUBCASE("GaussianBlur keeps constant images, smooths others, and p = 0 is the identity") {
    auto c = full<float>({2, 3, 10, 10}, 0.7f);
    CHECK(max_diff(data::GaussianBlur<float>{5, {0.5, 2.0}}(c, gen), c) < 1e-6f);
    auto b = data::GaussianBlur<float>{5, {1.0, 1.0}}(x, gen);
    CHECK(b.std().item() < 0.8f * x.std().item());
    CHECK(std::fabs(b.mean().item() - x.mean().item()) < 0.02f);
    CHECK(max_diff(data::GaussianBlur<float>{3, {0.1, 2.0}, 0.0}(x, gen), x) == 0.0f);
    check_error([&] { data::GaussianBlur<float>{4}(x, gen); }, {"GaussianBlur", "odd"});
  }
  SUBCASE("GaussianNoise has the requested spread") {
    auto z = zeros<float>({4, 1, 64, 64});
    CHECK(std::fabs(data::GaussianNoise<float>{0.2}(z, gen).std().item() - 0.2f) < 0.01f);
  }
  SUBCASE("RandomSolarize inverts the bright pixels") {
    auto s = data::RandomSolarize<float>{0.5, 1.0}(x, gen);
    CHECK(max_diff(s, where(ge(x, 0.5f), sub(1.0f, x), x)) == 0.0f);
  }
  SUBCASE("RandomGrayscale and ColorJitter") {
    auto g = data::RandomGrayscale<float>{1.0}(x, gen);
    CHECK(max_diff(g.narrow(1, 0, 1), g.narrow(1, 2, 1)) == 0.0f);
    check_close(g.narrow(1, 1, 1),
                add(add(mul(x.narrow(1, 0, 1), 0.299f), mul(x.narrow(1, 1, 1), 0.587f)), mul(x.narrow(1, 2, 1), 0.114f)),
                1e-6, 0, "grey");
    CHECK(max_diff(data::ColorJitter<float>{}(x, gen), x) == 0.0f);
    auto j = data::ColorJitter<float>{0.4, 0.4, 0.4, 0.1}(x, gen);
    CHECK(j.min().item() >= 0.0f);
    CHECK(j.max().item() <= 1.0f);
    CHECK(max_diff(j, x) > 0.05f);
    // Brightness alone scales each image by one factor in [0.6, 1.4] (before clamping).
    auto dim = mul(x, 0.5f);
    auto ratio = div(data::ColorJitter<float>{0.4}(dim, gen), dim);
    CHECK(ratio.min().item() >= 0.6f - 1e-5f);
    CHECK(ratio.max().item() <= 1.4f + 1e-5f);
    CHECK(sub(ratio.amax({1, 2, 3}), ratio.amin({1, 2, 3})).max().item() < 1e-5f);
    check_error([&] { data::ColorJitter<float>{0, 0, 0.5}(images(2, 1, 4, 4), gen); }, {"ColorJitter", "RGB"});
  }
  SUBCASE("Normalize, Compose, TwoViews; a seed reproduces the augmentation") {
    auto n = data::Normalize<float>{{0.5, 0.4, 0.3}, {0.2, 0.25, 0.5}}(x);
    CHECK(std::fabs(n.select(1, 1).select(0, 0).select(0, 0).select(0, 0).item() -
                    (x.select(1, 1).select(0, 0).select(0, 0).select(0, 0).item() - 0.4f) / 0.25f) < 1e-6f);
    data::Compose<float> aug{{data::RandomResizedCrop<float>{10, {0.3, 1.0}}, data::RandomHorizontalFlip<float>{},
                              data::ColorJitter<float>{0.4, 0.4, 0.2, 0.1, 0.8}, data::RandomGrayscale<float>{0.2},
                              data::GaussianBlur<float>{3, {0.1, 2.0}, 0.5}, data::RandomSolarize<float>{0.5, 0.2}}};
    data::TwoViews<float> views{aug, aug};
    Generator g1(9), g2(9);
    auto [a1, b1] = views(x, g1);
    auto [a2, b2] = views(x, g2);
    CHECK(max_diff(a1, a2) == 0.0f);
    CHECK(max_diff(b1, b2) == 0.0f);
    CHECK(max_diff(a1, b1) > 0.01f);
    check_error([&] { data::Normalize<float>{{0.5}, {0.2}}(x); }, {"Normalize", "one mean and std per channel"});
  }
}

TEST_CASE("data: TensorDataset, class subsets, long-tail and weighted sampling") {
  auto labels = tensor<std::int64_t>({0, 1, 2, 0, 1, 2, 0, 1, 2, 0}, {10});
  auto inputs = arange<float>(0, 10).reshape({10, 1});
  data::TensorDataset<> ds{inputs, labels};
  auto idx = data::class_subset_indices(labels, {0, 2});
  CHECK(idx == std::vector<std::int64_t>{0, 2, 3, 5, 6, 8, 9});
  CHECK(data::class_subset_indices(labels, {0, 2}, 2) == std::vector<std::int64_t>{0, 2, 3, 5});
  auto sub_ds = ds.subset(idx);
  CHECK(sub_ds.size() == 7);
  CHECK(data::remap_labels(sub_ds.targets, {0, 2}).to_vector() == std::vector<std::int64_t>{0, 1, 0, 1, 0, 1, 0});
  check_error([&] { data::remap_labels(labels, {0, 2}); }, {"remap_labels", "label 1"});

  // Long tail over Fashion-MNIST-sized classes: 6000 -> 60 with imbalance 100.
  std::vector<std::int64_t> many;
  for (int c = 0; c < 10; ++c) many.insert(many.end(), 6000, c);
  auto big = tensor<std::int64_t>(many, {60000});
  Generator gen(5);
  auto lt = data::long_tail_indices(big, 100.0, gen);
  auto counts = data::class_counts(index_select(big, 0, tensor<std::int64_t>(lt, {std::int64_t(lt.size())})));
  CHECK(counts[0] == 6000);
  CHECK(counts[9] == 60);
  CHECK(counts[5] == std::int64_t(std::floor(6000 * std::pow(100.0, -5.0 / 9.0))));

  // Class-balanced weights even out a 6000:60 imbalance.
  auto lt_labels = index_select(big, 0, tensor<std::int64_t>(lt, {std::int64_t(lt.size())}));
  data::WeightedRandomSampler balanced(data::class_balanced_weights(lt_labels), 20000, true, 1);
  std::map<std::int64_t, int> drawn;
  const auto lv = lt_labels.to_vector();
  for (auto i : balanced.indices(0)) ++drawn[lv[std::size_t(i)]];
  for (auto& [c, n] : drawn) CHECK_MESSAGE(std::abs(n - 2000) < 200, "class ", c, " drawn ", n, " times");
  data::WeightedRandomSampler unique({1, 2, 3, 0, 4}, 4, false, 2);
  auto u = unique.indices(0);
  CHECK(std::set<std::int64_t>(u.begin(), u.end()) == std::set<std::int64_t>{0, 1, 2, 4});
  CHECK(unique.indices(0) == u);
  CHECK(unique.indices(1) != u);  // another epoch, another order (for this seed)
  check_error([] { data::WeightedRandomSampler({1, 0}, 2, false); }, {"without replacement"});

  // The loader visits exactly a sampler's indices, shuffled per epoch.
  data::DataLoader loader(ds, {.batch_size = 3, .sampler = data::SubsetSampler::make(idx, true, 4)});
  CHECK(loader.size() == 3);
  std::vector<float> seen;
  for (auto [bx, by] : loader.epoch(0))
    for (auto v : bx.to_vector()) seen.push_back(v);
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<float>{0, 2, 3, 5, 6, 8, 9});
}

TEST_CASE("data: the loader's transform is reproducible with or without prefetching") {
  auto x = images(20, 1, 6, 6);
  auto y = arange<std::int64_t>(0, 20);
  auto run = [&](bool prefetch) {
    data::DataLoader loader(x, y, {.batch_size = 8, .shuffle = true, .seed = 2, .prefetch = prefetch});
    loader.set_transform(data::Compose<float>{{data::RandomCrop<float>{6, 1}, data::GaussianNoise<float>{0.1}}}, 11);
    std::vector<float> all;
    for (int e = 0; e < 2; ++e)
      for (auto [bx, by] : loader.epoch(std::uint64_t(e)))
        for (auto v : bx.to_vector()) all.push_back(v);
    return all;
  };
  auto a = run(true);
  CHECK(a == run(false));
  CHECK(a == run(true));

  // Starting an epoch at batch 1 gives the batches the whole epoch gives from there.
  data::DataLoader loader(x, y, {.batch_size = 8, .shuffle = true, .seed = 2});
  loader.set_transform(data::GaussianNoise<float>{0.1}, 3);
  std::vector<std::vector<float>> whole, tail;
  for (auto [bx, by] : loader.epoch(1)) whole.push_back(bx.to_vector());
  for (auto [bx, by] : loader.epoch(1, 1)) tail.push_back(bx.to_vector());
  REQUIRE(tail.size() == 2);
  CHECK(tail[0] == whole[1]);
  CHECK(tail[1] == whole[2]);
  check_error([&] { loader.epoch(0, 4); }, {"DataLoader", "first batch 4"});
}

TEST_CASE("data: byte tokenizer and text dataset") {
  data::ByteTokenizer tok;
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(char(c));
  CHECK(tok.decode(tok.encode(all)) == all);
  CHECK(tok.encode("hé").size() == 3);  // UTF-8 bytes
  check_error([&] { tok.decode(std::vector<std::int64_t>{65, 256}); }, {"ByteTokenizer", "256"});

  const std::string path = "/tmp/ligm_test_text.txt";
  std::ofstream(path) << "hello, ligm! a tiny corpus for windows.";
  auto text = data::TextDataset::from_file(path, 8);
  CHECK(text.size() == 39 - 8);
  auto [x, y] = text.windows({0, 3});
  CHECK(tok.decode(x.select(0, 0)) == "hello, l");
  CHECK(tok.decode(y.select(0, 0)) == "ello, li");
  CHECK(tok.decode(x.select(0, 1)) == "lo, ligm");
  Generator gen(1);
  auto [bx, by] = text.sample_batch(5, gen);
  CHECK(bx.shape() == Shape{5, 8});
  CHECK(bx.narrow(1, 1, 7).contiguous().to_vector() == by.narrow(1, 0, 7).contiguous().to_vector());
  auto [train, val] = text.split(0.75);
  CHECK(train.tokens().size() + val.tokens().size() == 39);
  check_error([] { data::TextDataset::from_file("/tmp/ligm_no_such_text", 8); }, {"TextDataset", "cannot open"});
  check_error([&] { text.windows({35}); }, {"TextDataset", "out of range"});
  check_error([] { data::TextDataset(std::vector<std::int64_t>{1, 2}, 4); }, {"more than block_size"});
}
