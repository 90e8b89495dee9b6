"""Scale-out on SageMaker through the real CLI and SDK, against moto: a Batch Transform job over
an S3 prefix (its request, its output fetched into the same JSON Lines as local scoring, its
model deleted), and endpoint autoscaling registered on deploy, shown by `endpoints`, removed by
`undeploy` and `cleanup`. Bad input is one line with nothing created."""

from __future__ import annotations

import json
import pytest

from tests.moto_support import BUCKET, ROLE_ARN

SM = ["--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET]
SCALING = ("--min-instances", 1, "--max-instances", 3, "--target-invocations", 50)


def client(name, region="us-east-1"):
    import boto3

    return boto3.client(name, region_name=region)


@pytest.fixture
def model_s3(aws, tiny_model_tar):
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(tiny_model_tar), BUCKET, "jobs/train-1/output/model.tar.gz")
    return f"s3://{BUCKET}/jobs/train-1/output/model.tar.gz"


@pytest.fixture
def photos_s3(model_s3, sample_data):
    """The sample test split under s3://BUCKET/photos/ (keys keep the breed folders)."""
    s3 = client("s3")
    for f in sorted((sample_data / "test").rglob("*.jpg")):
        s3.upload_file(str(f), BUCKET, f"photos/{f.relative_to(sample_data / 'test').as_posix()}")
    return f"s3://{BUCKET}/photos/"


@pytest.fixture
def transform_service(monkeypatch, tiny_model_tar, tmp_path):
    """What SageMaker does that moto does not: run the container on every input object and write
    `<output>/<key>.out`. Here the container is our own handler (scripts/inference.py's functions)
    on the job's model, called with the job's ContentType and Accept."""
    from moto.sagemaker.models import SageMakerModelBackend

    from dogbreed.serving import handler
    from dogbreed.serving.model_dir import prepare_model_dir

    loaded = handler.model_fn(str(prepare_model_dir(str(tiny_model_tar), tmp_path / "container-model")))
    requests = []
    create = SageMakerModelBackend.create_transform_job

    def create_and_run(self, *args, **kwargs):
        job = create(self, *args, **kwargs)
        requests.append(job)
        source = job.transform_input["DataSource"]["S3DataSource"]["S3Uri"]
        out = job.transform_output["S3OutputPath"]
        s3 = client("s3")
        bucket, prefix = source[5:].split("/", 1)
        out_bucket, out_prefix = out[5:].split("/", 1)
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            x = handler.input_fn(body, job.transform_input["ContentType"], transform=loaded.transform)
            answer, _ = handler.output_fn(handler.predict_fn(x, loaded), job.transform_output["Accept"],
                                          loaded.breeds)
            s3.put_object(Bucket=out_bucket, Key=f"{out_prefix.rstrip('/')}/{obj['Key'][len(prefix):]}.out",
                          Body=answer.encode())
        return job

    monkeypatch.setattr(SageMakerModelBackend, "create_transform_job", create_and_run)
    return requests


