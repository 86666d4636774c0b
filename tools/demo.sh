#!/usr/bin/env bash
# The main job on the shipped demo model: sets up, builds, then
#   autotailor compile models/resnet_fm.onnx --device exynos1380 -o build/demo/out --data fashion-mnist
# (a quarter-width ResNet-18 trained on Fashion-MNIST, see models/README.md): SuperNet,
# fine-tuning, latency LUT for the Exynos 1380 (an analytic estimate: that phone is not here),
# accuracy predictor, search for 30/50/70/90% of the full model's latency, and export of the
# variants with their measured accuracy. A rerun reuses every finished stage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
out=build/demo/out
build/autotailor compile models/resnet_fm.onnx --device exynos1380 -o "$out" --data fashion-mnist
build/autotailor inspect "$out/variants/variant2_50pct.onnx" | sed -n '/^params/,/^MACs/p'
echo "report: $out/report.html"
