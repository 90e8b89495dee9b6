"""Tuning jobs on SageMaker: a HyperparameterTuner over the PyTorch estimator running hpo.py.

The ranges, objective and metric regexes come from `dogbreed.search_space` (the same ones
the local tuner uses). Categorical values travel as strings and come back JSON-quoted
('"64"'); `dogbreed.hyperparameters.plain_value` turns them back into numbers.
"""

from __future__ import annotations

from dogbreed.backends.base import IN_PROGRESS, TrainingJobSpec, TrialResult, TuningResult, TuningSpec
from dogbreed.backends.sagemaker import training
from dogbreed.backends.sagemaker.session import AwsContext
from dogbreed.errors import DogbreedError, JobNotFoundError
from dogbreed.hyperparameters import plain_value
from dogbreed.search_space import GRID, HYPERBAND, Categorical, Continuous, Integer, SearchSpace, hyperband_max_epochs

POLL_S = 30.0
# CreateHyperParameterTuningJob's limits (API reference: ParameterRanges, CategoricalParameterRange)
MAX_CATEGORICAL_VALUES = 30
MAX_RANGES = 30


def distinct_combinations(space: SearchSpace) -> int | None:
    """How many different trials the space allows; None when a continuous range makes it unbounded."""
    import math

    counts = []
    for r in space.ranges.values():
        if isinstance(r, Categorical):
            counts.append(len(set(r.values)))
        elif isinstance(r, Integer):
            counts.append(r.high - r.low + 1)
        else:
            return None
    return math.prod(counts)


def check(ctx: AwsContext, spec: TuningSpec) -> None:
    """Refuse, in one line, a tuning request SageMaker would refuse; nothing is uploaded before this."""
    from dogbreed.errors import ConfigError
    from dogbreed.names import TUNING_JOB_MAX_LENGTH, check_name

    training.check_s3_data(spec.data)
    check_name(spec.name, "tuning job name", TUNING_JOB_MAX_LENGTH)
    if len(spec.space.ranges) > MAX_RANGES:
        raise ConfigError(f"{len(spec.space.ranges)} ranges: SageMaker searches at most {MAX_RANGES}; fix some "
                          "with -H NAME=VALUE")
    for name, r in spec.space.ranges.items():
        if isinstance(r, Categorical) and len(r.values) > MAX_CATEGORICAL_VALUES:
            raise ConfigError(f"--range {name} has {len(r.values)} values: SageMaker takes at most "
                              f"{MAX_CATEGORICAL_VALUES} per range")
    if spec.seed is not None and spec.seed < 0:
        raise ConfigError(f"--seed {spec.seed}: SageMaker takes a seed of 0 or more")
    combinations = distinct_combinations(spec.space)
    if spec.strategy != GRID and combinations is not None and combinations < spec.max_jobs:
        raise ConfigError(f"the ranges allow only {combinations} distinct combination(s), fewer than --max-jobs "
                          f"{spec.max_jobs}, and SageMaker refuses that: pass --max-jobs {combinations}, widen a "
                          "range, or use --strategy grid")


def sdk_ranges(space: SearchSpace) -> dict:
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, IntegerParameter

    def scaling(r):
        return "Logarithmic" if r.scale == "log" else "Linear"

    out = {}
    for name, r in space.ranges.items():
        if isinstance(r, Continuous):
            out[name] = ContinuousParameter(r.low, r.high, scaling_type=scaling(r))
        elif isinstance(r, Integer):
            out[name] = IntegerParameter(r.low, r.high, scaling_type=scaling(r))
        elif isinstance(r, Categorical):
            out[name] = CategoricalParameter([str(v) for v in r.values])
    return out


def trial_spec(ctx: AwsContext, spec: TuningSpec) -> TrainingJobSpec:
    return TrainingJobSpec(entry_point="hpo.py", hyperparameters=dict(spec.static_hyperparameters), data=spec.data,
                           base_name="dbhpo", instance_type=spec.instance_type or ctx.settings.tuning_instance_type)


def tuner_arguments(spec: TuningSpec) -> dict:
    """What both SDK majors' HyperparameterTuner take alike (ranges and strategy config are SDK types)."""
    space: SearchSpace = spec.space.for_strategy(spec.strategy)
    max_jobs, max_parallel_jobs = spec.space.capped_jobs(spec.strategy, spec.max_jobs, spec.max_parallel_jobs)
    return dict(
        objective_metric_name=space.objective.metric,
        objective_type=space.objective.sagemaker_type,
        metric_definitions=space.metric_definitions,
        strategy=spec.strategy.capitalize(),  # SageMaker's names: Bayesian, Random, Grid, Hyperband
        # Grid: the SDK sends max_jobs=None as is and botocore refuses it; capped at the grid's size.
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel_jobs,
        # Hyperband stops trials itself; SageMaker refuses early stopping on top of it.
        early_stopping_type="Auto" if spec.early_stopping and spec.strategy != HYPERBAND else "Off",
        random_seed=spec.seed,
        base_tuning_job_name="dbhpo",
    )


