#!/usr/bin/python3
"""Executor speed benchmark: autotailor vs PyTorch eager, TorchScript frozen and ONNX Runtime.

Usage:
    /usr/bin/python3 bench/perf.py [--autotailor build/autotailor] [--skip-autotailor]
        [--models resnet18,...] [--threads 1,2] [--batches 1,32] [--runs R] [--warmup W]
        [--cache build/bench-models] [--out docs/perf.md]

For every model x batch x threads it takes the median latency of
  (a) `autotailor bench NAME.onnx --batch B --threads N --runs R --json` (stdout: JSON
      with "median_ms"); it is given the static batch-1 fixture and the batch to use,
  (b) PyTorch eager under torch.inference_mode(),
  (c) TorchScript: optimize_for_inference(freeze(trace(model))), script if trace fails,
  (d) ONNX Runtime through tools/ort_run.js (a dynamic-batch export, NAME.dyn.onnx,
      for batch != 1, since ORT rejects other batches on a static model),
and writes a markdown report. The models are tools/export_models.py's seeded random
classifiers; PyTorch is timed in one subprocess per (model, threads) so thread-pool
settings cannot leak from one configuration into the next.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

import export_models  # noqa: E402  (after the sys.path tweak)

ORT_RUN = os.path.join(REPO, "tools", "ort_run.js")
TARGET_RATIO = 1.05  # autotailor must be within 5% of the faster PyTorch mode


class BenchError(Exception):
    pass


def log(msg):
    print(f"perf: {msg}", file=sys.stderr, flush=True)


def int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got '{text}'")
    return values


def runs_for(args, batch):
    """Timed runs: --runs if given, else 20 at batch 1 and 5 for larger batches."""
    if args.runs:
        return args.runs
    return 20 if batch == 1 else 5


def summarize(times_ms):
    return {"median_ms": statistics.median(times_ms), "min_ms": min(times_ms)}


# ----------------------------------------------------------------------------- PyTorch


def _time(fn, x, runs, warmup):
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return summarize(times)


def _frozen_candidates(model, x):
    """TorchScript variants, preferred first: optimize_for_inference(freeze(ts)), then
    freeze(ts) alone, where ts is trace(model) or script(model) if tracing fails.
    Built lazily: the fallback costs nothing unless the first one is rejected."""
    import torch

    with torch.no_grad():
        try:
            ts, how = torch.jit.trace(model, x), "trace"
        except Exception:  # data-dependent control flow etc.
            ts, how = torch.jit.script(model), "script"
        ts = ts.eval()
        candidate = torch.jit.optimize_for_inference(torch.jit.freeze(ts))
    yield candidate, f"{how}+freeze+optimize_for_inference"
    with torch.no_grad():
        candidate = torch.jit.freeze(ts)
    yield candidate, f"{how}+freeze"


def torch_worker(args):
    """Subprocess body: time eager and frozen for one model at one thread count."""
    import torch
    import warnings

    # TracerWarnings are expected; torch 1.13's MKLDNN rewrite also warns about resized
    # outputs when it computes wrong results, which the output check below reports.
    warnings.simplefilter("ignore")
    name, threads = args.torch_worker, args.threads[0]
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    model = export_models.build_model(name, args.size)
    results = {}
    for batch in args.batches:
        runs = runs_for(args, batch)
        x = export_models.make_input(name, batch, args.size)
        with torch.inference_mode():
            eager = _time(model, x, runs, args.warmup)
            ref = model(x)
        log(f"  {name} b{batch} t{threads}: eager {eager['median_ms']:.2f} ms")
        tol = 1e-4 + 1e-3 * ref.abs().max().item()
        rejected = []
        for ts_model, how in _frozen_candidates(model, x):
            # The profiling executor specializes during the first calls: warm up >= 3,
            # and check the output after that, since that is the code being timed.
            with torch.inference_mode():
                frozen = _time(ts_model, x, runs, max(args.warmup, 3))
                err = (ts_model(x) - ref).abs().max().item()
            if err <= tol:
                break
            rejected.append({"how": how, "max_abs_err": err})
            log(f"  {name} b{batch} t{threads}: {how} differs from eager (max |err| {err:.3g}), "
                "not used")
        rejected = [r for r in rejected if r["how"] != how]  # all failed: the last is shown
        frozen.update(how=how, max_abs_err=err, matches=err <= tol, rejected=rejected)
        log(f"  {name} b{batch} t{threads}: frozen ({how}) {frozen['median_ms']:.2f} ms")
        results[str(batch)] = {"eager": eager, "frozen": frozen}
    json.dump(results, sys.stdout)
    return 0


def measure_torch(args, name, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", name,
           "--threads", str(threads), "--batches", ",".join(map(str, args.batches)),
           "--warmup", str(args.warmup), "--size", str(args.size)]
    if args.runs:
        cmd += ["--runs", str(args.runs)]
    # Belt and braces: OpenMP also reads these before torch.set_num_threads runs.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env)
    if proc.returncode != 0:
        raise BenchError(f"PyTorch worker for {name} (threads {threads}) failed with status {proc.returncode}")
    return json.loads(proc.stdout)


# ----------------------------------------------------------------------------- external engines


def _run_json(cmd, what):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        reason = " ".join(proc.stderr.strip().splitlines()[-1:]) or f"exit status {proc.returncode}"
        raise BenchError(f"{what} failed: {reason}")
    # The contract is one JSON object on stdout; tolerate stray lines before it.
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.lstrip().startswith("{"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(result.get("median_ms"), (int, float)):
                return result
    try:
        result = json.loads(proc.stdout)
        if isinstance(result.get("median_ms"), (int, float)):
            return result
    except (json.JSONDecodeError, AttributeError):
        pass
    raise BenchError(f"{what} printed no JSON object with a numeric median_ms")


def measure_ort(args, node, name, batch, threads):
    model = os.path.join(args.cache, f"{name}.onnx" if batch == 1 else f"{name}.dyn.onnx")
    cmd = [node, ORT_RUN, "bench", model, "--batch", str(batch), "--threads", str(threads),
           "--runs", str(runs_for(args, batch)), "--warmup", str(args.warmup)]
    return _run_json(cmd, f"ORT bench of {name} (batch {batch}, threads {threads})")


def measure_autotailor(args, name, batch, threads):
    model = os.path.join(args.cache, f"{name}.onnx")
    cmd = [args.autotailor, "bench", model, "--batch", str(batch), "--threads", str(threads),
           "--runs", str(runs_for(args, batch)), "--json"]
    return _run_json(cmd, f"autotailor bench of {name} (batch {batch}, threads {threads})")


# ----------------------------------------------------------------------------- environment


def _cmd_output(cmd, cwd=None):
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=cwd)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def machine_info():
    """CPU model name, logical CPUs, and how many this process may run on."""
    cpu, logical = None, 0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu is None:
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("processor"):
                    logical += 1
    except OSError:
        pass
    logical = logical or os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return cpu or platform.processor() or "unknown CPU", logical, usable


def git_commit():
    commit = _cmd_output(["git", "rev-parse", "--short", "HEAD"], cwd=REPO)
    if not commit:
        return "uncommitted"
    dirty = _cmd_output(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO)
    return f"{commit} (with uncommitted changes)" if dirty else commit


def torch_info():
    import torch

    m = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    blas = f"BLAS_INFO={m.group(1) if m else 'unknown'}"
    # Debian's torch reports "generic" and links libblas.so.3, which the alternatives
    # system points at some implementation: name the library actually mapped.
    torch.ones(8, 8) @ torch.ones(8, 8)
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({os.path.realpath(line.split()[-1]) for line in f
                           if re.search(r"/lib(open)?blas[^/]*\.so", line)})
        if libs:
            blas += ", loaded: " + ", ".join(libs)
    except OSError:
        pass
    return torch.__version__, torch.backends.mkldnn.is_available(), blas


# ----------------------------------------------------------------------------- report


def fmt_ms(v):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return f"{v:.2f}" if v < 100 else f"{v:.1f}"


def render(args, header, rows, notes):
    lines = ["# Executor speed", "",
             "Generated by `bench/perf.py`; rerun it rather than editing this file.", ""]
    lines += [f"- {k}: {v}" for k, v in header]
    lines += ["", f"Target: autotailor ≤ {TARGET_RATIO}× the faster of PyTorch eager and "
              "TorchScript frozen, per row.", ""]
    met = total = 0
    for threads in args.threads:
        lines += [f"## {threads} thread{'s' if threads != 1 else ''}", "",
                  "| model | batch | autotailor ms | eager ms | frozen ms | ORT ms | "
                  "autotailor / min(eager, frozen) | target met |",
                  "|---|---:|---:|---:|---:|---:|---:|:---:|"]
        for r in (r for r in rows if r["threads"] == threads):
            at, eager, frozen = r["autotailor"], r["eager"], r["frozen"]
            ratio, ok = "n/a", "n/a"
            if all(isinstance(v, float) for v in (at, eager, frozen)):
                q = at / min(eager, frozen)
                ratio, ok = f"{q:.2f}×", "yes" if q <= TARGET_RATIO else "no"
                total += 1
                met += ok == "yes"
            lines.append(f"| {r['model']} | {r['batch']} | {fmt_ms(at)} | {fmt_ms(eager)} | "
                         f"{fmt_ms(frozen)} | {fmt_ms(r['ort'])} | {ratio} | {ok} |")
        lines.append("")
    if total:
        lines.append(f"Target met in {met} of {total} rows.")
    else:
        lines.append("Target not evaluated: no autotailor measurements in this run.")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_atomic(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- main


def prepare_models(args, names):
    for name in names:
        status = export_models.export_model(name, args.cache, args.size)
        static = os.path.join(args.cache, f"{name}.onnx")
        dyn = os.path.join(args.cache, f"{name}.dyn.onnx")
        stale = not os.path.exists(dyn) or os.path.getmtime(dyn) < os.path.getmtime(static)
        if any(b != 1 for b in args.batches) and stale:
            export_models.export_onnx(export_models.build_model(name, args.size), dyn, args.size,
                                      dynamic_batch=True)
            status += ", dynamic-batch copy exported"
        log(f"{name}: {status}")


def run(args):
    names = export_models.parse_models(args.models)
    if not args.skip_autotailor:
        if not (os.path.isfile(args.autotailor) and os.access(args.autotailor, os.X_OK)):
            raise BenchError(f"autotailor binary not found at {args.autotailor} "
                             "(build it, pass --autotailor PATH, or --skip-autotailor)")
    node = shutil.which("node") or ("/usr/bin/node" if os.path.exists("/usr/bin/node") else None)
    if not node:
        raise BenchError("node not found on PATH (needed for ONNX Runtime)")
    ort_version = _cmd_output([node, ORT_RUN, "version"])
    if not ort_version:
        raise BenchError("cannot load onnxruntime-node (run tools/setup.sh)")

    prepare_models(args, names)

    rows, notes = [], []
    configs = [(n, t) for t in args.threads for n in names]
    started = time.monotonic()
    for i, (name, threads) in enumerate(configs, 1):
        log(f"[{i}/{len(configs)}] {name}, {threads} thread(s)")
        try:
            torch_res = measure_torch(args, name, threads)
        except BenchError as e:
            log(f"warning: {e}")
            notes.append(str(e))
            failed = {"median_ms": "error", "how": "", "matches": True, "rejected": []}
            torch_res = {str(b): {"eager": failed, "frozen": failed} for b in args.batches}
        for batch in args.batches:
            tr = torch_res[str(batch)]
            fr = tr["frozen"]
            for rej in fr["rejected"]:
                notes.append(f"{name} batch {batch}, {threads} thread(s): {rej['how']} computes wrong "
                             f"results (max |err| {rej['max_abs_err']:.3g} vs eager); "
                             f"the frozen column uses {fr['how']}.")
            if not fr["matches"]:
                notes.append(f"{name} batch {batch}: frozen TorchScript output differs from eager "
                             f"(max |err| {fr['max_abs_err']:.3g}); its time is still shown.")
            if fr["how"].startswith("script"):
                notes.append(f"{name}: torch.jit.trace failed, the frozen column uses torch.jit.script.")
            row = {"model": name, "batch": batch, "threads": threads,
                   "eager": tr["eager"]["median_ms"], "frozen": tr["frozen"]["median_ms"],
                   "ort": None, "autotailor": None}
            try:
                row["ort"] = measure_ort(args, node, name, batch, threads)["median_ms"]
                log(f"  {name} b{batch} t{threads}: ORT {row['ort']:.2f} ms")
            except BenchError as e:
                log(f"warning: {e}")
                row["ort"] = "error"
                notes.append(str(e))
            if not args.skip_autotailor:
                try:
                    row["autotailor"] = float(measure_autotailor(args, name, batch, threads)["median_ms"])
                    log(f"  {name} b{batch} t{threads}: autotailor {row['autotailor']:.2f} ms")
                except BenchError as e:
                    log(f"warning: {e}")
                    row["autotailor"] = "error"
                    notes.append(str(e))
            rows.append(row)
    elapsed = time.monotonic() - started

    cpu, logical, usable = machine_info()
    tv, mkldnn, blas = torch_info()
    batch_runs = ", ".join(f"{runs_for(args, b)} at batch {b}" for b in args.batches)
    header = [
        ("Machine", f"{cpu}, {logical} logical CPUs ({usable} usable), {platform.machine()}"),
        ("Threads", ", ".join(map(str, args.threads))),
        ("Date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("Commit", git_commit()),
        ("PyTorch", f"{tv} (MKLDNN {'available' if mkldnn else 'unavailable'}; {blas})"),
        ("ONNX Runtime", f"{ort_version} (onnxruntime-node, graph optimization 'all', "
                         "interOpNumThreads 1)"),
        ("Method", f"median of timed runs ({batch_runs}) after {args.warmup} warm-up runs; "
                   f"input 3×{args.size}×{args.size}, seeded random weights with non-trivial "
                   "BatchNorm statistics (tools/export_models.py)"),
        ("autotailor", "skipped (--skip-autotailor)" if args.skip_autotailor else args.autotailor),
        ("Benchmark time", f"{elapsed / 60:.1f} min"),
    ]
    notes = list(dict.fromkeys(notes))  # the same note can come from several batches
    write_atomic(args.out, render(args, header, rows, notes))
    log(f"wrote {args.out}")
    return 1 if any("error" in (r["ort"], r["autotailor"], r["eager"]) for r in rows) else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--autotailor", default=os.path.join(REPO, "build", "autotailor"))
    ap.add_argument("--skip-autotailor", action="store_true",
                    help="do not run autotailor; its column reads n/a")
    ap.add_argument("--models", default=",".join(export_models.DEFAULT_MODELS))
    ap.add_argument("--threads", type=int_list, default=[1, 2])
    ap.add_argument("--batches", type=int_list, default=[1, 32])
    ap.add_argument("--runs", type=int, default=0, help="timed runs (default 20 at batch 1, else 5)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--cache", help="fixture directory, reused across runs "
                    "(default build/bench-models, or build/bench-models-SIZE for --size != 224)")
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "perf.md"))
    ap.add_argument("--torch-worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.runs < 0 or args.warmup < 0:
        ap.error("--runs and --warmup must not be negative")
    if not args.cache:
        # Cached fixtures are keyed by name only: keep other input sizes apart.
        suffix = "" if args.size == 224 else f"-{args.size}"
        args.cache = os.path.join(REPO, "build", f"bench-models{suffix}")
    try:
        if args.torch_worker:
            return torch_worker(args)
        return run(args)
    except (BenchError, ValueError, OSError) as e:
        print(f"perf: error: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
