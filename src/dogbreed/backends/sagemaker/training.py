"""Training jobs on SageMaker: a PyTorch estimator over the staged source dir."""

from __future__ import annotations

import dataclasses
import re
import time
from contextlib import contextmanager
from typing import Any

from dogbreed.backends.base import COMPLETED, TrainingJobSpec, JobDescription
from dogbreed.backends.sagemaker.session import AwsContext
from dogbreed.errors import ConfigError, DogbreedError, JobNotFoundError
from dogbreed.training.metrics import METRIC_DEFINITIONS

# torch_distributed, the SDK's launcher for several processes, runs only on GPU and Trainium instances
DISTRIBUTED_INSTANCE = re.compile(r"^ml\.(p\d|g\d|trn\d)")
# the hook's package is pip-installed from requirements.txt, which an isolated container cannot do
ISOLATION_NOTE = ("network isolation: the container installs nothing, so the smdebug hook and the Debugger "
                  "rules are off for this job (the profiler's system metrics stay on)")


def make_estimator(ctx: AwsContext, spec: TrainingJobSpec, source_dir: str, **extra: Any):
    """The PyTorch estimator for `spec`; `extra` carries debugger/profiler/spot settings."""
    from dogbreed.backends.sagemaker.session import import_sagemaker

    import_sagemaker()
    from sagemaker.pytorch import PyTorch

    s = ctx.settings
    return PyTorch(
        entry_point=spec.entry_point,
        source_dir=source_dir,
        role=ctx.role,
        framework_version=s.framework_version,
        py_version=s.py_version,
        instance_count=spec.processes,
        instance_type=spec.instance_type or s.instance_type,
        hyperparameters=dict(spec.hyperparameters),
        metric_definitions=METRIC_DEFINITIONS,
        base_job_name=spec.base_name,
        output_path=ctx.s3_uri("jobs"),
        code_location=ctx.s3_uri("code"),
        sagemaker_session=ctx.sagemaker_session,
        environment=dict(spec.env) or None,
        max_run=spec.max_run_s or s.max_run_s,
        distribution={"torch_distributed": {"enabled": True}} if spec.processes > 1 else None,
        enable_network_isolation=s.network_isolation,
        **{**spot_options(ctx, spec), **extra},
    )


CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"  # where train_model.py looks for a checkpoint to resume


def spot_options(ctx: AwsContext, spec: TrainingJobSpec) -> dict:
    """Managed spot: an interrupted job restarts and resumes from its checkpoints, synced to S3.

    Checkpoints go to a folder named after the job, so no job ever resumes from another's;
    without a job name (a tuner's shared estimator) spot runs without them.
    """
    s = ctx.settings
    if not s.spot:
        return {}
    max_run = spec.max_run_s or s.max_run_s
    opts = {"use_spot_instances": True, "max_wait": max(s.max_wait_s or 2 * max_run, max_run)}
    if spec.job_name:
        opts.update(checkpoint_s3_uri=ctx.s3_uri("checkpoints", spec.job_name),
                    checkpoint_local_path=CHECKPOINT_LOCAL_PATH)
    return opts


def check_job(ctx: AwsContext, spec: TrainingJobSpec) -> TrainingJobSpec:
    """`spec` with its job name, refused in one line if SageMaker would refuse it; before any upload."""
    from dogbreed.names import check_name

    check_s3_data(spec.data)
    instance = spec.instance_type or ctx.settings.instance_type
    if spec.processes > 1 and not DISTRIBUTED_INSTANCE.match(instance):
        raise ConfigError(f"--processes {spec.processes} runs torch_distributed, which SageMaker offers only on GPU "
                          f"and Trainium instances (ml.g*, ml.p*, ml.trn*), not {instance}: pass e.g. "
                          "--instance-type ml.g5.xlarge, or train with --processes 1")
    spec = with_job_name(spec)
    check_name(spec.job_name, "training job name")
    return spec


def instrumentation(ctx: AwsContext, spec: TrainingJobSpec, log=None):
    """What instruments the job: under network isolation, without the hook and its rules (said once)."""
    i = spec.instrumentation
    if not ctx.settings.network_isolation or i is None or not i.debugger:
        return i
    if log:
        log(ISOLATION_NOTE)
    return dataclasses.replace(i, debugger=False)


class RemoteJobStillRunning(DogbreedError):
    """Raised when the user interrupts the wait for a job that keeps running on SageMaker."""


@contextmanager
def interrupted_wait(kind: str, name: str, follow: str):
    """Ctrl-C while waiting for `name` stops the waiting, not the job: say so, and how to stop it."""
    try:
        yield
    except KeyboardInterrupt:
        raise RemoteJobStillRunning(
            f"interrupted: the SageMaker {kind} {name} keeps running (and billing); stop it with "
            f"`dogbreed --backend sagemaker stop {name}`, or follow it with `{follow}`") from None


