// DataLoader over a tensor dataset (inputs [N, ...], targets [N]): batches in order or
// shuffled by a seeded permutation (epoch e uses seed + e, so a run is reproducible and a
// resumed run sees the same batches), drop_last, and a background thread that assembles the
// next batch while the current one trains.
//
//   data::DataLoader loader(images, labels, {.batch_size = 128, .shuffle = true, .seed = 1});
//   for (int epoch = 0; epoch < 10; ++epoch)
//     for (auto [x, y] : loader.epoch(epoch)) { ... }
#pragma once
#include <exception>
#include <optional>
#include <thread>
#include <utility>

#include "ligm/ops/movement.hpp"

namespace ligm::data {

struct LoaderOptions {
  std::int64_t batch_size = 64;
  bool shuffle = false;
  bool drop_last = false;
  std::uint64_t seed = 0;
  bool prefetch = true;  // assemble the next batch on a background thread
};

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

  std::int64_t dataset_size() const { return inputs_.shape()[0]; }
  // Batches per epoch.
  std::int64_t size() const {
    const std::int64_t n = dataset_size();
    return o_.drop_last ? n / o_.batch_size : (n + o_.batch_size - 1) / o_.batch_size;
  }

  // One pass over the data; iterate it with a range-for.
  class Epoch {
   public:
    Epoch(const DataLoader& loader, std::uint64_t epoch) : l_(loader) {
      if (l_.o_.shuffle) {
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
      explicit iterator(Epoch* e) : e_(e) { e_->start(0); }
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
      const std::int64_t len = std::min(l_.o_.batch_size, l_.dataset_size() - start);
      auto idx = order_.narrow(0, start, len);
      return {index_select(l_.inputs_, 0, idx), index_select(l_.targets_, 0, idx)};
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
    Tensor<std::int64_t> order_;
    std::int64_t index_ = 0;
    Batch current_;
    std::optional<Batch> next_;
    std::exception_ptr error_;
    std::thread worker_;
  };

  Epoch epoch(std::uint64_t e = 0) const { return Epoch(*this, e); }

 private:
  Tensor<X> inputs_;
  Tensor<Y> targets_;
  LoaderOptions o_;
};

}  // namespace ligm::data
