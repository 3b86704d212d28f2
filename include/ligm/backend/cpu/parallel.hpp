// parallel_for over a fixed pool of worker threads (the caller works too).
//
// The pool has get_num_threads() - 1 workers and is rebuilt when that setting changes.
// Nested calls (a parallel loop inside a parallel loop) and calls made while another thread
// holds the pool run serially, so the pool never deadlocks and never oversubscribes.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "ligm/core/error.hpp"
#include "ligm/core/threads.hpp"

namespace ligm::cpu {

// Waits for pred by spinning a few tens of microseconds before the caller blocks: a training
// step runs hundreds of short parallel loops, and waking a sleeping thread costs more than most
// of them (a futex round trip, worse on a VM).
template <class P>
bool spin_until(const P& pred) {
  for (int i = 0; i < 4000; ++i) {
    if (pred()) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
  return pred();
}

class ThreadPool {
 public:
  explicit ThreadPool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return static_cast<int>(threads_.size()); }

  // Runs fn(0), ..., fn(tasks - 1) on the workers and the calling thread.
  void run(int tasks, const std::function<void(int)>& fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &fn;
      tasks_ = tasks;
      next_ = 0;
      pending_ = tasks;
      error_ = nullptr;
      open_ = true;
      ++generation_;
    }
    wake_.notify_all();
    work(fn, tasks);
    spin_until([&] { return pending_.load() == 0 && active_.load() == 0; });
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return pending_ == 0 && active_ == 0; });
    open_ = false;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop() {
    std::uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      int tasks;
      spin_until([&] { return generation_.load() != seen; });
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (!open_) continue;
        ++active_;
        job = job_;
        tasks = tasks_;
      }
      work(*job, tasks);
      if (active_.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        done_.notify_all();
      }
    }
  }

  void work(const std::function<void(int)>& fn, int tasks) {
    for (;;) {
      const int i = next_.fetch_add(1);
      if (i >= tasks) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
      if (pending_.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        done_.notify_all();
      }
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* job_ = nullptr;
  int tasks_ = 0;
  std::atomic<int> next_{0}, pending_{0}, active_{0};
  bool open_ = false, stop_ = false;
  std::atomic<std::uint64_t> generation_{0};
  std::exception_ptr error_;
};

namespace detail {
inline bool& in_parallel_region() {
  thread_local bool inside = false;
  return inside;
}
inline std::mutex& pool_mutex() {
  static std::mutex mu;
  return mu;
}
inline std::unique_ptr<ThreadPool>& pool_slot() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
}  // namespace detail

// Chunks per thread: the workers and the caller take chunks in turn from a shared counter, so
// a thread the OS stalls (a busy host, a noisy VM) leaves its remaining chunks to the others
// instead of holding up the whole loop.
inline constexpr int kChunksPerThread = 4;

// Splits [begin, end) into at most kChunksPerThread * get_num_threads() chunks of at least
// `grain` items (a caller that wants one chunk per thread passes grain = n / threads) and calls
// f(lo, hi) on each, in parallel. The chunks depend only on n, grain and the thread setting,
// never on timing or on whether the pool is free: when another thread holds it (a DataLoader
// prefetching), the same chunks run here one after the other, so results that depend on the
// split (GEMM blocking, partial sums) are the same on every run.
template <class F>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, const F& f) {
  const std::int64_t n = end - begin;
  if (n <= 0) return;
  const std::int64_t max_chunks = std::max<std::int64_t>(1, n / std::max<std::int64_t>(grain, 1));
  const int tasks = static_cast<int>(std::min<std::int64_t>(std::int64_t(get_num_threads()) * kChunksPerThread, max_chunks));
  if (get_num_threads() <= 1 || tasks <= 1 || detail::in_parallel_region()) {
    f(begin, end);
    return;
  }
  const std::int64_t chunk = (n + tasks - 1) / tasks;
  std::unique_lock<std::mutex> lock(detail::pool_mutex(), std::try_to_lock);
  if (!lock.owns_lock()) {  // another thread is using the pool: the same chunks, here
    for (std::int64_t lo = begin; lo < end; lo += chunk) f(lo, std::min(end, lo + chunk));
    return;
  }
  auto& pool = detail::pool_slot();
  if (!pool || pool->workers() != get_num_threads() - 1)
    pool = std::make_unique<ThreadPool>(get_num_threads() - 1);
  std::function<void(int)> task = [&](int t) {
    const std::int64_t lo = begin + t * chunk, hi = std::min(end, lo + chunk);
    if (lo >= hi) return;
    detail::in_parallel_region() = true;
    try {
      f(lo, hi);
    } catch (...) {
      detail::in_parallel_region() = false;
      throw;
    }
    detail::in_parallel_region() = false;
  };
  pool->run(static_cast<int>((n + chunk - 1) / chunk), task);
}

