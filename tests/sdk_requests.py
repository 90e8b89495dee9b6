"""Run the same dogbreed commands against moto with whichever SDK major this Python has, and print
the CreateTrainingJob / CreateHyperParameterTuningJob / CreateModel / CreateEndpointConfig requests
they sent, as JSON. tests/test_sdk_majors.py runs it under both majors and compares the output.

    python -m tests.sdk_requests   (from the repository root, with src/ importable)
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

OPERATIONS = ("CreateTrainingJob", "CreateHyperParameterTuningJob", "CreateModel", "CreateEndpointConfig")


def commands(bucket: str, role: str, model_s3: str) -> dict[str, list[str]]:
    data = f"s3://{bucket}/dogbreed/data"
    aws = ["--backend", "sagemaker", "--role", role, "--bucket", bucket]
    return {
        "train": [*aws, "train", "--data", data, "--arch", "resnet18", "--weights", "none", "--epochs", "2",
                  "--spot", "--rule-param", "LossNotDecreasing.num_steps=20", "--no-wait"],
        "train-distributed": [*aws, "train", "--data", data, "--instance-type", "ml.g5.2xlarge", "--processes", "2",
                              "--no-debugger", "--no-profiler", "--no-wait"],
        "train-client": [*aws, "train", "--data", data, "--arch", "resnet18", "--weights", "none", "--epochs", "2",
                         "--debugger", "client", "--no-wait"],
        "train-isolated": [*aws, "train", "--data", data, "--arch", "resnet18", "--weights", "none", "--epochs", "2",
                           "--network-isolation", "--no-wait"],
        "tune": [*aws, "tune", "--data", data, "--max-jobs", "4", "--max-parallel-jobs", "2", "--strategy", "random",
                 "--range", "lr=0.0001:0.1:log", "--early-stopping", "--seed", "7", "--name", "dbhpo-same",
                 "--no-wait"],
        "tune-isolated": [*aws, "tune", "--data", data, "--max-jobs", "2", "--range", "lr=0.0001:0.1:log",
                          "--network-isolation", "--name", "dbhpo-isolated", "--no-wait"],
        "tune-hyperband": [*aws, "tune", "--data", data, "--strategy", "hyperband", "-H", "epochs=6",
                           "--name", "dbhpo-hyperband", "--no-wait"],
        "deploy": [*aws, "deploy", "--model-data", model_s3, "--name", "dog-rt", "--instance-type", "ml.c5.xlarge"],
        "deploy-autoscaled": [*aws, "deploy", "--model-data", model_s3, "--name", "dog-as", "--instance-type",
                              "ml.c5.xlarge", "--min-instances", "2", "--max-instances", "3",
                              "--target-invocations", "100"],
        "deploy-serverless": [*aws, "deploy", "--model-data", model_s3, "--name", "dog-sl", "--serverless",
                              "--memory", "2048", "--max-concurrency", "3"],
    }


def _model_tar(folder: Path) -> Path:
    (folder / "model.pth").write_bytes(b"weights")
    (folder / "model_config.json").write_text("{}")
    tar_path = folder / "model.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name in ("model.pth", "model_config.json"):
            tar.add(folder / name, arcname=name)
    return tar_path


def capture(tmp: Path) -> dict:
    """{command: {operation: [request, ...]}} for every command, each in a fresh moto; files in `tmp`."""
    import botocore.handlers
    import pytest
    from botocore.awsrequest import AWSResponse
    from click.testing import CliRunner
    from moto import mock_aws

    from dogbreed.backends.sagemaker import sdk
    from dogbreed.cli import cli
    from tests.moto_support import BUCKET, ROLE_ARN, SDK, fill_moto_gaps, no_sdk_sleep, seed_tuning_result

    out: dict = {"major": sdk.major(), "commands": {}}
    (tmp / "sm.yaml").write_text("")
    model_tar = _model_tar(tmp)
    for name, args in commands(BUCKET, ROLE_ARN, f"s3://{BUCKET}/jobs/train-1/output/model.tar.gz").items():
        got: dict = {op: [] for op in OPERATIONS}
        seeded: dict = {}

        def seed(parsed, _got=got, _seeded=seeded, **kw):
            import boto3

            job = _got["CreateHyperParameterTuningJob"][-1]["HyperParameterTuningJobName"]
            _seeded[job] = seed_tuning_result(boto3.client("sagemaker"), job, [({"lr": "0.02"}, 1.25)])

        with pytest.MonkeyPatch.context() as mp:
            for var, value in {"SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(tmp / "sm.yaml"),
                               "SAGEMAKER_USER_CONFIG_OVERRIDE": str(tmp / "sm.yaml"),
                               "SAGEMAKER_VALIDATE_ROLE": "false",
                               "DOGBREED_WORKSPACE": str(tmp / f"ws-{name}")}.items():
                mp.setenv(var, value)
            import importlib

            mp.setattr(importlib.import_module(SDK.telemetry), "_send_telemetry_request", lambda *a, **k: None)
            no_sdk_sleep(mp)
            fill_moto_gaps(mp)
            mp.setattr(botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS] + [
                (f"provide-client-params.sagemaker.{op}",
                 lambda params, _op=op, **kw: got[_op].append(json.loads(json.dumps(params, default=str))))
                for op in OPERATIONS] + [  # moto runs no trials: one seeded, and listed (moto lacks the call)
                ("after-call.sagemaker.CreateHyperParameterTuningJob", seed),
                ("before-call.sagemaker.ListTrainingJobsForHyperParameterTuningJob",
                 lambda params, **kw: (AWSResponse("http://stub", 200, {}, None), {"TrainingJobSummaries": seeded.get(
                     json.loads(params["body"])["HyperParameterTuningJobName"], [])}))])
            with mock_aws():
                import boto3

                s3 = boto3.client("s3")
                s3.create_bucket(Bucket=BUCKET)
                s3.upload_file(str(model_tar), BUCKET, "jobs/train-1/output/model.tar.gz")
                result = CliRunner().invoke(cli, args, catch_exceptions=False)
        if result.exit_code != 0:
            raise SystemExit(f"{name}: exit {result.exit_code}: {result.output}")
        out["commands"][name] = {op: reqs for op, reqs in got.items() if reqs}
    return out


def main() -> None:
    os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_SECURITY_TOKEN="testing", AWS_SESSION_TOKEN="testing", SAGEMAKER_SUPPRESS_V2_WARNING="1")
    os.environ.pop("AWS_PROFILE", None)
    import logging

    logging.disable(logging.WARNING)  # the SDKs' INFO/WARNING lines are not the output
    with tempfile.TemporaryDirectory(prefix="sdk-requests-") as tmp:
        requests = capture(Path(tmp))
    sys.stdout.write(json.dumps(requests, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
