// Where a step's time goes: a profiler that times named scopes on one thread, nested, on the
// CPU and on the GPU (torch.profiler's "key averages" and its Chrome trace, without the hooks
// into every kernel).
//
//   profiler::Profile prof;              // records this thread's scopes until stop()
//   for (...) { loss = ...; loss.backward(); opt.step(); }
//   prof.stop();
//   std::cout << prof.table();           // per name: calls, self and total time, sorted by self
//   io::save_chrome_trace(prof, "step.json");   // a timeline for chrome://tracing or Perfetto
//
// The framework opens a scope for every module call (named by its type_name(): "Conv2d"; a
// fused pair by both: "BatchNorm2d+ReLU"), for the backward pass ("backward") and each node in
// it (the node's name: "ConvolutionBackward", "AccumulateGrad"), and for each optimizer step
// ("AdamW.step"). Users open their own: `profiler::Scope s("data");` (record_function).
// A scope's self time is its time less that of the scopes opened inside it: the forward of a
// functional op called inside a module (attention's softmax) counts as that module's self time.
// Each scope also notes the tensor memory it leaves allocated (core/memory.hpp): a module's
// forward, its output and what it saved for backward; a backward node, the gradients it made
// less the saved tensors it let go.
//
// GPU work runs after its launch returns. With Options::synchronize (the default) a scope waits
// for every GPU at its start and at its end, so a scope's time includes the device work it
// queued, and the profile says what each part costs; waiting also takes away the overlap of
// host and device, so a profiled step is slower than a plain one. Without it, the times are the
// host's (launch overhead). On the CPU both are the same and waiting costs nothing.
//
// When no profile is recording and anomaly mode is off, a scope costs a thread-local read and
// a relaxed atomic load.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ligm/autograd/anomaly.hpp"
#include "ligm/backend/registry.hpp"
#include "ligm/core/error.hpp"
#include "ligm/core/memory.hpp"

namespace ligm::profiler {

struct Options {
  bool synchronize = true;  // wait for the GPUs at every scope's start and end (see above)
};

// One closed scope. Times are nanoseconds from the profile's start.
struct Event {
  std::string name;
  std::int64_t start_ns = 0, duration_ns = 0;
  std::int64_t self_ns = 0;  // duration less the scopes opened directly inside it
  // Tensor memory (core/memory.hpp, all devices together) at the scope's end less at its
  // start: what the scope allocated and still holds (outputs, tensors saved for backward), less
  // what it freed; self_bytes less the scopes opened directly inside it.
  std::int64_t bytes = 0, self_bytes = 0;
  int depth = 0;             // 0 for a scope opened outside every other
  bool repeated = false;     // opened inside a scope of the same name (a Sequential in one)
  // Floating-point operations of the matmuls and convolutions run while this scope was the
  // innermost one open (count_flops): its own, not those of the scopes inside it.
  double flops = 0;
};

// All scopes of one name.
struct Row {
  std::string name;
  std::int64_t calls = 0;
  double self_ms = 0, total_ms = 0;  // total counts a scope nested in one of its own name once
  double self_mb = 0;                // the events' self_bytes, in MB (1e6 bytes)
  double flops = 0;                  // the events' flops
  // The rate of the matmuls and convolutions it ran over its self time (0 when it ran none).
  double gflops_per_s() const { return flops > 0 && self_ms > 0 ? flops / (self_ms * 1e6) : 0.0; }
};

class Profile;

namespace detail {
inline Profile*& active() {
  thread_local Profile* profile = nullptr;
  return profile;
}
// The innermost FlopCounter's total on this thread, or null.
inline double*& flop_sink() {
  thread_local double* sink = nullptr;
  return sink;
}
}  // namespace detail

inline void count_flops(double flops);

// True while a profile records on this thread.
inline bool recording() { return detail::active() != nullptr; }

// Records the scopes of the thread that makes it, until stop() or its end; make, stop and
// destroy it on that thread (another thread's scopes are not seen; the CPU backend's worker
// threads open none).
class Profile {
 public:
  explicit Profile(Options options = {}) : options_(options) {
    check(!recording(), "profiler", "a profile is already recording on this thread; stop it first");
    sync_ = options_.synchronize && cuda::is_available();
    if (sync_) cuda::synchronize();
    start_ = Clock::now();
    detail::active() = this;
  }
  ~Profile() { stop(); }
  Profile(const Profile&) = delete;
  Profile& operator=(const Profile&) = delete;

  // Ends the recording (scopes still open are left out); the results stay.
  void stop() {
    if (detail::active() != this) return;
    if (sync_) cuda::synchronize();
    wall_ns_ = since_start();
    detail::active() = nullptr;
    stack_.clear();
  }

