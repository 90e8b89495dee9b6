"""`make bench`: run every benchmark and print one table; writes benchmarks/results.json.

Each benchmarks/bench_*.py measures ours vs a naive baseline vs the bare-model limit side
by side in one run and writes benchmarks/out/<topic>.json; this script runs them in turn
(`--quick` passes --quick to each) and merges their figures.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only training,cli]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, ROOT, machine, print_table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results.json"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller versions (the whole set in a few minutes)")
    p.add_argument("--only", default="", help="comma-separated topics, e.g. training,cli")
    p.add_argument("--collect", action="store_true",
                   help="run nothing: merge the latest benchmarks/out/*.json (e.g. after running some in full)")
    a = p.parse_args(argv)
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    if a.only:
        wanted = set(a.only.split(","))
        scripts = [s for s in scripts if s.stem[len("bench_"):] in wanted]
    figures, failures = [], []
    for script in scripts:
        topic = script.stem[len("bench_"):]
        out = OUT / f"{topic}.json"
        if a.collect:
            if out.is_file():
                doc = json.loads(out.read_text())
                figures += [{**f, "topic": topic, "measured": doc.get("when")} for f in doc["figures"]]
            continue
        print(f"== {topic} ==", flush=True)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), *(["--quick"] if a.quick else [])])
        took = time.perf_counter() - t
        if proc.returncode != 0 or not out.is_file():
            failures.append(f"{topic} (exit {proc.returncode})")
            continue
        doc = json.loads(out.read_text())
        for f in doc["figures"]:
            figures.append({**f, "topic": topic})
        print(f"   ({took:.0f} s)", flush=True)
    kind = "collected" if a.collect else "quick" if a.quick else "full"
    print_table(figures, f"dogbreed benchmarks ({kind}) on {machine()}")
    RESULTS.write_text(json.dumps({"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                                   "kind": kind, "figures": figures, "failed": failures}, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    if failures:
        print("failed: " + ", ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
