"""Each entry script run by AWS's own training toolkit (sagemaker-training's `train`, what the
PyTorch training container runs) in a relocated /opt/ml (SAGEMAKER_BASE_DIR), fed what SageMaker
would feed it after a real `dogbreed --backend sagemaker tune/train` under moto:

- the sourcedir.tar.gz the SDK built, captured from moto's S3, unpacked into code/;
- hyperparameters.json as SageMaker writes it: the request's JSON-encoded strings, for a tuning
  trial plus the tuned values (categorical ones JSON-quoted) and `_tuning_objective_metric`;
- inputdataconfig.json from the request's channels, resourceconfig.json, SAGEMAKER_PROGRAM;

then the request's metric regexes applied to that run's real output, and the artifacts checked."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile

import pytest

from tests.conftest import TINY_HPS
from tests.moto_support import BUCKET, ROLE_ARN
from tests import test_tune_sagemaker
from tests.test_tune_sagemaker import _on_every_session
from tests.toolkit.venv import HERE, toolkit_env, toolkit_python

AWS = ["--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET]
sagemaker_tuning = test_tune_sagemaker.sagemaker_tuning  # the captured tuning requests (a fixture)
DATA = f"s3://{BUCKET}/dogbreed/data"
STATIC = [x for k, v in TINY_HPS.items() if k != "batch-size" for x in ("-H", f"{k}={v}")]


@pytest.fixture
def captured(aws, monkeypatch):
    """Every CreateTrainingJob request the CLI sends."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    got: list = []
    _on_every_session(monkeypatch, "provide-client-params.sagemaker.CreateTrainingJob",
                      lambda params, **kw: got.append(json.loads(json.dumps(params, default=str))))
    return got


def download(uri: str, dest):
    import boto3

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    boto3.client("s3").download_file(bucket, key, str(dest))


def source_tarball(hyperparameters: dict, channels: list, base):
    """The sourcedir.tar.gz the SDK uploaded, fetched from moto's S3 and unpacked into code/ (the
    toolkit then leaves code/ as it is). Under network isolation the SDK sends it as the `code`
    channel, and sagemaker_submit_directory names its place under /opt/ml/input/data/code/."""
    uri = json.loads(hyperparameters["sagemaker_submit_directory"])
    if not uri.startswith("s3://"):
        (code,) = [c for c in channels if c["ChannelName"] == "code"]
        uri = code["DataSource"]["S3DataSource"]["S3Uri"]  # the object itself: SageMaker copies it into the channel
    download(uri, base / "sourcedir.tar.gz")
    with tarfile.open(base / "sourcedir.tar.gz") as tar:
        tar.extractall(base / "code", filter="data")


