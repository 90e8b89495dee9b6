"""The local job runner for real: subprocess jobs in /opt/ml-style folders."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from dogbreed.backends.base import COMPLETED, FAILED, IN_PROGRESS, STOPPED, TrainingJobSpec
from dogbreed.backends.local.jobs import LocalJobRunner
from dogbreed.backends.local.layout import JobLayout
from dogbreed.backends.local.processes import ctrl_c_stops_group, detached_worker_main, kill_group, terminate_group
from dogbreed.errors import DataError, JobNotFoundError
from dogbreed.training.environment import TrainingEnv
from dogbreed.workspace import Workspace
from tests.conftest import TINY_HPS


@pytest.fixture
def runner(workspace):
    return LocalJobRunner(Workspace.resolve(workspace))


def spec(data, **hps):
    return TrainingJobSpec(entry_point="hpo.py", hyperparameters={**TINY_HPS, "epochs": 1, **hps}, data=str(data),
                           base_name="t")


def wait_for(condition, timeout_s: float, step_s: float = 0.2) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline and not condition():
        time.sleep(step_s)


def read_until_first_epoch(proc: subprocess.Popen) -> None:
    """Read the CLI's output until its first epoch line, when the job is training."""
    for line in proc.stdout:
        if line.startswith("epoch 1/"):
            break


