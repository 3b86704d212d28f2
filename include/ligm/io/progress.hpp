// A progress bar for long loops: count, rate, elapsed time and ETA, and the values you pass
// (the current loss), redrawn on one line at most 10 times a second. Quiet when stdout is not
// a terminal (logs and CI stay clean); LIGM_PROGRESS=1 forces it on, LIGM_PROGRESS=0 off.
//
//   io::ProgressBar bar(loader.size(), "epoch 1");
//   for (auto [x, y] : loader.epoch(0)) { ...; bar.update(1, {{"loss", loss.item()}}); }
//   bar.close();
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace ligm::io {

class ProgressBar {
 public:
  explicit ProgressBar(std::int64_t total, std::string desc = "", std::FILE* out = stdout)
      : total_(total), desc_(std::move(desc)), out_(out), start_(Clock::now()), last_(start_) {
    const char* env = std::getenv("LIGM_PROGRESS");
    enabled_ = env ? std::string(env) == "1" : isatty(fileno(out)) != 0;
  }
  ~ProgressBar() { close(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  bool enabled() const { return enabled_; }
  std::int64_t count() const { return n_; }

  void update(std::int64_t n = 1, std::vector<std::pair<std::string, double>> values = {}) {
    n_ += n;
    values_ = std::move(values);
    const auto now = Clock::now();
    if (enabled_ && (now - last_ >= std::chrono::milliseconds(100) || n_ >= total_)) {
      last_ = now;
      draw(now);
    }
  }
  // Draws the final state and ends the line (once).
  void close() {
    if (closed_) return;
    closed_ = true;
    if (!enabled_) return;
    draw(Clock::now());
    std::fputc('\n', out_);
    std::fflush(out_);
  }
  // The line as drawn now (also what tests look at).
  std::string line() const { return render(Clock::now()); }

 private:
  using Clock = std::chrono::steady_clock;

  static std::string clock(double s) {
    char b[32];
    const long t = long(s + 0.5);
    if (t >= 3600) std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else std::snprintf(b, sizeof b, "%02ld:%02ld", t / 60, t % 60);
    return b;
  }
  std::string render(Clock::time_point now) const {
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? double(n_) / elapsed : 0.0;
    std::string s = desc_.empty() ? "" : desc_ + " ";
    char b[160];
    if (total_ > 0) {
      const int width = 24, filled = int(double(width) * double(std::min(n_, total_)) / double(total_));
      std::snprintf(b, sizeof b, "%3d%% [%s%s] %lld/%lld", int(100.0 * double(std::min(n_, total_)) / double(total_)),
                    std::string(std::size_t(filled), '#').c_str(), std::string(std::size_t(width - filled), '.').c_str(),
                    static_cast<long long>(n_), static_cast<long long>(total_));
      s += b;
      const double eta = rate > 0 ? double(total_ - std::min(n_, total_)) / rate : 0.0;
      s += " [" + clock(elapsed) + "<" + clock(eta);
    } else {
      std::snprintf(b, sizeof b, "%lld", static_cast<long long>(n_));
      s += std::string(b) + " [" + clock(elapsed);
    }
    std::snprintf(b, sizeof b, ", %.1f it/s]", rate);
    s += b;
    for (const auto& [k, v] : values_) {
      std::snprintf(b, sizeof b, " %s=%.4g", k.c_str(), v);
      s += b;
    }
    return s;
  }
  void draw(Clock::time_point now) {
    std::fprintf(out_, "\r%s\033[K", render(now).c_str());
    std::fflush(out_);
  }

  std::int64_t total_, n_ = 0;
  std::string desc_;
  std::FILE* out_;
  Clock::time_point start_, last_;
  std::vector<std::pair<std::string, double>> values_;
  bool enabled_ = false, closed_ = false;
};

}  // namespace ligm::io
