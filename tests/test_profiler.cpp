// The profiler: scopes nest and time what they enclose; modules, backward nodes and optimizer
// steps open theirs; the summary and the Chrome trace agree with the events.
#include <ligm/io/trace.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "helpers.hpp"

using namespace th;
namespace pf = ligm::profiler;

namespace {

std::map<std::string, pf::Row> rows_by_name(const pf::Profile& p) {
  std::map<std::string, pf::Row> out;
  for (const auto& r : p.summary()) out[r.name] = r;
  return out;
}

void busy_for(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

}  // namespace

TEST_CASE("profiler: scopes outside a profile record nothing and cost no names") {
  CHECK_FALSE(pf::recording());
  int calls = 0;
  {
    pf::Scope s([&] {
      ++calls;
      return std::string("never");
    });
  }
  CHECK(calls == 0);  // the name is made only while a profile records
  pf::Profile p;
  CHECK(pf::recording());
  p.stop();
  CHECK_FALSE(pf::recording());
  { pf::Scope s("after stop"); }
  CHECK(p.events().empty());
}

TEST_CASE("profiler: nested scopes, self and total time, repeated names counted once in total") {
  pf::Profile p;
  {
    pf::Scope outer("outer");
    busy_for(std::chrono::milliseconds(10));
    {
      pf::Scope inner("inner");
      busy_for(std::chrono::milliseconds(60));
      { pf::Scope again("inner"); }  // a scope inside one of its own name
    }
  }
  p.stop();
  REQUIRE(p.events().size() == 3);
  const auto& in2 = p.events()[0];
  const auto& in1 = p.events()[1];
  const auto& out = p.events()[2];  // events in the order they closed
  CHECK(in2.name == "inner");
  CHECK(in2.depth == 2);
  CHECK(in2.repeated);
  CHECK(in1.depth == 1);
  CHECK_FALSE(in1.repeated);
  CHECK(out.name == "outer");
  CHECK(out.depth == 0);
  CHECK(out.duration_ns >= 70'000'000);
  CHECK(in1.duration_ns >= 60'000'000);
  CHECK(out.self_ns == out.duration_ns - in1.duration_ns);
  CHECK(in1.self_ns == in1.duration_ns - in2.duration_ns);
  CHECK(in1.start_ns >= out.start_ns);
  CHECK(in1.start_ns + in1.duration_ns <= out.start_ns + out.duration_ns);

  auto rows = rows_by_name(p);
  CHECK(rows["inner"].calls == 2);
  CHECK(rows["outer"].calls == 1);
  // "inner" inside "inner" is not counted twice in the total.
  CHECK(rows["inner"].total_ms == doctest::Approx(double(in1.duration_ns) / 1e6));
  CHECK(rows["inner"].self_ms == doctest::Approx(double(in1.self_ns + in2.self_ns) / 1e6));
  CHECK(p.summary().front().name == "inner");  // sorted by self time: 60 ms before 10 ms
  CHECK(p.wall_ms() >= rows["outer"].total_ms);

  const std::string table = p.table();
  CHECK(table.find("outer") != std::string::npos);
  CHECK(table.find("(outside scopes)") != std::string::npos);
  CHECK(table.find("(wall)") != std::string::npos);
  CHECK(p.table(1).find("(1 more names)") != std::string::npos);
}

TEST_CASE("profiler: one profile per thread; a scope open across stop() is left out") {
  pf::Profile p;
  CHECK_THROWS_WITH_AS(pf::Profile(), doctest::Contains("already recording"), ligm::Error);
  {
    pf::Scope open("open at stop");
    { pf::Scope closed("closed"); }
    p.stop();
  }
  REQUIRE(p.events().size() == 1);
  CHECK(p.events()[0].name == "closed");
  pf::Profile q;  // a new one may start once the first has stopped
  { pf::Scope s("second"); }
  q.stop();
  CHECK(q.events().size() == 1);
  CHECK(p.events().size() == 1);
}

TEST_CASE("profiler: a scope left by an exception closes; the stack stays consistent") {
  pf::Profile p;
  {
    pf::Scope outer("outer");
    try {
      pf::Scope failing("failing");
      throw ligm::Error("boom");
    } catch (const ligm::Error&) {
    }
    { pf::Scope next("next"); }
  }
  p.stop();
  REQUIRE(p.events().size() == 3);
  CHECK(p.events()[0].name == "failing");
  CHECK(p.events()[1].name == "next");
  CHECK(p.events()[1].depth == 1);
  CHECK(p.events()[2].name == "outer");
}

TEST_CASE("profiler: a training step records its modules, backward nodes and optimizer step") {
  Generator g(3);
  nn::Sequential<float> net(nn::Conv2d<float>(1, 4, 3, {.padding = 1}, true, g), nn::BatchNorm2d<float>(4), nn::ReLU<float>(),
                            nn::Flatten<float>(), nn::Linear<float>(4 * 6 * 6, 5, true, g));
  optim::AdamW<float> opt(net.parameters(), {.lr = 1e-3});
  auto x = randn<float>({2, 1, 6, 6}, g);
  auto labels = tensor<std::int64_t>({1, 4}, {2});
  pf::Profile p;
  const int steps = 3;
  for (int s = 0; s < steps; ++s) {
    pf::Scope step("step");
    auto loss = nn::functional::cross_entropy(net(x), labels);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  p.stop();
  auto rows = rows_by_name(p);
  for (const char* name : {"step", "Sequential", "Conv2d", "BatchNorm2d+ReLU", "Flatten", "Linear", "backward",
                           "LinearBackward", "CrossEntropyBackward", "AccumulateGrad", "AdamW.step"}) {
    INFO(name, "\n", p.table(100));
    CHECK(rows[name].calls >= steps);
  }
  CHECK(rows["Sequential"].calls == steps);
  CHECK(rows["Linear"].calls == steps);
  CHECK(rows["AdamW.step"].calls == steps);
  CHECK(rows["AccumulateGrad"].calls == steps * 6);  // conv w, b; bn w, b; linear w, b
  // Every module, backward and optimizer scope sits inside a step.
  for (const auto& e : p.events()) CHECK((e.name == "step") == (e.depth == 0));
  // The steps' self times and their scopes' add up to the steps' totals.
  double self = 0;
  for (const auto& r : p.summary()) self += r.self_ms;
  CHECK(self == doctest::Approx(rows["step"].total_ms).epsilon(1e-6));
}

TEST_CASE("profiler: a replaced module records its replacement only") {
  Generator g(4);
  nn::Sequential<float> net(nn::Linear<float>(3, 3, true, g), nn::ReLU<float>());
  const auto old = net.named_children()[1].second;
  net.replace_module("1", std::make_shared<nn::GELU<float>>());
  pf::Profile p;
  (*old)(randn<float>({2, 3}, g));  // a handle to the old module runs the new one
  p.stop();
  auto rows = rows_by_name(p);
  CHECK(rows["GELU"].calls == 1);
  CHECK(rows.count("ReLU") == 0);
}

TEST_CASE("profiler: the Chrome trace holds every event; it is written atomically") {
  pf::Profile p;
  {
    pf::Scope a("a \"quoted\" name");
    { pf::Scope b("b"); }
  }
  p.stop();
  const auto trace = io::chrome_trace(p);
  REQUIRE(trace["traceEvents"].size() == 2);
  CHECK(trace["traceEvents"][0]["name"] == "b");
  CHECK(trace["traceEvents"][1]["name"] == "a \"quoted\" name");
  CHECK(trace["traceEvents"][1]["ph"] == "X");
  CHECK(trace["traceEvents"][1]["args"]["depth"] == 0);
  const auto dir = std::filesystem::temp_directory_path() / "ligm_test_profiler";
  std::filesystem::create_directories(dir);
  const auto path = (dir / "trace.json").string();
  io::save_chrome_trace(p, path);
  const auto bytes = read_file(path, "test");
  const auto back = nlohmann::json::parse(bytes.begin(), bytes.end());
  CHECK(back == trace);
  std::filesystem::remove_all(dir);
}

TEST_CASE("memory: tensors' bytes per device, the peak and its reset") {
  const std::int64_t base = memory_allocated(Device::cpu());
  reset_peak_memory_stats(Device::cpu());
  CHECK(max_memory_allocated(Device::cpu()) == base);
  {
    auto a = Tensor<float>::empty({1000});
    CHECK(memory_allocated() == base + 4000);
    {
      auto b = Tensor<double>::empty({10, 10});
      auto view = b.narrow(0, 2, 3);  // a view allocates nothing
      CHECK(memory_allocated() == base + 4800);
    }
    CHECK(memory_allocated() == base + 4000);
    CHECK(max_memory_allocated() == base + 4800);
    reset_peak_memory_stats();
    CHECK(max_memory_allocated() == base + 4000);
    auto empty = Tensor<float>::empty({0, 3});  // no bytes, nothing counted
    CHECK(memory_allocated() == base + 4000);
  }
  CHECK(memory_allocated() == base);
  CHECK(memory_allocated(Device::cuda(7)) == 0);  // a device that holds nothing
  CHECK(memory_allocated(Device::cuda(1000)) == 0);  // beyond the counted devices: 0, no error
  CHECK(memory_allocated(Device::cuda(-1)) == 0);    // not the CPU's count
}

TEST_CASE("profiler: each scope notes the tensor memory it leaves allocated") {
  Tensor<float> kept;
  pf::Profile p;
  {
    pf::Scope outer("outer");
    auto temp = Tensor<float>::empty({250});  // 1000 bytes, freed before outer ends
    {
      pf::Scope inner("inner");
      kept = Tensor<float>::empty({500});  // 2000 bytes that outlive both scopes
    }
  }
  p.stop();
  REQUIRE(p.events().size() == 2);
  CHECK(p.events()[0].bytes == 2000);
  CHECK(p.events()[0].self_bytes == 2000);
  CHECK(p.events()[1].bytes == 2000);  // temp came and went
  CHECK(p.events()[1].self_bytes == 0);
  CHECK(p.table().find("self MB") != std::string::npos);
  CHECK(io::chrome_trace(p)["traceEvents"][0]["args"]["bytes"] == 2000);
}

TEST_CASE("profiler: a module's forward holds its output and saved tensors; backward gives them back") {
  Generator g(5);
  nn::Linear<float> lin(64, 32, true, g);
  auto x = randn<float>({16, 64}, g);
  pf::Profile p;
  auto y = lin(x);
  const auto after_forward = p.events().back();
  y.sum().backward();
  p.stop();
  CHECK(after_forward.name == "Linear");
  CHECK(after_forward.bytes >= 16 * 32 * 4);  // at least the output
  std::int64_t backward = 0;
  for (const auto& e : p.events())
    if (e.name == "backward") backward = e.bytes;
  CHECK(backward > 0);  // the parameters' gradients (32 * 64 + 32 floats) stay allocated
}

TEST_CASE("FlopCounter and the profiler count the FLOPs of matmuls, convolutions and attention") {
  Generator g(4);
  // An MLP 784-256-256-10 on 8 inputs that need no gradient: forward 2 B sum(in out); backward
  // the same for the weights, and the input gradients of layers 2 and 3 only.
  nn::Sequential<float> mlp(nn::Linear<float>(784, 256, true, g), nn::ReLU<float>(), nn::Linear<float>(256, 256, true, g),
                            nn::ReLU<float>(), nn::Linear<float>(256, 10, true, g));
  const auto x = randn<float>({8, 784}, g);
  const double fwd = 2.0 * 8 * (784 * 256 + 256 * 256 + 256 * 10);
  const double dx = 2.0 * 8 * (256 * 256 + 256 * 10);
  {
    pf::FlopCounter outer;
    pf::Profile prof;
    Tensor<float> loss;
    {
      pf::FlopCounter forward;
      loss = mlp(x).sum();
      CHECK(forward.total() == fwd);
    }
    CHECK(outer.total() == fwd);  // an inner counter's count reaches the outer one
    loss.backward();
    CHECK(outer.total() == 2 * fwd + dx);
    prof.stop();
    CHECK(prof.total_flops() == 2 * fwd + dx);
    const auto rows = rows_by_name(prof);
    CHECK(rows.at("Linear").flops == fwd);
    CHECK(rows.at("LinearBackward").flops == fwd + dx);
    CHECK(rows.at("Linear").gflops_per_s() > 0);
    CHECK(rows.at("ReLU").flops == 0);
    CHECK(prof.table().find("GFLOP/s") != std::string::npos);
  }
  {  // A convolution: three passes when both the input and the weight need gradients.
    auto img = randn<float>({2, 3, 8, 8}, g).requires_grad_();
    auto w = randn<float>({4, 3, 3, 3}, g).requires_grad_();
    pf::FlopCounter flops;
    auto y = conv2d(img, w, {}, {.padding = 1});
    const double pass = 2.0 * 2 * 4 * 8 * 8 * 3 * 3 * 3;
    CHECK(flops.total() == pass);
    y.sum().backward();
    CHECK(flops.total() == 3 * pass);
  }
  {  // Attention from a packed projection: q k^T and p v forward, four products backward.
    auto qkv = randn<float>({2, 5, 3 * 2 * 4}, g).requires_grad_();  // B 2, N 5, 2 heads of 4
    pf::FlopCounter flops;
    auto out = packed_attention(qkv, 2);
    const double product = 2.0 * 5 * 5 * 4 * (2 * 2);  // one N x N x Dh product over B H items
    CHECK(flops.total() == 2 * product);
    out.sum().backward();
    CHECK(flops.total() == 6 * product);
  }
  // Nothing counts without a counter or a profile, and a counter outside sees nothing after it ends.
  double seen = 0;
  {
    pf::FlopCounter c;
    { pf::FlopCounter inner; }
    seen = c.total();
  }
  CHECK(seen == 0);
}