@pytest.mark.slow
def test_two_processes_train_under_torchrun_with_its_files_in_the_job_folder(runner, sample_data, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job = runner.run(dataclasses.replace(spec(sample_data, epochs=2), entry_point="train_model.py", processes=2))
    assert job.status == COMPLETED, job.failure_reason
    layout = runner.layout(job.name)
    log = layout.log_file.read_text()
    assert "2 processes" in log
    assert log.count("#metric epoch=") == 2  # rank 0 only
    result = json.loads((layout.output_data_dir / "metrics.json").read_text())
    assert result["test"]["n"] == 20  # shards summed across both ranks, nothing counted twice
    assert (layout.model_dir / "model.pth").is_file()
    assert (layout.root / "torchrun").is_dir()  # torchrun's --log-dir, instead of a new /tmp/torchelastic_*


def test_completed_job_layout_metrics_and_artifact(runner, sample_data, workspace, monkeypatch):
    monkeypatch.delenv("DOGBREED_IMAGE_CACHE")  # the default: the workspace's cache
    lines = []
    job = runner.run(spec(sample_data, **{"batch-size": 40}), log=lines.append)
    assert job.status == COMPLETED, job.failure_reason
    layout = runner.layout(job.name)
    hps = json.loads((layout.config_dir / "hyperparameters.json").read_text())
    assert hps["arch"] == '"resnet18"' and hps["epochs"] == "1"  # JSON-encoded like the SDK sends them
    assert json.loads((layout.config_dir / "resourceconfig.json").read_text())["current_host"] == "algo-1"
    assert (layout.channel_dir("training") / "train").is_dir()
    assert {"valid_loss", "train_loss", "epoch"} <= set(job.metrics)
    assert job.metrics["valid_loss"] == job.metric_series["valid_loss"][-1]
    assert any(line.startswith("#metric valid_loss=") for line in lines)
    assert "#metric valid_loss=" in layout.log_file.read_text()
    with tarfile.open(job.model_data) as tar:
        assert sorted(tar.getnames()) == ["labels.json", "model.pth", "model_config.json"]
    assert sorted((workspace / "cache" / "images").glob("images-*.json"))  # the decoded images, kept
    again = runner.describe(job.name)
    assert again.status == COMPLETED and again.model_data == job.model_data
    assert [j.name for j in runner.list()] == [job.name]


def test_environment_follows_the_toolkit(tmp_path):
    layout = JobLayout(tmp_path / "job")
    (tmp_path / "scripts").mkdir()
    layout.create(channels={"training": tmp_path}, encoded_hps={}, scripts=tmp_path / "scripts", config_files={})
    env = layout.environment(job_name="j", entry_point="hpo.py", user_hps={"use-amp": True, "lr": 0.1},
                             channels={"training": tmp_path})
    assert env["SM_CHANNELS"] == '["training"]'
    assert env["SM_HP_USE-AMP"] == "true" and env["SM_HP_LR"] == "0.1"
    assert env["SM_USER_ARGS"] == '["--lr","0.1","--use-amp","True"]'
    parsed = TrainingEnv.from_env(env)
    assert parsed.model_dir == layout.model_dir and parsed.channel() == layout.channel_dir("training")
    assert parsed.checkpoint_dir == layout.checkpoint_dir and parsed.job_name == "j"


def test_failed_job_records_reason_and_no_artifact(runner, sample_data, tmp_path):
    (tmp_path / "broken" / "train" / "a").mkdir(parents=True)
    job = runner.run(spec(tmp_path / "broken"))
    assert job.status == FAILED
    assert "has 1 class folder" in job.failure_reason
    assert job.model_data is None and not runner.layout(job.name).model_tar.exists()
    assert "error:" in runner.layout(job.name).log_file.read_text()


def test_missing_dataset_fails_before_any_job(runner, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        runner.run(spec(tmp_path / "nope"))
    assert runner.list() == []


def test_stop_marks_stopped_without_artifact(runner, sample_data):
    running = runner.start(spec(sample_data, epochs=50, patience=0))
    log_file = runner.layout(running.name).log_file
    wait_for(lambda: log_file.exists() and "#metric epoch=" in log_file.read_text(), 120)
    running.stop()
    job = running.wait(60)
    assert job.status == STOPPED and job.model_data is None
    assert not runner.layout(running.name).model_tar.exists()
    assert job.metrics.get("epoch", 0) >= 1


def test_dead_runner_is_reported_failed(runner, sample_data):
    desc = runner.prepare(spec(sample_data))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    desc.extra["runner_pid"] = dead.pid
    runner._write(desc)
    assert runner.describe(desc.name).status == FAILED
    assert "died" in runner.describe(desc.name).failure_reason


def test_unknown_job(runner):
    with pytest.raises(JobNotFoundError, match="dogbreed jobs"):
        runner.describe("nope")


def test_max_run_stops_the_job(runner, sample_data):
    s = spec(sample_data, epochs=50, patience=0)
    s.max_run_s = 3
    job = runner.run(s)
    assert job.status == STOPPED and "max_run" in job.failure_reason


def test_ctrl_c_on_the_cli_marks_the_job_stopped(workspace, sample_data):
    env = dict(os.environ, DOGBREED_WORKSPACE=str(workspace))
    args = [sys.executable, "-m", "dogbreed", "train", "--data", str(sample_data), "--epochs", "50",
            *sum(([f"--{k}", str(v)] for k, v in TINY_HPS.items() if k in ("arch", "weights", "image-size")), []),
            "-H", "patience=0", "-H", "workers=0"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    read_until_first_epoch(proc)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0, rest[-3000:]
    jobs = LocalJobRunner(Workspace.resolve(workspace)).list()
    assert len(jobs) == 1 and jobs[0].status == STOPPED
    assert not JobLayout(workspace / "jobs" / jobs[0].name).model_tar.exists()
    assert jobs[0].status != IN_PROGRESS


def test_killed_job_restarts_from_its_last_checkpoint(runner, sample_data):
    """SIGKILL the training process after its first epoch; restart resumes, not redoes."""
    running = runner.start(spec(sample_data, epochs=3, patience=0))
    layout = runner.layout(running.name)
    wait_for((layout.checkpoint_dir / "checkpoint.pth").exists, 120)
    time.sleep(0.5)  # let the atomic rename settle
    os.killpg(runner.describe(running.name).pid, signal.SIGKILL)
    killed = running.wait(60)
    assert killed.status == FAILED and "signal 9" in killed.failure_reason
    for name in ("checkpoint.pth", "best.pth"):  # as if killed mid-save (best.pth may not be saved again)
        (layout.checkpoint_dir / f".{name}.{killed.pid}.tmp").write_bytes(b"half a checkpoint")
    resumed = runner.restart(running.name)
    assert resumed.status == COMPLETED, resumed.failure_reason
    assert not list(layout.checkpoint_dir.glob(".*.tmp"))  # not uploaded with the checkpoints forever
    log = layout.log_file.read_text()
    assert "resumed from" in log
    assert resumed.metric_series["epoch"][-1] == 3.0
    assert 1.0 not in resumed.metric_series["epoch"]  # epoch 1 was not trained again
    with pytest.raises(Exception, match="already Completed"):
        runner.restart(running.name)


def test_train_resume_on_the_cli_continues_a_killed_job(workspace, sample_data, dogbreed_cmd):
    env = {"DOGBREED_WORKSPACE": str(workspace)}
    args = ["train", "--data", sample_data, "--arch", "resnet18", "--weights", "none", "--image-size", "48",
            "--epochs", "3", "--no-debugger", "--no-profiler", "-H", "patience=0", "-H", "workers=0"]
    proc = subprocess.Popen([sys.executable, "-m", "dogbreed", *map(str, args)],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runner = LocalJobRunner(Workspace.resolve(workspace))
    read_until_first_epoch(proc)
    (job,) = runner.list()
    wait_for((runner.layout(job.name).checkpoint_dir / "checkpoint.pth").exists, 60, step_s=0.1)
    os.killpg(job.pid, signal.SIGKILL)  # the training process dies mid-run (OOM killer, say)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1
    assert f"dogbreed train --resume {job.name}" in out
    resumed = dogbreed_cmd("train", "--resume", env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from" in resumed.stdout and "Completed" in resumed.stdout
    assert runner.describe(job.name).status == COMPLETED
    assert json.loads((workspace / "state.json").read_text())["model_data"]["job"] == job.name


def test_detached_job_runs_in_its_own_process(runner, sample_data):
    desc = runner.run_detached(spec(sample_data))
    wait_for(lambda: runner.describe(desc.name).status != IN_PROGRESS, 300)
    job = runner.describe(desc.name)
    assert job.status == COMPLETED, job.failure_reason
    assert job.extra["runner_pid"] != os.getpid()


def test_detached_worker_main_reads_workspace_and_name(tmp_path):
    calls = []
    detached_worker_main(lambda workspace, name: calls.append((workspace.root, name)), [str(tmp_path), "job-1"])
    assert calls == [(Workspace.resolve(tmp_path).root, "job-1")]


def sleeper(ignore_sigterm: bool = False) -> subprocess.Popen:
    code = "import signal, time\n"
    if ignore_sigterm:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline() == "ready\n"  # its SIGTERM handler is in place
    return proc


def test_terminate_group_kills_what_ignores_sigterm():
    proc = sleeper(ignore_sigterm=True)
    started = time.monotonic()
    terminate_group(proc, grace=0.5)
    assert proc.returncode == -signal.SIGKILL and time.monotonic() - started < 10
    assert not kill_group(proc.pid, signal.SIGTERM)  # the group is gone


def test_ctrl_c_terminates_the_group_and_restores_the_handler():
    before = signal.getsignal(signal.SIGINT)
    proc = sleeper()
    with ctrl_c_stops_group(proc) as ctrl_c:
        os.kill(os.getpid(), signal.SIGINT)
        proc.wait(10)
    assert ctrl_c.pressed and proc.returncode == -signal.SIGTERM
    assert signal.getsignal(signal.SIGINT) is before
