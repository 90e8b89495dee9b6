"""benchmarks/gpu_check.sh where no CUDA device is visible: one line, nothing measured, exit 3.
(Its `--device cpu` dry run trains twice and deploys, too slow for the suite; run it by hand.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_without_cuda_it_says_so_in_one_line_and_measures_nothing(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable)
    r = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True, env=env,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.splitlines() == [r.stdout.strip()] and "no CUDA device" in r.stdout
    assert "nothing measured" in r.stdout and "--device cpu" in r.stdout and not r.stderr
    assert not list(tmp_path.iterdir())  # nothing created


def test_a_bad_device_is_refused_by_the_parser():
    r = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "tpu"], capture_output=True,
                       text=True, env=dict(os.environ, PYTHON=sys.executable), timeout=60)
    assert r.returncode == 2 and "invalid choice: 'tpu'" in r.stderr
