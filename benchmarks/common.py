"""Helpers shared by the benchmark scripts: timing, medians, the results table and JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
BIN = Path(sys.executable).parent


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}".strip(", ")


def median(values):
    return statistics.median(values) if values else float("nan")


def timed(fn, *args, **kw):
    t = time.perf_counter()
    result = fn(*args, **kw)
    return time.perf_counter() - t, result


def figure(name, ours, baseline, bare, unit, target="", higher_is_better=True, note=""):
    """One row: ours vs the naive baseline vs the bare-model limit, measured in one run."""
    def ratio(a, b):
        if not a or not b:
            return None
        return round(a / b if higher_is_better else b / a, 3)

    return {"name": name, "ours": ours, "baseline": baseline, "bare": bare, "unit": unit,
            "ratio": ratio(ours, baseline), "of_bare": ratio(ours, bare), "target": target, "note": note}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def print_table(figures, title=""):
    header = ["figure", "ours", "baseline", "bare", "unit", "ours/baseline", "ours/bare", "target"]
    rows = [[f["name"], fmt(f["ours"]), fmt(f["baseline"]), fmt(f["bare"]), f["unit"],
             fmt(f.get("ratio")) + ("x" if f.get("ratio") else ""), fmt(f.get("of_bare")), f.get("target", "")]
            for f in figures]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    if title:
        print(f"\n{title}")
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def save(topic: str, figures, **extra):
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"topic": topic, "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"), "figures": figures,
           **extra}
    (OUT / f"{topic}.json").write_text(json.dumps(doc, indent=2))
    return doc


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)
