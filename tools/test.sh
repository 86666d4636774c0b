#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (what .ci/run calls).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
(cd build && ctest --output-on-failure -j2 --timeout 900)
# A short, deterministic libFuzzer pass over import + SuperNet analysis (clang, ASan+UBSan;
# seed 1, a fixed number of inputs; docs/hardening.md).
AUTOTAILOR_FUZZ_RUNS="${AUTOTAILOR_FUZZ_RUNS:-60000}" bash tools/fuzz.sh 600
