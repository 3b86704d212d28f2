// Text for language models: a byte-level tokenizer (every byte is a token, vocabulary 256,
// lossless for any file) and a dataset of random windows over a local text file.
//
//   auto text = data::TextDataset::from_file("/usr/share/common-licenses/GPL-3", 128);
//   auto [train, val] = text.split(0.9);
//   auto [x, y] = train.sample_batch(16, gen);   // int64 [16, 128]; y is x shifted by one
#pragma once
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ligm/ops/creation.hpp"

namespace ligm::data {

struct ByteTokenizer {
  static constexpr std::int64_t vocab_size = 256;
  std::vector<std::int64_t> encode(std::string_view text) const {
    std::vector<std::int64_t> out;
    out.reserve(text.size());
    for (unsigned char c : text) out.push_back(c);
    return out;
  }
  Tensor<std::int64_t> encode_tensor(std::string_view text) const {
    auto v = encode(text);
    return tensor<std::int64_t>(v, {std::int64_t(v.size())});
  }
  std::string decode(const std::vector<std::int64_t>& tokens) const {
    std::string out;
    out.reserve(tokens.size());
    for (auto t : tokens) {
      check(t >= 0 && t < vocab_size, "ByteTokenizer::decode", "token ", t, " is not a byte (0..255)");
      out.push_back(static_cast<char>(static_cast<unsigned char>(t)));
    }
    return out;
  }
  std::string decode(const Tensor<std::int64_t>& tokens) const {
    return decode(tokens.to(Device::cpu()).contiguous().to_vector());
  }
};

// Token windows of block_size + 1 over one token sequence.
class TextDataset {
 public:
  TextDataset(std::vector<std::int64_t> tokens, std::int64_t block_size)
      : tokens_(std::move(tokens)), block_size_(block_size) {
    check(block_size > 0, "TextDataset", "block_size must be positive, got ", block_size);
    check(std::int64_t(tokens_.size()) > block_size, "TextDataset", "needs more than block_size = ", block_size,
          " tokens, got ", tokens_.size());
  }
  // The bytes of a local file as tokens.
  static TextDataset from_file(const std::string& path, std::int64_t block_size) {
    return from_files({path}, block_size);
  }
  // The bytes of several files, one after the other.
  static TextDataset from_files(const std::vector<std::string>& paths, std::int64_t block_size) {
    std::string text;
    for (const auto& path : paths) {
      std::ifstream f(path, std::ios::binary);
      check(f.good(), "TextDataset", "cannot open ", path,
            " (for Debian's fortunes: apt-get install fortunes-min; any text file will do)");
      text.append(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
      check(!f.bad(), "TextDataset", "error reading ", path);
    }
    return TextDataset(ByteTokenizer().encode(text), block_size);
  }

  std::int64_t block_size() const { return block_size_; }
  const std::vector<std::int64_t>& tokens() const { return tokens_; }
  // Windows that fit: start positions 0 .. size() - 1.
  std::int64_t size() const { return std::int64_t(tokens_.size()) - block_size_; }

  // Inputs and next-token targets for the windows starting at `starts`: int64 [n, block_size] each.
  std::pair<Tensor<std::int64_t>, Tensor<std::int64_t>> windows(const std::vector<std::int64_t>& starts) const {
    std::vector<std::int64_t> x, y;
    for (auto s : starts) {
      check(s >= 0 && s < size(), "TextDataset", "window start ", s, " is out of range [0, ", size(), ")");
      x.insert(x.end(), tokens_.begin() + s, tokens_.begin() + s + block_size_);
      y.insert(y.end(), tokens_.begin() + s + 1, tokens_.begin() + s + block_size_ + 1);
    }
    const std::int64_t n = std::int64_t(starts.size());
    return {tensor<std::int64_t>(x, {n, block_size_}), tensor<std::int64_t>(y, {n, block_size_})};
  }
  // batch_size windows at uniformly random starts.
  std::pair<Tensor<std::int64_t>, Tensor<std::int64_t>> sample_batch(std::int64_t batch_size, Generator& gen) const {
    std::vector<std::int64_t> starts;
    for (double u : rand<double>({batch_size}, gen).to_vector())
      starts.push_back(std::min(size() - 1, std::int64_t(u * double(size()))));
    return windows(starts);
  }
  // The first train_fraction of the tokens and the rest (each must hold a window).
  std::pair<TextDataset, TextDataset> split(double train_fraction) const {
    check(train_fraction > 0 && train_fraction < 1, "TextDataset::split", "train_fraction must be in (0, 1), got ",
          train_fraction);
    const auto cut = std::ptrdiff_t(double(tokens_.size()) * train_fraction);
    return {TextDataset({tokens_.begin(), tokens_.begin() + cut}, block_size_),
            TextDataset({tokens_.begin() + cut, tokens_.end()}, block_size_)};
  }

 private:
  std::vector<std::int64_t> tokens_;
  std::int64_t block_size_;
};

}  // namespace ligm::data
