"""CLI start-up: `dogbreed --help` (lazy imports) vs a CLI that imports its stack eagerly
(torch, torchvision, sagemaker: the naive baseline) vs a bare Python interpreter.

    .venv/bin/python benchmarks/bench_cli.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, figure, median, print_table, save  # noqa: E402

EAGER = ("import torch, torchvision, sagemaker; from dogbreed.cli import main; import sys; "
         "sys.argv=['dogbreed','--help']; main()")


def wall(cmd, n) -> float:
    env = dict(os.environ, SAGEMAKER_SUPPRESS_V2_WARNING="1")
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        times.append(time.perf_counter() - t)
    return median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    n = 3 if a.quick else 7
    ours, base, bare = [], [], []
    for _ in range(n):  # interleaved, so drift hits all three alike
        ours.append(wall([str(BIN / "dogbreed"), "--help"], 1))
        base.append(wall([sys.executable, "-c", EAGER], 1))
        bare.append(wall([sys.executable, "-c", "pass"], 1))
    figs = [figure("`dogbreed --help` wall time", median(ours), median(base), median(bare), "s",
                   target="well under 1 s", higher_is_better=False)]
    print_table(figs, "CLI start-up")
    save("cli", figs)


if __name__ == "__main__":
    main()
