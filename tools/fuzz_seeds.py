#!/usr/bin/python3
"""Writes the seed corpus of the import fuzzer (tests/fuzz/fuzz_import.cc).

Also a subnet config, a space config and a tensor file: the other formats the target reads.

Usage: /usr/bin/python3 tools/fuzz_seeds.py --out DIR

Seeds are small (a few KB to ~100 KB) so that libFuzzer mutates them quickly, and cover the
topologies the space analysis reasons about: residual blocks with identity and projection
shortcuts, depthwise chains, squeeze-excitation, two-branch concat, split -> concat, channel
shuffle, grouped convs, a 5x5 kernel, a flatten -> Gemm head without global pooling, and a
one-output-channel conv. Each is exported from PyTorch with random weights at opset 13, like
the test models (tools/export_models.py). The ONNX backend test data's single-node models are
added as further seeds by tools/fuzz.sh.
"""

import argparse
import json
import os
import sys

import onnx
import onnx.numpy_helper
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models  # noqa: E402


def cbr(cin, cout, k=3, s=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(cbr(cin, cout, 3, stride), nn.Conv2d(cout, cout, 3, 1, 1),
                                  nn.BatchNorm2d(cout))
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


class Head(nn.Sequential):
    def __init__(self, c, classes=10):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


class SE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.f = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c // 2, 1), nn.ReLU(),
                               nn.Conv2d(c // 2, c, 1), nn.Hardsigmoid())

    def forward(self, x):
        return x * self.f(x)


class InvertedResidual(nn.Module):
    def __init__(self, c, k=3):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(c, 2 * c, 1), nn.BatchNorm2d(2 * c), nn.Hardswish(),
                               nn.Conv2d(2 * c, 2 * c, k, 1, k // 2, groups=2 * c),
                               nn.BatchNorm2d(2 * c), nn.ReLU6(), SE(2 * c),
                               nn.Conv2d(2 * c, c, 1), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.f(x)


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 16)
        self.a, self.b = cbr(16, 8, 1), cbr(16, 16, 3)
        self.pool = nn.MaxPool2d(2)
        self.head = Head(24)

    def forward(self, x):
        x = self.stem(x)
        return self.head(self.pool(torch.cat([self.a(x), self.b(x)], 1)))


class SplitConcat(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 16)
        self.b = cbr(8, 8)
        self.head = Head(16)

    def forward(self, x):
        x = self.stem(x)
        left, right = torch.split(x, 8, dim=1)
        return self.head(torch.cat([left, self.b(right)], 1))


class Shuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 16)
        self.g = cbr(16, 16, 3, groups=4)
        self.head = Head(16)

    def forward(self, x):
        x = self.g(self.stem(x))
        n, c, h, w = x.shape
        x = x.view(n, 4, c // 4, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.head(x)


def seeds():
    return {
        "resnet": nn.Sequential(cbr(3, 8), Basic(8, 8, 1), Basic(8, 16, 2), Basic(16, 16, 1),
                                Head(16)),
        "mobile": nn.Sequential(cbr(3, 8, 3, 2), InvertedResidual(8), InvertedResidual(8, 5),
                                nn.Conv2d(8, 16, 1), nn.Hardswish(), nn.Dropout(0.2), Head(16)),
        "concat": Concat(),
        "split_concat": SplitConcat(),
        "shuffle": Shuffle(),
        "flatten_gemm": nn.Sequential(cbr(3, 8, 3, 2), nn.AvgPool2d(2), nn.Flatten(),
                                      nn.Linear(8 * 4 * 4, 10)),
        "one_channel": nn.Sequential(cbr(3, 8), nn.Conv2d(8, 1, 3, 1, 1), nn.Sigmoid(),
                                     nn.Conv2d(1, 8, 1), Head(8)),
        "large_kernel": nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                      cbr(8, 8, 5), Head(8)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    for name, model in seeds().items():
        model.eval()
        # Non-trivial BatchNorm statistics, as a trained model has.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        export_models.export_onnx(model, os.path.join(args.out, f"{name}.onnx"), size=16)
    # The other formats the target reads (tests/fuzz/fuzz_import.cc): a subnet config and a
    # space config for its fixed SuperNet (width groups c1 and c2 of 8 or 16 channels, stage
    # add of depth 0 or 1, kernel c2 of 3 or 5), and a tensor file as `run --input` takes.
    json_seeds = {
        "subnet.json": {"format": "autotailor-subnet", "resolution": 0,
                        "widths": {"c1": 8, "c2": 16}, "depths": {"add": 0},
                        "kernels": {"c2": 3}},
        "space.json": {"format": "autotailor-space",
                       "width_groups": [{"name": "c1", "choices": [8, 16]}],
                       "stages": [{"name": "add", "choices": [0, 1]}],
                       "kernels": [{"node": "c2", "choices": [3, 5]}]},
    }
    for name, doc in json_seeds.items():
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(doc, f)
    t = onnx.numpy_helper.from_array(
        torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0)).numpy(), "x")
    with open(os.path.join(args.out, "tensor.pb"), "wb") as f:
        f.write(t.SerializeToString())
    print(f"fuzz_seeds: {len(seeds())} models, 2 JSON configs and a tensor file in {args.out}")


if __name__ == "__main__":
    main()
