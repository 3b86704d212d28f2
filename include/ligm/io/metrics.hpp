// Metrics as JSON lines: one object per record, flushed as it is written, so a plot (or a
// person with `tail -f`) can read a run while it trains. tools/plot turns a file into a PNG.
//
//   io::MetricsLog log("run/metrics.jsonl");
//   log.write({{"step", step}, {"loss", loss.item()}, {"lr", lr}});
//   auto rows = io::read_metrics("run/metrics.jsonl");
#pragma once
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ligm/core/error.hpp"

namespace ligm::io {

class MetricsLog {
 public:
  // append: keep the records already there (a resumed run continues its file).
  explicit MetricsLog(std::string path, bool append = false) : path_(std::move(path)) {
    f_.open(path_, append ? std::ios::app : std::ios::trunc);
    check(f_.good(), "MetricsLog", "cannot open \"", path_, "\" for writing");
  }
  void write(const nlohmann::json& record) {
    check(record.is_object(), "MetricsLog", "a record must be a JSON object, got ", record.dump());
    f_ << record.dump() << '\n';
    f_.flush();
    check(f_.good(), "MetricsLog", "writing \"", path_, "\" failed");
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream f_;
};

// Every record of a metrics file; a line that is not a JSON object is an error naming it.
inline std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::ifstream f(path);
  check(f.good(), "read_metrics", "cannot open \"", path, "\"");
  std::vector<nlohmann::json> rows;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    check(!j.is_discarded() && j.is_object(), "read_metrics", path, ":", n, " is not a JSON object");
    rows.push_back(std::move(j));
  }
  return rows;
}

}  // namespace ligm::io
