"""Operating local jobs through the real CLI: stop, logs, a runner killed with SIGTERM, --resume
while an orphan still runs, jobs rm / prune, the weights pre-check and tuning's repeated-failure stop."""

import json
import os
import signal
import time

import pytest

from dogbreed.backends.base import FAILED, IN_PROGRESS, STOPPED
from dogbreed.backends.local.jobs import LocalJobRunner
from dogbreed.backends.local.processes import pid_alive
from dogbreed.workspace import Workspace

TINY = ["--arch", "resnet18", "--weights", "none", "--image-size", "48", "-H", "workers=0"]
LONG = ["train", *TINY, "--epochs", "50", "--no-debugger", "--no-profiler", "-H", "patience=0"]


def wait_for(condition, timeout_s: float, step_s: float = 0.2) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return False


@pytest.fixture
def runner(workspace):
    return LocalJobRunner(Workspace.resolve(workspace))


def start_long_job(cli, runner, sample_data) -> str:
    """A detached job that trains long enough to be stopped; returns its name once its script runs."""
    r = cli(*LONG, "--data", sample_data, "--no-wait")
    assert r.exit_code == 0, r.output
    (job,) = runner.list()
    assert wait_for(lambda: runner.script_alive(runner.describe(job.name)), 60)
    assert wait_for(lambda: runner.layout(job.name).log_file.exists(), 30)
    return job.name


def test_stop_a_detached_job_then_stop_again(cli, workspace, runner, sample_data):
    name = start_long_job(cli, runner, sample_data)
    pid = runner.describe(name).pid
    r = cli("stop", name)
    assert r.exit_code == 0, r.output
    assert f"training job {name} [local]: Stopped" in r.output
    job = runner.describe(name)
    assert job.status == STOPPED and "dogbreed stop" in job.failure_reason
    assert not pid_alive(pid) and not runner.layout(name).model_tar.exists()
    again = cli("stop", name)
    assert again.exit_code == 1
    assert again.output.strip() == f"Error: job {name} has already ended (Stopped); nothing to stop"


def test_stop_without_a_name_stops_the_last_running_job_or_says_none_runs(cli, workspace, runner, sample_data):
    r = cli("stop")
    assert r.exit_code == 1 and "no running job recorded" in r.output
    name = start_long_job(cli, runner, sample_data)
    r = cli("stop")
    assert r.exit_code == 0 and name in r.output and runner.describe(name).status == STOPPED


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_runner_killed_with_sigterm_or_sighup_stops_its_job(cli, workspace, runner, sample_data, sig):
    name = start_long_job(cli, runner, sample_data)
    job = runner.describe(name)
    os.kill(job.extra["runner_pid"], sig)
    assert wait_for(lambda: runner.describe(name).status != IN_PROGRESS, 30)
    done = runner.describe(name)
    assert done.status == STOPPED and signal.Signals(sig).name in done.failure_reason
    assert not pid_alive(job.pid)


def test_resume_refuses_while_an_orphaned_process_runs(cli, workspace, runner, sample_data):
    name = start_long_job(cli, runner, sample_data)
    job = runner.describe(name)
    os.kill(job.extra["runner_pid"], signal.SIGKILL)  # the runner dies; its training process runs on
    assert wait_for(lambda: runner.describe(name).status == FAILED, 10)
    assert pid_alive(job.pid)
    r = cli("train", "--resume", name)
    assert r.exit_code == 1
    assert f"a process of job {name} still runs (pid {job.pid}); `dogbreed stop {name}` ends it" in r.output
    assert len(runner.list()) == 1 and pid_alive(job.pid)  # nothing started, nothing killed
    r = cli("stop", name)
    assert r.exit_code == 0, r.output
    assert runner.describe(name).status == STOPPED and not pid_alive(job.pid)


def test_logs_of_a_finished_job_and_follow_until_the_end(cli, workspace, runner, sample_data):
    r = cli("train", "--data", sample_data, *TINY, "--epochs", "1", "--no-debugger", "--no-profiler")
    assert r.exit_code == 0, r.output
    (job,) = runner.list()
    logged = cli("logs", job.name)
    assert logged.exit_code == 0
    assert logged.output == runner.layout(job.name).log_file.read_text()
    assert cli("logs").output == logged.output  # default: the last training job
    followed = cli("logs", job.name, "--follow")  # a finished job: prints and returns
    assert followed.output == logged.output


def test_follow_a_running_job_until_it_is_stopped(cli, workspace, runner, sample_data):
    import threading

    name = start_long_job(cli, runner, sample_data)
    log_file = runner.layout(name).log_file
    assert wait_for(lambda: log_file.read_text().count("\n") >= 1, 60)
    threading.Timer(1.0, lambda: runner.stop(name)).start()
    r = cli("logs", name, "-f")  # returns once the job has ended, with every line it wrote
    assert r.exit_code == 0
    assert runner.describe(name).status == STOPPED
    assert r.output == log_file.read_text() and r.output