def make_tuner(ctx: AwsContext, spec: TuningSpec, source_dir: str):
    from dogbreed.backends.sagemaker.session import import_sagemaker

    import_sagemaker()
    from sagemaker.tuner import HyperbandStrategyConfig, HyperparameterTuner, StrategyConfig

    estimator = training.make_estimator(ctx, trial_spec(ctx, spec), source_dir)
    strategy_config = None
    if spec.strategy == HYPERBAND:
        max_epochs = hyperband_max_epochs(spec.static_hyperparameters)
        strategy_config = StrategyConfig(HyperbandStrategyConfig(min_resource=1, max_resource=max_epochs))
    return HyperparameterTuner(estimator, hyperparameter_ranges=sdk_ranges(spec.space.for_strategy(spec.strategy)),
                               strategy_config=strategy_config, **tuner_arguments(spec))


def cost_line(ctx: AwsContext, spec: TuningSpec) -> str:
    from dogbreed.backends.sagemaker.costs import estimate_tuning

    s = ctx.settings
    # the trials that will run: a grid's are already capped at --max-jobs (TuningSpec.max_jobs)
    jobs, _ = spec.space.capped_jobs(spec.strategy, spec.max_jobs, spec.max_parallel_jobs)
    return estimate_tuning(trial_spec(ctx, spec).instance_type, jobs, s.max_run_s, spot=s.spot).line()


def start(ctx: AwsContext, spec: TuningSpec, source_dir: str) -> str:
    """Start the tuning job through the installed SDK major (sdk.py); its name."""
    from dogbreed.backends.sagemaker import sdk
    from dogbreed.backends.sagemaker.session import import_sagemaker

    import_sagemaker()
    return sdk.builders().start_tuning(ctx, spec, source_dir)


def _trial(summary: dict) -> TrialResult:
    objective = (summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
    started = training.seconds(summary.get("TrainingStartTime"))
    ended = training.seconds(summary.get("TrainingEndTime"))
    return TrialResult(
        name=summary["TrainingJobName"], status=summary["TrainingJobStatus"],
        hyperparameters={k: plain_value(v) for k, v in (summary.get("TunedHyperParameters") or {}).items()},
        objective=objective, duration_s=(ended - started) if started and ended else None,
        failure_reason=summary.get("FailureReason"))


def list_trials(ctx: AwsContext, name: str) -> list[TrialResult]:
    client, out, token = ctx.sagemaker_client, [], None
    while True:
        kwargs = {"HyperParameterTuningJobName": name, "MaxResults": 100, "SortBy": "CreationTime",
                  "SortOrder": "Ascending"}
        if token:
            kwargs["NextToken"] = token
        resp = client.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
        out += [_trial(s) for s in resp.get("TrainingJobSummaries", [])]
        token = resp.get("NextToken")
        if not token:
            return out


def describe(ctx: AwsContext, name: str) -> TuningResult:
    import botocore.exceptions

    try:
        d = ctx.sagemaker_client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    except botocore.exceptions.ClientError as exc:
        if "ValidationException" in str(exc) or "not found" in str(exc).lower() or "ResourceNotFound" in str(exc):
            raise JobNotFoundError(f"no SageMaker tuning job named {name!r} in {ctx.region}") from None
        raise unreadable(ctx, name, exc) from None
    config = d["HyperParameterTuningJobConfig"]
    objective = config.get("HyperParameterTuningJobObjective") or {}
    status = d["HyperParameterTuningJobStatus"]
    try:
        trials = list_trials(ctx, name)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise unreadable(ctx, name, exc) from None
    best_summary = d.get("OverallBestTrainingJob") or d.get("BestTrainingJob")
    best = None
    if best_summary:
        best = next((t for t in trials if t.name == best_summary["TrainingJobName"]), None) or _trial(best_summary)
    counters = d.get("TrainingJobStatusCounters") or {}
    return TuningResult(
        name=name, backend="sagemaker",
        status=IN_PROGRESS if status == "Stopping" else status,
        strategy=config.get("Strategy", "Bayesian").lower(),
        objective_metric=objective.get("MetricName", "valid_loss"),
        objective_goal=(objective.get("Type") or "Minimize").lower(),
        max_jobs=(config.get("ResourceLimits") or {}).get("MaxNumberOfTrainingJobs") or len(trials)
        or sum(counters.values()),
        trials=trials, best=best,
        location=f"https://{ctx.region}.console.aws.amazon.com/sagemaker/home?region={ctx.region}"
                 f"#/hyper-tuning-jobs/{name}",
        failure_reason=d.get("FailureReason"),
    )


def unreadable(ctx: AwsContext, name: str, exc: Exception) -> Exception:
    """Reading an existing tuning job failed: say that it exists and keeps running, and how to follow it."""
    from dogbreed.backends.sagemaker.session import aws_message

    return DogbreedError(
        f"reading tuning job {name} in {ctx.region} failed ({aws_message(exc)}); the job exists and keeps "
        f"running: follow it with `dogbreed --backend sagemaker tune --attach {name}` or stop it with "
        f"`dogbreed --backend sagemaker stop {name}`")
