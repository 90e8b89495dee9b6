"""Endpoints on SageMaker: the model (the artifact plus the staged source dir as code/, entry point
inference.py; built by the installed SDK major, sdk.py),
real-time or serverless; invoked through sagemaker-runtime with boto3 only (no SDK import)."""

from __future__ import annotations

import time
from pathlib import Path

from dogbreed.backends.base import EndpointConnection, EndpointDescription, EndpointSpec
from dogbreed.backends.sagemaker.session import AwsContext
from dogbreed.errors import ConfigError, EndpointError

# Serverless limits (SageMaker docs): memory 1024-6144 MB in 1 GB steps, concurrency 1-200.
SERVERLESS_MEMORY_MB = range(1024, 6145, 1024)
SERVERLESS_MAX_CONCURRENCY = range(1, 201)


def check_spec(spec: EndpointSpec) -> EndpointSpec:
    """`spec` with its name (default dogbreed-<time>); SageMaker's limits checked before any upload.
    The name is the model's, the endpoint config's and the endpoint's."""
    import dataclasses

    from dogbreed.names import check_name

    spec = dataclasses.replace(spec, name=check_name(spec.name or f"dogbreed-{time.strftime('%Y%m%d-%H%M%S')}",
                                                     "endpoint name"))
    if spec.serverless:
        if spec.memory_mb not in SERVERLESS_MEMORY_MB:
            raise ConfigError(f"--memory {spec.memory_mb} is not a serverless size: use 1024, 2048, ... 6144 (MB)")
        if spec.max_concurrency not in SERVERLESS_MAX_CONCURRENCY:
            raise ConfigError(f"--max-concurrency {spec.max_concurrency} is out of range: use 1 to 200")
        if spec.autoscaling:
            raise ConfigError("a serverless endpoint scales by itself (up to --max-concurrency concurrent requests, "
                              "nothing billed while idle): drop --min-instances/--max-instances/"
                              "--target-invocations, or deploy without --serverless")
    elif spec.autoscaling:
        from dogbreed.backends.sagemaker import autoscaling

        autoscaling.check(spec.autoscaling)
    return spec


def model_data_uri(ctx: AwsContext, model_data: str, name: str) -> str:
    """An s3:// URI for the artifact; a local model.tar.gz is uploaded first."""
    if model_data.startswith("s3://"):
        return model_data
    path = Path(model_data[len("file://"):] if model_data.startswith("file://") else model_data)
    if not path.is_file() or not path.name.endswith(".tar.gz"):
        raise EndpointError(f"model data {model_data} is neither an s3:// URI nor a local model.tar.gz")
    key = f"{ctx.settings.prefix.strip('/')}/models/{name}/model.tar.gz"
    ctx.boto_session.client("s3").upload_file(str(path), ctx.bucket, key)
    return f"s3://{ctx.bucket}/{key}"


def pytorch_model(ctx: AwsContext, uri: str, name: str, source_dir: str, env: dict | None = None):
    """The SDK v2 model serving `uri` with scripts/inference.py (an endpoint's or a transform job's),
    `env` added to its container's environment."""
    from dogbreed.backends.sagemaker.session import import_sagemaker

    import_sagemaker()
    from sagemaker.pytorch import PyTorchModel

    s = ctx.settings
    return PyTorchModel(model_data=uri, role=ctx.role, entry_point="inference.py", source_dir=source_dir,
                        framework_version=s.inference_framework_version, py_version=s.py_version,
                        sagemaker_session=ctx.sagemaker_session, name=name, env=env)


def deploy(ctx: AwsContext, spec: EndpointSpec, source_dir: str, log=None) -> EndpointDescription:
    from dogbreed.backends.sagemaker import costs, sdk, serving_config

    spec = check_spec(spec)
    s = ctx.settings
    name = spec.name
    count = spec.autoscaling.min_instances if spec.autoscaling else 1
    instance = None if spec.serverless else spec.instance_type or s.inference_instance_type
    try:  # before the upload: a setting the container would die on is refused here, not minutes later
        env = serving_config.container_env(instance, spec.env)
    except ValueError as exc:
        raise ConfigError(f"{exc}: pass --instance-type with one") from None
    uri = model_data_uri(ctx, spec.model_data, name)
    what = f"serverless ({spec.memory_mb} MB, max concurrency {spec.max_concurrency})" if spec.serverless \
        else f"{count} x {instance}"
    if log:
        log(f"deploying {uri} to endpoint {name} on {what}; this takes several minutes")
        log(f"serving settings: {serving_config.describe(env)}")
    tags = costs.expiry_tags(spec.auto_delete_after_s) if spec.auto_delete_after_s else None
    sdk.builders().deploy_model(ctx, spec, source_dir, uri, name, tags, count, env)
    if spec.autoscaling:
        scale(ctx, name, spec.autoscaling, log)
    if log:
        log(costs.endpoint_reminder(name, instance, count,
                                    serverless_memory_mb=spec.memory_mb if spec.serverless else None,
                                    auto_delete_after_s=spec.auto_delete_after_s))
    return describe(ctx, name)


