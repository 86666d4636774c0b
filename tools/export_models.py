#!/usr/bin/python3
"""Export torchvision classifiers as ONNX test fixtures with PyTorch reference outputs.

Usage:
    /usr/bin/python3 tools/export_models.py --out DIR [--models resnet18,...] [--size 224]

For each model NAME this writes, into DIR:
    NAME.onnx                 opset 13, static batch 1, input "input", output "output"
    NAME.in1.pb / NAME.out1.pb    batch-1 input and PyTorch eager output (onnx.TensorProto)
    NAME.in4.pb / NAME.out4.pb    the same for batch 4

No pretrained weights exist offline, so weights are random but seeded from the model
name: reruns produce byte-identical files. Every BatchNorm gets non-trivial running
statistics and affine parameters, otherwise folding BN into Conv would be an identity
transform and an exporter that mishandled it could not be told apart from a correct one.

The module is also imported by bench/perf.py (build_model, make_input, export_onnx).
"""

import argparse
import contextlib
import os
import sys
import zlib

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torchvision.models as tvm

DEFAULT_MODELS = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "resnet50", "efficientnet_b0"]

# Name -> constructor. Only keyword arguments that differ from torchvision's defaults.
_BUILDERS = {
    "resnet18": lambda: tvm.resnet18(weights=None),
    "resnet50": lambda: tvm.resnet50(weights=None),
    "resnext50_32x4d": lambda: tvm.resnext50_32x4d(weights=None),
    "wide_resnet50_2": lambda: tvm.wide_resnet50_2(weights=None),
    "mobilenet_v2": lambda: tvm.mobilenet_v2(weights=None),
    "mobilenet_v3_small": lambda: tvm.mobilenet_v3_small(weights=None),
    "mobilenet_v3_large": lambda: tvm.mobilenet_v3_large(weights=None),
    "efficientnet_b0": lambda: tvm.efficientnet_b0(weights=None),
    "efficientnet_b1": lambda: tvm.efficientnet_b1(weights=None),
    "shufflenet_v2_x1_0": lambda: tvm.shufflenet_v2_x1_0(weights=None),
    "mnasnet0_5": lambda: tvm.mnasnet0_5(weights=None),
    "regnet_x_400mf": lambda: tvm.regnet_x_400mf(weights=None),
    "squeezenet1_0": lambda: tvm.squeezenet1_0(weights=None),
    "densenet121": lambda: tvm.densenet121(weights=None),
    # Without weights torchvision would warn and pick init_weights itself; aux heads
    # are training-only and would add outputs.
    "googlenet": lambda: tvm.googlenet(weights=None, aux_logits=False, init_weights=True),
}
KNOWN_MODELS = sorted(_BUILDERS)

OPSET = 13