def test_batch_transform_over_a_prefix(photos_s3, model_s3, transform_service, workspace, cli, tmp_path,
                                       sample_data, tiny_model_tar):
    from dogbreed.backends.sagemaker import sdk

    out = tmp_path / "scores.jsonl"
    r = cli(*SM, "batch", photos_s3, "--out", out, "--model-data", model_s3, "--top-k", 3, "--job-name", "dog-batch",
            "--instance-type", "ml.c5.xlarge")
    if sdk.major() == 3:  # refused in one line, nothing created (transform.V3_REFUSAL)
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
        assert "batch predictions on SageMaker need SageMaker Python SDK v2 for now" in r.output
        assert nothing_created() and not out.exists() and transform_service == []
        return
    assert r.exit_code == 0, r.output
    assert "20 images under s3://dogbreed-test-bucket/photos/ -> transform job dog-batch" in r.output
    assert "1 x ml.c5.xlarge at ~$0.204/h while the job runs" in r.output
    assert "scored 20 of 20 images" in r.output and "transform job dog-batch: Completed" in r.output

    (job,) = transform_service
    assert job.transform_input["SplitType"] == "None" and job.transform_input["ContentType"] == "application/x-image"
    assert job.batch_strategy == "SingleRecord" and job.max_payload_in_mb == 6
    assert job.transform_output["Accept"] == "application/json; top_k=3"
    assert job.transform_resources == {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1}
    assert job.transform_output["S3OutputPath"] == f"s3://{BUCKET}/dogbreed/transform/dog-batch/"
    assert client("sagemaker").list_models()["Models"] == []  # the job's model went with it

    # the same JSON Lines as scoring the same images locally with the same model
    remote = [json.loads(line) for line in out.read_text().splitlines()]
    local_out = tmp_path / "local.jsonl"
    r = cli("batch", sample_data / "test", "--out", local_out, "--model-data", tiny_model_tar, "--top-k", 3)
    assert r.exit_code == 0, r.output
    local = [json.loads(line) for line in local_out.read_text().splitlines()]
    assert len(remote) == 20 and [row["image"] for row in remote] == [row["image"] for row in local]
    assert [[p["breed"] for p in row["predictions"]] for row in remote] == \
        [[p["breed"] for p in row["predictions"]] for row in local]


def nothing_created():
    sm = client("sagemaker")
    return (sm.list_models()["Models"], sm.list_transform_jobs()["TransformJobSummaries"],
            sm.list_endpoints()["Endpoints"]) == ([], [], [])


@pytest.mark.parametrize("case, message", [
    ("other region", "bucket eu-photos is in eu-west-1 but SageMaker runs in us-east-1"),
    ("empty prefix", "no images (.jpg"),
    ("local folder", "is not an S3 prefix: Batch Transform reads s3://BUCKET/PREFIX/"),
    ("out exists", "already exists: pass another --out"),
])
def test_batch_transform_bad_input_is_one_line_and_starts_nothing(photos_s3, model_s3, workspace, cli, tmp_path,
                                                                  sample_data, case, message):
    eu = client("s3", "eu-west-1")
    eu.create_bucket(Bucket="eu-photos", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    eu.put_object(Bucket="eu-photos", Key="photos/dog.jpg", Body=b"\xff\xd8 jpeg")
    (tmp_path / "done.jsonl").write_text("{}\n")
    source, out = {"other region": ("s3://eu-photos/photos/", "o.jsonl"),
                   "empty prefix": (f"s3://{BUCKET}/nothing-here/", "o.jsonl"),
                   "local folder": (str(sample_data / "test"), "o.jsonl"),
                   "out exists": (photos_s3, "done.jsonl")}[case]
    r = cli(*SM, "batch", source, "--out", tmp_path / out, "--model-data", model_s3)
    assert r.exit_code == 1
    assert r.output.startswith("Error: ") and message in r.output and len(r.output.strip().splitlines()) == 1
    assert nothing_created() and not (tmp_path / "o.jsonl").exists()


def scaling_of(endpoint):
    aas = client("application-autoscaling")
    rid = f"endpoint/{endpoint}/variant/AllTraffic"
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])["ScalableTargets"]
    policies = [p for p in aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
                if p["ResourceId"] == rid]
    return targets, policies


def test_deploy_with_autoscaling_endpoints_undeploy(model_s3, workspace, cli):
    r = cli(*SM, "deploy", "--model-data", model_s3, "--name", "dog-auto", "--min-instances", 2, "--max-instances", 5,
            "--target-invocations", 120)
    assert r.exit_code == 0, r.output
    assert "autoscaling dog-auto: 2-5 instances, target 120 invocations/instance/min" in r.output
    assert "2 x ml.m5.large" in r.output  # the reminder bills the minimum fleet
    sm = client("sagemaker")
    config = sm.describe_endpoint(EndpointName="dog-auto")["EndpointConfigName"]
    (variant,) = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    assert variant["InitialInstanceCount"] == 2 and variant["VariantName"] == "AllTraffic"
    (target,), (policy,) = scaling_of("dog-auto")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 5)
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert policy["PolicyType"] == "TargetTrackingScaling" and tracking["TargetValue"] == 120
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"

    listing = cli(*SM, "endpoints")
    assert "autoscaling 2-5 instances at 120 invocations/instance/min" in listing.output
    as_json = json.loads(cli(*SM, "endpoints", "--json").output)
    assert as_json[0]["extra"]["autoscaling"] == {"min_instances": 2, "max_instances": 5, "target_invocations": 120}

    r = cli(*SM, "undeploy")
    assert r.exit_code == 0, r.output
    assert scaling_of("dog-auto") == ([], [])


