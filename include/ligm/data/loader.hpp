// DataLoader over a tensor dataset (inputs [N, ...], targets [N]): batches in order or
// shuffled by a seeded permutation (epoch e uses seed + e, so a run is reproducible and a
// resumed run sees the same batches), or in the order a Sampler chooses; drop_last; an
// optional transform of each input batch (augmentation) with its own generator per batch;
// and a background thread that assembles the next batch while the current one trains.
//
//   data::DataLoader loader(images, labels, {.batch_size = 128, .shuffle = true, .seed = 1});
//   loader.set_transform(data::RandomCrop<float>{28, 2}, /*seed=*/7);   // optional
//   for (int epoch = 0; epoch < 10; ++epoch)
//     for (auto [x, y] : loader.epoch(epoch)) { ... }
#pragma once
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "ligm/data/dataset.hpp"
#include "ligm/ops/movement.hpp"

namespace ligm::data {

struct LoaderOptions {
  std::int64_t batch_size = 64;
  bool shuffle = false;
  bool drop_last = false;
  std::uint64_t seed = 0;
  bool prefetch = true;  // assemble the next batch on a background thread
  std::shared_ptr<const Sampler> sampler = nullptr;  // overrides shuffle: its indices, its order
};

// A batch-level function of an input batch and a generator (see data/transforms.hpp).
template <class T = float>
using Transform = std::function<Tensor<T>(const Tensor<T>&, Generator&)>;

template <class X = float, class Y = std::int64_t>
class DataLoader {
 public:
  using Batch = std::pair<Tensor<X>, Tensor<Y>>;

  DataLoader(Tensor<X> inputs, Tensor<Y> targets, LoaderOptions o = {})
      : inputs_(std::move(inputs)), targets_(std::move(targets)), o_(o) {
    check(inputs_.dim() >= 1 && targets_.dim() >= 1 && inputs_.shape()[0] == targets_.shape()[0], "DataLoader",
          "inputs ", inputs_.shape(), " and targets ", targets_.shape(), " must have the same first dim");
    check(o.batch_size > 0, "DataLoader", "batch_size must be positive, got ", o.batch_size);
  }
  DataLoader(const TensorDataset<X, Y>& ds, LoaderOptions o = {}) : DataLoader(ds.inputs, ds.targets, o) {}

  // Applies t to every input batch; batch k of epoch e gets its own generator from (seed, e,
  // k), so augmentation is reproducible and independent of prefetching.
  void set_transform(Transform<X> t, std::uint64_t seed = 0) {
    transform_ = std::move(t);
    transform_seed_ = seed;
  }

  std::int64_t dataset_size() const { return inputs_.shape()[0]; }
  // Examples per epoch: the sampler's size, else the dataset's.
  std::int64_t epoch_size() const { return o_.sampler ? o_.sampler->size() : dataset_size(); }
  // Batches per epoch.
  std::int64_t size() const {
    const std::int64_t n = epoch_size();
    return o_.drop_last ? n / o_.batch_size : (n + o_.batch_size - 1) / o_.batch_size;
  }

  // One pass over the data; iterate it with a range-for.
  class Epoch {
   public:
    Epoch(const DataLoader& loader, std::uint64_t epoch, std::int64_t first_batch)
        : l_(loader), epoch_(epoch), first_(first_batch) {
      check(first_batch >= 0 && first_batch <= l_.size(), "DataLoader", "first batch ", first_batch,
            " is out of range for an epoch of ", l_.size(), " batches");
      if (l_.o_.sampler) {
        auto v = l_.o_.sampler->indices(epoch);
        for (auto i : v)
          check(i >= 0 && i < l_.dataset_size(), "DataLoader", "sampler index ", i, " is out of range for ",
                l_.dataset_size(), " examples");
        order_ = tensor<std::int64_t>(v, {std::int64_t(v.size())});
      } else if (l_.o_.shuffle) {
        Generator gen(l_.o_.seed + epoch);
        order_ = randperm(l_.dataset_size(), gen);
      } else {
        order_ = arange<std::int64_t>(0, double(l_.dataset_size()));
      }
    }
    ~Epoch() { join(); }
    Epoch(const Epoch&) = delete;
    Epoch& operator=(const Epoch&) = delete;

    struct Sentinel {};
    class iterator {
     public:
      explicit iterator(Epoch* e) : e_(e) { e_->start(e_->first_); }
      Batch operator*() const { return e_->current_; }
      iterator& operator++() {
        e_->advance();
        return *this;
      }
      bool operator!=(Sentinel) const { return e_->index_ < e_->l_.size(); }

     private:
      Epoch* e_;
    };
    iterator begin() { return iterator(this); }
    Sentinel end() const { return {}; }

   private:
    Batch make(std::int64_t k) const {
      NoGradGuard no_grad;
      const std::int64_t start = k * l_.o_.batch_size;
      const std::int64_t len = std::min(l_.o_.batch_size, l_.epoch_size() - start);
      auto idx = order_.narrow(0, start, len);
      Batch b{index_select(l_.inputs_, 0, idx.to(l_.inputs_.device())),
              index_select(l_.targets_, 0, idx.to(l_.targets_.device()))};
      if (l_.transform_) {
        Generator gen(mix(l_.transform_seed_, epoch_, std::uint64_t(k)));
        b.first = l_.transform_(b.first, gen);
      }
      return b;
    }
    // SplitMix64 of the three numbers: a seed per (seed, epoch, batch).
    static std::uint64_t mix(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
      std::uint64_t z = a;
      for (std::uint64_t v : {b, c}) {
        z += 0x9E3779B97F4A7C15ull + v;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
      }
      return z;
    }
    void start(std::int64_t k) {
      index_ = k;
      if (index_ < l_.size()) current_ = make(index_);
      launch(index_ + 1);
    }
    void advance() {
      ++index_;
      if (index_ >= l_.size()) return;
      if (l_.o_.prefetch) {
        join();
        if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
        current_ = std::move(*next_);
        next_.reset();
      } else {
        current_ = make(index_);
      }
      launch(index_ + 1);
    }
    void launch(std::int64_t k) {
      if (!l_.o_.prefetch || k >= l_.size()) return;
      worker_ = std::thread([this, k] {
        try {
          next_ = make(k);
        } catch (...) {
          error_ = std::current_exception();  // rethrown on the training thread
        }
      });
    }
    void join() {
      if (worker_.joinable()) worker_.join();
    }

    const DataLoader& l_;
    std::uint64_t epoch_;
    std::int64_t first_;
    Tensor<std::int64_t> order_;
    std::int64_t index_ = 0;
    Batch current_;
    std::optional<Batch> next_;
    std::exception_ptr error_;
    std::thread worker_;
  };

  // Epoch e from batch first_batch on (a run resumed mid-epoch sees the batches it would have
  // seen: the same order, the same transform generators).
  Epoch epoch(std::uint64_t e = 0, std::int64_t first_batch = 0) const { return Epoch(*this, e, first_batch); }

 private:
  Tensor<X> inputs_;
  Tensor<Y> targets_;
  LoaderOptions o_;
  Transform<X> transform_;
  std::uint64_t transform_seed_ = 0;
};

template <class X, class Y>
DataLoader(const TensorDataset<X, Y>&, LoaderOptions = {}) -> DataLoader<X, Y>;

}  // namespace ligm::data