def run_toolkit(tmp_path, sample_data, job_name: str, hyperparameters: dict, channels: list, instance: str):
    """Lay out /opt/ml under tmp_path as SageMaker does, run the toolkit's `train`; (proc, base dir)."""
    python = toolkit_python()
    base = tmp_path / "opt-ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    source_tarball(hyperparameters, channels, base)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps({
        c["ChannelName"]: {"TrainingInputMode": c.get("InputMode", "File"), "RecordWrapperType": "None",
                           "S3DistributionType": c["DataSource"]["S3DataSource"].get("S3DistributionType",
                                                                            "FullyReplicated")}
        for c in channels}))
    (config / "resourceconfig.json").write_text(json.dumps({
        "current_host": "algo-1", "hosts": ["algo-1"], "current_group_name": "homogeneousCluster",
        "current_instance_type": instance, "network_interface_name": "eth0",
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance,
                             "hosts": ["algo-1"]}]}))
    for c in channels:
        if c["ChannelName"] == "code":
            (base / "input" / "data" / "code").mkdir(parents=True)
            shutil.copy(base / "sourcedir.tar.gz", base / "input" / "data" / "code" / "sourcedir.tar.gz")
        else:
            shutil.copytree(sample_data, base / "input" / "data" / c["ChannelName"])
    env = toolkit_env(SAGEMAKER_BASE_DIR=str(base), TRAINING_JOB_NAME=job_name,
                      SAGEMAKER_PROGRAM=json.loads(hyperparameters["sagemaker_program"]),
                      PIP_NO_INDEX="1")  # like network isolation: any pip install that needs a download fails
    proc = subprocess.run([str(python), str(HERE / "train_in_container.py")], capture_output=True, text=True,
                          env=env, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc, base


def metric_values(definitions: list, log: str) -> dict[str, list[float]]:
    """What SageMaker would record: each regex searched line by line, group 1 as a float."""
    out: dict[str, list[float]] = {}
    for d in definitions:
        rx = re.compile(d["Regex"])
        for line in log.splitlines():
            m = rx.search(line)
            if m:
                out.setdefault(d["Name"], []).append(float(m.group(1)))
    return out


def tuning_trial_hyperparameters(req: dict) -> dict:
    """The hyperparameters.json SageMaker writes for one trial of this tuning request."""
    definition = req["TrainingJobDefinition"]
    ranges = req["HyperParameterTuningJobConfig"]["ParameterRanges"]
    tuned = {r["Name"]: r["MinValue"] for kind in ("ContinuousParameterRanges", "IntegerParameterRanges")
             for r in ranges.get(kind, [])}
    # the SDK already JSON-quoted categorical values in the request ('"16"'); SageMaker passes them on as sent
    tuned.update({r["Name"]: r["Values"][0] for r in ranges.get("CategoricalParameterRanges", [])})
    objective = req["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    return {**definition["StaticHyperParameters"], **tuned, "_tuning_objective_metric": objective}


@pytest.mark.slow  # AWS's toolkit starts its own Python with torch, then trains or serves
def test_tuning_trial_under_the_training_toolkit(cli, workspace, sagemaker_tuning, tmp_path, sample_data):
    toolkit_python()  # first: skips, saying why, where the toolkits are not installed
    r = cli(*AWS, "tune", "--data", DATA, *STATIC, "-H", "epochs=1", "--range", "lr=0.001:0.1:log",
            "--range", "batch-size=16,32", "--strategy", "random", "--max-jobs", 2, "--max-parallel-jobs", 1,
            "--name", "dbhpo-toolkit", "--no-wait")
    assert r.exit_code == 0, r.output
    (req,) = sagemaker_tuning
    hps = tuning_trial_hyperparameters(req)
    assert hps["batch-size"] == '"16"' and hps["_tuning_objective_metric"] == "valid_loss"
    definition = req["TrainingJobDefinition"]
    proc, base = run_toolkit(tmp_path, sample_data, "dbhpo-toolkit-001-0a1b2c3d", hps,
                             definition["InputDataConfig"],
                             definition["HyperParameterTuningResourceConfig"]["InstanceType"])
    log = proc.stdout + proc.stderr
    # the toolkit stripped _tuning_objective_metric and sagemaker_* and decoded the JSON strings
    assert "--batch-size 16" in log and "_tuning_objective_metric" not in log.split("Invoking script")[-1]
    assert "Installing dependencies from requirements.txt" not in log  # a trial pip-installs nothing
    values = metric_values(definition["AlgorithmSpecification"]["MetricDefinitions"], log)
    assert values.get("valid_loss"), f"the objective regex matched nothing in:\n{log[-3000:]}"
    assert all(v == v and v >= 0 for v in values["valid_loss"])  # floats, not NaN
    assert (base / "output" / "success").exists() and not (base / "output" / "failure").exists()


@pytest.mark.slow  # AWS's toolkit starts its own Python with torch, then trains or serves
def test_network_isolated_training_job_under_the_training_toolkit(cli, workspace, captured, tmp_path, sample_data):
    toolkit_python()  # first: skips, saying why, where the toolkits are not installed
    r = cli(*AWS, "train", "--data", DATA, *STATIC, "-H", "batch-size=16", "--epochs", 1, "--network-isolation",
            "--no-wait")
    assert r.exit_code == 0, r.output
    assert "network isolation: the container installs nothing, so the smdebug hook and the Debugger rules are off" \
        in r.output
    (req,) = captured
    assert req["EnableNetworkIsolation"] is True
    assert [c["ChannelName"] for c in req["InputDataConfig"]] == ["training", "code"]
    assert "DebugHookConfig" not in req and not req.get("DebugRuleConfigurations")
    proc, base = run_toolkit(tmp_path, sample_data, req["TrainingJobName"], req["HyperParameters"],
                             req["InputDataConfig"], req["ResourceConfig"]["InstanceType"])
    log = proc.stdout + proc.stderr
    assert not (base / "code" / "requirements.txt").exists()
    assert "Installing dependencies from requirements.txt" not in log
    values = metric_values(req["AlgorithmSpecification"]["MetricDefinitions"], log)
    assert values.get("valid_loss") and values.get("test_acc"), sorted(values)
    model = base / "model"
    assert sorted(p.name for p in model.iterdir()), "no artifacts in the model dir"
    assert (model / "model_config.json").is_file()
    assert (base / "output" / "success").exists()
