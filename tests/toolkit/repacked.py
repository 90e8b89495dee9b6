"""The model.tar.gz the SDK repacked for an endpoint (after a real `dogbreed --backend sagemaker
deploy` under moto), unpacked as the container unpacks it into /opt/ml/model, with the
container environment CreateModel set."""

from __future__ import annotations

import tarfile
from pathlib import Path

from tests.moto_support import BUCKET, ROLE_ARN

SM = ["--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET]


def deploy_and_unpack(cli, model_tar: Path, dest: Path, name: str, *deploy_args: str) -> tuple[Path, dict]:
    """Deploy `model_tar` through the CLI (moto must be active); return (model dir, container env)."""
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(model_tar), BUCKET, "jobs/train-1/output/model.tar.gz")
    r = cli(*SM, "deploy", "--model-data", f"s3://{BUCKET}/jobs/train-1/output/model.tar.gz", "--name", name,
            *deploy_args)
    assert r.exit_code == 0, r.output
    sm = boto3.client("sagemaker")
    cfg = sm.describe_endpoint_config(EndpointConfigName=sm.describe_endpoint(EndpointName=name)["EndpointConfigName"])
    container = sm.describe_model(ModelName=cfg["ProductionVariants"][0]["ModelName"])["PrimaryContainer"]
    bucket, _, key = container["ModelDataUrl"].removeprefix("s3://").partition("/")
    s3.download_file(bucket, key, str(dest / "repacked.tar.gz"))
    model_dir = dest / "opt-ml-model"
    with tarfile.open(dest / "repacked.tar.gz") as tar:
        tar.extractall(model_dir, filter="data")
    return model_dir, container["Environment"]
