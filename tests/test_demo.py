"""`dogbreed demo`, the command `make demo` runs: the whole pipeline, offline, for real."""

import json
import re
import socket

import pytest

from tests.conftest import run_dogbreed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_demo_runs_every_step_and_cleans_up(tmp_path):
    port = free_port()
    env = {"DOGBREED_WORKSPACE": str(tmp_path / "ws")}
    proc = run_dogbreed("demo", "--out", tmp_path / "out", "--max-jobs", 3, "--port", port, env=env,
                        cwd=tmp_path, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    for n in range(1, 9):
        assert f"[{n}/8]" in out
    for command in ("data synth", "tune", "train --from-best", "report", "deploy", "predict", "undeploy"):
        assert f"$ dogbreed {command}" in out
    accuracy = int(re.search(r"top-1 on these 10 held-out images: (\d+)%", out).group(1))
    assert accuracy > 20  # chance is 20% for 5 breeds
    assert (tmp_path / "out" / "report" / "report.html").is_file()
    state = json.loads((tmp_path / "ws" / "state.json").read_text())
    assert state["best_job"]["name"].startswith("dbhpo-") and state["model_data"]["uri"].endswith("model.tar.gz")
    assert "endpoint" not in state  # undeployed
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing left listening


def test_demo_refuses_the_sagemaker_backend(tmp_path):
    proc = run_dogbreed("--backend", "sagemaker", "demo", env={"DOGBREED_WORKSPACE": str(tmp_path / "ws")})
    assert proc.returncode == 1 and "runs on the local backend" in proc.stderr