  // The closed scopes, in the order they closed.
  const std::vector<Event>& events() const { return events_; }
  // From the profile's start to stop() (or to now while recording).
  double wall_ms() const { return double(detail::active() == this ? since_start() : wall_ns_) / 1e6; }

  // One row per name, by self time, largest first.
  std::vector<Row> summary() const {
    std::unordered_map<std::string, Row> by_name;
    for (const Event& e : events_) {
      Row& r = by_name[e.name];
      r.name = e.name;
      ++r.calls;
      r.self_ms += double(e.self_ns) / 1e6;
      r.self_mb += double(e.self_bytes) / 1e6;
      r.flops += e.flops;
      if (!e.repeated) r.total_ms += double(e.duration_ns) / 1e6;
    }
    std::vector<Row> rows;
    rows.reserve(by_name.size());
    for (auto& [name, r] : by_name) rows.push_back(std::move(r));
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return a.self_ms != b.self_ms ? a.self_ms > b.self_ms : a.name < b.name;
    });
    return rows;
  }

  // Every matmul's and convolution's floating-point operations counted while recording.
  double total_flops() const {
    double total = outside_flops_;
    for (const Event& e : events_) total += e.flops;
    return total;
  }

  // The summary as a table: the `max_rows` names with the largest self time, then the time
  // outside every scope ("(outside scopes)") and the wall time. "GFLOP/s" is the rate of the
  // matmuls and convolutions a row ran, over its self time.
  std::string table(std::size_t max_rows = 30) const {
    const auto rows = summary();
    const double wall = wall_ms();
    double inside = 0;
    for (const Event& e : events_)
      if (e.depth == 0) inside += double(e.duration_ns) / 1e6;
    std::size_t width = 17;
    for (std::size_t i = 0; i < rows.size() && i < max_rows; ++i) width = std::max(width, rows[i].name.size());
    std::string out;
    char line[512];
    auto add = [&](const char* name, const char* calls, const char* self, const char* pct, const char* total,
                   const char* mean, const char* mb = "", const char* rate = "") {
      std::snprintf(line, sizeof line, "%-*s %8s %11s %7s %11s %11s %10s %9s\n", int(width), name, calls, self, pct,
                    total, mean, mb, rate);
      out += line;
    };
    add("name", "calls", "self ms", "self %", "total ms", "mean us", "self MB", "GFLOP/s");
    for (std::size_t i = 0; i < rows.size() && i < max_rows; ++i) {
      const Row& r = rows[i];
      char calls[32], self[32], pct[32], total[32], mean[32], mb[32], rate[32] = "";
      std::snprintf(calls, sizeof calls, "%lld", static_cast<long long>(r.calls));
      std::snprintf(self, sizeof self, "%.3f", r.self_ms);
      std::snprintf(pct, sizeof pct, "%.1f", wall > 0 ? 100 * r.self_ms / wall : 0.0);
      std::snprintf(total, sizeof total, "%.3f", r.total_ms);
      std::snprintf(mean, sizeof mean, "%.1f", 1e3 * r.total_ms / double(r.calls));
      std::snprintf(mb, sizeof mb, "%+.2f", r.self_mb);
      if (r.flops > 0) std::snprintf(rate, sizeof rate, "%.1f", r.gflops_per_s());
      add(r.name.c_str(), calls, self, pct, total, mean, mb, rate);
    }
    if (rows.size() > max_rows) {
      double rest = 0;
      for (std::size_t i = max_rows; i < rows.size(); ++i) rest += rows[i].self_ms;
      char label[64], self[32], pct[32];
      std::snprintf(label, sizeof label, "(%zu more names)", rows.size() - max_rows);
      std::snprintf(self, sizeof self, "%.3f", rest);
      std::snprintf(pct, sizeof pct, "%.1f", wall > 0 ? 100 * rest / wall : 0.0);
      add(label, "", self, pct, "", "");
    }
    char outside[32], pct[32], total[32];
    std::snprintf(outside, sizeof outside, "%.3f", std::max(0.0, wall - inside));
    std::snprintf(pct, sizeof pct, "%.1f", wall > 0 ? 100 * std::max(0.0, wall - inside) / wall : 0.0);
    std::snprintf(total, sizeof total, "%.3f", wall);
    add("(outside scopes)", "", outside, pct, "", "");
    add("(wall)", "", "", "", total, "");
    return out;
  }

 private:
  friend class Scope;
  friend void count_flops(double);
  using Clock = std::chrono::steady_clock;
  struct Open {
    std::string name;
    std::int64_t start_ns, inner_ns;  // inner: the durations of the scopes closed inside it
    std::int64_t start_bytes, inner_bytes;
    bool repeated;
    double flops = 0;
  };
  void add_flops(double flops) {
    if (stack_.empty()) outside_flops_ += flops;
    else stack_.back().flops += flops;
  }
  static std::int64_t bytes_now() { return memory_detail::total().load(std::memory_order_relaxed); }

  std::int64_t since_start() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
  }
  void open(std::string name) {
    if (sync_) cuda::synchronize();
    bool repeated = false;
    for (const Open& o : stack_) repeated = repeated || o.name == name;
    stack_.push_back({std::move(name), since_start(), 0, bytes_now(), 0, repeated});
  }
  void close() {
    if (stack_.empty()) return;  // opened before the profile started
    if (sync_) cuda::synchronize();
    Open o = std::move(stack_.back());
    stack_.pop_back();
    const std::int64_t duration = since_start() - o.start_ns, bytes = bytes_now() - o.start_bytes;
    if (!stack_.empty()) {
      stack_.back().inner_ns += duration;
      stack_.back().inner_bytes += bytes;
    }
    events_.push_back({std::move(o.name), o.start_ns, duration, std::max<std::int64_t>(0, duration - o.inner_ns), bytes,
                       bytes - o.inner_bytes, int(stack_.size()), o.repeated, o.flops});
  }

  Options options_;
  bool sync_ = false;
  Clock::time_point start_;
  std::int64_t wall_ns_ = 0;
  std::vector<Open> stack_;
  std::vector<Event> events_;
  double outside_flops_ = 0;
};

