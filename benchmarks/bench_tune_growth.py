"""How tuning cost grows with the dataset: feature-cache build time and per-trial time at
several dataset sizes, with the slope (seconds per 1,000 images), so a run can be predicted.

For each size a generated dataset (dogImages layout, train/valid/test as 4:1:1) is tuned with
`dogbreed tune`'s local tuner: 3 trials of 1 epoch, one at a time, frozen backbone. The first
trial builds the cache (valid/ eval view + train/ view 0); the other two find it warm.

    .venv/bin/python benchmarks/bench_tune_growth.py                      # 1k, 4k, 8.4k images, resnet50 224 px
    .venv/bin/python benchmarks/bench_tune_growth.py --sizes 1000,4000    # what a busy machine allows
    .venv/bin/python benchmarks/bench_tune_growth.py --quick              # 300, 600 images, resnet18 64 px

A 2-epoch trial also computes train/ view 1 (one more train pass); `--feature-views` more
epochs, more views, each once per dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure, print_table, save  # noqa: E402

CLASSES = 20
TRIALS = 3


def slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a + b x: (a, b)."""
    n = len(xs)
    if n < 2:
        return 0.0, ys[0] / xs[0]
    mx, my = sum(xs) / n, sum(ys) / n
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def one_size(root: Path, images: int, arch: str, size: int, synth_px: int) -> dict:
    from dogbreed.backends.base import TuningSpec
    from dogbreed.backends.local.jobs import LocalJobRunner
    from dogbreed.backends.local.tuning import LocalTuner
    from dogbreed.data.synth import SynthSpec, synthesize
    from dogbreed.search_space import build_space
    from dogbreed.workspace import Workspace

    per_class = max(4, round(images / 1.5 / CLASSES))
    spec = SynthSpec(classes=CLASSES, per_class=per_class, image_size=synth_px, seed=0)
    data = root / f"data-{images}"
    synthesize(data, spec)
    counts = spec.split_counts()
    static = {"arch": arch, "weights": "none", "image-size": size, "freeze": "head", "workers": 0, "patience": 0,
              "epochs": 1, "batch-size": 64}
    ws = Workspace.resolve(root / f"ws-{images}")
    tuner = LocalTuner(ws)
    name = tuner.create(TuningSpec(data=str(data), static_hyperparameters=static, strategy="random",
                                   space=build_space(static=static, range_args=["lr=0.001:0.01:log"]),
                                   max_jobs=TRIALS, max_parallel_jobs=1, seed=0, name=f"growth-{images}"))
    t = time.perf_counter()
    result = tuner.drive(name)
    wall = time.perf_counter() - t
    runner = LocalJobRunner(ws)
    jobs = [runner.describe(tr.name) for tr in result.trials]
    bad = [j.name for j in jobs if j.status != "Completed"]
    if bad:
        raise SystemExit(f"trials failed: {bad}; see {ws.root}/jobs/*/logs.txt")
    reports = [json.loads((Path(j.location) / "output" / "data" / "metrics.json").read_text()) for j in jobs]
    warm = [(j, m) for j, m in zip(jobs, reports) if m["feature_cache"]["misses"] == 0]
    cache_s = sum(m["feature_cache"]["compute_seconds"] for m in reports)
    computed = CLASSES * (counts["train"] + counts["valid"])
    return {"images": CLASSES * sum(counts.values()), "train": CLASSES * counts["train"],
            "valid": CLASSES * counts["valid"], "computed": computed,
            "cache_s": round(cache_s, 2), "cache_ms_per_image": round(1000 * cache_s / computed, 2),
            "warm_trial_s": round(sum(j.duration_s for j, _ in warm) / len(warm), 3),
            "warm_in_script_s": round(sum(m["seconds"] for _, m in warm) / len(warm), 3),
            "tune_wall_s": round(wall, 1), "load_average": round(os.getloadavg()[0], 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,4000,8400", help="dataset sizes in images, comma-separated")
    p.add_argument("--quick", action="store_true", help="300 and 600 images, resnet18 at 64 px")
    a = p.parse_args(argv)
    if a.quick:
        sizes, arch, size, synth_px = [300, 600], "resnet18", 64, 72
    else:
        sizes, arch, size, synth_px = [int(s) for s in a.sizes.split(",")], "resnet50", 224, 256

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
        for n in sizes:
            rows.append(one_size(Path(tmp), n, arch, size, synth_px))
            print(f"  {rows[-1]}", flush=True)
    xs = [r["computed"] / 1000 for r in rows]
    a_cache, b_cache = slope(xs, [r["cache_s"] for r in rows])
    a_trial, b_trial = slope(xs, [r["warm_trial_s"] for r in rows])
    print(f"\nbench_tune_growth ({arch} {size}px, frozen; images = train+valid+test, the cache covers train+valid)")
    print(f"{'images':>7} {'computed':>8} {'cache build s':>13} {'ms/image':>8} {'warm trial s':>12} "
          f"{'in-script s':>11} {'load':>5}")
    for r in rows:
        print(f"{r['images']:>7} {r['computed']:>8} {r['cache_s']:>13} {r['cache_ms_per_image']:>8} "
              f"{r['warm_trial_s']:>12} {r['warm_in_script_s']:>11} {r['load_average']:>5}")
    print(f"slope: cache build {b_cache:.1f} s per 1k images computed (+{a_cache:.1f} s); "
          f"warm trial {b_trial:.3f} s per 1k images (+{a_trial:.2f} s)")
    figures = [
        figure(f"feature cache build, s per 1k images ({arch} {size}px, valid + 1 train view)", round(b_cache, 2),
               None, None, "s/1k img", note=f"intercept {a_cache:.1f} s; sizes {[r['images'] for r in rows]}"),
        figure("warm trial (whole job), s per 1k images", round(b_trial, 3), None, None, "s/1k img",
               note=f"intercept {a_trial:.2f} s"),
    ]
    print_table(figures, "bench_tune_growth")
    save("tune_growth", figures, quick=a.quick, arch=arch, image_size=size, rows=rows,
         cache_intercept_s=round(a_cache, 2), trial_intercept_s=round(a_trial, 3))


if __name__ == "__main__":
    main()