@pytest.mark.parametrize("flags, message", [
    (("--min-instances", 0, "--max-instances", 2, "--target-invocations", 10), "--min-instances 0 is out of range"),
    (("--min-instances", 3, "--max-instances", 2, "--target-invocations", 10), "--max-instances 2 is out of range"),
    (("--max-instances", 1000, "--target-invocations", 10), "--max-instances 1000 is out of range: use"),
    (("--max-instances", 2, "--target-invocations", 0), "--target-invocations 0 is out of range"),
    (("--serverless", *SCALING), "a serverless endpoint scales by itself"),
])
def test_autoscaling_bad_limits_are_one_line_and_deploy_nothing(model_s3, workspace, cli, flags, message):
    r = cli(*SM, "deploy", "--model-data", model_s3, "--name", "dog-bad", *flags)
    assert r.exit_code == 1
    assert r.output.startswith("Error: ") and message in r.output and len(r.output.strip().splitlines()) == 1
    assert nothing_created() and scaling_of("dog-bad") == ([], [])


def test_autoscaling_refused_locally_and_incomplete_flags(workspace, cli, tiny_model_tar):
    r = cli("deploy", "--model-data", tiny_model_tar, *SCALING)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "the local backend cannot scale an endpoint's instance count" in r.output
    assert "batches concurrent requests (--max-batch-size)" in r.output
    assert not (workspace / "endpoints").exists()
    r = cli("deploy", "--model-data", tiny_model_tar, "--min-instances", 2)
    assert r.exit_code == 2 and "autoscaling needs --max-instances and --target-invocations" in r.output


def test_cleanup_deregisters_scaling_left_by_a_deleted_endpoint(model_s3, workspace, cli):
    assert cli(*SM, "deploy", "--model-data", model_s3, "--name", "dogbreed-auto", *SCALING).exit_code == 0
    client("sagemaker").delete_endpoint(EndpointName="dogbreed-auto")  # deleted in the console, scaling left
    r = cli(*SM, "cleanup")
    assert "scalable-target  dogbreed-auto  (1-3 instances, target 50 invocations/instance/min)" in r.output
    r = cli(*SM, "cleanup", "--yes")
    assert r.exit_code == 0, r.output
    assert "deleted scalable-target dogbreed-auto" in r.output
    assert scaling_of("dogbreed-auto") == ([], [])


def test_autoscale_endpoint_capability_on_an_existing_endpoint(model_s3, workspace, cli):
    from dogbreed.backends import get_backend
    from dogbreed.backends.base import Autoscaling
    from dogbreed.errors import ConfigError
    from dogbreed.settings import Settings
    from dogbreed.workspace import Workspace

    assert cli(*SM, "deploy", "--model-data", model_s3, "--name", "dog-later").exit_code == 0
    assert scaling_of("dog-later") == ([], [])
    backend = get_backend("sagemaker", Workspace.resolve(workspace),
                          Settings.resolve({"backend": "sagemaker", "role": ROLE_ARN, "bucket": BUCKET}))
    scale = backend.require("autoscale_endpoint")
    with pytest.raises(ConfigError, match="--target-invocations -1 is out of range"):
        scale("dog-later", Autoscaling(1, 2, -1))
    scale("dog-later", Autoscaling(1, 4, 30))
    (target,), (policy,) = scaling_of("dog-later")
    assert target["MaxCapacity"] == 4 and policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 30
    scale("dog-later", None)
    assert scaling_of("dog-later") == ([], [])