// Items per block when `items` items are cut into blocks of about `at_least` and the blocks
// spread over the threads: the size in [at_least, 2 at_least] whose busiest thread gets the
// fewest items, the smallest of equals (64 images in blocks of 6 on 2 threads: 10 full blocks
// and one of 4, one thread has 34 images and the other 30; in blocks of 8 each has 32). One
// thread keeps at_least. Depends on the thread setting only.
inline std::int64_t balanced_block(std::int64_t items, std::int64_t at_least) {
  const std::int64_t threads = get_num_threads();
  at_least = std::clamp<std::int64_t>(at_least, 1, std::max<std::int64_t>(items, 1));
  std::int64_t best = at_least, best_load = -1;
  for (std::int64_t per = at_least; per <= std::min(2 * at_least, items); ++per) {
    // Full blocks dealt evenly, the part-filled one to a thread with fewer.
    const std::int64_t full = items / per, rest = items % per, q = full / threads;
    const std::int64_t load = full % threads ? (q + 1) * per : q * per + rest;
    if (best_load < 0 || load < best_load) best = per, best_load = load;
  }
  return best;
}

// out[0, size) = the sum over [0, items) of what f(lo, hi, acc) adds into acc: the items are
// split into one part per thread, each with its own zeroed accumulator, and the parts are added
// in a fixed order, so the result depends on the thread count only (a weight gradient summed
// over a batch). The first part sums into out itself, the others into buffers kept from call
// to call (fresh ones cost page faults: a 2.4 MB gradient per part per call), and the parts are
// added in slices, on all threads.
template <class T, class F>
void parallel_sum(std::int64_t items, std::int64_t size, T* out, const F& f) {
  const std::int64_t parts = std::max<std::int64_t>(1, std::min<std::int64_t>(get_num_threads(), items));
  const std::int64_t per = (items + parts - 1) / parts;
  // Parts 1, 2, ...: the caller's, reused (one buffer per instantiation, so a sum inside f,
  // another instantiation, never resizes it under this call).
  thread_local std::vector<T> spare;
  if (spare.size() < static_cast<std::size_t>((parts - 1) * size))
    spare.resize(static_cast<std::size_t>((parts - 1) * size));
  T* const others = spare.data();  // (a thread_local named in the lambda would be the worker's)
  parallel_for(0, parts, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p) {
      T* acc = p == 0 ? out : others + (p - 1) * size;
      std::fill(acc, acc + size, T(0));
      f(p * per, std::min(items, (p + 1) * per), acc);
    }
  });
  if (parts > 1)
    parallel_for(0, size, 16384, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t p = 1; p < parts; ++p)
        for (std::int64_t i = lo; i < hi; ++i) out[i] += others[(p - 1) * size + i];
    });
}

// A per-thread scratch buffer of at least n elements (contents undefined): the im2col and
// Winograd matrices are reused across calls instead of being allocated and zeroed every time.
// Slot tells apart buffers that one thread holds at once (the caller's own next to the
// workspace it uses as one of parallel_for's workers).
// Grows as a std::vector would (new values zero, old ones kept), but through malloc: a
// workspace larger than the machine's memory is a ligm::Error, not std::bad_alloc.
template <class T, int Slot = 0>
T* scratch(std::size_t n) {
  static_assert(std::is_trivially_copyable_v<T>);
  struct Buffer {
    T* data = nullptr;
    std::size_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffer;
  if (buffer.size < n) {
    T* p = n <= SIZE_MAX / sizeof(T) ? static_cast<T*>(std::realloc(buffer.data, n * sizeof(T))) : nullptr;
    check(p != nullptr, "scratch", "out of host memory for a kernel workspace of ", n, " values of ",
          sizeof(T), " bytes");
    std::fill(p + buffer.size, p + n, T(0));
    buffer.data = p;
    buffer.size = n;
  }
  return buffer.data;
}

}  // namespace ligm::cpu