def test_logs_bad_input(cli, workspace, runner, sample_data):
    from dogbreed.backends.base import TrainingJobSpec

    desc = runner.prepare(TrainingJobSpec("hpo.py", {}, str(sample_data), job_name="queued-job"))
    r = cli("logs", desc.name)
    assert r.exit_code == 1
    assert r.output == "Error: job queued-job has no log yet (InProgress, Starting); try again once it runs\n"
    r = cli("logs", "no-such-job")
    assert r.exit_code == 1 and "no training or tuning job named 'no-such-job'" in r.output
    r = cli("logs", "../etc")
    assert r.exit_code == 1 and "not a valid name" in r.output


def test_weights_precheck_fails_at_once_without_creating_a_job(cli, workspace, sample_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))  # nothing cached; offline here
    r = cli("train", "--data", sample_data, "--arch", "resnet18", "--weights", "imagenet", "--epochs", "1")
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "ImageNet weights for resnet18 are not cached" in lines[0]
    assert not (workspace / "jobs").exists()
    r = cli("tune", "--data", sample_data, "--arch", "resnet18", "--max-jobs", "2")
    assert r.exit_code == 1 and "ImageNet weights for resnet18 are not cached" in r.output
    assert not (workspace / "jobs").exists() and not (workspace / "tuning").exists()


def test_tuning_stops_after_identical_failures(cli, workspace, sample_data, tmp_path):
    from dogbreed.backends.local.tuning import MAX_IDENTICAL_FAILURES

    not_weights = tmp_path / "not-weights.pth"
    not_weights.write_text("this is not a state dict")
    r = cli("tune", "--data", sample_data, "--arch", "resnet18", "--weights", not_weights, "--image-size", "48",
            "-H", "workers=0", "--max-jobs", "8", "--max-parallel-jobs", "1", "--name", "hpo-broken")
    assert r.exit_code == 1
    assert f"stopped after {MAX_IDENTICAL_FAILURES} trials in a row failed alike" in r.output
    assert len(list((workspace / "jobs").iterdir())) == MAX_IDENTICAL_FAILURES


def test_jobs_tuning_lists_and_describes_and_only_the_best_trial_keeps_its_model(cli, workspace, runner,
                                                                                 sample_data):
    r = cli("tune", "--data", sample_data, *TINY, "--max-jobs", 3, "--max-parallel-jobs", 1, "--seed", 1,
            "--name", "hpo-ops", "-H", "epochs=1", "--range", "lr=0.001:0.1:log")
    assert r.exit_code == 0, r.output
    listed = cli("jobs", "--tuning")
    assert listed.output.splitlines()[0].split() == ["NAME", "BACKEND", "STRATEGY", "STATUS", "TRIALS", "BEST"]
    assert "hpo-ops" in listed.output and "3/3" in listed.output
    described = json.loads(cli("jobs", "hpo-ops", "--json").output)
    assert described["name"] == "hpo-ops" and len(described["trials"]) == 3
    best = described["best"]["name"]
    with_model = [j.name for j in runner.list() if runner.layout(j.name).model_tar.exists()]
    assert with_model == [best]
    dropped = [j for j in runner.list() if j.name != best]
    assert all(j.model_data is None and "not the best trial" in j.extra["model_dropped"] for j in dropped)

    # jobs rm: sizes first; the recorded best trial stays without --force
    other = dropped[0].name
    r = cli("jobs", "rm", best, other, "--yes")
    assert r.exit_code == 1
    assert f"  {best}  " in r.output and "kept: it is the recorded best tuning trial" in r.output
    assert "deleted 1 job(s)" in r.output
    assert not (workspace / "jobs" / other).exists() and (workspace / "jobs" / best).exists()
    assert sample_data.is_dir() and any(sample_data.iterdir())  # the dataset the job linked to stays

    # prune keeps the best trial (--keep-best 1) and deletes the rest after confirmation
    r = cli("jobs", "prune", "--dry-run")
    assert "1 job(s) to delete" in r.output and len(list((workspace / "jobs").iterdir())) == 2
    r = cli("jobs", "prune", input="n\n")
    assert r.exit_code == 1 and len(list((workspace / "jobs").iterdir())) == 2
    r = cli("jobs", "prune", input="y\n")
    assert r.exit_code == 0 and "deleted 1 job(s)" in r.output
    assert [p.name for p in (workspace / "jobs").iterdir()] == [best]
    r = cli("jobs", "rm", best, "--force", "--yes")
    assert r.exit_code == 0 and not (workspace / "jobs" / best).exists()
    assert "best_job" not in json.loads((workspace / "state.json").read_text())  # forgotten with its job


