"""ProfilerReport's findings, in its spirit and with its default thresholds (smdebug-rulesconfig),
computed from the system-monitor files and the step timings of a job.

Inputs (the local layout, the same as SageMaker's `profiler-output/`):
    system/incremental/<YYYYMMDDHH>/<epoch>.algo-1.json   JSON lines {Type, Name, Dimension, Value, NodeId, Timestamp}
    dogbreed/steps.jsonl                                  {step, t, step_s, data_wait_s, batch_size}

The `patience` of a rule is the number of datapoints it needs before it may fire, as in
ProfilerReport; short runs therefore report "not enough data" rather than guesses.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

STEPS_DIR = "dogbreed"
THRESHOLDS = {
    "CPUBottleneck": {"threshold": 50, "gpu_threshold": 10, "cpu_threshold": 90, "patience": 1000},
    "IOBottleneck": {"threshold": 50, "gpu_threshold": 10, "io_threshold": 50, "patience": 1000},
    "DataWait": {"threshold": 50, "patience": 10},  # share of step time spent waiting for batches
    "StepOutlier": {"stddev": 3, "n_outliers": 10},
    "LowGPUUtilization": {"threshold_p95": 70, "threshold_p5": 10, "patience": 1000},
    "BatchSize": {"cpu_threshold_p95": 70, "gpu_threshold_p95": 70, "gpu_memory_threshold_p95": 70, "patience": 1000},
    "Dataloader": {"min_threshold": 70, "max_threshold": 200},
    "MaxInitializationTime": {"threshold_minutes": 20},
}


def read_system_metrics(profiler_dir: Path) -> list[dict]:
    rows = []
    for f in sorted((profiler_dir / "system").glob("incremental/*/*.json")):
        for line in f.read_text(errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line being written right now
                continue
    return rows


def read_steps(profiler_dir: Path) -> list[dict]:
    f = profiler_dir / STEPS_DIR / "steps.jsonl"
    if not f.is_file():
        return []
    out = []
    for line in f.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q / 100 * (len(v) - 1))))]


def snapshots(rows: list[dict]) -> list[dict]:
    """Per timestamp: mean CPU %, I/O wait %, max GPU %, max GPU memory %, memory %."""
    by_t: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        d = by_t[r["Timestamp"]]
        if r["Type"] == "cpu":
            d["cpu" if r["Dimension"] == "CPUUtilization" else "iowait"].append(r["Value"])
        elif r["Type"] == "gpu":
            d["gpu" if r["Dimension"] == "GPUUtilization" else "gpu_mem"].append(r["Value"])
        elif r["Type"] == "memory":
            d["memory"].append(r["Value"])
    out = []
    for t in sorted(by_t):
        d = by_t[t]
        out.append({"t": t, "cpu": statistics.fmean(d["cpu"]) if d["cpu"] else 0.0,
                    "iowait": statistics.fmean(d["iowait"]) if d["iowait"] else 0.0,
                    "gpu": max(d["gpu"]) if d["gpu"] else None, "gpu_mem": max(d["gpu_mem"]) if d["gpu_mem"] else None,
                    "memory": d["memory"][0] if d["memory"] else None})
    return out


def _finding(name, triggered, details, datapoints):
    return {"rule": name, "triggered": bool(triggered), "details": details, "datapoints": datapoints,
            "parameters": THRESHOLDS.get(name, {})}


def summarize(profiler_dir: Path, *, workers: int | None = None, cpus: int | None = None,
              job_start: float | None = None) -> dict:
    """The findings plus the figures the report plots; JSON-serialisable."""
    rows = read_system_metrics(profiler_dir)
    snaps = snapshots(rows)
    steps = read_steps(profiler_dir)
    n = len(snaps)
    has_gpu = any(s["gpu"] is not None for s in snaps)
    findings = []

    th = THRESHOLDS["CPUBottleneck"]
    busy = [s for s in snaps if s["cpu"] > th["cpu_threshold"] and (s["gpu"] or 0) < th["gpu_threshold"]]
    share = 100 * len(busy) / n if n else 0.0
    findings.append(_finding("CPUBottleneck", n > th["patience"] and share > th["threshold"],
                             f"CPU above {th['cpu_threshold']}% with GPU below {th['gpu_threshold']}% in {share:.0f}% "
                             f"of {n} snapshots" + ("" if n > th["patience"] else f" (needs > {th['patience']})"), n))

    th = THRESHOLDS["IOBottleneck"]
    io = [s for s in snaps if s["iowait"] > th["io_threshold"] and (s["gpu"] or 0) < th["gpu_threshold"]]
    share = 100 * len(io) / n if n else 0.0
    findings.append(_finding("IOBottleneck", n > th["patience"] and share > th["threshold"],
                             f"I/O wait above {th['io_threshold']}% in {share:.0f}% of {n} snapshots"
                             + ("" if n > th["patience"] else f" (needs > {th['patience']})"), n))

    th = THRESHOLDS["DataWait"]
    wait = sum(s["data_wait_s"] for s in steps)
    total = wait + sum(s["step_s"] for s in steps)
    wait_share = 100 * wait / total if total else 0.0
    findings.append(_finding("DataWait", len(steps) >= th["patience"] and wait_share > th["threshold"],
                             f"{wait_share:.0f}% of training-step time spent waiting for data over {len(steps)} steps",
                             len(steps)))

    th = THRESHOLDS["StepOutlier"]
    times = [s["step_s"] for s in steps[1:]]  # the first step includes warm-up
    outliers = []
    if len(times) >= 2:
        mean, sd = statistics.fmean(times), statistics.pstdev(times)
        outliers = [t for t in times if sd and t > mean + th["stddev"] * sd]
    findings.append(_finding("StepOutlier", len(outliers) > th["n_outliers"],
                             f"{len(outliers)} steps slower than mean + {th['stddev']} stddev "
                             f"(fires above {th['n_outliers']})", len(times)))

    if has_gpu:
        th = THRESHOLDS["LowGPUUtilization"]
        g = [s["gpu"] for s in snaps if s["gpu"] is not None]
        p95, p5 = _pct(g, 95), _pct(g, 5)
        low_gpu = p95 < th["threshold_p95"] or p5 < th["threshold_p5"]
        findings.append(_finding("LowGPUUtilization", len(g) > th["patience"] and low_gpu,
                                 f"GPU utilisation p95 {p95:.0f}%, p5 {p5:.0f}%", len(g)))

    th = THRESHOLDS["BatchSize"]
    cpu95 = _pct([s["cpu"] for s in snaps], 95)
    gpu95 = _pct([s["gpu"] for s in snaps if s["gpu"] is not None], 95)
    mem95 = _pct([s["gpu_mem"] for s in snaps if s["gpu_mem"] is not None], 95)
    low = cpu95 is not None and cpu95 < th["cpu_threshold_p95"] and (gpu95 is None or gpu95 < th["gpu_threshold_p95"]) \
        and (mem95 is None or mem95 < th["gpu_memory_threshold_p95"])
    findings.append(_finding("BatchSize", n > th["patience"] and low,
                             f"p95 CPU {cpu95 or 0:.0f}%"
                             + (f", GPU {gpu95:.0f}%, GPU memory {mem95:.0f}%" if gpu95 is not None else "")
                             + " (all below 70% suggests a larger batch)", n))

    if workers is not None and cpus:
        th = THRESHOLDS["Dataloader"]
        pct = 100 * workers / cpus
        findings.append(_finding("Dataloader", workers > 0 and not th["min_threshold"] <= pct <= th["max_threshold"],
                                 f"{workers} data-loader workers on {cpus} cores ({pct:.0f}%; advised "
                                 f"{th['min_threshold']}-{th['max_threshold']}%)", 1))

    if job_start is not None and steps:
        th = THRESHOLDS["MaxInitializationTime"]
        first = steps[0]["t"] - steps[0]["step_s"] - job_start
        findings.append(_finding("MaxInitializationTime", first > th["threshold_minutes"] * 60,
                                 f"{first:.1f} s from job start to the first step", 1))

    step_times = [s["step_s"] for s in steps]
    return {
        "findings": findings,
        "triggered": [f["rule"] for f in findings if f["triggered"]],
        "system": {"snapshots": n, "gpu": has_gpu,
                   "cpu_p50": _pct([s["cpu"] for s in snaps], 50), "cpu_p95": cpu95,
                   "memory_max": max((s["memory"] for s in snaps if s["memory"] is not None), default=None)},
        "steps": {"count": len(steps), "median_s": statistics.median(step_times) if step_times else None,
                  "p95_s": _pct(step_times, 95), "data_wait_share": round(wait_share, 2) if total else None,
                  "data_wait_total_s": wait},
    }
