// Anomaly detection (torch.autograd.set_detect_anomaly): find the op whose backward first made
// a NaN, and where in the model it was recorded.
//
//   autograd::DetectAnomalyGuard anomaly;      // or autograd::set_detect_anomaly(true)
//   auto loss = criterion(net(x), y);
//   loss.backward();   // ligm::Error: "backward: SqrtBackward returned NaN values in its 0th
//                      //  output (a gradient of shape [4, 8], float32 on cpu) ... recorded in
//                      //  MLP > Sequential > Linear"
//
// While it is on, every recorded node notes the names of the scopes open on its thread when
// the forward made it (profiler::Scope: each module call, by type_name(), and the users' own
// scopes), and backward() checks each gradient a node returns for NaN (as PyTorch; infinities
// pass) and throws at the first. The check reads every gradient back to the host: a debugging
// mode, slow on purpose. Off, it costs a relaxed atomic load per scope and per recorded op.
// The switch is process-wide, as PyTorch's; the scope names are per thread.
#pragma once
#include <atomic>
#include <string>
#include <vector>

namespace ligm::autograd {

namespace detail {
inline std::atomic<bool>& anomaly_flag() {
  static std::atomic<bool> on{false};
  return on;
}
// The names of the scopes open on this thread, outermost first (kept only in anomaly mode).
inline std::vector<std::string>& scope_names() {
  thread_local std::vector<std::string> names;
  return names;
}
}  // namespace detail

inline bool is_anomaly_enabled() { return detail::anomaly_flag().load(std::memory_order_relaxed); }
inline void set_detect_anomaly(bool on) { detail::anomaly_flag().store(on, std::memory_order_relaxed); }

// Anomaly mode on (or off) for its lifetime, then back to what it was (torch.autograd.detect_anomaly).
class DetectAnomalyGuard {
 public:
  explicit DetectAnomalyGuard(bool on = true) : previous_(is_anomaly_enabled()) { set_detect_anomaly(on); }
  ~DetectAnomalyGuard() { set_detect_anomaly(previous_); }
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool previous_;
};

// "ResNet > Sequential > BasicBlock > Conv2d": the scopes open on this thread now.
inline std::string scope_path() {
  std::string path;
  for (const auto& name : detail::scope_names()) path += (path.empty() ? "" : " > ") + name;
  return path;
}

}  // namespace ligm::autograd
