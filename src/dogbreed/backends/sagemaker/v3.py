"""SageMaker Python SDK v3: `sagemaker.train.ModelTrainer`, `sagemaker.train.tuner.HyperparameterTuner`
and the `sagemaker.core` resources and shapes, sending the requests v2.py sends.

Where v3 lacks what v2 had, the `sagemaker.core` resource layer fills the gap:
- ModelTrainer has no debugger or profiler settings. Its request (`_create_training_job_args`, what
  its own `train()` passes on) gets DebugHookConfig, DebugRuleConfigurations, ProfilerConfig and
  ProfilerRuleConfigurations built by `sagemaker.core.debugger` (v2's debugger classes, moved) and
  goes to `sagemaker.core.resources.TrainingJob.create`, as `train()` would send it.
- ModelTrainer takes no job name; the one dogbreed chose (its checkpoint folder is named after it)
  replaces the generated one in that request.
- `import sagemaker.serve` (ModelBuilder) fails without a region in the environment (it creates a
  client while importing) and takes ~6 s; endpoints use `sagemaker.core`'s repack and Session calls,
  the ones v2's PyTorchModel.deploy made, so CreateModel and CreateEndpointConfig stay identical.

Values travel as v2 sends them (each hyperparameter JSON-encoded, categorical values JSON-quoted),
so a trial sees the same hyperparameters.json under either major.
"""

from __future__ import annotations

import json

from dogbreed.backends.base import EndpointSpec, TrainingJobSpec, TuningSpec
from dogbreed.backends.sagemaker.session import AwsContext

DEBUGGER_MODULE = "sagemaker.core.debugger"
SESSION_MODULE = "sagemaker.core.helper.session_helper"  # get_execution_role, NOTEBOOK_METADATA_FILE
REQUIREMENTS_FILE = "requirements.txt"  # written by source.stage_source_dir; v2's toolkit installs it by itself


def session(boto_session, bucket: str | None):
    from sagemaker.core.helper.session_helper import Session

    return Session(boto_session=boto_session, default_bucket=bucket)


def name_from_base(base: str) -> str:
    from sagemaker.core.common_utils import name_from_base as unique

    return unique(base)


def _encoded(hyperparameters: dict) -> dict:
    """Each value JSON-encoded, as v2's framework estimators send them (v3 sends strings raw)."""
    return {str(k): json.dumps(v) for k, v in hyperparameters.items()}


def training_image(ctx: AwsContext, instance_type: str) -> str:
    from sagemaker.core import image_uris

    s = ctx.settings
    return image_uris.retrieve("pytorch", ctx.region, version=s.framework_version, py_version=s.py_version,
                               instance_type=instance_type, image_scope="training")


def model_trainer(ctx: AwsContext, spec: TrainingJobSpec, source_dir: str, extra: dict | None = None):
    """The ModelTrainer for `spec`: the same image, code, hyperparameters, metrics, spot, checkpoints,
    network isolation and distribution as training.make_estimator builds on v2 (`extra`: its kwargs,
    debugger.instrument's, whose checkpoint settings, in client mode, count here)."""
    from pathlib import Path

    from sagemaker.core.shapes import MetricDefinition, StoppingCondition
    from sagemaker.train import ModelTrainer
    from sagemaker.core.training.configs import CheckpointConfig, Compute, Networking, OutputDataConfig, SourceCode
    from sagemaker.train.distributed import Torchrun

    from dogbreed.backends.sagemaker import training
    from dogbreed.training.metrics import METRIC_DEFINITIONS

    s = ctx.settings
    instance_type = spec.instance_type or s.instance_type
    spot = {**training.spot_options(ctx, spec), **(extra or {})}
    # v2's toolkit installs requirements.txt by itself when there is one; ModelTrainer must be told
    requirements = REQUIREMENTS_FILE if (Path(source_dir) / REQUIREMENTS_FILE).is_file() else None
    checkpoint = (CheckpointConfig(s3_uri=spot["checkpoint_s3_uri"], local_path=spot["checkpoint_local_path"])
                  if "checkpoint_s3_uri" in spot else None)
    trainer = ModelTrainer(
        sagemaker_session=ctx.sagemaker_session,
        role=ctx.role,
        base_job_name=spec.base_name,
        input_s3_key_prefix=f"{s.prefix.strip('/')}/code/{spec.base_name}",
        training_image=training_image(ctx, instance_type),
        source_code=SourceCode(source_dir=source_dir, entry_script=spec.entry_point, requirements=requirements),
        compute=Compute(instance_type=instance_type, instance_count=spec.processes,
                        enable_managed_spot_training=bool(spot.get("use_spot_instances"))),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=spec.max_run_s or s.max_run_s,
                                             max_wait_time_in_seconds=spot.get("max_wait")),
        output_data_config=OutputDataConfig(s3_output_path=ctx.s3_uri("jobs")),
        checkpoint_config=checkpoint,
        networking=Networking(enable_network_isolation=True) if s.network_isolation else None,
        environment=dict(spec.env),
        hyperparameters=_encoded(spec.hyperparameters),
        distributed=Torchrun() if spec.processes > 1 else None,
    )
    return trainer.with_metric_definitions([MetricDefinition(name=m["Name"], regex=m["Regex"])
                                            for m in METRIC_DEFINITIONS])


