"""SageMaker Python SDK v2: framework estimator, v2 HyperparameterTuner, PyTorchModel.

The builders themselves (`training.make_estimator`, `tuning.make_tuner`, `debugger.estimator_kwargs`)
stay where they were; this module is what `sdk.builders()` returns on v2. v3.py has the same
functions, sending the same requests through v3's classes.
"""

from __future__ import annotations

from dogbreed.backends.base import EndpointSpec, TrainingJobSpec, TuningSpec
from dogbreed.backends.sagemaker.session import AwsContext

DEBUGGER_MODULE = "sagemaker.debugger"


def session(boto_session, bucket: str | None):
    import sagemaker

    return sagemaker.Session(boto_session=boto_session, default_bucket=bucket)


def name_from_base(base: str) -> str:
    from sagemaker.utils import name_from_base as unique

    return unique(base)


def start_training(ctx: AwsContext, spec: TrainingJobSpec, source_dir: str, *, wait: bool, logs: bool) -> str:
    from dogbreed.backends.sagemaker import training
    from dogbreed.backends.sagemaker.debugger import estimator_kwargs

    est = training.make_estimator(ctx, spec, source_dir, **estimator_kwargs(spec.instrumentation))
    est.fit({"training": spec.data}, wait=False, job_name=spec.job_name)
    if wait:
        est.latest_training_job.wait(logs="All" if logs else "None")
    return est.latest_training_job.name


def start_tuning(ctx: AwsContext, spec: TuningSpec, source_dir: str) -> str:
    from dogbreed.backends.sagemaker import tuning

    tuner = tuning.make_tuner(ctx, spec, source_dir)
    tuner.fit({"training": spec.data}, job_name=spec.name, wait=False)
    return tuner.latest_tuning_job.name


def deploy_model(ctx: AwsContext, spec: EndpointSpec, source_dir: str, uri: str, name: str, tags) -> None:
    """CreateModel (the artifact repacked with `source_dir` as code/), CreateEndpointConfig,
    CreateEndpoint, then wait until InService."""
    from sagemaker.pytorch import PyTorchModel
    from sagemaker.serverless import ServerlessInferenceConfig

    s = ctx.settings
    model = PyTorchModel(model_data=uri, role=ctx.role, entry_point="inference.py", source_dir=source_dir,
                         framework_version=s.inference_framework_version, py_version=s.py_version,
                         sagemaker_session=ctx.sagemaker_session, name=name)
    if spec.serverless:
        where = {"serverless_inference_config": ServerlessInferenceConfig(memory_size_in_mb=spec.memory_mb,
                                                                          max_concurrency=spec.max_concurrency)}
    else:
        where = {"initial_instance_count": 1, "instance_type": spec.instance_type or s.inference_instance_type}
    model.deploy(endpoint_name=name, wait=True, tags=tags, **where)
