#!/usr/bin/env bash
# Fuzzes ONNX import + SuperNet analysis with libFuzzer (clang, ASan+UBSan) for SECONDS
# (default 600). With AUTOTAILOR_FUZZ_RUNS=N it stops after N inputs instead and uses seed 1
# on a fresh corpus: a deterministic pass, what CI runs after the test suite (tools/test.sh),
# so that CI does not turn red on a bug a random seed happens to find that day; finding new
# bugs is what the timed runs are for. See docs/hardening.md.
#
# build-fuzz/        clang build of fuzz_import (only the sources it covers)
# build-fuzz/seeds/  tools/fuzz_seeds.py's small models + the ONNX backend test data models
#                    (libFuzzer reads corpus directories recursively)
# build-fuzz/corpus/ what libFuzzer found interesting; kept between runs
# build-fuzz/crashes/ inputs that crashed: copy each to tests/fuzz/regressions/ with the fix
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
bash tools/setup.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAUTOTAILOR_FUZZ=ON >/dev/null
ninja -C build-fuzz fuzz_import
seeds=build-fuzz/seeds
if [ ! -f "$seeds.complete" ]; then
  rm -rf "$seeds" && mkdir -p "$seeds/backend"
  /usr/bin/python3 tools/fuzz_seeds.py --out "$seeds" 2> >(grep -v Warning >&2)
  for m in /usr/share/libonnx-testdata/data/node/*/model.onnx; do
    cp "$m" "$seeds/backend/$(basename "$(dirname "$m")").onnx"
  done
  touch "$seeds.complete"
fi
corpus=build-fuzz/corpus
limits=(-max_total_time="$secs")
if [ -n "${AUTOTAILOR_FUZZ_RUNS:-}" ]; then
  corpus=build-fuzz/corpus-ci
  rm -rf "$corpus"
  limits=(-runs="$AUTOTAILOR_FUZZ_RUNS" -seed=1)
fi
mkdir -p "$corpus" build-fuzz/crashes
# Leaks are reported too; a crash, sanitizer report, uncaught exception, >10 s input or
# >4 GiB of memory stops the run with a non-zero status and the input under crashes/.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "fuzz: libFuzzer on import + SuperNet analysis, ${limits[*]} (log: build-fuzz/fuzz.log)" >&2
status=0
build-fuzz/fuzz_import "$corpus" "$seeds" tests/fuzz/regressions \
  "${limits[@]}" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
  -artifact_prefix=build-fuzz/crashes/ -print_final_stats=1 >build-fuzz/fuzz.log 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  tail -n 80 build-fuzz/fuzz.log >&2
  echo "fuzz: FAILED (status $status); the input is in build-fuzz/crashes/" >&2
  exit "$status"
fi
grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)" \
  build-fuzz/fuzz.log >&2 || true
echo "fuzz: no crash" >&2
