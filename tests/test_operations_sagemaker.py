"""`dogbreed logs`, `stop` and `jobs --tuning` on the SageMaker backend against moto: the log
lines come from CloudWatch Logs events put into moto's logs service here; moto has no
StopTrainingJob / StopHyperParameterTuningJob, so this test adds them to moto's SageMaker
service (they move the job to Stopping, as SageMaker does)."""

from __future__ import annotations

import pytest

from tests import test_train_sagemaker, test_tune_sagemaker
from tests.moto_support import BUCKET, backend
from tests.test_train_sagemaker import AWS, TINY

sagemaker_training = test_train_sagemaker.sagemaker_training  # the fixtures, shared
sagemaker_tuning = test_tune_sagemaker.sagemaker_tuning

GROUP = "/aws/sagemaker/TrainingJobs"


@pytest.fixture
def moto_stops(aws, monkeypatch):
    from moto.core.responses import EmptyResult
    from moto.sagemaker.responses import SageMakerResponse

    def stop_training_job(self):
        backend().training_jobs[self._get_param("TrainingJobName")].training_job_status = "Stopping"
        return EmptyResult()

    def stop_hyper_parameter_tuning_job(self):
        job = backend().hyper_parameter_tuning_jobs[self._get_param("HyperParameterTuningJobName")]
        job.hyper_parameter_tuning_job_status = "Stopping"
        return EmptyResult()

    monkeypatch.setattr(SageMakerResponse, "stop_training_job", stop_training_job, raising=False)
    monkeypatch.setattr(SageMakerResponse, "stop_hyper_parameter_tuning_job", stop_hyper_parameter_tuning_job,
                        raising=False)


def start_job(cli) -> str:
    r = cli(*AWS, "train", *TINY, "--no-wait")
    assert r.exit_code == 0, r.output
    (name,) = backend().training_jobs
    return name


def put_log(stream: str, lines: list[str]) -> None:
    import time

    import boto3

    start_ms = int(time.time() * 1000)  # CloudWatch drops events older than 14 days
    logs = boto3.client("logs")
    if not logs.describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"]:
        logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    logs.put_log_events(logGroupName=GROUP, logStreamName=stream,
                        logEvents=[{"timestamp": start_ms + i, "message": line} for i, line in enumerate(lines)])


def test_logs_read_every_stream_of_the_job_from_cloudwatch(cli, workspace, sagemaker_training):
    name = start_job(cli)
    r = cli(*AWS, "logs", name)
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: job {name} has no logs yet in CloudWatch ({GROUP})")
    put_log(f"{name}/algo-1-1700000000", ["epoch 1/2", "epoch 2/2", "#metric test_acc=0.5"])
    put_log("someone-elses-job/algo-1-1700000000", ["not ours"])
    r = cli(*AWS, "logs", name)
    assert r.exit_code == 0, r.output
    assert r.output == "epoch 1/2\nepoch 2/2\n#metric test_acc=0.5\n"
    put_log(f"{name}/algo-2-1700000000", ["second host"])
    r = cli(*AWS, "logs", name)
    assert "[algo-1] epoch 1/2" in r.output and "[algo-2] second host" in r.output
    assert "not ours" not in r.output
    assert cli(*AWS, "logs", name, "--follow").output == r.output  # Completed in moto: follow ends at once
    r = cli(*AWS, "logs", "no-such-job")
    assert r.exit_code == 1 and "no training or tuning job named 'no-such-job' on the sagemaker" in r.output


def test_stop_a_sagemaker_training_job(cli, workspace, sagemaker_training, moto_stops):
    name = start_job(cli)
    backend().training_jobs[name].training_job_status = "InProgress"
    r = cli(*AWS, "stop", name)
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"training job {name} [sagemaker]: Stopping"
    r = cli(*AWS, "stop", name)
    assert r.exit_code == 1 and r.output.strip() == f"Error: training job {name} is Stopping; nothing to stop"
    backend().training_jobs[name].training_job_status = "Completed"
    r = cli(*AWS, "stop", name)
    assert r.exit_code == 1 and "is Completed; nothing to stop" in r.output
    r = cli(*AWS, "stop", "no-such-job")
    assert r.exit_code == 1 and "no training or tuning job named 'no-such-job' on the sagemaker backend" in r.output


def test_tuning_jobs_listed_described_and_stopped(cli, workspace, sagemaker_tuning, moto_stops):
    r = cli(*AWS, "tune", "--data", f"s3://{BUCKET}/dogbreed/data", "--arch", "resnet18", "--weights", "none",
            "--max-jobs", 3, "--name", "dbhpo-ops", "--no-wait")
    assert r.exit_code == 0, r.output
    listed = cli(*AWS, "jobs", "--tuning")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith("dbhpo-ops"))
    assert "sagemaker" in row and "3/3" in row and "valid_loss=0.7500" in row
    described = cli(*AWS, "jobs", "dbhpo-ops")
    assert "dbhpo-ops  [sagemaker] tuning Completed" in described.output
    r = cli(*AWS, "stop", "dbhpo-ops")
    assert r.exit_code == 1 and "tuning job dbhpo-ops is Completed; nothing to stop" in r.output
    backend().hyper_parameter_tuning_jobs["dbhpo-ops"].hyper_parameter_tuning_job_status = "InProgress"
    r = cli(*AWS, "stop", "dbhpo-ops")
    assert r.exit_code == 0, r.output
    assert backend().hyper_parameter_tuning_jobs["dbhpo-ops"].hyper_parameter_tuning_job_status == "Stopping"
    assert "tuning job dbhpo-ops [sagemaker]" in r.output