def with_job_name(spec: TrainingJobSpec) -> TrainingJobSpec:
    """`spec` with a unique job name, chosen before the estimator exists (the checkpoint path needs it)."""
    from dogbreed.backends.sagemaker import sdk
    from dogbreed.backends.sagemaker.session import import_sagemaker

    import_sagemaker()
    return spec if spec.job_name else dataclasses.replace(spec, job_name=sdk.builders().name_from_base(spec.base_name))


def start(ctx: AwsContext, spec: TrainingJobSpec, source_dir: str, extra: dict):
    """Create the job through the installed SDK major (sdk.py), `extra` being debugger.instrument's
    estimator kwargs: (its name, a function waiting for it, showing its logs when given True).
    The name is known before the wait, so an interrupted wait can say which job keeps running."""
    from dogbreed.backends.sagemaker import sdk

    return sdk.builders().start_training(ctx, spec, source_dir, extra)


def cost_estimate(ctx: AwsContext, spec: TrainingJobSpec):
    from dogbreed.backends.sagemaker.costs import estimate_training

    s = ctx.settings
    return estimate_training(spec.instance_type or s.instance_type, spec.processes, spec.max_run_s or s.max_run_s,
                             spot=s.spot)


def check_s3_data(data: str) -> str:
    if not data.startswith("s3://"):
        raise ConfigError(f"the SageMaker backend reads data from S3, not {data!r}: run `dogbreed data upload` "
                          "or pass --data s3://bucket/prefix")
    return data


def describe(ctx: AwsContext, name: str) -> JobDescription:
    import botocore.exceptions

    try:
        d = ctx.sagemaker_client.describe_training_job(TrainingJobName=name)
    except botocore.exceptions.ClientError as exc:
        if "ValidationException" in str(exc) or "not found" in str(exc).lower():
            raise JobNotFoundError(f"no SageMaker training job named {name!r} in {ctx.region}") from None
        raise
    return description_from_api(d)


def seconds(value) -> float | None:
    """A time from the API (a datetime from boto3, or already seconds since the epoch) as epoch seconds."""
    return value.timestamp() if hasattr(value, "timestamp") else value


def description_from_api(d: dict) -> JobDescription:
    from dogbreed import hyperparameters as hp

    metrics = {m["MetricName"]: m["Value"] for m in d.get("FinalMetricDataList", [])}
    return JobDescription(
        name=d["TrainingJobName"],
        status=d["TrainingJobStatus"],
        backend="sagemaker",
        entry_point=hp.decode({"p": d.get("HyperParameters", {}).get("sagemaker_program", '""')}).get("p", ""),
        hyperparameters=hp.decode(d.get("HyperParameters", {})),
        created=seconds(d.get("CreationTime")) or time.time(),
        started=seconds(d.get("TrainingStartTime")),
        ended=seconds(d.get("TrainingEndTime")),
        metrics=metrics,
        model_data=((d.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
                    if d["TrainingJobStatus"] == COMPLETED else None),
        failure_reason=d.get("FailureReason"),
        location=f"https://console.aws.amazon.com/sagemaker/home#/jobs/{d['TrainingJobName']}",
        data=next((c["DataSource"]["S3DataSource"]["S3Uri"] for c in d.get("InputDataConfig", [])
                   if "S3DataSource" in c.get("DataSource", {})), None),
        extra={"secondary_status": d.get("SecondaryStatus"),
               "rules": [{k: r.get(k) for k in ("RuleConfigurationName", "RuleEvaluationStatus", "StatusDetails")}
                         for r in (d.get("DebugRuleEvaluationStatuses", [])
                                   + d.get("ProfilerRuleEvaluationStatuses", []))],
               "instance_type": (d.get("ResourceConfig") or {}).get("InstanceType")},
    )


def list_jobs(ctx: AwsContext, limit: int) -> list[JobDescription]:
    resp = ctx.sagemaker_client.list_training_jobs(MaxResults=min(limit, 100), SortBy="CreationTime",
                                                   SortOrder="Descending", NameContains=ctx.settings.prefix
                                                   if ctx.settings.extra.get("filter_by_prefix") else "")
    out = []
    for s in resp.get("TrainingJobSummaries", []):
        out.append(JobDescription(name=s["TrainingJobName"], status=s["TrainingJobStatus"], backend="sagemaker",
                                  created=seconds(s.get("CreationTime")) or 0.0,
                                  ended=seconds(s.get("TrainingEndTime"))))
    return out
