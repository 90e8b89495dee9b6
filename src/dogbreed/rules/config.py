"""What the debugger saves and which rules judge it: plain data, used by both backends.

The SageMaker backend turns these into `CollectionConfig`s / `Rule.sagemaker(...)`; the
local backend writes them as the `debughookconfig.json` the platform would write. One
definition, so a local run saves exactly what a SageMaker run saves.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from dogbreed.errors import ConfigError

# Weights/gradients/biases every 5 train steps and every eval step, the loss every step (tiny
# local runs have few steps: the loss rules need a value at each of them). Parameters are saved
# as reductions, not full tensors: a full save of resnet18's weights and gradients is ~94 MB
# (resnet50 ~200 MB) and cost full fine-tuning +28% per epoch. VanishingGradient reads
# abs_mean; ExplodingTensor sees NaN/inf in any reduction. Full tensors: README, "What the
# debugger saves".
REDUCTIONS = "mean,std,min,max,abs_mean,l2_norm"
_PERIODIC = {"train.save_interval": "5", "eval.save_interval": "1", "reductions": REDUCTIONS}
DEFAULT_COLLECTIONS: dict[str, dict[str, str]] = {
    "weights": dict(_PERIODIC),
    "gradients": dict(_PERIODIC),
    "biases": dict(_PERIODIC),
    "losses": {"save_interval": "1"},
    "CrossEntropyLoss_output_0": {"include_regex": "CrossEntropyLoss_output_0", "save_interval": "1"},
}

# Where the rules run. Local jobs: always dogbreed's own implementations on this machine.
# SageMaker: `cloud` = SageMaker's rule jobs; `client` = the script's hook writes tensors under
# the checkpoint folder (synced to S3 while the job runs) and dogbreed evaluates the same rule
# implementations on them; `auto` = cloud where the region has rule images, else client.
DEBUGGER_MODES = ("auto", "cloud", "client", "off")

# SageMaker built-in rules we request, with the defaults of smdebug-rulesconfig (the values
# the SDK sends); the local backend evaluates its own implementation of each with them.
# LossNotDecreasing's `mode` is left empty, as SageMaker's default: EVAL, else TRAIN, else GLOBAL.
RULES: dict[str, dict[str, Any]] = {
    "LossNotDecreasing": {"config": "loss_not_decreasing", "collections": ["losses"],
                          "params": {"use_losses_collection": "True", "num_steps": "10", "diff_percent": "0.1",
                                     "increase_threshold_percent": "5"}},
    "Overfit": {"config": "overfit", "collections": ["losses"],
                "params": {"start_step": "0", "patience": "1", "ratio_threshold": "0.1"}},
    "VanishingGradient": {"config": "vanishing_gradient", "collections": ["gradients"],
                          "params": {"threshold": "0.0000001"}},
}

# The type of every rule parameter a user may set, to refuse a wrong one before a job starts.
PARAM_TYPES: dict[str, type] = {"num_steps": int, "start_step": int, "patience": int, "diff_percent": float,
                                "increase_threshold_percent": float, "ratio_threshold": float, "threshold": float,
                                "use_losses_collection": bool, "only_nan": bool, "mode": str, "tensor_regex": str,
                                "collection_names": str}
_MODES = ("", "EVAL", "TRAIN", "GLOBAL")


def check_rule_param(rule: str, key: str, value: str) -> str:
    """`value` if it suits parameter `key` of `rule`; else a ConfigError saying what would."""
    kind = PARAM_TYPES.get(key)
    where = f"--rule-param {rule}.{key}={value}"
    if kind is None:
        raise ConfigError(f"{where}: unknown parameter {key!r}; known: {', '.join(sorted(PARAM_TYPES))}")
    try:
        if kind is bool and value.lower() not in ("true", "false"):
            raise ValueError
        if kind in (int, float):
            kind(value)
    except ValueError:
        what = {int: "an integer", float: "a number", bool: "true or false"}[kind]
        raise ConfigError(f"{where}: {key} must be {what}") from None
    if key == "mode" and value.upper() not in _MODES:
        raise ConfigError(f"{where}: mode must be one of EVAL, TRAIN, GLOBAL (or empty)")
    return value


# ProfilingIntervalInMilliseconds values SageMaker accepts.
PROFILER_INTERVALS_MS = (100, 200, 500, 1000, 5000, 60000)
DEFAULT_PROFILER_INTERVAL_MS = 500

HOOK_CONFIG_FILE = "debughookconfig.json"
PROFILER_CONFIG_FILE = "profilerconfig.json"


def collections(overrides: Iterable[str] = ()) -> dict[str, dict[str, str]]:
    """The default collections with `COLLECTION.KEY=VALUE` overrides applied, e.g.
    `weights.train.save_interval=10` or `gradients.save_interval=1`; a new name adds a
    collection."""
    out = {name: dict(params) for name, params in DEFAULT_COLLECTIONS.items()}
    for item in overrides:
        lhs, sep, value = item.partition("=")
        name, dot, key = lhs.strip().partition(".")
        if not sep or not dot or not name or not key:
            raise ConfigError(f"debugger setting {item!r} is not COLLECTION.KEY=VALUE "
                              "(e.g. --debug-param weights.train.save_interval=10)")
        out.setdefault(name, {})[key] = value.strip()
    return out


def hook_config(local_path: str, colls: Mapping[str, Mapping[str, str]], s3_output_path: str = "") -> dict:
    """The debughookconfig.json document SageMaker writes into input/config/."""
    return {
        "LocalPath": local_path,
        "S3OutputPath": s3_output_path,
        "HookParameters": {},
        "CollectionConfigurations": [{"CollectionName": name, "CollectionParameters": dict(params)}
                                     for name, params in colls.items()],
    }


def profiler_config(interval_ms: int = DEFAULT_PROFILER_INTERVAL_MS) -> dict:
    """The profilerconfig.json document: system monitoring only (framework profiling is
    deprecated for PyTorch >= 2.0, so ProfilingParameters stays empty)."""
    check_interval(interval_ms)
    return {"ProfilingIntervalInMilliseconds": interval_ms, "ProfilingParameters": {}, "DisableProfiler": False}


def check_interval(interval_ms: int) -> int:
    if interval_ms not in PROFILER_INTERVALS_MS:
        raise ConfigError(f"profiler interval {interval_ms} ms is not one SageMaker accepts; use one of "
                          + ", ".join(map(str, PROFILER_INTERVALS_MS)))
    return interval_ms