def test_jobs_rm_bad_input(cli, workspace, runner, sample_data):
    name = start_long_job(cli, runner, sample_data)
    r = cli("jobs", "rm", name, "--yes")
    assert r.exit_code == 1 and f"{name}: it is InProgress; `dogbreed stop {name}` first" in r.output
    assert (workspace / "jobs" / name).is_dir()
    runner.stop(name)
    r = cli("jobs", "rm", "nope", "--yes")
    assert r.exit_code == 1 and "no local job named 'nope'" in r.output
    r = cli("jobs", "prune", "--older-than", "7x")
    assert r.exit_code == 1 and "not NUMBER+UNIT" in r.output
    r = cli("jobs", "prune", "--older-than", "1d")
    assert r.output.strip() == "nothing to prune" and (workspace / "jobs" / name).is_dir()
    r = cli("jobs", "rm", name, "--yes")
    assert r.exit_code == 0 and not (workspace / "jobs" / name).exists()


def test_stop_a_detached_tuning_job_stops_its_trials_and_stays_resumable(cli, workspace, runner, sample_data):
    from dogbreed.backends.local.tuning import LocalTuner

    # trials long enough to be running when `stop` comes (50 epochs of a cached-feature head can end first)
    r = cli("tune", "--data", sample_data, *TINY, "-H", "epochs=5000", "-H", "patience=0", "--max-jobs", 4,
            "--max-parallel-jobs", 2, "--name", "hpo-stop", "--no-wait")
    assert r.exit_code == 0, r.output
    tuner = LocalTuner(Workspace.resolve(workspace))
    assert wait_for(lambda: len([j for j in runner.list() if runner.script_alive(j)]) == 2, 120)
    trials = runner.list()
    driver = tuner.folder("hpo-stop").read().driver_pid
    r = cli("stop", "hpo-stop")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("tuning job hpo-stop [local]: Stopped (stopped by the user; "
                               "`dogbreed tune --resume hpo-stop` continues it)")
    assert not pid_alive(driver) and not any(runner.script_alive(runner.describe(j.name)) for j in trials)
    assert all(runner.describe(j.name).status == STOPPED for j in trials)
    r = cli("stop", "hpo-stop")
    assert r.exit_code == 1
    assert r.output.strip() == "Error: tuning job hpo-stop is not running (Stopped); nothing to stop"


def test_stop_ends_an_unresponsive_tuning_driver_and_its_trials(cli, workspace, runner, sample_data, monkeypatch):
    from dogbreed.backends.local import tuning
    from dogbreed.backends.local.tuning import LocalTuner

    r = cli("tune", "--data", sample_data, *TINY, "-H", "epochs=5000", "-H", "patience=0", "--max-jobs", 4,
            "--max-parallel-jobs", 2, "--name", "hpo-hung", "--no-wait")
    assert r.exit_code == 0, r.output
    tuner = LocalTuner(Workspace.resolve(workspace))
    assert wait_for(lambda: len([j for j in runner.list() if runner.script_alive(j)]) == 2, 120)
    trials = runner.list()
    driver = tuner.folder("hpo-hung").read().driver_pid
    os.kill(driver, signal.SIGSTOP)  # it cannot act on SIGTERM
    os.killpg(runner.describe(trials[0].name).pid, signal.SIGKILL)  # one trial's script is gone already
    monkeypatch.setattr(tuning, "TERM_GRACE_S", 0.5)
    monkeypatch.setattr(tuning, "DRIVER_STOP_SLACK_S", 1.0)
    result = tuner.stop("hpo-hung")
    assert result.status == STOPPED and result.failure_reason.startswith("stopped by the user")
    assert wait_for(lambda: not pid_alive(driver), 10)
    assert not any(runner.script_alive(runner.describe(j.name)) for j in trials)
    assert all(runner.describe(j.name).status == STOPPED for j in trials)


def test_the_job_behind_a_running_endpoint_stays(cli, workspace, runner, sample_data):
    from tests.test_server_local import free_port

    r = cli("train", "--data", sample_data, *TINY, "--epochs", "1", "--no-debugger", "--no-profiler")
    assert r.exit_code == 0, r.output
    (job,) = runner.list()
    r = cli("deploy", "--name", "served", "--port", free_port())
    assert r.exit_code == 0, r.output
    try:
        r = cli("jobs", "rm", job.name, "--yes")
        assert r.exit_code == 1 and "kept: endpoint served serves its model; --force removes it anyway" in r.output
        r = cli("jobs", "prune", "--yes")
        assert "0 job(s) to delete" in r.output and "kept: endpoint served serves its model" in r.output
        assert (workspace / "jobs" / job.name).is_dir()
    finally:
        cli("undeploy", "served")
    r = cli("jobs", "rm", job.name, "--yes")
    assert r.exit_code == 0 and not (workspace / "jobs" / job.name).exists()
    assert "model_data" not in json.loads((workspace / "state.json").read_text())
