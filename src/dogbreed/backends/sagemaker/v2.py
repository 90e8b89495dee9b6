"""SageMaker Python SDK v2: framework estimator, v2 HyperparameterTuner, PyTorchModel.

The builders themselves (`training.make_estimator`, `tuning.make_tuner`, `debugger.estimator_kwargs`)
stay where they were; this module is what `sdk.builders()` returns on v2. v3.py has the same
functions, sending the same requests through v3's classes.
"""

from __future__ import annotations

from dogbreed.backends.base import EndpointSpec, TrainingJobSpec, TuningSpec
from dogbreed.backends.sagemaker.session import AwsContext

DEBUGGER_MODULE = "sagemaker.debugger"
SESSION_MODULE = "sagemaker.session"  # get_execution_role, NOTEBOOK_METADATA_FILE


def session(boto_session, bucket: str | None):
    import sagemaker

    return sagemaker.Session(boto_session=boto_session, default_bucket=bucket)


def name_from_base(base: str) -> str:
    from sagemaker.utils import name_from_base as unique

    return unique(base)


def start_training(ctx: AwsContext, spec: TrainingJobSpec, source_dir: str, extra: dict):
    from dogbreed.backends.sagemaker import training

    est = training.make_estimator(ctx, spec, source_dir, **extra)
    est.fit({"training": spec.data}, wait=False, job_name=spec.job_name)
    job = est.latest_training_job
    return job.name, lambda logs: job.wait(logs="All" if logs else "None")


def start_tuning(ctx: AwsContext, spec: TuningSpec, source_dir: str) -> str:
    from dogbreed.backends.sagemaker import tuning

    tuner = tuning.make_tuner(ctx, spec, source_dir)
    tuner.fit({"training": spec.data}, job_name=spec.name, wait=False)
    return tuner.latest_tuning_job.name


def deploy_model(ctx: AwsContext, spec: EndpointSpec, source_dir: str, uri: str, name: str, tags,
                 count: int = 1, env: dict | None = None) -> None:
    """CreateModel (the artifact repacked with `source_dir` as code/, `env` in its container's
    environment), CreateEndpointConfig (`count`
    instances, or serverless), CreateEndpoint, then wait until InService."""
    from sagemaker.serverless import ServerlessInferenceConfig

    from dogbreed.backends.sagemaker.endpoints import pytorch_model

    model = pytorch_model(ctx, uri, name, source_dir, env)
    if spec.serverless:
        where = {"serverless_inference_config": ServerlessInferenceConfig(memory_size_in_mb=spec.memory_mb,
                                                                          max_concurrency=spec.max_concurrency)}
    else:
        where = {"initial_instance_count": count,
                 "instance_type": spec.instance_type or ctx.settings.inference_instance_type}
    model.deploy(endpoint_name=name, wait=True, tags=tags, **where)
