#!/usr/bin/python3
"""Latency predictor benchmark: LUT fidelity and profiling cost. Writes docs/latency-results.md.

Usage:
    /usr/bin/python3 bench/latency.py [--autotailor build/autotailor] [--models resnet18,...]
        [--samples 20] [--threads 1] [--devices host,host-ort] [--methods context,isolated]
        [--learned-samples 400] [--cache build/bench-models] [--out docs/latency-results.md]
        [--cost-only]

For every model (tools/export_models.py's torchvision exports at 224x224, batch 1):
  1. `supernet` with default options;
  2. for each LUT method on `host` (context: steps timed inside whole covering subnets;
     isolated: each step alone) and for `host-ort` (ONNX Runtime through a bundle):
     `profile`, its wall time, then `validate-latency --samples N --json`: N random subnets
     exported and measured whole (random:1..N), predicted against measured;
  3. profiling cost against a learned predictor (first model only, host, context LUT):
     `validate-latency --samples M` measures M whole subnets; a ridge regression on the
     subnet encoding (one-hot per elastic position, as Once-for-All's latency predictor takes
     it) is fitted on the first k of them for growing k and scored on the LUT's validation
     subnets; the table shows the wall time of measuring k subnets against the LUT's
     profiling time, and at which k the learned predictor reaches the LUT's share within
     +-10%.
Each measurement is a separate process with the thread count set.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

import export_models  # noqa: E402


def log(msg):
    print(f"latency-bench: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log(" ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"latency-bench: {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r


def commit():
    try:
        return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def encode(subnet, space):
    """One-hot per elastic position of a subnet config (JSON) in a space.json."""
    feats = []

    def onehot(choices, value):
        if len(choices) > 1:
            feats.extend(1.0 if value == c else 0.0 for c in choices)

    for g in space.get("width_groups", []):
        onehot(g["choices"], subnet.get("widths", {}).get(g["name"], g["choices"][-1]))
    for st in space.get("stages", []):
        onehot(st["choices"], subnet.get("depths", {}).get(st["name"], st["choices"][-1]))
    for k in space.get("kernels", []):
        onehot(k["choices"], subnet.get("kernels", {}).get(k["node"], k["choices"][-1]))
    res = space.get("resolution", {}).get("choices", [])
    onehot(res, subnet.get("resolution") or (res[-1] if res else 0))
    return feats


def within10(pred, meas):
    pred, meas = np.asarray(pred), np.asarray(meas)
    return float(np.mean(np.abs(pred - meas) / meas <= 0.10))


LEARNERS = [("w10", "linear"), ("w10_log", "log"), ("w10_macs", "log + MACs"),
            ("w10_mlp", "MLP")]


def mlp_fit_predict(x, y, xq, seeds=5, steps=1500):
    """A small MLP (two hidden layers of 128, ReLU) on standardised features and log latency,
    trained full-batch with Adam; the mean of `seeds` fits, in log space."""
    import torch
    torch.set_num_threads(1)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    ym, ys = y.mean(), y.std() + 1e-9
    xt = torch.tensor((x - mu) / sd, dtype=torch.float32)
    yt = torch.tensor((y - ym) / ys, dtype=torch.float32)[:, None]
    xqt = torch.tensor((xq - mu) / sd, dtype=torch.float32)
    outs = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(),
                                  torch.nn.Linear(128, 128), torch.nn.ReLU(),
                                  torch.nn.Linear(128, 1))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.mean((net(xt) - yt) ** 2)
            loss.backward()
            opt.step()
        with torch.no_grad():
            outs.append(net(xqt).numpy()[:, 0])
    return np.mean(outs, axis=0) * ys + ym


def learner_curve(val, train, space, key, per_subnet_s):
    """Share of `val` within ±10% for learners fitted on the first k of `train`, with `key` (a
    measured time field) as the truth:
      linear      ridge on the one-hot encoding (latency in ms);
      log         ridge on log latency with every feature also crossed with the resolution's
                  one-hot (cost scales with H x W, so a width's effect depends on it);
      log + MACs  the same plus log MACs of the subnet (counted by validate-latency);
      MLP         two hidden layers on the one-hot encoding and log MACs, log latency, an
                  ensemble of 5 (Once-for-All's and BRP-NAS's kind of learned predictor)."""
    xv = np.array([encode(s["config"], space) for s in val])
    yv = np.array([s[key] for s in val])
    xt = np.array([encode(s["config"], space) for s in train])
    yt = np.array([s[key] for s in train])
    have_macs = all("macs" in s for s in val + train)
    mv = np.log(np.array([[s.get("macs", 1)] for s in val], dtype=float))
    mt = np.log(np.array([[s.get("macs", 1)] for s in train], dtype=float))
    nres = len(space.get("resolution", {}).get("choices", []))

    def crossed(x):
        if nres < 2:
            return x
        r = x[:, -nres:]
        return np.hstack([x] + [x * r[:, [j]] for j in range(nres)])

    def ridge(x, y, xq, lam):
        x = np.hstack([x, np.ones((len(x), 1))])
        w = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)
        return np.hstack([xq, np.ones((len(xq), 1))]) @ w

    curve = []
    for k in [25, 50, 100, 200, 400, 800, 1600, 3200, len(train)]:
        if k > len(train) or any(c["k"] == k for c in curve):
            continue
        lin = ridge(xt[:k], yt[:k], xv, 1e-2)
        log = np.exp(ridge(crossed(xt[:k]), np.log(yt[:k]), crossed(xv), 1e-2))
        row = {"k": k, "w10": within10(lin, yv), "w10_log": within10(log, yv),
               "cost_s": k * per_subnet_s}
        if have_macs:
            lm = np.exp(ridge(np.hstack([crossed(xt[:k]), mt[:k]]), np.log(yt[:k]),
                              np.hstack([crossed(xv), mv]), 1e-2))
            mlp = np.exp(mlp_fit_predict(np.hstack([xt[:k], mt[:k]]), np.log(yt[:k]),
                                         np.hstack([xv, mv])))
            row.update({"w10_macs": within10(lm, yv), "w10_mlp": within10(mlp, yv)})
        curve.append(row)
    lut = within10([s["predicted_ms"] for s in val], yv)
    return lut, curve


def learned_cost(args, at, m, space, lut_dir, lut_wall):
    """A learned predictor's cost for the LUT's fidelity: ridge regressions fitted on k whole
    subnets (random:N+1..N+M) and scored, as the LUT is, on random:1..N, all measured in one
    run. Where the LUT has a speed reference, the comparison is made twice: on the measured
    times, and on the times in units of the reference timed after each subnet (scaled to the
    LUT's speed).
    With --reuse-measurements the last run's saved measurements are scored again."""
    n = args.samples
    saved = os.path.join(args.work, m, "learned-subnets.json")
    if args.reuse_measurements:
        d = json.load(open(saved))
        val, train, per_subnet_s = d["validation"], d["training"], d["per_subnet_s"]
        when, run_commit = d["when"], d["commit"]
    else:
        t0 = time.time()
        out = json.loads(run([at, "validate-latency", lut_dir, "--device", "host", "--samples",
                              str(n + args.learned_samples), "--once", "--json"]).stdout)
        per_subnet_s = (time.time() - t0) / (n + args.learned_samples)
        val, train = out["subnets"][:n], out["subnets"][n:]
        when = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
        run_commit = commit()
        with open(saved, "w") as f:
            json.dump({"validation": val, "training": train, "per_subnet_s": per_subnet_s,
                       "when": when, "commit": run_commit,
                       "speed_reference": out.get("speed_reference")}, f)
    # A learner fitted on plain times needs no reference: its cost per subnet is the run's
    # wall time less the reference blocks timed after each subnet (computed: a warm-up and 5
    # runs per round, each at that round's median).
    ref_s = [sum(6 * r for r in s.get("reference_round_medians_ms", [])) / 1000
             for s in val + train]
    plain_s = per_subnet_s - float(np.mean(ref_s))
    lut_w10, curve = learner_curve(val, train, space, "measured_ms", plain_s)
    scaled = None
    if all("adjusted_measured_ms" in s for s in val + train):
        lut_scaled, curve_scaled = learner_curve(val, train, space, "adjusted_measured_ms",
                                                 per_subnet_s)
        drifts = [s["drift"] for s in val + train]
        scaled = {"lut_w10": lut_scaled, "curve": curve_scaled,
                  "drift_range": [min(drifts), max(drifts)]}
    return {"model": m, "lut_s": lut_wall, "lut_w10": lut_w10, "scaled": scaled,
            "per_subnet_s": per_subnet_s, "plain_s": plain_s, "curve": curve, "when": when,
            "commit": run_commit}


def cost_lines(cost):
    sc = cost.get("scaled")
    keys = [k for k, _ in LEARNERS if any(k in c for c in cost["curve"])]
    names = [n for k, n in LEARNERS if k in keys]
    lines = [
        "## Profiling cost against a learned predictor",
        "",
        f"{cost['model']}, host, measured {cost['when']} at commit {cost['commit']}. The "
        "validation subnets (random:1..N) and the k training subnets were measured in one "
        f"run, {cost['per_subnet_s']:.2f} s per subnet (export and 3 interleaved rounds "
        "included, each round followed by a block of the speed reference); "
        f"{cost.get('plain_s', cost['per_subnet_s']):.2f} s without the reference blocks "
        "(computed from their timings), which is what a learner of plain times pays. The LUT "
        f"(context method, its reference blocks included) took {cost['lut_s']:.1f} s to "
        "profile. "
        "Learners are fitted on the first k training subnets and scored, as the LUT is, on the "
        "validation subnets' measurements of the same run. Learners: *linear*, ridge "
        "regression on the one-hot subnet encoding (Once-for-All's input encoding); *log*, "
        "ridge regression on log latency with every one-hot feature also crossed with the "
        "resolution's (cost scales with H × W, so a width's effect depends on the "
        "resolution); *log + MACs*, the same with the subnet's log MAC count added; *MLP*, "
        "two hidden layers of 128 on the one-hot encoding and log MACs, fitted to log latency "
        "(Adam, 1500 full-batch steps, the mean of 5 seeds)." + (
            " *Scaled*: the same, on every subnet's time in units of the speed reference "
            "timed after it (times the reference's time at profiling; the reference drifted "
            f"{sc['drift_range'][0]:.2f}–{sc['drift_range'][1]:.2f}× over the run), at the "
            "cost with the reference blocks." if sc else ""),
        "",
        f"LUT within ±10%: {100 * cost['lut_w10']:.0f}%" +
        (f"; scaled: {100 * sc['lut_w10']:.0f}%" if sc else "") + ".",
        "",
        "| k whole subnets | measuring them | " + " | ".join(names) + " | cost vs LUT |" + (
            " measuring them, with the reference | " +
            " | ".join(n + ", scaled" for n in names) + " | cost vs LUT |" if sc else ""),
        "|---:|---:|" + "---:|" * (len(names) + 1) + ("---:|" * (len(names) + 2) if sc else ""),
    ]

    def cells(c):
        return " | ".join(f"{100 * c[k]:.0f}%" if k in c else "–" for k in keys)

    for i, c in enumerate(cost["curve"]):
        row = (f"| {c['k']} | {c['cost_s']:.0f} s | {cells(c)} | "
               f"{c['cost_s'] / cost['lut_s']:.1f}× |")
        if sc:
            s2 = sc["curve"][i]
            row += (f" {s2['cost_s']:.0f} s | {cells(s2)} | "
                    f"{s2['cost_s'] / cost['lut_s']:.1f}× |")
        lines.append(row)
    lines.append("")
    for label, lut_w10, curve in [("measured", cost["lut_w10"], cost["curve"])] + (
            [("scaled", sc["lut_w10"], sc["curve"])] if sc else []):
        reach = next((c for c in curve if max(c.get(k, 0) for k in keys) >= lut_w10), None)
        if lut_w10 < 0.5:
            lines.append(f"- {label}: the LUT itself puts only {100 * lut_w10:.0f}% within "
                         "±10%; compare the measurements over time (machine drift) before "
                         "reading anything into the learners' numbers.")
        elif reach:
            lines.append(f"- {label}: a learned predictor first matches the LUT at "
                         f"k = {reach['k']}, {reach['cost_s'] / cost['lut_s']:.1f}× the LUT's "
                         "profiling time.")
        elif curve:
            last = curve[-1]
            lines.append(f"- {label}: no learner matches the LUT with up to k = "
                         f"{last['k']} subnets ({last['cost_s'] / cost['lut_s']:.1f}× the "
                         "LUT's profiling time).")
    lines.append("")
    return lines


def sections(text):
    """{heading: lines} for the '## ' sections of a markdown text (heading line included)."""
    out, cur = {}, None
    for line in text.split("\n"):
        if line.startswith("## "):
            cur = line
            out[cur] = []
        if cur:
            out[cur].append(line)
    return out


def kept_sections(path, headings):
    if not os.path.exists(path):
        return []
    have = sections(open(path).read())
    lines = []
    for h in headings:
        if h in have:
            lines += have[h]
    return lines


def cost_only(args, at, m):
    """Reruns only the profiling-cost comparison on the existing LUT of `m` and replaces that
    section of the output file."""
    base = os.path.join(args.work, m)
    d = os.path.join(base, "host-context")
    lut_file = os.path.join(d, "lut_host.json")
    if not os.path.exists(lut_file):
        raise SystemExit(f"latency-bench: {lut_file} missing: run the full benchmark first")
    lut = json.load(open(lut_file))
    space = json.load(open(os.path.join(base, "sn", "space.json")))
    cost = learned_cost(args, at, m, space, d, lut["profiling_seconds"])
    text = open(args.out).read()
    have = sections(text)
    heading = "## Profiling cost against a learned predictor"
    new = cost_lines(cost)
    if heading in have:
        text = text.replace("\n".join(have[heading]), "\n".join(new))
    else:
        text += "\n" + "\n".join(new)
    with open(args.out + ".tmp", "w") as f:
        f.write(text)
    os.replace(args.out + ".tmp", args.out)
    log(f"wrote {args.out}")


def old_rows(path):
    """The fidelity rows of an existing results file, each with the run it came from: its own
    `measured` column, or the file's "Generated ... on DATE, commit X" line for older files."""
    if not os.path.exists(path):
        return []
    text = open(path).read()
    default = ""
    for line in text.split("\n"):
        if line.startswith("Generated by"):
            try:
                date = line.split(" on ", 1)[1].split(",")[0]
                c = line.split("commit ", 1)[1].split(",")[0]
                default = f"{date}, {c}"
            except IndexError:
                pass
    rows, in_table = [], False
    for line in text.split("\n"):
        if line.startswith("| model | device |"):
            in_table = True
            continue
        if not in_table:
            continue
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].startswith("---"):
            continue
        data, run = (cells[3:-1], cells[-1]) if len(cells) > 12 else (cells[3:], default)
        data += ["n/a"] * (len(COLUMNS) - len(data))  # rows from before a column existed
        rows.append({"model": cells[0], "device": cells[1], "method": cells[2],
                     "cells": data, "run": run})
    return rows


# The fidelity table's columns after model, device and method (the run comes last).
COLUMNS = ["configs", "space", "profiling wall time", "mean subnet", "RMSE", "mean abs error",
           "within ±5%", "within ±10%", "re-measurement within ±10%", "speed reference drift",
           "within ±10% in reference units"]


def row_cells(r):
    ref = r.get("reference")
    return [f"{r['configs']:,}", f"10^{r['log10']:.2f}", f"{r['profile_s']:.1f} s",
            f"{r['mean_ms']:.2f} ms", f"{r['rmse']:.3f} ms", f"{100 * r['mape']:.1f}%",
            f"{100 * r['w5']:.0f}%", f"{100 * r['w10']:.0f}%", f"{100 * r['rep']:.0f}%",
            f"{100 * (ref['drift'] - 1):+.0f}%" if ref else "n/a",
            f"{100 * r['adjusted']['within_10pct']:.0f}%" if ref else "n/a"]


def fusion_lines(fusion):
    """The fusion rules each host-ort LUT detected (model -> its LUT's rules)."""
    lines = ["## Fusion rules measured for host-ort", "",
             "Per model, the rules `profile --device host-ort` fitted on its two-step bundle "
             "models (docs/latency.md, \"Fusion\"): saving = T(a) + T(b) - T(a->b) per pair of "
             "step kinds, as the median over the measured pairs and as a share of T(a) + T(b); "
             "only detected rules (median share >= 3%) change predictions.", "",
             "| model | producer -> consumer | pairs | median saving | median share | fit | "
             "detected |", "|---|---|---:|---:|---:|---|---|"]
    for m, rules in fusion.items():
        for r in rules:
            lines.append(
                f"| {m} | {r['producer']} -> {r['consumer']} | {r['pairs']} | "
                f"{r['median_saving_ms']:.4f} ms | {100 * r['median_share']:.0f}% | "
                f"{r['intercept_ms']:.4f} ms + {r['ms_per_mb']:.4f} ms/MB | "
                f"{'yes' if r['detected'] else 'no'} |")
    return lines + [""]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--autotailor", default=os.path.join(REPO, "build", "autotailor"))
    ap.add_argument("--models", default="resnet18,mobilenet_v2,resnet50")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--devices", default="host,host-ort")
    ap.add_argument("--methods", default="context,isolated")
    ap.add_argument("--learned-samples", type=int, default=400)
    ap.add_argument("--reuse-measurements", action="store_true",
                    help="with --cost-only: score the last run's saved subnet measurements again")
    ap.add_argument("--cost-only", action="store_true",
                    help="only the learned-predictor comparison, on the first model's existing LUT")
    ap.add_argument("--cache", default=os.path.join(REPO, "build", "bench-models"))
    ap.add_argument("--work", default=os.path.join(REPO, "build", "bench-latency"))
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "latency-results.md"))
    args = ap.parse_args()
    at = args.autotailor
    models = [m for m in args.models.split(",") if m]
    if args.cost_only:
        return cost_only(args, at, models[0])
    os.makedirs(args.cache, exist_ok=True)
    missing = [m for m in models if not os.path.exists(os.path.join(args.cache, m + ".onnx"))]
    if missing:
        run(["/usr/bin/python3", os.path.join(REPO, "tools", "export_models.py"), "--out",
             args.cache, "--models", ",".join(missing)])
    rows, cost, fusion = [], None, {}
    stamp = f"{datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')}, {commit()}"
    for mi, m in enumerate(models):
        base = os.path.join(args.work, m)
        sn = os.path.join(base, "sn")
        if not os.path.exists(os.path.join(sn, "space.json")):
            run([at, "supernet", os.path.join(args.cache, m + ".onnx"), "-o", sn])
        space = json.load(open(os.path.join(sn, "space.json")))
        log10 = space.get("log10_size", float("nan"))
        runs_cfg = []
        for dev in args.devices.split(","):
            methods = args.methods.split(",") if dev == "host" else ["import"]
            for method in methods:
                d = os.path.join(base, f"{dev}-{method}")
                if os.path.exists(d):
                    subprocess.run(["rm", "-rf", d])
                os.makedirs(d)
                for f in ("supernet.onnx", "space.json"):
                    os.link(os.path.join(sn, f), os.path.join(d, f))
                cmd = [at, "profile", d, "--device", dev, "--threads", str(args.threads)]
                if dev == "host":
                    cmd += ["--method", method]
                t0 = time.time()
                run(cmd)
                wall = time.time() - t0
                lut = json.load(open(os.path.join(d, f"lut_{dev}.json")))
                vout = run([at, "validate-latency", d, "--device", dev, "--samples",
                            str(args.samples), "--json"]).stdout
                with open(os.path.join(d, "validate.json"), "w") as f:
                    f.write(vout)  # the raw rows, for a closer look
                v = json.loads(vout)
                rows.append({"model": m, "device": dev, "method": method,
                             "configs": len(lut["entries"]), "log10": log10,
                             "profile_s": wall, "rmse": v["rmse_ms"], "mape": v["mape"],
                             "w5": v["within_5pct"], "w10": v["within_10pct"],
                             "rep": v["repeat_within_10pct"],
                             "n": v["samples"],
                             "reference": v.get("speed_reference"),
                             "adjusted": v.get("adjusted"),
                             "mean_ms": float(np.mean([s["measured_ms"] for s in v["subnets"]])),
                             "run": stamp})
                if lut.get("fusion", {}).get("rules"):
                    fusion[m] = lut["fusion"]["rules"]
                runs_cfg.append((dev, method, d, v, wall))
        ctx = next((x for x in runs_cfg if x[0] == "host" and x[1] == "context"), None)
        if mi == 0 and args.learned_samples > 0 and ctx:
            cost = learned_cost(args, at, m, space, ctx[2], ctx[4])

    # Rows of model/device/method combinations not rerun now are kept, with their own run.
    table = {(r["model"], r["device"], r["method"]): r for r in old_rows(args.out)}
    for r in rows:
        table[(r["model"], r["device"], r["method"])] = dict(r, cells=row_cells(r))
    lines = [
        "# Latency predictor: measured fidelity and profiling cost",
        "",
        f"Generated by `bench/latency.py`, {cpu_name()}, {os.cpu_count()} cores, "
        f"{args.threads} thread(s), batch 1, 224x224 torchvision exports; each row names the "
        f"run (date, commit) it was measured in. Validation: {args.samples} random subnets "
        f"(`random:1..{args.samples}`) exported and measured whole; the runtime measuring them "
        "is the one the LUT is for (our executor for `host`, ONNX Runtime for `host-ort`).",
        "",
        "| model | device | LUT method | " + " | ".join(COLUMNS) + " | measured |",
        "|---|---|---|" + "---:|" * len(COLUMNS) + "---|",
    ]
    for (m, dev, method), r in table.items():
        lines.append(f"| {m} | {dev} | {method} | " + " | ".join(r["cells"]) + f" | {r['run']} |")
    lines += ["", "Targets: ≥ 95% within ±10% on `host`, ≥ 90% on `host-ort`. *Re-measurement* "
              "is the measurement's own repeatability, the share of validation subnets whose "
              "two halves of the measurement agree within ±10%. Rows measured from 2026-12-02 "
              "time the subnets in 6 interleaved rounds and compare the median of the even "
              "rounds with that of the odd ones (docs/latency.md, \"Measured fidelity\"); "
              "older rows measured each subnet twice in a row (each a median of at least 10 "
              "runs). No predictor can be scored better than the measurement repeats. "
              "The speed reference (docs/latency.md, \"Speed reference\") is the max subnet, "
              "timed while the LUT was measured and again next to the validation subnets: its "
              "drift is how much slower (+) or faster (-) it ran in validation. *In reference "
              "units* scores each subnet's time over the reference timed right after it (host; "
              "host-ort: in the same round), times the reference's time when the LUT was "
              "measured: the predictor's error with the machine's drift taken out. Rows before "
              "14:02 UTC on 2026-12-02 scaled each batch by one drift factor instead. The "
              "targets are stated in ms, the plain column.", ""]
    # Sections not regenerated now stay as they were, as do hand-written ones.
    lines += cost_lines(cost) if cost else kept_sections(
        args.out, ["## Profiling cost against a learned predictor"])
    if fusion:
        lines += fusion_lines(fusion)
    else:
        lines += kept_sections(args.out, ["## Fusion rules measured for host-ort"])
    lines += kept_sections(args.out, ["## Relative latency: the LUT in units of a paired reference",
                                      "## Reading these numbers"])
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, args.out)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
