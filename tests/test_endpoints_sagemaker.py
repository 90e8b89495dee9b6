"""SageMaker endpoints through the real CLI and the real SDK, against moto: real-time and
serverless deploy (what the request carried), predict via sagemaker-runtime with real JPEG
bytes, undeploy deleting endpoint, config and model."""

from __future__ import annotations

import base64
import io
import json
import tarfile

import pytest
from PIL import Image

from tests.moto_support import BUCKET, ROLE_ARN, allow_binary_invoke_endpoint

SM = ["--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET]


@pytest.fixture
def model_s3(aws, tmp_path):
    """A real model.tar.gz in S3 (the SDK downloads and repacks it with code/inference.py)."""
    import boto3

    (tmp_path / "model.pth").write_bytes(b"weights")
    (tmp_path / "model_config.json").write_text("{}")
    tar_path = tmp_path / "model.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name in ("model.pth", "model_config.json"):
            tar.add(tmp_path / name, arcname=name)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(tar_path), BUCKET, "jobs/train-1/output/model.tar.gz")
    return f"s3://{BUCKET}/jobs/train-1/output/model.tar.gz"


def sm_client():
    import boto3

    return boto3.client("sagemaker")


def test_real_time_deploy_predict_undeploy(model_s3, workspace, cli, monkeypatch, tmp_path):
    r = cli(*SM, "deploy", "--model-data", model_s3, "--name", "dog-rt", "--instance-type", "ml.c5.xlarge")
    assert r.exit_code == 0, r.output
    assert "endpoint dog-rt InService" in r.output
    sm = sm_client()
    cfg_name = sm.describe_endpoint(EndpointName="dog-rt")["EndpointConfigName"]
    (variant,) = sm.describe_endpoint_config(EndpointConfigName=cfg_name)["ProductionVariants"]
    assert variant["InstanceType"] == "ml.c5.xlarge" and variant["InitialInstanceCount"] == 1
    model = sm.describe_model(ModelName=variant["ModelName"])
    env = model["PrimaryContainer"]["Environment"]
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    assert "pytorch-inference:2.6.0-cpu-py312" in model["PrimaryContainer"]["Image"]
    repacked = model["PrimaryContainer"]["ModelDataUrl"]
    assert repacked.startswith("s3://") and repacked != model_s3  # code/ added by the SDK's repack
    state = json.loads((workspace / "state.json").read_text())["endpoint"]
    assert state == {"name": "dog-rt", "backend": "sagemaker", "url": None, "model_data": model_s3}

    listing = cli(*SM, "endpoints")
    assert listing.exit_code == 0 and "* dog-rt" in listing.output and "InService" in listing.output

    # predict: real JPEG bytes go through sagemaker-runtime; moto answers what we queue
    allow_binary_invoke_endpoint(monkeypatch)
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    runtime = sagemakerruntime_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    answer = {"predictions": [[{"breed": "Beagle", "index": 12, "probability": 0.91},
                               {"breed": "Basset hound", "index": 13, "probability": 0.05}]]}
    runtime.results_queue.append((json.dumps(answer), "application/json", "AllTraffic", ""))
    img = tmp_path / "dog.jpg"
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 80, 40)).save(buf, "JPEG")
    img.write_bytes(buf.getvalue())
    r = cli("predict", img, "--top-k", 2)
    assert r.exit_code == 0, r.output
    assert "1. Beagle" in r.output and "91.00%" in r.output and "2. Basset hound" in r.output
    (sent,) = [json.loads(base64.b64decode(k)) for per_endpoint in runtime.results.values() for k in per_endpoint]
    assert sent["Body"] == base64.b64encode(buf.getvalue()).decode()  # the JPEG's bytes, unchanged
    assert sent["Accept"] == "application/json; top_k=2"

    r = cli("undeploy")
    assert r.exit_code == 0 and "endpoint dog-rt deleted (sagemaker)" in r.output
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    assert "endpoint" not in json.loads((workspace / "state.json").read_text())


def test_serverless_deploy_sends_serverless_config(model_s3, workspace, cli):
    r = cli(*SM, "deploy", "--model-data", model_s3, "--name", "dog-sl", "--serverless", "--memory", 3072,
            "--max-concurrency", 7)
    assert r.exit_code == 0, r.output
    sm = sm_client()
    cfg_name = sm.describe_endpoint(EndpointName="dog-sl")["EndpointConfigName"]
    (variant,) = sm.describe_endpoint_config(EndpointConfigName=cfg_name)["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 7}
    assert "InstanceType" not in variant
    r = cli(*SM, "undeploy", "dog-sl")
    assert r.exit_code == 0 and sm.list_endpoints()["Endpoints"] == []


def test_auto_delete_after_tags_the_endpoint_and_prints_the_reminder(model_s3, workspace, cli):
    r = cli(*SM, "deploy", "--model-data", model_s3, "--name", "dog-ttl", "--auto-delete-after", "2h")
    assert r.exit_code == 0, r.output
    assert "billed until you delete it" in r.output and "dogbreed cleanup --expired --yes" in r.output
    sm = sm_client()
    arn = sm.describe_endpoint(EndpointName="dog-ttl")["EndpointArn"]
    tags = sm.list_tags(ResourceArn=arn)["Tags"]
    assert any(t["Key"] == "dogbreed:expires-at" for t in tags), tags
    assert cli(*SM, "deploy", "--model-data", model_s3, "--auto-delete-after", "soon").exit_code != 0


def test_a_bad_container_setting_is_refused_before_anything_is_uploaded(aws, workspace, cli, tiny_model_tar):
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    r = cli(*SM, "deploy", "--model-data", tiny_model_tar, "--name", "dog-env", "--env",
            "SAGEMAKER_TS_MAX_BATCH_DELAY=0")
    assert r.exit_code == 1 and r.output.startswith("Error: ") and len(r.output.strip().splitlines()) == 1
    assert "TorchServe reads 0 as its default, 100 ms" in r.output
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert sm_client().list_models()["Models"] == []


def test_sagemaker_errors_are_one_line(aws, workspace, cli):
    r = cli(*SM, "deploy", "--model-data", "s3://b/m.tar.gz", "--serverless", "--memory", 3000)
    assert r.exit_code == 1 and "--memory 3000 is not a serverless size" in r.output
    r = cli(*SM, "deploy", "--model-data", "model.pt")
    assert r.exit_code == 1 and "neither an s3:// URI nor a local model.tar.gz" in r.output
    r = cli(*SM, "undeploy", "ghost")
    assert r.exit_code == 1 and "no SageMaker endpoint named 'ghost'" in r.output