def scale(ctx: AwsContext, name: str, scaling, log=None) -> None:
    """Register autoscaling for a new endpoint; if that fails, delete the endpoint (nothing left billing)."""
    from dogbreed.backends.sagemaker import autoscaling

    try:
        autoscaling.register(ctx.boto_session.client("application-autoscaling"), name, scaling)
    except Exception as exc:
        delete(ctx, name)
        raise EndpointError(f"autoscaling for {name} could not be registered ({exc}); the endpoint was deleted: "
                            "check the role's application-autoscaling permissions and deploy again") from None
    if log:
        log(f"autoscaling {name}: {autoscaling.summary(scaling)}")


def describe(ctx: AwsContext, name: str) -> EndpointDescription:
    import botocore.exceptions

    sm = ctx.boto_session.client("sagemaker")
    try:
        d = sm.describe_endpoint(EndpointName=name)
    except botocore.exceptions.ClientError as exc:
        raise EndpointError(f"no SageMaker endpoint named {name!r} in {ctx.region}: `dogbreed endpoints` "
                            "lists them") from exc
    extra = {"endpoint_config": d.get("EndpointConfigName")}
    try:
        cfg = sm.describe_endpoint_config(EndpointConfigName=d["EndpointConfigName"])
        variants = cfg.get("ProductionVariants", [])
        extra["models"] = [v.get("ModelName") for v in variants]
        extra["instance_type"] = next((v.get("InstanceType") for v in variants if v.get("InstanceType")), None)
        extra["serverless"] = next((v.get("ServerlessConfig") for v in variants if v.get("ServerlessConfig")), None)
    except botocore.exceptions.ClientError:
        pass
    extra["autoscaling"] = _scaling(ctx, [name]).get(name)
    created = d.get("CreationTime")
    return EndpointDescription(name=d["EndpointName"], backend="sagemaker", status=d["EndpointStatus"],
                               created=created.timestamp() if hasattr(created, "timestamp") else created,
                               failure_reason=d.get("FailureReason"), extra=extra)


def _scaling(ctx: AwsContext, names: list[str] | None = None) -> dict:
    """endpoint -> its autoscaling as a dict; {} when the caller may not read Application Auto Scaling."""
    import dataclasses

    import botocore.exceptions

    from dogbreed.backends.sagemaker import autoscaling

    try:
        found = autoscaling.describe_all(ctx.boto_session.client("application-autoscaling"), names)
    except botocore.exceptions.ClientError:
        return {}
    return {name: dataclasses.asdict(a) for name, a in found.items()}


def list_endpoints(ctx: AwsContext) -> list[EndpointDescription]:
    sm = ctx.boto_session.client("sagemaker")
    out = []
    for e in sm.list_endpoints(SortBy="CreationTime", SortOrder="Descending", MaxResults=100).get("Endpoints", []):
        created = e.get("CreationTime")
        out.append(EndpointDescription(name=e["EndpointName"], backend="sagemaker", status=e["EndpointStatus"],
                                       created=created.timestamp() if hasattr(created, "timestamp") else created))
    scaling = _scaling(ctx) if out else {}
    for d in out:
        d.extra["autoscaling"] = scaling.get(d.name)
    return out


def delete(ctx: AwsContext, name: str) -> list[str]:
    """Delete the endpoint, its config and its model(s); returns what was deleted."""
    import botocore.exceptions

    from dogbreed.backends.sagemaker import autoscaling

    desc = describe(ctx, name)
    sm = ctx.boto_session.client("sagemaker")
    deleted = []
    if desc.extra.get("autoscaling") and autoscaling.deregister(ctx.boto_session.client("application-autoscaling"),
                                                                name):
        deleted.append(f"scalable target {autoscaling.resource_id(name)}")
    sm.delete_endpoint(EndpointName=name)
    deleted.append(f"endpoint {name}")
    for kind, call, key, value in [("endpoint config", sm.delete_endpoint_config, "EndpointConfigName",
                                    desc.extra.get("endpoint_config"))] + \
            [("model", sm.delete_model, "ModelName", m) for m in desc.extra.get("models") or []]:
        if not value:
            continue
        try:
            call(**{key: value})
            deleted.append(f"{kind} {value}")
        except botocore.exceptions.ClientError as exc:  # already gone (e.g. shared config): not an error
            if "not found" not in str(exc).lower() and "could not find" not in str(exc).lower():
                raise
    return deleted


class RuntimeConnection(EndpointConnection):
    """InvokeEndpoint through boto3's sagemaker-runtime client."""

    def __init__(self, ctx: AwsContext, name: str):
        self.name = name
        self.client = ctx.boto_session.client("sagemaker-runtime")

    def invoke(self, body: bytes, content_type: str, accept: str = "application/json") -> tuple[bytes, str]:
        import botocore.exceptions

        try:
            resp = self.client.invoke_endpoint(EndpointName=self.name, Body=body, ContentType=content_type,
                                               Accept=accept)
        except botocore.exceptions.ClientError as exc:
            err = exc.response.get("Error", {})
            detail = exc.response.get("OriginalMessage") or err.get("Message") or str(exc)
            raise EndpointError(f"endpoint {self.name} answered {err.get('Code', 'an error')}: {detail}") from None
        return resp["Body"].read(), resp.get("ContentType", "")
