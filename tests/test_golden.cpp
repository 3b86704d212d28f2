// Forward values and gradients against PyTorch 1.13 goldens (tools/make_goldens.py), on the
// CPU in float64. The table of cases is tests/golden_cases.hpp.
#include "golden_cases.hpp"

using namespace th;

TEST_CASE("every op matches PyTorch in float64, forward and backward") {
  const auto cases = golden_case_names();
  const auto table = golden_ops<double>(Device::cpu());
  CHECK(cases.size() == table.size());
  for (const auto& [name, _] : table) {
    CAPTURE(name);
    CHECK_MESSAGE(cases.count(name), "no golden for ", name, ": rerun tools/make_goldens.py");
  }
  for (const auto& name : cases) {
    CAPTURE(name);
    auto it = table.find(name);
    REQUIRE_MESSAGE(it != table.end(), "golden case ", name, " has no C++ counterpart in golden_cases.hpp");
    check_against_golden(name, run_golden_case<double>(name, it->second, Device::cpu()), 1e-9, 1e-7);
  }
}

TEST_CASE("every op at zero inputs matches PyTorch: kinks, removable singularities, empty norms") {
  const auto cases = golden_case_names("ops_at_zero");
  const auto table = golden_ops<double>(Device::cpu());
  for (const auto& name : cases) {
    CAPTURE(name);
    // topk of equal values: which k PyTorch returns is unspecified (ligm's sort is stable).
    if (name == "topk") continue;
    auto it = table.find(name);
    REQUIRE(it != table.end());
    check_against_golden(name, run_golden_case<double>(name, it->second, Device::cpu(), "ops_at_zero"), 1e-9, 1e-7,
                         "ops_at_zero");
  }
}

TEST_CASE("every op at inputs times 100 matches PyTorch: overflow and saturation") {
  const auto table = golden_ops<double>(Device::cpu());
  for (const auto& name : golden_case_names("ops_large")) {
    CAPTURE(name);
    auto it = table.find(name);
    REQUIRE(it != table.end());
    check_against_golden(name, run_golden_case<double>(name, it->second, Device::cpu(), "ops_large"), 1e-9, 1e-7,
                         "ops_large");
  }
}
