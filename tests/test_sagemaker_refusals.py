"""What SageMaker (or its SDK) would refuse, refused by the real CLI in one line before anything
is uploaded or created (moto's S3 and SageMaker state checked after each refusal); the working
variant of each request; AWS and SDK errors as one line; Ctrl-C during a foreground wait."""

from __future__ import annotations

import json

import pytest

from tests.moto_support import BUCKET, ROLE_ARN
from tests import test_tune_sagemaker
from tests.test_tune_sagemaker import _on_every_session

sagemaker_tuning = test_tune_sagemaker.sagemaker_tuning  # the captured tuning requests (a fixture)
DATA = f"s3://{BUCKET}/dogbreed/data"
AWS = ["--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET]
TINY = ["--data", DATA, "--arch", "resnet18", "--weights", "none", "--epochs", 1]


@pytest.fixture
def moto_state(aws, monkeypatch):
    """The bucket, the CreateTrainingJob requests sent, and a view of everything that exists."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    sent: list = []
    _on_every_session(monkeypatch, "provide-client-params.sagemaker.CreateTrainingJob",
                      lambda params, **kw: sent.append(json.loads(json.dumps(params, default=str))))

    def everything() -> dict:
        sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
        return {"s3": [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])],
                "jobs": [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]],
                "tuning": [j["HyperParameterTuningJobName"] for j in
                           sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]],
                "models": [m["ModelName"] for m in sm.list_models()["Models"]],
                "endpoints": [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]}

    return sent, everything


def one_line_error(r, *needles):
    """Exit 1, the error on one line (after any notes printed before it), no traceback."""
    assert r.exit_code == 1, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and r.output.rstrip().endswith(errors[0]), r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in errors[0], r.output


NOTHING = {"s3": [], "jobs": [], "tuning": [], "models": [], "endpoints": []}


# -- 2. several processes -------------------------------------------------------------------------
def test_processes_on_a_cpu_instance_refused_before_upload(cli, workspace, moto_state):
    sent, everything = moto_state
    r = cli(*AWS, "train", *TINY, "--processes", 2)
    one_line_error(r, "--processes 2", "GPU and Trainium", "ml.m5.xlarge", "--instance-type ml.g5.xlarge")
    assert everything() == NOTHING and sent == []


def test_processes_on_a_gpu_instance_sent(cli, workspace, moto_state):
    sent, _ = moto_state
    r = cli(*AWS, "train", *TINY, "--processes", 2, "--instance-type", "ml.g5.xlarge", "--no-wait")
    assert r.exit_code == 0, r.output
    (req,) = sent
    assert req["ResourceConfig"]["InstanceCount"] == 2 and req["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    from tests.moto_support import SDK

    if SDK.major == 2:
        assert req["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
        return
    # v3 starts torchrun from its sm_drivers channel: sm_train.sh runs its torchrun driver (one process:
    # basic_script_driver.py)
    import boto3

    (drivers,) = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]
                  if c["ChannelName"] == "sm_drivers"]
    bucket, _, prefix = drivers.removeprefix("s3://").partition("/")
    body = boto3.client("s3").get_object(Bucket=bucket, Key=f"{prefix}/sm_train.sh")["Body"].read()
    assert "distributed_drivers/torchrun_driver.py" in body.decode()


# -- 3. tuning requests ---------------------------------------------------------------------------
def test_fewer_combinations_than_jobs_refused(cli, workspace, moto_state):
    _, everything = moto_state
    r = cli(*AWS, "tune", "--data", DATA, "--strategy", "random", "--range", "batch-size=32,64", "-H", "lr=0.01",
            "-H", "epochs=1", "--max-jobs", 4)
    one_line_error(r, "only 2 distinct combination(s)", "--max-jobs 4", "pass --max-jobs 2")
    assert everything() == NOTHING


def test_negative_seed_refused(cli, workspace, moto_state):
    _, everything = moto_state
    r = cli(*AWS, "tune", "--data", DATA, "--seed", "-1")
    one_line_error(r, "--seed -1", "0 or more")
    assert everything() == NOTHING


def test_grid_cost_line_counts_the_trials_that_run(cli, workspace, sagemaker_tuning):
    r = cli(*AWS, "tune", "--data", DATA, "--strategy", "grid", "--range", "batch-size=16,32,64", "-H", "lr=0.01",
            "-H", "epochs=1", "--max-jobs", 2, "--max-parallel-jobs", 1, "--no-wait")
    assert r.exit_code == 0, r.output
    assert "estimated tuning cost: 2 x ml.m5.xlarge" in r.output, r.output
    (req,) = sagemaker_tuning
    assert req["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 2


def test_enough_combinations_sent(cli, workspace, sagemaker_tuning):
    r = cli(*AWS, "tune", "--data", DATA, "--strategy", "random", "--range", "batch-size=32,64", "--range",
            "epochs=1:2", "-H", "lr=0.01", "--max-jobs", 4, "--max-parallel-jobs", 2, "--no-wait")
    assert r.exit_code == 0, r.output
    assert sagemaker_tuning[0]["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 4


# -- 4. names -------------------------------------------------------------------------------------
def test_bad_endpoint_name_refused_before_upload(cli, workspace, moto_state, tiny_model_tar):
    _, everything = moto_state
    name = "my_endpoint_" + "x" * 58
    r = cli(*AWS, "deploy", "--model-data", tiny_model_tar, "--name", name)
    one_line_error(r, "endpoint name", "letters, digits and dashes")
    assert everything() == NOTHING


def test_bad_tuning_name_refused_before_upload(cli, workspace, moto_state):
    _, everything = moto_state
    r = cli(*AWS, "tune", "--data", DATA, "--name", "tuning_job_name_far_too_long_for_sagemaker")
    one_line_error(r, "tuning job name", "1-32")
    assert everything() == NOTHING


# -- 5 / 7. SDK and AWS errors --------------------------------------------------------------------
def test_sdk_value_error_is_one_line(cli, workspace, aws):
    """A region without Debugger rule images: the SDK's ValueError is one line, not a traceback."""
    import boto3

    boto3.client("s3", region_name="me-central-1").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "me-central-1"})
    r = cli("--region", "me-central-1", *AWS, "train", *TINY, "--no-wait")
    if r.exit_code == 0:
        pytest.skip("this SDK version has Debugger rule images for me-central-1")
    one_line_error(r)
    assert "Traceback" not in r.output


