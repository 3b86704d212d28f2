// A profile as a Chrome trace (the JSON "trace event" format): open it in Perfetto
// (ui.perfetto.dev) or chrome://tracing to see every scope on a timeline, nested as it ran.
//
//   profiler::Profile prof;  ...  prof.stop();
//   io::save_chrome_trace(prof, "step.json");
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ligm/autograd/profiler.hpp"
#include "ligm/core/file.hpp"

namespace ligm::io {

// One complete event ("ph": "X") per closed scope, in microseconds from the profile's start;
// the scope's self time, depth, memory (bytes, self_bytes) and FLOPs go into its "args".
inline nlohmann::json chrome_trace(const profiler::Profile& profile) {
  nlohmann::json events = nlohmann::json::array();
  for (const profiler::Event& e : profile.events())
    events.push_back({{"name", e.name},
                      {"ph", "X"},
                      {"ts", double(e.start_ns) / 1e3},
                      {"dur", double(e.duration_ns) / 1e3},
                      {"pid", 0},
                      {"tid", 0},
                      {"args", {{"self_us", double(e.self_ns) / 1e3}, {"depth", e.depth}, {"bytes", e.bytes}, {"self_bytes", e.self_bytes}, {"flops", e.flops}}}});
  return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
}

// Written atomically, as every file ligm writes.
inline void save_chrome_trace(const profiler::Profile& profile, const std::string& path) {
  const std::string text = chrome_trace(profile).dump();
  write_file_atomic(path, std::vector<unsigned char>(text.begin(), text.end()), "save_chrome_trace");
}

}  // namespace ligm::io
