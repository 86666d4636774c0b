// libFuzzer target: ONNX bytes -> import -> SuperNet analysis -> importance reordering ->
// derived subnets. Any input must end in a graph or in autotailor::Error (a one-line reason);
// anything else (a crash, a sanitizer report, another exception, a hang) is a bug.
//
// Built by tools/fuzz.sh (clang, -DAUTOTAILOR_FUZZ=ON); see docs/hardening.md. Without
// libFuzzer (GCC builds) the same function is driven by tests/fuzz/replay_main.cc, which runs
// the corpus and the crash regressions as a ctest.
#include <cstddef>
#include <cstdint>
#include <string>

#include "autotailor/common/error.h"
#include "autotailor/common/hash.h"
#include "autotailor/import/onnx_import.h"
#include "autotailor/supernet/supernet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace autotailor;
  std::string bytes(reinterpret_cast<const char*>(data), size);
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
  return 0;
}
