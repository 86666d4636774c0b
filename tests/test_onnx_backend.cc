// ONNX's own backend test data (Debian's libonnx-testdata): every case whose operators the
// executor registers must import, run and reproduce the expected outputs within ONNX's backend
// tolerances. Cases with unregistered operators, or that throw Unsupported, are skipped.
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "autotailor/common/error.h"
#include "autotailor/common/files.h"
#include "autotailor/exec/executor.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/import/tensor_file.h"
#include "autotailor/ops/ops.h"

namespace autotailor {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDataRoot = "/usr/share/libonnx-testdata/data";
// `real` holds only download links to large models, not models.
const std::vector<std::string> kGroups = {"node", "pytorch-converted", "pytorch-operator",
                                          "simple"};

// ONNX's backend tests compare with numpy.testing.assert_allclose(rtol=1e-3, atol=1e-7).
constexpr double kRtol = 1e-3, kAtol = 1e-7;

struct BackendCase {
  std::string group;  // "node", "pytorch-converted", ...
  std::string name;   // "test_conv_with_strides_padding"
  fs::path dir;
  std::set<std::string> missing_ops;  // operator types the executor does not register

  std::string id() const { return group + "/" + name; }
};

// Test names in gtest's listing (and so in ctest's) show the parameter: keep it short.
void PrintTo(const BackendCase& c, std::ostream* os) {
  *os << c.id();
}

// Operator types of the model's nodes that the executor does not register.
std::set<std::string> unregistered_ops(const fs::path& model) {
  onnx::ModelProto m;
  if (!m.ParseFromString(read_file(model.string()))) return {};  // the importer will say why
  std::set<std::string> missing;
  for (const onnx::NodeProto& np : m.graph().node()) {
    ir::Node n;
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    if (!ops::is_supported(n))
      missing.insert(n.domain.empty() ? n.op_type : n.domain + "." + n.op_type);
  }
  return missing;
}

// Every case directory with a model, in a stable order; empty when the package is missing.
const std::vector<BackendCase>& backend_cases() {
  static const std::vector<BackendCase> cases = [] {
    std::vector<BackendCase> v;
    for (const std::string& group : kGroups) {
      fs::path root = fs::path(kDataRoot) / group;
      std::error_code ec;
      if (!fs::is_directory(root, ec)) continue;
      std::vector<BackendCase> in_group;
      for (const auto& e : fs::directory_iterator(root, ec))
        if (fs::is_regular_file(e.path() / "model.onnx"))
          in_group.push_back({group, e.path().filename().string(), e.path(),
                              unregistered_ops(e.path() / "model.onnx")});
      std::sort(in_group.begin(), in_group.end(),
                [](const BackendCase& a, const BackendCase& b) { return a.name < b.name; });
      v.insert(v.end(), in_group.begin(), in_group.end());
    }
    return v;
  }();
  return cases;
}

std::vector<BackendCase> cases_with_registered_ops(bool registered) {
  std::vector<BackendCase> v;
  for (const BackendCase& c : backend_cases())
    if (c.missing_ops.empty() == registered) v.push_back(c);
  return v;
}

std::string test_name(const BackendCase& c) {
  std::string s = c.group + "_" + c.name;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

// input_3.pb -> 3; -1 for anything else.
int file_index(const fs::path& p, const std::string& stem) {
  std::string f = p.filename().string();
  if (f.rfind(stem, 0) != 0 || p.extension() != ".pb") return -1;
  std::string digits = f.substr(stem.size(), f.size() - stem.size() - 3);
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::stoi(digits);
}

// input_K.pb (or output_K.pb) files of one data set, ordered by K.
std::vector<fs::path> numbered_files(const fs::path& dir, const std::string& stem) {
  std::vector<std::pair<int, fs::path>> found;
  for (const auto& e : fs::directory_iterator(dir))
    if (int k = file_index(e.path(), stem); k >= 0) found.emplace_back(k, e.path());
  std::sort(found.begin(), found.end());
  std::vector<fs::path> v;
  for (auto& [k, p] : found) v.push_back(p);
  return v;
}

std::vector<fs::path> data_sets(const fs::path& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0)
      v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

// Empty when `got` matches `want` in dtype, shape and values (|a-b| <= atol + rtol*|b|, NaN
// equal to NaN; integers and booleans exactly); otherwise what differs.
std::string compare(const at::Tensor& got, const at::Tensor& want) {
  if (got.scalar_type() != want.scalar_type())
    return fmt::format("dtype {} differs from expected {}", at::toString(got.scalar_type()),
                       at::toString(want.scalar_type()));
  if (got.sizes() != want.sizes()) {
    std::ostringstream ss;
    ss << "shape " << got.sizes() << " differs from expected " << want.sizes();
    return ss.str();
  }
  if (want.numel() == 0) return "";
  if (!at::isFloatingType(want.scalar_type())) {
    if (at::equal(got, want)) return "";
    at::Tensor diff = at::ne(got, want).reshape({-1});
    int64_t bad = diff.sum().item<int64_t>();
    int64_t first = diff.nonzero().reshape({-1})[0].item<int64_t>();
    return fmt::format("{} of {} values differ; first at flat index {}: got {}, expected {}", bad,
                       want.numel(), first, got.reshape({-1})[first].item<double>(),
                       want.reshape({-1})[first].item<double>());
  }
  at::Tensor a = got.to(at::kDouble).reshape({-1}), b = want.to(at::kDouble).reshape({-1});
  // Infinities must match exactly (as in numpy): |inf - -inf| <= inf would let them pass.
  at::Tensor ok =
      (at::le(at::abs(a - b), kAtol + kRtol * at::abs(b)) & at::isfinite(a) & at::isfinite(b)) |
      at::eq(a, b) | (at::isnan(a) & at::isnan(b));
  if (ok.all().item<bool>()) return "";
  at::Tensor bad = at::logical_not(ok);
  int64_t first = bad.nonzero().reshape({-1})[0].item<int64_t>();
  at::Tensor finite_diff = at::nan_to_num(at::abs(a - b), 0.0, 0.0, 0.0);
  return fmt::format(
      "{} of {} values outside tolerance; first at flat index {}: got {}, expected {}; max |diff| "
      "{}",
      bad.sum().item<int64_t>(), want.numel(), first, a[first].item<double>(),
      b[first].item<double>(), finite_diff.max().item<double>());
}

enum class Outcome { Passed, Unsupported, Failed };

struct CaseResult {
  Outcome outcome = Outcome::Passed;
  std::string reason;                 // why it was skipped or failed
  std::set<std::string> missing_ops;  // when skipped for unregistered operators
};

CaseResult run_case(const BackendCase& c) {
  CaseResult r;
  fs::path model = c.dir / "model.onnx";
  try {
    r.missing_ops = c.missing_ops;
    if (!r.missing_ops.empty()) {
      r.outcome = Outcome::Unsupported;
      r.reason = "operator(s) not registered:";
      for (const std::string& op : r.missing_ops) r.reason += " " + op;
      return r;
    }
    std::shared_ptr<const ir::Graph> g = import_onnx(model.string());
    exec::Executor ex(g);
    std::vector<fs::path> sets = data_sets(c.dir);
    if (sets.empty()) throw Error("the case has no test_data_set_N directory");
    for (const fs::path& set : sets) {
      std::vector<at::Tensor> inputs, expected;
      for (const fs::path& p : numbered_files(set, "input_"))
        inputs.push_back(exec::tensor_from_const(read_tensor_file(p.string())));
      for (const fs::path& p : numbered_files(set, "output_"))
        expected.push_back(exec::tensor_from_const(read_tensor_file(p.string())));
      std::vector<at::Tensor> outputs;
      {
        c10::InferenceMode guard;
        outputs = ex.run(inputs);
      }
      if (outputs.size() != expected.size())
        throw Error(fmt::format("{} output(s), expected {}", outputs.size(), expected.size()));
      for (size_t k = 0; k < outputs.size(); ++k) {
        std::string diff = compare(outputs[k], expected[k]);
        if (!diff.empty()) {
          r.outcome = Outcome::Failed;
          r.reason = fmt::format("{}: output {} ('{}'): {}", set.filename().string(), k,
                                 g->tensor(g->outputs[k]).name, diff);
          return r;
        }
      }
    }
  } catch (const Unsupported& e) {
    r.outcome = Outcome::Unsupported;
    r.reason = e.what();
  } catch (const std::exception& e) {
    r.outcome = Outcome::Failed;
    std::string msg = e.what();
    r.reason = msg.substr(0, msg.find('\n'));
  }
  return r;
}

class OnnxBackend : public ::testing::TestWithParam<BackendCase> {};

TEST_P(OnnxBackend, Case) {
  const BackendCase& c = GetParam();
  CaseResult r = run_case(c);
  if (r.outcome == Outcome::Unsupported) GTEST_SKIP() << r.reason;
  EXPECT_EQ(r.outcome, Outcome::Passed) << c.id() << ": " << r.reason;
}

// The comparison itself: ONNX's elementwise tolerance, NaN equal to NaN, exact integers,
// dtype and shape checked.
TEST(OnnxBackend, ComparisonFollowsOnnxTolerances) {
  at::Tensor want = at::tensor({1000.0f, 0.0f, NAN, INFINITY});
  EXPECT_EQ(compare(want.clone(), want), "");
  EXPECT_EQ(compare(at::tensor({1000.9f, 0.0f, NAN, INFINITY}), want), "");  // within rtol
  EXPECT_NE(compare(at::tensor({1001.5f, 0.0f, NAN, INFINITY}), want), "");
  EXPECT_NE(compare(at::tensor({1000.0f, 1e-6f, NAN, INFINITY}), want), "");  // beyond atol
  EXPECT_NE(compare(at::tensor({1000.0f, 0.0f, 0.0f, INFINITY}), want), "");
  EXPECT_NE(compare(at::tensor({1000.0f, 0.0f, NAN, -INFINITY}), want), "");
  EXPECT_NE(compare(want.to(at::kDouble), want), "");
  EXPECT_NE(compare(want.reshape({2, 2}), want), "");
  EXPECT_NE(compare(at::tensor({1000, 1}), at::tensor({1000, 0})), "");
}

std::string case_test_name(const ::testing::TestParamInfo<BackendCase>& info) {
  return test_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(Testdata, OnnxBackend,
                         ::testing::ValuesIn(cases_with_registered_ops(true)), case_test_name);
// ctest runs each test in its own process, and LibTorch takes ~0.5 s to load: cases that use
// unregistered operators are listed as disabled (ctest shows them as "Not Run (Disabled)")
// instead of starting hundreds of processes that would only skip. The summary counts them.
INSTANTIATE_TEST_SUITE_P(DISABLED_UnregisteredOps, OnnxBackend,
                         ::testing::ValuesIn(cases_with_registered_ops(false)), case_test_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OnnxBackend);

// All cases in one process (ctest runs one test per process, so per-case results cannot be
// collected afterwards): the counts per directory, the unregistered operators by how many
// cases they block, every case a registered operator refused, and every failure.
TEST(OnnxBackend, Summary) {
  const auto& cases = backend_cases();
  if (cases.empty()) GTEST_SKIP() << kDataRoot << " is missing: install libonnx-testdata";
  struct Counts {
    int passed = 0, skipped = 0, failed = 0;
  };
  std::map<std::string, Counts> by_group;
  std::map<std::string, int> blocking_ops;
  std::vector<std::string> failures, refused;
  Counts total;
  for (const BackendCase& c : cases) {
    CaseResult r = run_case(c);
    Counts& g = by_group[c.group];
    switch (r.outcome) {
      case Outcome::Passed:
        ++g.passed, ++total.passed;
        break;
      case Outcome::Unsupported:
        ++g.skipped, ++total.skipped;
        for (const std::string& op : r.missing_ops) ++blocking_ops[op];
        if (r.missing_ops.empty()) refused.push_back(c.id() + ": " + r.reason);
        break;
      case Outcome::Failed:
        ++g.failed, ++total.failed;
        failures.push_back(c.id() + ": " + r.reason);
        break;
    }
  }
  std::string groups;
  for (const auto& [name, n] : by_group)
    groups += fmt::format("{}{} {}/{}/{}", groups.empty() ? "" : ", ", name, n.passed, n.skipped,
                          n.failed);
  std::vector<std::pair<int, std::string>> top;
  for (const auto& [op, n] : blocking_ops) top.emplace_back(-n, op);
  std::sort(top.begin(), top.end());
  std::string top_ops;
  for (size_t i = 0; i < top.size(); ++i)
    top_ops += fmt::format("{}{} ({})", i ? ", " : "", top[i].second, -top[i].first);
  std::printf(
      "ONNX backend cases: %d run (passed), %d skipped as unsupported, %d failed, by directory "
      "(passed/skipped/failed): %s\n",
      total.passed, total.skipped, total.failed, groups.c_str());
  std::printf("Unregistered operators, by the number of cases they block: %s\n", top_ops.c_str());
  // Registered operators that refused a case (Unsupported from the importer or a kernel).
  for (const std::string& f : refused) std::printf("UNSUPPORTED %s\n", f.c_str());
  for (const std::string& f : failures) std::printf("FAILED %s\n", f.c_str());
  EXPECT_EQ(total.failed, 0) << "see the FAILED lines above";
}

}  // namespace
}  // namespace autotailor
