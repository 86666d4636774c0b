#!/usr/bin/python3
"""Reference models for models/: small torchvision classifiers for 32x32x3 images with 10
classes, randomly initialised, exported with torch.onnx.export, and trained on
Fashion-MNIST with `autotailor train`.

Usage:
    /usr/bin/python3 tools/reference_models.py export --out DIR [--models a,b]
        Random-init ONNX files only (test fixtures): DIR/NAME.onnx.
    /usr/bin/python3 tools/reference_models.py train --autotailor build/autotailor \
        --out models [--models a,b] [--epochs N]
        Exports, trains each with `autotailor train --data fashion-mnist`, writes
        OUT/NAME.onnx and the accuracy table in OUT/README.md.

Architectures (torchvision building blocks; the full-width ResNet-18 would be 45 MB):
    resnet_fm      ResNet-18 layout with torchvision's BasicBlock at a quarter of its width
                   (16-32-64-128 channels) and a CIFAR stem (3x3 conv, stride 1, no max-pool).
    mobilenet_v2_fm  torchvision mobilenet_v2(width_mult=0.5, num_classes=10), unchanged.
    mlp_fm         Flatten -> Linear(3072, 64) -> ReLU -> Linear(64, 10): no convolution and
                   no BatchNorm (the exact data-parallel test).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torchvision.models as tvm
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_models import export_onnx, model_seed  # noqa: E402

SIZE = 32
CLASSES = 10


class QuarterResNet18(tvm.ResNet):
    """torchvision's ResNet with BasicBlocks [2, 2, 2, 2] at widths 16-32-64-128."""

    def __init__(self, widths=(16, 32, 64, 128), layers=(2, 2, 2, 2), num_classes=CLASSES):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(BasicBlock, widths[0], layers[0])
        self.layer2 = self._make_layer(BasicBlock, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


BUILDERS = {
    "resnet_fm": lambda: QuarterResNet18(),
    "mobilenet_v2_fm": lambda: tvm.mobilenet_v2(weights=None, width_mult=0.5, num_classes=CLASSES),
    "mlp_fm": lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 64), nn.ReLU(),
                                    nn.Linear(64, CLASSES)),
}
TRAINED = ["resnet_fm", "mobilenet_v2_fm"]
# Extra `autotailor train` options per model. MobileNetV2's ReLU6 saturates in the randomly
# initialised export (BatchNorm folded with running statistics 0/1, so activations grow through
# the network) and its loss stays at ln(10) unless the re-inserted BatchNorms start fresh.
TRAIN_OPTIONS = {"mobilenet_v2_fm": ["--fresh-batchnorm"]}
RESULTS = "training.json"  # per-model results kept next to the models, for README.md


def export(names, out):
    os.makedirs(out, exist_ok=True)
    for name in names:
        path = os.path.join(out, name + ".onnx")
        if os.path.exists(path):
            continue
        torch.manual_seed(model_seed(name))
        model = BUILDERS[name]().eval()
        export_onnx(model, path, size=SIZE, dynamic_batch=True)
        print(f"exported {path}", file=sys.stderr)


def train(args, names):
    """Trains the models not trained yet (all with --force); results accumulate in
    OUT/training.json, from which README.md is written."""
    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.join(args.out, RESULTS)
    results = {}
    if os.path.exists(results_path):
        with open(results_path) as f:
            results = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        export(names, tmp)
        for name in names:
            out = os.path.join(args.out, name + ".onnx")
            if os.path.exists(out) and name in results and not args.force:
                print(f"{out}: trained already (--force retrains)", file=sys.stderr)
                continue
            cmd = [args.autotailor, "train", os.path.join(tmp, name + ".onnx"), "--data",
                   "fashion-mnist", "--epochs", str(args.epochs), "--batch", str(args.batch),
                   "--seed", "0", "-o", out, "--json"] + TRAIN_OPTIONS.get(name, [])
            print("+ " + " ".join(cmd), file=sys.stderr)
            start = time.time()
            res = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
            result = json.loads(res.stdout)
            result["seconds"] = time.time() - start
            result["name"] = name
            result["bytes"] = os.path.getsize(out)
            result["epochs"] = args.epochs
            result["batch"] = args.batch
            result["command"] = "autotailor " + " ".join(cmd[1:2] + ["MODEL.onnx"] + cmd[3:])
            result["date"] = time.strftime("%Y-%m-%d")
            result["cores"] = os.cpu_count()
            results[name] = result
            with open(results_path + ".tmp", "w") as f:
                json.dump(results, f, indent=1, sort_keys=True)
            os.replace(results_path + ".tmp", results_path)
    write_readme(args, [results[n] for n in TRAINED if n in results])


def write_readme(args, rows):
    lines = [
        "# Reference models",
        "",
        "Small torchvision classifiers for 32x32x3 inputs and 10 classes, randomly initialised,",
        "exported with `torch.onnx.export` (opset 13, dynamic batch) and trained on Fashion-MNIST",
        "(28x28 grey images resized to 32x32 and replicated to 3 channels, pixels in [0, 1]) with",
        "`autotailor train`. Regenerate with:",
        "",
        "    /usr/bin/python3 tools/reference_models.py train --autotailor build/autotailor "
        f"--out models --epochs {args.epochs}",
        "",
        "SGD (Nesterov) with a cosine schedule, label smoothing 0.1, seed 0. Accuracy is top-1 on",
        "the 10,000 test images; the training split excludes 5,000 held-out images. Per-model",
        "results, with the exact command, are in `training.json`. Training ran with other work on",
        "the same two cores, so the images/s here are not a throughput benchmark (that is",
        "`bench/train.py`, in docs/training.md).",
        "",
        "| model | architecture | file size | test top-1 | training |",
        "|---|---|---|---|---|",
    ]
    arch = {
        "resnet_fm": "ResNet-18 layout, torchvision BasicBlock, quarter width, CIFAR stem",
        "mobilenet_v2_fm": "torchvision MobileNetV2 x0.5",
    }
    for r in rows:
        extra = " (`--fresh-batchnorm`)" if "--fresh-batchnorm" in r.get("command", "") else ""
        lines.append(
            f"| `{r['name']}.onnx` | {arch.get(r['name'], r['name'])} | "
            f"{r['bytes'] / 1e6:.1f} MB | {100 * r['accuracy']:.2f}% | "
            f"{r['epochs']} epochs, batch {r['batch']}{extra}: {r['seconds'] / 60:.1f} min at "
            f"{r['images_per_second']:.0f} img/s on {r['cores']} cores, {r['date']} |")
    lines += ["", "`resnet_fm.onnx` is the demo model of the README's first command.", ""]
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["export", "train"])
    p.add_argument("--out", required=True)
    p.add_argument("--models", default=None)
    p.add_argument("--autotailor", default="build/autotailor")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--force", action="store_true", help="retrain models trained already")
    args = p.parse_args()
    default = list(BUILDERS) if args.action == "export" else TRAINED
    names = args.models.split(",") if args.models else default
    for n in names:
        if n not in BUILDERS:
            sys.exit(f"unknown model '{n}' (known: {', '.join(BUILDERS)})")
    torch.set_num_threads(1)
    if args.action == "export":
        export(names, args.out)
    else:
        train(args, names)


if __name__ == "__main__":
    main()
