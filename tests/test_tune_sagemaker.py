"""`dogbreed tune --backend sagemaker` against moto: the real SDK builds and sends the
CreateHyperParameterTuningJob request; moto creates no trials, so each test seeds them
(tests/moto_support.seed_tuning_result) and answers ListTrainingJobsForHyperParameterTuningJob,
which moto lacks."""

import json

import pytest

from dogbreed.training.metrics import METRIC_DEFINITIONS
from tests.moto_support import BUCKET, ROLE_ARN, SDK, seed_tuning_result

DATA = f"s3://{BUCKET}/dogbreed/data"
AWS = ["--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET]
# What SageMaker reports for each trial: categorical values come back JSON-quoted.
TRIALS = [({"lr": "0.02", "batch-size": '"32"', "epochs": '"1"'}, 1.25),
          ({"lr": "0.003", "batch-size": '"64"', "epochs": '"2"'}, 0.75),
          ({"lr": "0.09", "batch-size": '"128"', "epochs": '"2"'}, 2.5)]


def _on_every_session(monkeypatch, event, handler):
    import botocore.handlers

    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS, (event, handler)])


@pytest.fixture
def sagemaker_tuning(aws, monkeypatch):
    """Captured tuning requests; trials seeded as soon as a tuning job is created."""
    import boto3
    from botocore.awsrequest import AWSResponse

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    requests, seeded = [], {}

    def capture(params, **kw):
        requests.append(json.loads(json.dumps(params, default=str)))

    def seed(parsed, **kw):
        name = requests[-1]["HyperParameterTuningJobName"]
        seeded[name] = seed_tuning_result(boto3.client("sagemaker"), name, TRIALS)

    def list_trials(params, **kw):
        name = json.loads(params["body"])["HyperParameterTuningJobName"]
        return AWSResponse("http://stub", 200, {}, None), {"TrainingJobSummaries": seeded.get(name, [])}

    _on_every_session(monkeypatch, "provide-client-params.sagemaker.CreateHyperParameterTuningJob", capture)
    _on_every_session(monkeypatch, "after-call.sagemaker.CreateHyperParameterTuningJob", seed)
    _on_every_session(monkeypatch, "before-call.sagemaker.ListTrainingJobsForHyperParameterTuningJob", list_trials)
    return requests


def test_tuning_request_best_job_and_attach(cli, workspace, sagemaker_tuning):
    r = cli(*AWS, "tune", "--data", DATA, "--arch", "resnet18", "--weights", "none", "-H", "patience=1",
            "--max-jobs", 4, "--max-parallel-jobs", 2, "--strategy", "random", "--range", "lr=0.0001:0.1:log",
            "--early-stopping", "--seed", 7, "--name", "dbhpo-moto", "--instance-type", "ml.c5.2xlarge", "--spot")
    assert r.exit_code == 0, r.output
    (req,) = sagemaker_tuning
    assert req["HyperParameterTuningJobName"] == "dbhpo-moto"
    config = req["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Random" and config["RandomSeed"] == 7
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "valid_loss"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2}
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}]
    # framework estimators JSON-quote categorical values; the toolkit json.loads them back
    assert {r["Name"]: r["Values"] for r in ranges["CategoricalParameterRanges"]} == {
        "batch-size": ['"32"', '"64"', '"128"'], "epochs": ['"1"', '"2"']}
    job = req["TrainingJobDefinition"]
    static = job["StaticHyperParameters"]
    assert static["arch"] == '"resnet18"' and static["weights"] == '"none"' and static["patience"] == "1"
    if SDK.major == 2:  # v3 names the entry script in its own driver channel (tests/test_sdk_majors.py)
        assert static["sagemaker_program"] == '"hpo.py"'
    assert "lr" not in static and "batch-size" not in static
    assert job["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert job["InputDataConfig"][0]["ChannelName"] == "training"
    resources = job.get("HyperParameterTuningResourceConfig") or job["ResourceConfig"]  # v2 / v3
    assert resources["InstanceType"] == "ml.c5.2xlarge"
    assert job["EnableManagedSpotTraining"] is True
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == DATA

    out = r.output
    assert "estimated tuning cost: 4 x ml.c5.2xlarge" in out
    best_name = "dbhpo-moto-002-0a1b2c3d"
    rows = [line.split() for line in out.splitlines() if line.strip()[:2] in ("1 ", "2 ", "3 ")]
    assert [row[1] for row in rows] == ["dbhpo-moto-002-0a1b2c3d", "dbhpo-moto-001-0a1b2c3d",
                                        "dbhpo-moto-003-0a1b2c3d"]
    assert f"best: {best_name} valid_loss=0.7500 batch-size=64 epochs=2 lr=0.003" in out

    state = json.loads((workspace / "state.json").read_text())
    assert state["last_tuning_job"] == {"name": "dbhpo-moto", "backend": "sagemaker"}
    best = state["best_job"]
    assert best["name"] == best_name and best["tuning_job"] == "dbhpo-moto" and best["backend"] == "sagemaker"
    assert best["objective"] == {"metric": "valid_loss", "value": 0.75}
    assert {"arch": "resnet18", "weights": "none", "patience": 1, "lr": 0.003, "batch-size": 64,
            "epochs": 2}.items() <= best["hyperparameters"].items()
    assert not any(k.startswith("sagemaker_") for k in best["hyperparameters"])
    assert (workspace / "tuning" / "dbhpo-moto" / "objective.png").is_file()

    r2 = cli(*AWS, "tune", "--attach", "dbhpo-moto")
    assert r2.exit_code == 0, r2.output
    assert "tuning job dbhpo-moto Completed: 3 trial(s)" in r2.output and f"best: {best_name}" in r2.output
    assert len(sagemaker_tuning) == 1  # attaching starts nothing

    r3 = cli(*AWS, "tune", "--attach", "dbhpo-nope")
    assert r3.exit_code == 1 and "no SageMaker tuning job named 'dbhpo-nope'" in r3.output


@pytest.mark.parametrize("strategy, check", [
    ("hyperband", lambda c: (c["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 6}}
                             and c["TrainingJobEarlyStoppingType"] == "Off"
                             and "epochs" not in json.dumps(c["ParameterRanges"]))),
    ("grid", lambda c: (c["Strategy"] == "Grid" and c["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 4
                        and not c["ParameterRanges"].get("ContinuousParameterRanges")
                        and {"Name": "lr", "Values": ['"0.001"', '"0.01"', '"0.1"']}
                        in c["ParameterRanges"]["CategoricalParameterRanges"])),
])
def test_strategies(cli, workspace, sagemaker_tuning, strategy, check):
    extra = ["-H", "epochs=6"] if strategy == "hyperband" else []
    r = cli(*AWS, "tune", "--data", DATA, "--strategy", strategy, "--early-stopping", "--no-wait", *extra)
    assert r.exit_code == 0, r.output
    config = sagemaker_tuning[0]["HyperParameterTuningJobConfig"]
    assert check(config), config


def test_bad_input_before_any_request(cli, workspace, sagemaker_tuning, monkeypatch, tmp_path, sample_data):
    r = cli(*AWS, "tune", "--data", sample_data)
    assert r.exit_code == 1 and "reads data from S3" in r.output
    r = cli(*AWS, "tune", "--resume", "dbhpo-x")
    assert r.exit_code == 1 and "tune --attach" in r.output
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    r = cli(*AWS, "tune", "--data", DATA)
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: no AWS credentials found") and "--backend local" in r.output
    assert sagemaker_tuning == []