// Counts the floating-point operations of the matmuls and convolutions this thread runs while
// it lives (torch.utils.flop_counter.FlopCounterMode's total): 2 m n k for each m x k by k x n
// product, 2 N C_out H_out W_out (C_in / groups) kh kw for each pass of a convolution (forward,
// input gradient, weight gradient), the same for attention's products. Elementwise ops,
// reductions and normalisations are not counted, as in PyTorch. Nested counters each count
// what ran inside them.
//
//   profiler::FlopCounter flops;
//   auto loss = cross_entropy(net(x), y); loss.backward();
//   std::printf("%.2f GFLOP a step\n", flops.total() / 1e9);
class FlopCounter {
 public:
  FlopCounter() : outer_(detail::flop_sink()) { detail::flop_sink() = &total_; }
  ~FlopCounter() {
    detail::flop_sink() = outer_;
    if (outer_) *outer_ += total_;
  }
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;
  double total() const { return total_; }

 private:
  double* outer_;
  double total_ = 0;
};

// Called by the ops that multiply matrices and convolve, with the operations they are about to
// run: the innermost FlopCounter and the open profile scope (if any) count them.
inline void count_flops(double flops) {
  if (double* sink = detail::flop_sink()) *sink += flops;
  if (Profile* p = detail::active()) p->add_flops(flops);
}

// A named span of this thread's work, recorded by the profile recording here (if any) from
// construction to destruction, and in anomaly mode (autograd/anomaly.hpp) the context of the
// ops recorded inside it. The name may be given as a function that returns it, called only
// when one of the two wants it (a module's virtual type_name(), say).
class Scope {
 public:
  explicit Scope(const char* name) {
    if (wanted()) enter(name);
  }
  explicit Scope(std::string name) {
    if (wanted()) enter(std::move(name));
  }
  template <class F, class = std::enable_if_t<std::is_invocable_r_v<std::string, F&>>>
  explicit Scope(F&& make_name) {
    if (wanted()) enter(make_name());
  }
  ~Scope() {
    // The profile may have stopped (or another begun) meanwhile: close only in the one opened.
    if (profile_ && detail::active() == profile_ && profile_->stack_.size() == depth_) profile_->close();
    if (named_) {
      auto& names = autograd::detail::scope_names();
      if (names.size() == named_) names.pop_back();
    }
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  static bool wanted() { return detail::active() != nullptr || autograd::is_anomaly_enabled(); }
  void enter(std::string name) {
    if (autograd::is_anomaly_enabled()) {
      auto& names = autograd::detail::scope_names();
      names.push_back(name);
      named_ = names.size();
    }
    if (Profile* p = detail::active()) {
      p->open(std::move(name));
      profile_ = p;
      depth_ = p->stack_.size();
    }
  }
  Profile* profile_ = nullptr;
  std::size_t depth_ = 0;
  std::size_t named_ = 0;  // this scope's depth in autograd::detail::scope_names(), 0 if not there
};

}  // namespace ligm::profiler
