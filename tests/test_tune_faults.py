"""A trial process killed mid-run: the tuning job records it Failed and goes on."""

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import TINY_HPS


def test_killed_trial_is_recorded_failed_and_tuning_goes_on(workspace, sample_data):
    env = {**os.environ, "DOGBREED_WORKSPACE": str(workspace)}
    args = [sys.executable, "-m", "dogbreed", "tune", "--data", str(sample_data), "--arch", "resnet18", "--weights",
            "none", "--image-size", "48", "--freeze", "none", "--strategy", "random", "--max-jobs", "2",
            "--max-parallel-jobs", "1", "--range", "lr=0.001,0.01", "-H", "epochs=2", "-H", "batch-size=16",
            "-H", f"workers={TINY_HPS['workers']}"]
    tune = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed, deadline = None, time.time() + 120
    while killed is None and time.time() < deadline and tune.poll() is None:
        for desc_file in (workspace / "jobs").glob("*/job.json") if (workspace / "jobs").is_dir() else []:
            desc = json.loads(desc_file.read_text())
            if desc.get("pid"):
                os.killpg(desc["pid"], signal.SIGKILL)  # the trial's process dies (OOM killer, say)
                killed = desc["name"]
                break
        time.sleep(0.05)
    out = tune.communicate(timeout=600)[0]
    assert killed, out
    assert tune.returncode == 0, out
    descs = {d.parent.name: json.loads(d.read_text()) for d in (workspace / "jobs").glob("*/job.json")}
    assert descs[killed]["status"] == "Failed" and "signal 9" in descs[killed]["failure_reason"]
    others = [d for name, d in descs.items() if name != killed]
    assert len(others) == 1 and others[0]["status"] == "Completed"
    state = json.loads((workspace / "state.json").read_text())
    assert state["best_job"]["name"] == others[0]["name"]  # the best of what finished
    assert "Failed" in out and "trial 2/2 Completed" in out
