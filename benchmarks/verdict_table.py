"""The debugger's verdict on healthy and on broken trainings, as a table anyone can re-run.

Each case is a real `dogbreed train` (local backend, generated data in the demo's layout);
the table shows the verdict headline it printed and which SageMaker-parity rules reported
IssuesFound. Healthy cases must not alarm; each broken one must name the problem and a rule.

    python benchmarks/verdict_table.py                 # every case (~10-20 min on 2 busy cores)
    python benchmarks/verdict_table.py --case lr-zero  # one case
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ["--arch", "resnet18", "--weights", "none", "--image-size", "64", "--freeze", "head"]
SMALL = ["-H", "workers=0", "-H", "seed=0", "-H", "patience=0", "--no-profiler",
         # weights every eval step would write ~45 MB per step for resnet18
         "--debug-param", "weights.eval.save_interval=1000", "--debug-param", "biases.eval.save_interval=1000"]
# name -> (expected: "healthy" | the problem's headline word(s), "A or B", dataset, flags)
CASES = {
    "demo (frozen backbone)": ("healthy", "demo", [*DEMO_MODEL, "--lr", "0.003", "--batch-size", "16",
                                                   "--epochs", "8"]),
    "README smoke 1 (--freeze none)": ("healthy", "demo", [
        "--arch", "resnet18", "--weights", "none", "--image-size", "64", "--freeze", "none", "--epochs", "6",
        "--lr", "0.003"]),
    "README smoke 2 (--freeze none, debugger)": ("healthy", "demo", [
        "--arch", "resnet18", "--weights", "none", "--image-size", "48", "--freeze", "none", "--batch-size", "16",
        "--epochs", "3"]),
    "lr-zero": ("NOT LEARNING", "demo", [*DEMO_MODEL, "--lr", "0", "--batch-size", "16", "--epochs", "4"]),
    "all-frozen (head too)": ("NOT LEARNING", "demo", ["--arch", "resnet18", "--weights", "none", "--image-size", "48",
                                                       "--freeze", "all", "--batch-size", "16", "--epochs", "3"]),
    "lr-diverges": ("DIVERGING", "demo", ["--arch", "resnet18", "--weights", "none", "--image-size", "48",
                                          "--freeze", "none", "--lr", "50", "--batch-size", "16", "--epochs", "3"]),
    # memorising needs more epochs than this small run: the model may only reach "labels without signal"
    "shuffled-labels": ("MEMORISING or AT CHANCE", "shuffled", [
        "--arch", "resnet18", "--weights", "none", "--image-size", "48", "--freeze", "none", "--lr", "0.003",
        "--batch-size", "16", "--epochs", "8"]),
}
ALARM = ("NOT LEARNING", "DIVERGING", "MEMORISING", "AT CHANCE")


def datasets(root: Path) -> dict[str, Path]:
    """The demo's generated set, and a copy whose training labels are shuffled (valid/test kept)."""
    from dogbreed.commands.demo import SYNTH
    from dogbreed.data.synth import SynthSpec, synthesize

    demo = root / "demo"
    synthesize(demo, SynthSpec(classes=SYNTH["classes"], per_class=SYNTH["per-class"], image_size=SYNTH["image-size"],
                               seed=0))
    shuffled = root / "shuffled"
    shutil.copytree(demo, shuffled)
    train = next(shuffled.rglob("train"))
    files = sorted(f for f in train.rglob("*") if f.is_file())
    labels = [f.parent.name for f in files]
    random.Random(0).shuffle(labels)
    for i, (f, label) in enumerate(zip(files, labels)):
        f.rename(train / label / f"shuffled_{i:04d}{f.suffix}")
    return {"demo": demo, "shuffled": shuffled}


def run_case(name: str, data: Path, flags: list[str], workspace: Path) -> dict:
    env = {**os.environ, "DOGBREED_WORKSPACE": str(workspace), "PYTHONPATH": str(ROOT / "src")}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dogbreed", "--backend", "local", "train", "--data", str(data),
                           *flags, *SMALL], capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    verdict = re.search(r"^verdict: (.*)$", out, re.M)
    fired = re.findall(r"^  (\w+)\s+IssuesFound", out, re.M)
    return {"case": name, "seconds": time.perf_counter() - started, "exit": proc.returncode,
            "verdict": verdict.group(1) if verdict else f"(no verdict; exit {proc.returncode}) {out[-300:]}",
            "fired": fired}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", action="append", choices=list(CASES), help="run only this case (repeatable)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    root = Path(tempfile.mkdtemp(prefix="dogbreed-verdicts-"))
    sets = datasets(root / "data")
    rows, failures = [], 0
    for name in args.case or list(CASES):
        expected, data, flags = CASES[name]
        row = run_case(name, sets[data], flags, root / "ws")
        headline = row["verdict"]
        ok = (not headline.startswith(ALARM)) if expected == "healthy" else \
            headline.startswith(tuple(expected.split(" or ")))
        failures += not ok
        rows.append((name, expected, headline, ", ".join(row["fired"]) or "-", f"{row['seconds']:.0f}",
                     "yes" if ok else "NO"))
        print(f"[{name}] {headline}", file=sys.stderr, flush=True)
    print("| case | expected | verdict (headline printed by `dogbreed train`) | parity rules IssuesFound | s "
          "| as expected |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(c).replace("|", "/") for c in r) + " |")
    shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
