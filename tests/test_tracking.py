"""MLflow tracking against a real local MLflow store (sqlite): a training job and a tuning job's
trials become runs; a URI that cannot be used fails before any job; a store lost mid-run
warns once and never fails the job; without MLflow the flag names the extra."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from dogbreed.backends.base import JobDescription
from dogbreed.tracking import EXPERIMENT, Tracker
from tests.conftest import TINY_HPS, run_dogbreed
from tests.test_train_sagemaker import AWS as SAGEMAKER_ARGS
from tests.test_train_sagemaker import TINY as SAGEMAKER_TINY
from tests.test_train_sagemaker import sagemaker_training  # noqa: F401 (the moto fixture)

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install 'dogbreed[mlflow]'")
TINY = ["--arch", "resnet18", "--weights", "none", "--image-size", "32", "-H", "workers=0"]


def runs(uri: str) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}, client


def _job(name="job-1", **kw) -> JobDescription:
    rules = [{"RuleConfigurationName": "Overfit", "RuleEvaluationStatus": "IssuesFound", "StatusDetails": "x"},
             {"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluationStatus": "NoIssuesFound"}]
    return JobDescription(name=name, status="Completed", backend="local", entry_point="train_model.py",
                          hyperparameters={"lr": 0.01, "batch-size": 16, "arch": "resnet18"},
                          metrics={"valid_loss": 0.5, "test_acc": 0.75},
                          metric_series={"valid_loss": [0.9, 0.5], "epoch": [1, 2]},
                          model_data="s3://bucket/job-1/output/model.tar.gz", extra={"rules": rules}, **kw)


@pytest.fixture
def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_a_job_description_becomes_one_run(store, tmp_path):
    report = tmp_path / "report.html"
    report.write_text("<html>report</html>")
    said = []
    tracker = Tracker(store, warn=said.append)
    tracker.log_training(_job(), report=lambda: report)
    tracker.log_training(_job())  # logged again (e.g. `train --resume`): the same run, not a second one
    found, client = runs(store)
    assert list(found) == ["job-1"]
    run = found["job-1"]
    assert said == [f"mlflow: training job job-1 logged as run {run.info.run_id} (experiment dogbreed, {store})"] * 2
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.01", "batch-size": "16", "arch": "resnet18"}
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "valid_loss")] == [(1, 0.9),
                                                                                                   (2, 0.5)]
    assert run.data.metrics["test_acc"] == 0.75 and run.data.metrics["rules_issues_found"] == 1
    assert "epoch" not in run.data.metrics  # the epoch is the step, not a metric
    tags = run.data.tags
    assert tags["rule.Overfit"] == "IssuesFound" and tags["rule.LossNotDecreasing"] == "NoIssuesFound"
    assert tags["dogbreed.model_data"] == "s3://bucket/job-1/output/model.tar.gz"
    assert tags["dogbreed.backend"] == "local"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "report")} == {"report/report.html"}
    # artifacts of a sqlite store live beside it, not in the current directory's mlruns/
    assert (tmp_path / "mlartifacts").is_dir()


def test_a_store_lost_mid_run_warns_once_and_never_raises(store, tmp_path):
    said = []
    tracker = Tracker(store, warn=said.append)
    (tmp_path / "mlflow.db").unlink()
    (tmp_path / "mlflow.db").mkdir()  # the database is gone: every write now fails
    tracker.log_training(_job("job-a"))
    tracker.log_training(_job("job-b"))
    tracker.start_tuning("hpo-x", {"strategy": "random"})
    assert len(said) == 1 and said[0].startswith("tracking: could not log training job job-a at sqlite:///")
    assert said[0].endswith("the job goes on, nothing more is logged to MLflow in this command")


def test_a_bare_folder_is_a_file_store(tmp_path):
    Tracker(str(tmp_path / "mlruns"), warn=lambda _line: None).log_training(_job())
    assert runs((tmp_path / "mlruns").as_uri())[0]["job-1"].data.params["lr"] == "0.01"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("uri, message", [
    (f"http://127.0.0.1:{_free_port()}", "cannot be used: no MLflow server answers there; check it"),
    ("nosuch://somewhere", "cannot be used: "),
    ("arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/team",
     "is a SageMaker MLflow ARN, which needs the sagemaker-mlflow plugin: pip install sagemaker-mlflow"),
])
def test_a_tracking_uri_that_cannot_be_used_fails_before_any_job(workspace, sample_data, uri, message):
    proc = run_dogbreed("--tracking-uri", uri, "train", "--data", sample_data, *TINY, "--epochs", 1, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (workspace / "jobs").exists()  # no job started


def test_without_mlflow_the_flag_names_the_extra(workspace, sample_data, tmp_path):
    # sys.modules["mlflow"] = None is how Python spells "not installed" for one process
    code = "import sys; sys.modules['mlflow'] = None; from dogbreed.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "train",
                           "--data", str(sample_data), *TINY], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("Error: --tracking-uri needs MLflow, which is not installed: "
                                   "pip install 'dogbreed[mlflow]'")
    assert not (workspace / "jobs").exists()


@pytest.mark.slow
def test_training_and_tuning_are_tracked_end_to_end(workspace, sample_data, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"DOGBREED_TRACKING_URI": uri}
    hps = [f"-H{k}={v}" for k, v in TINY_HPS.items() if k not in ("arch", "weights", "image-size", "batch-size",
                                                                   "freeze")]
    run_dogbreed("train", "--data", sample_data, *TINY, "--freeze", "none", "--epochs", 2, "--batch-size", 16,
                 *hps, env=env, timeout=900, check=True)
    run_dogbreed("tune", "--data", sample_data, *TINY, "--max-jobs", 2, "--max-parallel-jobs", 1, "--seed", 0,
                 "--name", "hpo-tracked", "--range", "epochs=1,2", env=env, timeout=900, check=True)
    found, client = runs(uri)
    train = next(r for name, r in found.items() if name.startswith("dogbreed-train-"))
    assert train.info.status == "FINISHED" and train.data.tags["dogbreed.kind"] == "training"
    assert train.data.params["epochs"] == "2" and "test_acc" in train.data.metrics
    assert [m.step for m in client.get_metric_history(train.info.run_id, "valid_loss")] == [1, 2]
    assert {"rule.LossNotDecreasing", "rule.Overfit", "rule.ProfilerReport"} <= set(train.data.tags)
    assert train.data.tags["dogbreed.model_data"].endswith("model.tar.gz")
    assert [a.path for a in client.list_artifacts(train.info.run_id, "report")] == ["report/report.html"]
    assert (workspace / "reports" / train.info.run_name / "report.html").is_file()  # where deploy finds it

    parent = found["hpo-tracked"]
    assert parent.info.status == "FINISHED" and parent.data.params["strategy"] == "bayesian"
    trials = {n: r for n, r in found.items() if n.startswith("hpo-tracked-")}
    assert sorted(trials) == ["hpo-tracked-001", "hpo-tracked-002"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trials.values())
    assert all("valid_loss" in r.data.metrics and "lr" in r.data.params for r in trials.values())
    best = parent.data.tags["dogbreed.best_trial"]
    assert parent.data.metrics["best_valid_loss"] == trials[best].data.metrics["valid_loss"]
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "report")] == ["report/report.html"]


def test_a_sagemaker_job_is_tracked_from_what_it_reported(cli, workspace, sagemaker_training, tmp_path):  # noqa: F811
    """moto plays SageMaker: the CLI logs the job from DescribeTrainingJob (no MLflow in any container)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = cli("--tracking-uri", uri, *SAGEMAKER_ARGS, "train", *SAGEMAKER_TINY)
    assert r.exit_code == 0, r.output
    (run,) = runs(uri)[0].values()
    assert run.info.run_name == sagemaker_training[0]["TrainingJobName"]
    assert run.data.tags["dogbreed.backend"] == "sagemaker" and run.data.params["epochs"] == "2"
    assert run.data.tags["dogbreed.model_data"].startswith("s3://")
    assert run.data.tags["rule.LossNotDecreasing"] == "IssuesFound" and run.data.tags["rule.Overfit"] == "NoIssuesFound"
    assert f"mlflow: training job {run.info.run_name} logged as run {run.info.run_id}" in r.output
