#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (what .ci/run calls).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
(cd build && ctest --output-on-failure -j2 --timeout 900)
# A short libFuzzer pass over import + SuperNet analysis (clang, ASan+UBSan; docs/hardening.md).
bash tools/fuzz.sh "${AUTOTAILOR_FUZZ_SECONDS:-60}"