def test_aws_refusal_is_one_line(cli, workspace, moto_state, monkeypatch):
    from botocore.exceptions import ClientError

    sent, everything = moto_state

    def refuse(**kw):
        raise ClientError({"Error": {"Code": "ResourceLimitExceeded", "Message": "The account-level service limit "
                                     "'ml.m5.xlarge for training job usage' is 0 Instances"}}, "CreateTrainingJob")

    _on_every_session(monkeypatch, "before-call.sagemaker.CreateTrainingJob", refuse)
    r = cli(*AWS, "train", *TINY, "--no-wait")
    one_line_error(r, "AWS refused CreateTrainingJob: ResourceLimitExceeded: The account-level service limit")
    assert everything()["jobs"] == []


def test_error_reading_a_created_tuning_job_says_it_exists(cli, workspace, sagemaker_tuning, monkeypatch):
    from botocore.exceptions import ClientError

    def fail(**kw):
        raise ClientError({"Error": {"Code": "InternalFailure", "Message": "We encountered an internal error."},
                           "ResponseMetadata": {"HTTPStatusCode": 500}},
                          "ListTrainingJobsForHyperParameterTuningJob")

    import botocore.handlers  # ahead of the fixture's answer for this operation

    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [
        ("before-call.sagemaker.ListTrainingJobsForHyperParameterTuningJob", fail),
        *botocore.handlers.BUILTIN_HANDLERS])
    r = cli(*AWS, "tune", "--data", DATA, "--name", "dbhpo-500", "--no-wait")
    one_line_error(r, "InternalFailure", "the job exists and keeps running", "tune --attach dbhpo-500",
                   "stop dbhpo-500")


# -- 8. Ctrl-C ------------------------------------------------------------------------------------
def test_ctrl_c_during_train_says_the_job_keeps_running(cli, workspace, moto_state, monkeypatch):
    import importlib

    from tests.moto_support import SDK

    def interrupted(*a, **kw):  # the user presses Ctrl-C while the job's log streams
        raise KeyboardInterrupt

    # where each SDK major waits for a training job (v2: the Session's log stream; v3: TrainingJob.wait)
    module, cls, method = (("sagemaker.core.resources", "TrainingJob", "wait") if SDK.major == 3
                           else ("sagemaker.session", "Session", "logs_for_job"))
    monkeypatch.setattr(getattr(importlib.import_module(module), cls), method, interrupted)
    r = cli(*AWS, "train", *TINY)
    sent, everything = moto_state
    (job,) = everything()["jobs"]
    one_line_error(r, f"the SageMaker training job {job} keeps running", f"dogbreed --backend sagemaker stop {job}")


def test_ctrl_c_during_tune_says_the_job_keeps_running(cli, workspace, sagemaker_tuning, monkeypatch):
    from tests.moto_support import SDK

    calls = []

    def interrupted(**kw):  # Ctrl-C while polling the tuning job
        calls.append(kw)
        if SDK.major == 3 and len(calls) == 1:  # v3's tuner describes the job it has just created
            return
        raise KeyboardInterrupt

    _on_every_session(monkeypatch, "before-call.sagemaker.DescribeHyperParameterTuningJob", interrupted)
    r = cli(*AWS, "tune", "--data", DATA, "--name", "dbhpo-ctrlc")
    one_line_error(r, "the SageMaker tuning job dbhpo-ctrlc keeps running", "stop dbhpo-ctrlc",
                   "tune --attach dbhpo-ctrlc")
