"""Bulk prediction on SageMaker: a Batch Transform job over an S3 prefix, with the same model
archive and the same handler (scripts/inference.py) as a `deploy`.

The job's settings, and why:
- SplitType None: each S3 object is one whole image file. Line or RecordIO splitting would cut
  JPEG bytes into pieces no decoder can read.
- BatchStrategy SingleRecord: one image per request. MultiRecord would concatenate several
  objects into one body, and an image/* request holds exactly one image.
- MaxPayloadInMB 6: the real-time endpoint's request limit (serving.limits.MAX_BODY_BYTES), so
  the job accepts exactly what `predict` accepts. An object over it fails the job, so it is
  checked while listing, before anything starts.
- ContentType application/x-image (the handler decodes any supported format from its bytes);
  Accept application/json; top_k=K (the handler's output_fn, as `predict` asks for it).

SageMaker writes `<output>/<relative key>.out` per input object; `fetch` turns them into the
same JSON Lines as the local scorer (`{"image", "predictions"}` per image, names relative to
the prefix). The model the job creates is deleted when the job ends; nothing is left billing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from dogbreed.backends.base import BatchResult, BatchSpec
from dogbreed.backends.sagemaker.session import AwsContext
from dogbreed.errors import ConfigError, DataError, JobFailedError
from dogbreed.serving.limits import IMAGE_SUFFIXES, MAX_BODY_BYTES

SPLIT_TYPE = "None"
BATCH_STRATEGY = "SingleRecord"
MAX_PAYLOAD_MB = MAX_BODY_BYTES // (1024 * 1024)
CONTENT_TYPE = "application/x-image"
POLL_S = 30.0
TERMINAL = ("Completed", "Failed", "Stopped")
V3_REFUSAL = ("batch predictions on SageMaker need SageMaker Python SDK v2 for now (this one is v3): "
              "pip install 'sagemaker>=2.257,<3', or use a deployed endpoint (`dogbreed predict`)")


@dataclass(frozen=True)
class S3Prefix:
    bucket: str
    prefix: str  # no leading slash; "" or ends with "/"

    @classmethod
    def parse(cls, uri: str) -> "S3Prefix":
        if not uri.startswith("s3://") or len(uri) <= len("s3://"):
            raise ConfigError(f"{uri} is not an S3 prefix: Batch Transform reads s3://BUCKET/PREFIX/ "
                              "(upload a folder with `dogbreed data upload DIR --prefix PREFIX`)")
        bucket, _, key = uri[len("s3://"):].partition("/")
        key = key.strip("/")
        return cls(bucket, key + "/" if key else "")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def bucket_region(s3, bucket: str) -> str:
    """The bucket's region (GetBucketLocation answers None for us-east-1 and "EU" for eu-west-1)."""
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)


