#!/usr/bin/python3
"""Training benchmark: throughput of `autotailor train` against PyTorch eager, and accuracy
of SuperNet subnets before and after `autotailor finetune`. Writes docs/training.md.

Usage:
    /usr/bin/python3 bench/train.py [--autotailor build/autotailor] [--threads 1,2]
        [--steps 40] [--batch 64] [--finetune-epochs 1] [--models-dir models]
        [--skip-throughput] [--skip-finetune] [--out docs/training.md]

Throughput: the reference architectures (tools/reference_models.py, random init, 32x32x3,
10 classes), one SGD step = forward, cross-entropy with label smoothing, backward, Nesterov
SGD update, BatchNorm in training mode. PyTorch eager runs on random tensors (no data
loading); autotailor runs `train --data fashion-mnist --max-steps N` (data loading in
background threads included) and reports images/s after its first three steps; eager is
timed the same way. Each measurement is a separate process with the thread count set.

Fine-tuning: for every trained model in --models-dir, `supernet`, then `evaluate` of the
max, mid and min subnets (BatchNorm recalibrated on the calibration split), `finetune
--epochs E`, and `evaluate` again. Accuracy is top-1 on the 10,000 test images.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

# One SGD step timed in PyTorch; shared with bench/results.py (which also times TorchScript).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import TRAIN_STEP  # noqa: E402


def log(msg):
    print(f"bench/train: {msg}", file=sys.stderr, flush=True)


def run_json(cmd, env=None):
    log("+ " + " ".join(cmd))
    res = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env)
    return json.loads(res.stdout)


def commit():
    try:
        return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=True,
                              stdout=subprocess.PIPE, text=True).stdout.strip()
    except Exception:
        return "unknown"


def throughput(args, tmp):
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "reference_models.py"), "export",
                    "--out", tmp, "--models", "resnet_fm,mobilenet_v2_fm"], check=True)
    rows = []
    for name in ["resnet_fm", "mobilenet_v2_fm"]:
        for threads in args.threads:
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            eager = run_json([sys.executable, "-c", TRAIN_STEP, os.path.join(REPO, "tools"), name,
                              str(threads), str(args.batch), str(args.steps), "eager"], env)
            ours = run_json([args.autotailor, "train", os.path.join(tmp, name + ".onnx"), "--data",
                             "fashion-mnist", "--max-steps", str(args.steps), "--batch",
                             str(args.batch), "--threads", str(threads), "-q", "--json", "-o",
                             os.path.join(tmp, name + ".trained.onnx")], env)
            e, o = eager["images_per_second"], ours["images_per_second"]
            rows.append((name, threads, o, e, o / e))
            log(f"{name} threads {threads}: autotailor {o:.0f} img/s, eager {e:.0f} img/s")
    return rows


def evaluate(args, target, subnet):
    cmd = [args.autotailor, "evaluate", target, "--data", "fashion-mnist", "--json", "-q"]
    if subnet:
        cmd += ["--subnet", subnet]
    return run_json(cmd)["accuracy"]


def finetune(args, tmp):
    rows = []
    for name in ["resnet_fm", "mobilenet_v2_fm"]:
        model = os.path.join(args.models_dir, name + ".onnx")
        if not os.path.exists(model):
            log(f"{model} missing: skipped (train it with tools/reference_models.py)")
            continue
        sn = os.path.join(tmp, name + ".sn")
        subprocess.run([args.autotailor, "supernet", model, "-o", sn, "-q"], check=True)
        before = {s: evaluate(args, sn, s) for s in ["max", "mid", "min"]}
        start = time.time()
        subprocess.run([args.autotailor, "finetune", sn, "--data", "fashion-mnist", "--epochs",
                        str(args.finetune_epochs), "-q"], check=True)
        secs = time.time() - start
        after = {s: evaluate(args, sn, s) for s in ["max", "mid", "min"]}
        original = evaluate(args, model, None)
        pred = None
        if args.accuracy_samples > 0:
            start = time.time()
            subprocess.run([args.autotailor, "sensitivity", sn, "--data", "fashion-mnist", "-q"],
                           check=True)
            probe_secs = time.time() - start
            sens = json.load(open(os.path.join(sn, "sensitivity.json")))
            v = run_json([args.autotailor, "validate-accuracy", sn, "--data", "fashion-mnist",
                          "--samples", str(args.accuracy_samples), "--json", "-q"])
            pred = {"tau": v["kendall_tau"], "rho": v["spearman_rho"], "rmse": v["rmse"],
                    "samples": v["samples"], "probes": sens["probes"],
                    "probe_images": sens["probe_images"], "probe_secs": probe_secs,
                    "reference": sens.get("reference", "max"),
                    "rows": v["subnets"], "predictors": v.get("predictors", {})}
        rows.append((name, original, before, after, secs, pred))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--autotailor", default=os.path.join(REPO, "build", "autotailor"))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--accuracy-samples", type=int, default=20)
    p.add_argument("--models-dir", default=os.path.join(REPO, "models"))
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-finetune", action="store_true")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "training.md"))
    p.add_argument("--note", default="", help="a sentence added under the title")
    args = p.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        tp = [] if args.skip_throughput else throughput(args, tmp)
        ft = [] if args.skip_finetune else finetune(args, tmp)

    lines = ["# Training benchmarks", "",
             f"Generated by `bench/train.py` on {datetime.date.today()}, commit {commit()}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores. {args.note}",
             ""]
    if tp:
        lines += ["## Training throughput", "",
                  f"One SGD step at batch {args.batch}, 32x32x3 inputs, BatchNorm in training mode; "
                  f"images/s over steps 4-{args.steps}. Target: autotailor >= 0.9x eager.", "",
                  "| model | threads | autotailor img/s | PyTorch eager img/s | ratio | target |",
                  "|---|---|---|---|---|---|"]
        for name, threads, o, e, r in tp:
            lines.append(f"| {name} | {threads} | {o:.0f} | {e:.0f} | {r:.2f} | "
                         f"{'met' if r >= 0.9 else 'missed'} |")
        lines.append("")
    if ft:
        lines += ["## Subnet accuracy before and after fine-tuning", "",
                  f"`finetune --epochs {args.finetune_epochs}` (sandwich rule: max, min and 2 random "
                  "subnets per step, in-place distillation). Top-1 on the 10,000 Fashion-MNIST test "
                  "images, BatchNorm recalibrated per subnet on 2000 held-out training images.", "",
                  "| model | original | subnet | before | after | fine-tuning time |",
                  "|---|---|---|---|---|---|"]
        for name, original, before, after, secs, _ in ft:
            for s in ["max", "mid", "min"]:
                lines.append(f"| {name} | {100 * original:.2f}% | {s} | {100 * before[s]:.2f}% | "
                             f"{100 * after[s]:.2f}% | {secs / 60:.1f} min |")
        lines.append("")
    preds = [(r[0], r[5]) for r in ft if r[5]]
    if preds:
        lines += ["## Accuracy predictor", "",
                  "After fine-tuning: `sensitivity` (one probe per modification on held-out "
                  "training images), then `validate-accuracy --samples N`: N random subnets "
                  "(`random:1..N`) evaluated for real on the test split (BatchNorm recalibrated) "
                  "against the default prediction (multiplicative, masked). Target: Kendall tau >= 0.8.", "",
                  "| model | reference | probes | probe images | probing time | samples | "
                  "Kendall tau | Spearman rho | RMSE (points) | target |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, p in preds:
            lines.append(f"| {name} | {p['reference']} | {p['probes']} | {p['probe_images']} | "
                         f"{p['probe_secs']:.0f} s | {p['samples']} | {p['tau']:.3f} | "
                         f"{p['rho']:.3f} | {100 * p['rmse']:.2f} | "
                         f"{'met' if p['tau'] >= 0.8 else 'missed'} |")
        lines.append("")
        names = ["raw", "monotone_calibrated_significant_z2", "additive_monotone_calibrated"]
        lines += ["Alternatives scored on the same subnets (Kendall tau / RMSE in points). "
                  "*raw*: multiplicative, masked, no projection or calibration (the default "
                  "before the monotone predictor); *significant_z2*: changes the paired probe "
                  "images do not show at z = 2 count as zero; *additive*: deltas add instead "
                  "of retentions multiplying. The default is monotone, calibrated, "
                  "multiplicative, masked (docs/search.md).", "",
                  "| model | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for name, p in preds:
            cells = []
            for n in names:
                q = p["predictors"].get(n)
                cells.append(f"{q['kendall_tau']:.3f} / {100 * q['rmse']:.2f}" if q else "-")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        for name, p in preds:
            lines += [f"<details><summary>{name}: predicted and measured top-1 per subnet"
                      "</summary>", "", "| subnet | predicted | measured |", "|---|---|---|"]
            for r in p["rows"]:
                lines.append(f"| {r['subnet']} | {100 * r['predicted']:.2f}% | "
                             f"{100 * r['measured']:.2f}% |")
            lines += ["", "</details>", ""]
    with open(args.out + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(args.out + ".tmp", args.out)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
