"""Every AWS path of the CLI this project's settings/cost work touches, through the real CLI with
`--backend sagemaker`, the real sagemaker SDK and boto3, against moto (see
../shared/reference/moto-sagemaker.md): config, data upload, train (spot, checkpoints, limits,
instance type, cost estimate in the request and output), credential/role errors, cleanup."""

from __future__ import annotations

import json

import pytest

from tests.aws_events import on_every_session
from tests.moto_support import BUCKET, ROLE_ARN

TINY = ["--arch", "resnet18", "--weights", "none", "--image-size", 48, "--epochs", 1]


def state(workspace):
    return json.loads((workspace / "state.json").read_text())


@pytest.fixture
def uploaded(cli, workspace, sample_data, aws):
    import boto3

    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    r = cli("--bucket", BUCKET, "data", "upload", sample_data)
    assert r.exit_code == 0, r.output
    return state(workspace)["dataset_s3"]


@pytest.fixture
def create_requests(monkeypatch):
    got = []
    on_every_session(monkeypatch, "provide-client-params.sagemaker.CreateTrainingJob",
                     lambda params, **kw: got.append(params))
    return got


def test_spot_training_request_and_cost_estimate(cli, workspace, uploaded, create_requests):
    r = cli("--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET, "train", *TINY,
            "--spot", "--max-run", "2h", "--instance-type", "ml.g4dn.xlarge")
    assert r.exit_code == 0, r.output
    [req] = create_requests
    job = req["TrainingJobName"]
    assert job.startswith("dogbreed-train-")
    assert req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == uploaded
    assert req["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert req["EnableManagedSpotTraining"] is True
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    # per-job checkpoint folder: an interrupted spot job resumes from its own checkpoints only
    assert req["CheckpointConfig"] == {"S3Uri": f"s3://{BUCKET}/dogbreed/checkpoints/{job}",
                                       "LocalPath": "/opt/ml/checkpoints"}
    assert req["RoleArn"] == ROLE_ARN
    assert ("estimated training cost: 1 x ml.g4dn.xlarge x up to 2h at ~$0.736/h = at most ~$1.47 on demand; "
            "managed spot usually costs 60-90% less") in r.output
    s = state(workspace)
    assert s["last_training_job"] == {"name": job, "backend": "sagemaker"}
    assert s["model_data"]["uri"] == f"s3://{BUCKET}/dogbreed/jobs/{job}/output/model.tar.gz"


def test_settings_from_config_file_drive_an_on_demand_job(cli, workspace, uploaded, create_requests, monkeypatch):
    (workspace.parent / "dogbreed.toml").write_text(
        f'backend = "sagemaker"\nrole = "{ROLE_ARN}"\nbucket = "{BUCKET}"\ninstance_type = "ml.c5.2xlarge"\n'
        'max_run = "3h"\n')
    r = cli("config", "show")
    assert "backend                      sagemaker" in r.output
    r = cli("train", *TINY, "--no-debugger", "--no-profiler")
    assert r.exit_code == 0, r.output
    [req] = create_requests
    assert req["ResourceConfig"]["InstanceType"] == "ml.c5.2xlarge"
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 10800}
    assert "EnableManagedSpotTraining" not in req and "CheckpointConfig" not in req
    assert req["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/dogbreed/jobs"
    assert "estimated training cost: 1 x ml.c5.2xlarge x up to 3h at ~$0.408/h = at most ~$1.22 on demand" in r.output


def test_sagemaker_needs_an_uploaded_dataset(cli, workspace, sample_data, aws):
    assert cli("data", "synth", "--out", "local", "--classes", 2, "--per-class", 2, "--image-size", 16).exit_code == 0
    r = cli("--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET, "train", *TINY)
    assert r.exit_code == 1
    assert "no dataset uploaded to S3; run `dogbreed data upload [DIR]`" in r.output


def test_no_role_and_no_credentials_errors(cli, workspace, uploaded, sample_data, monkeypatch, tmp_path):
    r = cli("--backend", "sagemaker", "--bucket", BUCKET, "train", *TINY)
    assert r.exit_code == 1
    assert "no SageMaker execution role: pass --role ARN or set `role` in dogbreed.toml" in r.output

    r = cli("--backend", "sagemaker", "--profile", "nobody", "--role", ROLE_ARN, "--bucket", BUCKET, "train", *TINY)
    assert r.exit_code == 1
    assert "could not be found; create it with `aws configure --profile nobody`, or use --backend local" in r.output

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    r = cli("--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET, "train", *TINY)
    assert r.exit_code == 1
    assert "no AWS credentials found: run `aws configure --profile NAME`" in r.output
    assert "or use --backend local" in r.output
    r = cli("--bucket", BUCKET, "data", "upload", sample_data)
    assert r.exit_code == 1 and "no AWS credentials found" in r.output


def _deployed(sm, name, tags=()):
    sm.create_model(ModelName=f"{name}-model", ExecutionRoleArn=ROLE_ARN,
                    PrimaryContainer={"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0"})
    sm.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": f"{name}-model", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config", Tags=list(tags))


def _names(sm):
    return (sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]),
            sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]),
            sorted(m["ModelName"] for m in sm.list_models()["Models"]))


