#!/usr/bin/env bash
# The main job on a demo model: sets up, builds, exports torchvision's mobilenet_v2 (random
# seeded weights) with a reference input and PyTorch's output, then inspects, runs and
# benchmarks it, turns it into a SuperNet and exports its smallest member. Until `compile` and
# the trained demo model in models/ exist, this is the end-to-end path.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
demo=build/demo
/usr/bin/python3 tools/export_models.py --out "$demo" --models mobilenet_v2
build/autotailor inspect "$demo/mobilenet_v2.onnx" --dot "$demo/mobilenet_v2.dot" >"$demo/inspect.txt"
sed -n '1,40p' "$demo/inspect.txt"
build/autotailor run "$demo/mobilenet_v2.onnx" --input "$demo/mobilenet_v2.in4.pb" --output "$demo/out4.pb"
/usr/bin/python3 - "$demo/out4.pb" "$demo/mobilenet_v2.out4.pb" <<'PY'
import sys, onnx, numpy as np
from onnx import numpy_helper
got, want = (numpy_helper.to_array(onnx.load_tensor(p)) for p in sys.argv[1:3])
diff, tol = float(np.abs(got - want).max()), 1e-4 + 1e-3 * float(np.abs(want).max())
print(f"autotailor run vs PyTorch (batch 4): max |diff| {diff:.2e}, tolerance {tol:.2e}:",
      "match" if diff <= tol else "MISMATCH")
sys.exit(0 if diff <= tol else 1)
PY
build/autotailor bench "$demo/mobilenet_v2.onnx" --threads 1 --runs 10
build/autotailor supernet "$demo/mobilenet_v2.onnx" -o "$demo/supernet"
build/autotailor export "$demo/supernet" --subnet min -o "$demo/mobilenet_v2.min.onnx"
build/autotailor inspect "$demo/mobilenet_v2.min.onnx" | sed -n '/^params/,/^MACs/p'
build/autotailor bench "$demo/mobilenet_v2.min.onnx" --threads 1 --runs 10
