"""Hyperparameters as SageMaker moves them: JSON-encoded strings in the job request,
decoded by the training toolkit and passed to the script as sorted `--key value` args.

Both backends use these functions, so what runs locally is what runs on SageMaker.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from dogbreed.errors import ConfigError

RESERVED_PREFIX = "sagemaker_"
TUNING_OBJECTIVE_KEY = "_tuning_objective_metric"


def encode(hps: Mapping[str, Any]) -> dict[str, str]:
    """What framework estimators send: every value `json.dumps`ed ('adam' -> '"adam"')."""
    return {str(k): json.dumps(v) for k, v in hps.items()}


def decode(raw: Mapping[str, str]) -> dict[str, Any]:
    """The toolkit's decoding: `json.loads` each value, falling back to the raw string;
    SageMaker's own keys are dropped."""
    out = {}
    for key, value in raw.items():
        if key.startswith(RESERVED_PREFIX) or key == TUNING_OBJECTIVE_KEY:
            continue
        try:
            out[key] = json.loads(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


def plain_value(value: Any) -> Any:
    """A tuner's categorical value as a plain one: SageMaker hands them back JSON-quoted,
    sometimes twice ('"64"' -> 64); strings that are not numbers or booleans stay strings."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, str):
            return plain_value(parsed) if parsed != value else value
        return parsed if isinstance(parsed, (int, float, bool)) else value
    return value


def _arg_value(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def to_cmd_args(hps: Mapping[str, Any]) -> list[str]:
    """The toolkit's `mapping.to_cmd_args`: sorted keys, `--key str(value)` (`-k` for one letter)."""
    args: list[str] = []
    for key in sorted(hps):
        args += [f"-{key}" if len(key) == 1 else f"--{key}", _arg_value(hps[key])]
    return args


def parse_assignments(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`-H key=value` flags -> dict; values parsed as JSON when they parse (numbers, bools)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"hyperparameter {pair!r} is not key=value (e.g. -H weight-decay=0.0001)")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def known_script_hyperparameters(entry_point: str = "hpo.py") -> set[str]:
    """Every `--flag` the entry scripts accept, with dashes (for checking -H names early)."""
    from dogbreed.training.args import add_debugger_args, add_hpo_args, get_args_parser

    parser = get_args_parser(add_help=False)
    if entry_point == "train_model.py":
        add_debugger_args(parser)
    if entry_point == "hpo.py":
        add_hpo_args(parser)
    return {opt[2:] for action in parser._actions for opt in action.option_strings if opt.startswith("--")}


def check_names(hps: Mapping[str, Any], entry_point: str = "hpo.py") -> None:
    known = known_script_hyperparameters(entry_point)
    unknown = sorted(set(hps) - known)
    if unknown:
        raise ConfigError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for {entry_point}; known: {', '.join(sorted(known))}")