def model_seed(name):
    """Deterministic per-model seed (Python's hash() is randomized per process)."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


@contextlib.contextmanager
def single_thread():
    """Run torch ops on one thread: reductions then sum in a fixed order, so results
    are bit-identical whatever thread count the caller (or the machine) uses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _batchnorms(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def _randomize_batchnorm(model, gen, size):
    """Give every BatchNorm realistic but non-trivial statistics and affine parameters.

    Purely random running stats (mean ~N(0,0.1), var ~U(0.5,1.5)) do not match what the
    randomly initialised convolutions produce: torchvision's kaiming fan_out init makes
    depthwise convs shrink activations by ~sqrt(C), so in MobileNet/EfficientNet the
    input signal vanished and the logits were input-independent (a wrong early layer
    would then go unnoticed). Instead, each BN's statistics are measured on its actual
    input for a seeded calibration batch and then perturbed (mean += N(0,0.1)*std,
    var *= U(0.5,1.5)), so folding is still far from identity. It is done in one
    eval-mode pass with pre-hooks, in execution order, so every layer is calibrated on
    what the already-perturbed layers above it produce and scale errors cannot compound.
    """
    bns = _batchnorms(model)
    with torch.no_grad():
        for m in bns:
            if m.affine:
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
        done = set()

        def calibrate(m, inputs):
            if m in done:  # a module applied twice keeps its first statistics
                return
            done.add(m)
            x = inputs[0]
            dims = [0] + list(range(2, x.dim()))
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
            c = m.num_features
            m.running_mean.copy_(mean + torch.randn(c, generator=gen) * 0.1 * var.sqrt())
            m.running_var.copy_(var * (torch.rand(c, generator=gen) + 0.5))

        hooks = [m.register_forward_pre_hook(calibrate) for m in bns]
        try:
            model.eval()  # Dropout / StochasticDepth off; BN uses running stats
            with single_thread():
                model(torch.randn(8, 3, size, size, generator=gen))
        finally:
            for h in hooks:
                h.remove()


def build_model(name, size=224):
    """Build NAME with seeded random weights and randomized BN, in eval mode."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model '{name}' (known: {', '.join(KNOWN_MODELS)})")
    seed = model_seed(name)
    torch.manual_seed(seed)  # torchvision's initializers draw from the global RNG
    model = _BUILDERS[name]()
    # A separate generator keeps BN values independent of how many draws the
    # constructor made (stable if torchvision changes its init order).
    gen = torch.Generator().manual_seed(seed ^ 0x5EED)
    _randomize_batchnorm(model, gen, size)
    return model.eval()


def make_input(name, batch, size=224):
    """Seeded N(0,1) input of shape (batch, 3, size, size)."""
    gen = torch.Generator().manual_seed(model_seed(name) * 31 + batch)
    return torch.randn(batch, 3, size, size, generator=gen)


def _tmp_name(path):
    return f"{path}.tmp{os.getpid()}"


def _atomic_write_bytes(path, data):
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_tensor(path, array, name=""):
    """Write a numpy array as a serialized onnx.TensorProto, atomically."""
    proto = onnx.numpy_helper.from_array(np.ascontiguousarray(array), name=name)
    _atomic_write_bytes(path, proto.SerializeToString())


def export_onnx(model, path, size=224, dynamic_batch=False):
    """torch.onnx.export at opset 13 to PATH (atomically); optional dynamic batch axis."""
    dummy = torch.zeros(1, 3, size, size)
    dynamic_axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    tmp = _tmp_name(path)
    try:
        with torch.no_grad():
            torch.onnx.export(
                model,
                dummy,
                tmp,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fixture_paths(out_dir, name):
    base = os.path.join(out_dir, name)
    return {
        "onnx": base + ".onnx",
        "in1": base + ".in1.pb",
        "out1": base + ".out1.pb",
        "in4": base + ".in4.pb",
        "out4": base + ".out4.pb",
    }


def export_model(name, out_dir, size=224):
    """Write NAME's five fixture files unless all exist. Returns 'exported' or 'cached'."""
    paths = fixture_paths(out_dir, name)
    if all(os.path.exists(p) for p in paths.values()):
        return "cached"
    os.makedirs(out_dir, exist_ok=True)
    model = build_model(name, size)
    for batch in (1, 4):
        x = make_input(name, batch, size)
        with torch.no_grad(), single_thread():
            y = model(x)
        write_tensor(paths[f"in{batch}"], x.numpy(), "input")
        write_tensor(paths[f"out{batch}"], y.numpy(), "output")
    # The model goes last: its presence plus the .pb files marks a complete set.
    export_onnx(model, paths["onnx"], size)
    return "exported"


def parse_models(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown model(s): {', '.join(unknown)} (known: {', '.join(KNOWN_MODELS)})")
    return names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS),
                    help=f"comma-separated list (default: {','.join(DEFAULT_MODELS)})")
    ap.add_argument("--size", type=int, default=224, help="input height and width")
    args = ap.parse_args(argv)
    try:
        names = parse_models(args.models)
        if args.size < 32:
            raise ValueError(f"--size {args.size} is too small for these classifiers")
        for name in names:
            status = export_model(name, args.out, args.size)
            print(f"{name}: {status}", file=sys.stderr)
    except Exception as e:  # one-line reason, as the CLI contract asks
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"export_models: error: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
