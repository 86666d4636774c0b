// libFuzzer target: ONNX bytes -> import -> SuperNet analysis -> importance reordering ->
// derived subnets. The same bytes are also read as the project's other input formats: an
// ONNX TensorProto (`run --input`, tensor .pb files) and, when they start with '{', a subnet
// config and a space config (JSON) against a fixed small SuperNet. Any input must end in a
// result or in autotailor::Error (a one-line reason); anything else (a crash, a sanitizer
// report, another exception, a hang) is a bug.
//
// Built by tools/fuzz.sh (clang, -DAUTOTAILOR_FUZZ=ON); see docs/hardening.md. Without
// libFuzzer (GCC builds) the same function is driven by tests/fuzz/replay_main.cc, which runs
// the corpus and the crash regressions as a ctest.
#include <onnx/onnx_pb.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "../../src/import/proto_convert.h"
#include "../model_builder.h"
#include "autotailor/common/error.h"
#include "autotailor/common/hash.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/supernet/supernet.h"

namespace {

using namespace autotailor;

// conv(c1) -> relu -> [conv(c2) -> relu -> conv(c3) + identity] -> relu -> GAP -> flatten ->
// gemm: two elastic width groups ("c1", "c2"), one skippable block in one stage, an elastic
// 5x5 kernel, elastic resolution. tools/fuzz_seeds.py writes JSON seeds with these names.
const supernet::Supernet& fixed_supernet() {
  static const std::unique_ptr<supernet::Supernet> s = [] {
    test::ModelBuilder b;
    b.input("x", {1, 3, 16, 16}).output("y");
    b.weight("w1", {16, 3, 3, 3}).weight("w2", {16, 16, 5, 5}).weight("w3", {16, 16, 3, 3});
    b.weight("wf", {16, 10}).weight("bf", {10});
    b.node("Conv", {"x", "w1"}, {"a"}, {{"pads", {1, 1, 1, 1}}}, "c1");
    b.node("Relu", {"a"}, {"ar"});
    b.node("Conv", {"ar", "w2"}, {"b"}, {{"pads", {2, 2, 2, 2}}}, "c2");
    b.node("Relu", {"b"}, {"br"});
    b.node("Conv", {"br", "w3"}, {"c"}, {{"pads", {1, 1, 1, 1}}}, "c3");
    b.node("Add", {"c", "ar"}, {"s"}, {}, "add");
    b.node("Relu", {"s"}, {"sr"});
    b.node("GlobalAveragePool", {"sr"}, {"p"});
    b.node("Flatten", {"p"}, {"f"});
    b.node("Gemm", {"f", "wf", "bf"}, {"y"}, {}, "fc");
    return std::make_unique<supernet::Supernet>(import_onnx_bytes(b.bytes(), "fixed.onnx"),
                                                supernet::SpaceOptions{});
  }();
  return *s;
}

void as_model(const std::string& bytes) {
  try {
    auto g = import_onnx_bytes(bytes, "fuzz.onnx");
    supernet::Supernet sn(g, {});
    (void)supernet::space_to_json(sn.space());
    auto reordered = sn.reordered_by_importance();
    (void)reordered.derive(supernet::min_subnet(reordered.space()));
    (void)reordered.derive(supernet::random_subnet(reordered.space(), fnv1a64(bytes)));
  } catch (const Error&) {
    // Refused with a reason: the expected outcome for most inputs.
  }
}

void as_tensor(const std::string& bytes) {
  onnx::TensorProto t;
  if (!t.ParseFromString(bytes) || t.data_type() == 0) return;
  try {
    (void)proto::to_const(t, "fuzz.pb");
  } catch (const Error&) {
  }
}

void as_json(const std::string& bytes) {
  const supernet::Supernet& s = fixed_supernet();
  try {
    supernet::SubnetConfig c = supernet::subnet_from_json(bytes, "fuzz.json", s.space());
    (void)s.derive(c);
  } catch (const Error&) {
  }
  try {
    supernet::SearchSpace narrowed = s.space();
    supernet::apply_space_json(narrowed, bytes, "fuzz-space.json");
    (void)supernet::space_to_json(narrowed);
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (!bytes.empty() && bytes[0] == '{') {
    as_json(bytes);
    return 0;
  }
  as_model(bytes);
  as_tensor(bytes);
  return 0;
}