def list_inputs(s3, src: S3Prefix) -> list[tuple[str, int]]:
    """(key, size) of the images under the prefix; DataError if none or one is over the payload limit."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=src.bucket, Prefix=src.prefix):
        found += [(o["Key"], o["Size"]) for o in page.get("Contents", [])
                  if Path(o["Key"]).suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {src.uri}")
    too_big = [(k, n) for k, n in found if n > MAX_BODY_BYTES]
    if too_big:
        key, size = too_big[0]
        raise DataError(f"{len(too_big)} image(s) over the {MAX_PAYLOAD_MB} MB payload limit, e.g. s3://{src.bucket}/"
                        f"{key} ({size} bytes): resize them or move them out of the prefix")
    return found


def check(ctx: AwsContext, spec: BatchSpec) -> tuple[S3Prefix, list[tuple[str, int]]]:
    """Everything that would make the job fail, before anything is created or billed."""
    import botocore.exceptions

    from dogbreed.backends.sagemaker.s3 import aws_error
    from dogbreed.serving.batch import Output

    src = S3Prefix.parse(spec.source)
    Output(Path(spec.out).expanduser()).check()
    _ = ctx.role
    s3 = ctx.boto_session.client("s3")
    try:
        region = bucket_region(s3, src.bucket)
        if region != ctx.region:
            raise ConfigError(f"bucket {src.bucket} is in {region} but SageMaker runs in {ctx.region}: a transform job "
                              f"reads only its own region's buckets; pass --region {region} or copy the images")
        return src, list_inputs(s3, src)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise aws_error(exc, f"reading {src.uri}", src.bucket) from None


def cost_line(instance_type: str, count: int) -> str:
    from dogbreed.backends.sagemaker import costs

    hourly = costs.hourly_price(instance_type)
    price = f"~${hourly * count:.3f}/h" if hourly else f"no price on file (see {costs.PRICING_URL})"
    return (f"batch transform: {count} x {instance_type} at {price} while the job runs, nothing after it ends "
            f"(estimate: us-east-1 list prices of {costs.PRICES_AS_OF})")


def run(ctx: AwsContext, spec: BatchSpec, source_dir: str, log=None, sleep=time.sleep) -> BatchResult:
    from dogbreed.backends.sagemaker import sdk
    from dogbreed.backends.sagemaker.endpoints import model_data_uri, pytorch_model
    from dogbreed.names import check_name

    src, inputs = check(ctx, spec)
    if sdk.major() != 2:  # v3 has no PyTorchModel.transformer; refused before anything is created
        raise ConfigError(V3_REFUSAL)
    name = check_name(spec.job_name or f"{ctx.settings.prefix}-batch-{time.strftime('%Y%m%d-%H%M%S')}",
                      "transform job", 63)
    instance = spec.instance_type or ctx.settings.inference_instance_type
    output = ctx.s3_uri("transform", name) + "/"
    if log:
        log(f"{len(inputs)} images under {src.uri} -> transform job {name} -> {output}")
        log(cost_line(instance, spec.instance_count))
    started = time.time()
    model = pytorch_model(ctx, model_data_uri(ctx, spec.model_data, name), name, source_dir)
    transformer = model.transformer(spec.instance_count, instance, strategy=BATCH_STRATEGY, output_path=output,
                                    accept=f"application/json; top_k={spec.top_k}", max_payload=MAX_PAYLOAD_MB)
    try:
        transformer.transform(src.uri, data_type="S3Prefix", content_type=CONTENT_TYPE, split_type=SPLIT_TYPE,
                              job_name=name, wait=False, logs=False)
        desc = wait(ctx, name, log, sleep)
    finally:
        ctx.boto_session.client("sagemaker").delete_model(ModelName=name)
    if desc["TransformJobStatus"] != "Completed":
        raise JobFailedError(f"transform job {name} {desc['TransformJobStatus']}: "
                             f"{desc.get('FailureReason') or 'no reason given'}")
    counts = fetch(ctx.boto_session.client("s3"), src, [k for k, _ in inputs], output, Path(spec.out).expanduser())
    return BatchResult(out=spec.out, seconds=time.time() - started, location=f"transform job {name}, {output}",
                       **counts)


def wait(ctx: AwsContext, name: str, log=None, sleep=time.sleep) -> dict:
    sm = ctx.boto_session.client("sagemaker")
    status = None
    while True:
        desc = sm.describe_transform_job(TransformJobName=name)
        if log and desc["TransformJobStatus"] != status:
            status = desc["TransformJobStatus"]
            log(f"transform job {name}: {status}")
        if desc["TransformJobStatus"] in TERMINAL:
            return desc
        sleep(POLL_S)


def fetch(s3, src: S3Prefix, keys: list[str], output: str, dest: Path) -> dict:
    """The job's `<key>.out` objects as JSON Lines in `dest`, in key order; a missing or unreadable
    answer is an {"image", "error"} line."""
    from dogbreed.serving.batch import Output

    out = S3Prefix.parse(output)
    target = Output(dest)
    scored = failed = 0
    with target.open({"source": src.uri, "output": output}) as sink:
        for key in sorted(keys):
            name = key[len(src.prefix):]
            try:
                body = s3.get_object(Bucket=out.bucket, Key=f"{out.prefix}{name}.out")["Body"].read()
                row = {"image": name, "predictions": json.loads(body)["predictions"][0]}
                scored += 1
            except Exception as exc:  # noqa: BLE001 - one image's missing answer is that image's error
                row = {"image": name, "error": f"no answer in {output}{name}.out ({type(exc).__name__})"}
                failed += 1
            sink.write(json.dumps(row) + "\n")
    target.finish()
    return {"total": len(keys), "scored": scored, "failed": failed}