def test_cleanup_lists_asks_and_deletes_only_the_projects_resources(cli, workspace, aws):
    import boto3

    from dogbreed.backends.sagemaker.costs import expiry_tags
    from dogbreed.workspace import Workspace

    sm = boto3.client("sagemaker", region_name="us-east-1")
    _deployed(sm, "dogbreed-ep-1")
    _deployed(sm, "dogbreed-ep-2", expiry_tags(60, now=0))  # expired long ago
    _deployed(sm, "someone-elses")
    Workspace.resolve().update(endpoint={"name": "dogbreed-ep-1", "backend": "sagemaker", "url": None})

    r = cli("cleanup", input="n\n")
    assert r.exit_code == 0, r.output
    assert "6 SageMaker resources named dogbreed* in us-east-1:" in r.output
    assert "nothing deleted" in r.output
    assert len(_names(sm)[0]) == 3

    r = cli("cleanup", "--expired", "--yes")
    assert r.exit_code == 0, r.output
    assert "3 SageMaker expired endpoints" in r.output
    assert _names(sm) == (["dogbreed-ep-1", "someone-elses"], ["dogbreed-ep-1-config", "someone-elses-config"],
                          ["dogbreed-ep-1-model", "someone-elses-model"])

    r = cli("cleanup", input="y\n")
    assert r.exit_code == 0, r.output
    assert "deleted 3" in r.output
    assert _names(sm) == (["someone-elses"], ["someone-elses-config"], ["someone-elses-model"])
    assert "endpoint" not in state(workspace)
    assert "nothing to clean up: no resources named dogbreed* in us-east-1" in cli("cleanup").output


def test_cleanup_removes_what_deploy_created(cli, workspace, aws, tmp_path):
    import tarfile

    import boto3

    (tmp_path / "model.pth").write_bytes(b"weights")
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "model.pth", arcname="model.pth")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(tmp_path / "model.tar.gz"), BUCKET, "jobs/t-1/output/model.tar.gz")
    r = cli("--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET, "deploy",
            "--model-data", f"s3://{BUCKET}/jobs/t-1/output/model.tar.gz")
    assert r.exit_code == 0, r.output
    name = state(workspace)["endpoint"]["name"]
    sm = boto3.client("sagemaker", region_name="us-east-1")
    assert _names(sm)[0] == [name]

    r = cli("--bucket", BUCKET, "cleanup", "--yes")
    assert r.exit_code == 0, r.output
    assert f"deleted endpoint {name}" in r.output
    assert _names(sm) == ([], [], [])
    assert "endpoint" not in state(workspace)