def debugger_request(ctx: AwsContext, spec: TrainingJobSpec, kwargs: dict, output_path: str, job_name: str) -> dict:
    """DebugHookConfig, DebugRuleConfigurations, ProfilerConfig and ProfilerRuleConfigurations (PascalCase,
    as the API takes them), assembled from `kwargs` (debugger.instrument's estimator kwargs) the way v2's
    estimator does it. The client mode's kwargs have no hook and no rules: ProfilerConfig disabled only."""
    from sagemaker.core.debugger import ProfilerConfig, Rule
    from sagemaker.core.debugger.debugger import get_rule_container_image_uri

    rules = kwargs.get("rules") or []
    for rule in rules:
        if rule.image_uri == "DEFAULT_RULE_EVALUATOR_IMAGE":
            rule.image_uri = get_rule_container_image_uri(rule.name, ctx.region)
            rule.instance_type = rule.volume_size_in_gb = None
    debug_rules = [r for r in rules if isinstance(r, Rule)]
    profiler_rules = [r for r in rules if not isinstance(r, Rule)]
    out: dict = {}
    hook = kwargs.get("debugger_hook_config")
    # v2 turns the hook off for a checkpointed multi-process PyTorch job (smdebug cannot handle it)
    if hook and not (spec.processes > 1 and kwargs.get("checkpoint_s3_uri")):
        hook.s3_output_path = hook.s3_output_path or output_path
        collections = set(hook.collection_configs or [])
        for rule in debug_rules:
            collections.update(rule.collection_configs)
        hook.collection_configs = collections
        out["DebugHookConfig"] = hook._to_request_dict()
    if debug_rules:
        for rule in debug_rules:
            rule.prepare_actions(job_name)
        out["DebugRuleConfigurations"] = [r.to_debugger_rule_config_dict() for r in debug_rules]
    profiler = ProfilerConfig(disable_profiler=True) if kwargs.get("disable_profiler") else kwargs["profiler_config"]
    if not profiler.disable_profiler and not profiler.s3_output_path:
        profiler.s3_output_path = output_path
    out["ProfilerConfig"] = profiler._to_request_dict()
    if profiler_rules:
        out["ProfilerRuleConfigurations"] = [r.to_profiler_rule_config_dict() for r in profiler_rules]
    return out


def _shapes(request: dict) -> dict:
    """API-style (PascalCase) members as sagemaker.core shapes, keyed as TrainingJob.create takes them."""
    from sagemaker.core import shapes
    from sagemaker.core.utils.code_injection.codec import transform
    from sagemaker.core.utils.utils import pascal_to_snake

    one = {"DebugHookConfig": "DebugHookConfig", "ProfilerConfig": "ProfilerConfig"}
    many = {"DebugRuleConfigurations": "DebugRuleConfiguration",
            "ProfilerRuleConfigurations": "ProfilerRuleConfiguration"}
    out = {}
    for key, value in request.items():
        if key in one:
            out[pascal_to_snake(key)] = getattr(shapes, one[key])(**transform(value, one[key]))
        else:
            shape = getattr(shapes, many[key])
            out[pascal_to_snake(key)] = [shape(**transform(v, many[key])) for v in value]
    return out


def start_training(ctx: AwsContext, spec: TrainingJobSpec, source_dir: str, extra: dict):
    from sagemaker.core.resources import TrainingJob
    from sagemaker.core.training.configs import InputData

    from dogbreed.backends.sagemaker import training

    trainer = model_trainer(ctx, spec, source_dir, extra)
    try:
        request = trainer._create_training_job_args(
            input_data_config=[InputData(channel_name="training", data_source=spec.data)])
        request["training_job_name"] = spec.job_name
        # v2's PyTorch estimator turns on the metrics time series (console charts); ModelTrainer has no knob
        request["algorithm_specification"].enable_sage_maker_metrics_time_series = True
        if not request.get("enable_managed_spot_training"):  # v2 leaves the member out when spot is off
            request["enable_managed_spot_training"] = None
        output_path = trainer.output_data_config.s3_output_path
        options = {**training.spot_options(ctx, spec), **extra}
        request.update(_shapes(debugger_request(ctx, spec, options, output_path, spec.job_name)))
        job = TrainingJob.create(session=ctx.boto_session, region=ctx.region, **request)
    finally:
        if trainer._temp_code_dir is not None:
            trainer._temp_code_dir.cleanup()
    return job.training_job_name, lambda logs: job.wait(logs=logs)


