#!/usr/bin/env bash
# Installs what is missing, then configures and builds build/autotailor (and the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
