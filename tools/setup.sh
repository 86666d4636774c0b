#!/usr/bin/env bash
# Installs everything autotailor needs on Debian 12, as root. Idempotent and quiet:
# a second run installs nothing and takes seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libopenblas0-openmp libgloo-dev libdnnl-dev
  libonnx-dev libprotobuf-dev protobuf-compiler
  libcli11-dev libspdlog-dev libgtest-dev nlohmann-json3-dev libstb-dev zlib1g-dev
  python3-torch python3-torchvision python3-onnx python3-numpy
  dataset-fashion-mnist libonnx-testdata chromium
  clang libclang-rt-14-dev
)
# The image may carry its own Node.js (whose package conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ONNX Runtime, the independent check of our exports (npm registry; its install script
# downloads extras and fails offline, hence --ignore-scripts).
ort="$here/third_party/ort"
if [ ! -f "$ort/node_modules/onnxruntime-node/package.json" ]; then
  echo "setup: installing onnxruntime-node into $ort" >&2
  mkdir -p "$ort"
  (cd "$ort" && npm install --silent --no-audit --no-fund --ignore-scripts onnxruntime-node@1.30.0 >/dev/null)
fi