def _ranges(space) -> dict:
    """The search space as v3 parameter ranges; categorical values JSON-quoted as v2 sends them."""
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    from dogbreed.search_space import Categorical, Continuous, Integer

    out = {}
    for name, r in space.ranges.items():
        scaling = "Logarithmic" if getattr(r, "scale", None) == "log" else "Linear"
        if isinstance(r, Continuous):
            out[name] = ContinuousParameter(r.low, r.high, scaling_type=scaling)
        elif isinstance(r, Integer):
            out[name] = IntegerParameter(r.low, r.high, scaling_type=scaling)
        elif isinstance(r, Categorical):
            out[name] = CategoricalParameter([json.dumps(str(v)) for v in r.values])
    return out


def _isolated_tuner_class():
    from sagemaker.train.tuner import HyperparameterTuner

    class IsolatedTuner(HyperparameterTuner):
        """v3's tuner copies VPC settings from the ModelTrainer's networking but not network isolation
        (sagemaker 3.27); v2's sends EnableNetworkIsolation in the training job definition."""

        def _build_training_job_definition(self, inputs):
            definition = super()._build_training_job_definition(inputs)
            definition.enable_network_isolation = True
            return definition

    return IsolatedTuner


def start_tuning(ctx: AwsContext, spec: TuningSpec, source_dir: str) -> str:
    from sagemaker.core.shapes import HyperbandStrategyConfig, HyperParameterTuningJobStrategyConfig
    from sagemaker.core.training.configs import InputData
    from sagemaker.train.tuner import HyperparameterTuner

    from dogbreed.backends.sagemaker import tuning
    from dogbreed.search_space import HYPERBAND, hyperband_max_epochs

    trainer = model_trainer(ctx, tuning.trial_spec(ctx, spec), source_dir)
    strategy_config = None
    if spec.strategy == HYPERBAND:
        strategy_config = HyperParameterTuningJobStrategyConfig(hyperband_strategy_config=HyperbandStrategyConfig(
            min_resource=1, max_resource=hyperband_max_epochs(spec.static_hyperparameters)))
    tuner = (_isolated_tuner_class() if ctx.settings.network_isolation else HyperparameterTuner)(
        trainer, hyperparameter_ranges=_ranges(spec.space.for_strategy(spec.strategy)),
        strategy_config=strategy_config, **tuning.tuner_arguments(spec))
    tuner.tune([InputData(channel_name="training", data_source=spec.data)], job_name=spec.name, wait=False)
    return tuner.latest_tuning_job.hyper_parameter_tuning_job_name


def deploy_model(ctx: AwsContext, spec: EndpointSpec, source_dir: str, uri: str, name: str, tags,
                 count: int = 1, env: dict | None = None) -> None:
    """The requests v2's PyTorchModel.deploy sends, through the same Session calls, now in
    `sagemaker.core`: the artifact repacked with `source_dir` as code/, CreateModel, CreateEndpointConfig,
    CreateEndpoint, then wait until InService. (The EndpointConfig resource is not used: sagemaker-core
    2.27 sends a serverless MemorySizeInMB as `MemorySizeInMb`, which botocore refuses.)"""
    from sagemaker.core import image_uris
    from sagemaker.core.common_utils import repack_model
    from sagemaker.core.helper.session_helper import container_def, production_variant
    from sagemaker.core.serverless_inference_config import ServerlessInferenceConfig

    s, session = ctx.settings, ctx.sagemaker_session
    instance = None if spec.serverless else spec.instance_type or s.inference_instance_type
    serverless = (ServerlessInferenceConfig(memory_size_in_mb=spec.memory_mb, max_concurrency=spec.max_concurrency)
                  if spec.serverless else None)
    image = image_uris.retrieve("pytorch", ctx.region, version=s.inference_framework_version,
                                py_version=s.py_version, instance_type=instance, image_scope="inference",
                                serverless_inference_config=serverless)
    repacked = f"s3://{ctx.bucket}/{name}/model.tar.gz"  # where v2's repack puts it
    repack_model(inference_script="inference.py", source_directory=source_dir, dependencies=[],
                 model_uri=uri, repacked_model_uri=repacked, sagemaker_session=session)
    env = {**(env or {}), "SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
           "SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": ctx.region}  # the SDK's keys win, as in v2
    session.create_model(name, ctx.role, container_def(image, repacked, env), tags=tags)
    variant = production_variant(name, instance, None if spec.serverless else count,
                                 serverless_inference_config=serverless._to_request_dict() if serverless else None)
    session.endpoint_from_production_variants(name, [variant], tags=tags, wait=True)
