"""The one search space both tuners read: ranges as plain data, the objective, its metric regexes.

    lr=0.0001:0.1:log        continuous, log scale (LOW:HIGH[:linear|log])
    dropout=0.1:0.5          continuous, linear
    hidden-units=64:512      integer (both bounds written as integers)
    batch-size=32,64,128     categorical (comma-separated values)

The objective is a validation metric (default: minimise `valid_loss`); the test split is
never used for selection, so `test_*` metrics are refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

from dogbreed.errors import ConfigError
from dogbreed.training.metrics import METRIC_DEFINITIONS, METRIC_NAMES

SCALES = ("linear", "log")
BAYESIAN, RANDOM, GRID, HYPERBAND = "bayesian", "random", "grid", "hyperband"
STRATEGIES = (BAYESIAN, RANDOM, GRID, HYPERBAND)
GRID_POINTS = 3  # a continuous range under --strategy grid is tried at this many points


@dataclass(frozen=True)
class Continuous:
    low: float
    high: float
    scale: str = "linear"

    def spec(self) -> str:
        return f"{self.low:g}:{self.high:g}:{self.scale}"

    def grid(self, points: int = GRID_POINTS) -> list:
        if self.scale == "log":
            a, b = math.log10(self.low), math.log10(self.high)
            return [float(f"{10 ** (a + (b - a) * i / (points - 1)):.6g}") for i in range(points)]
        return [float(f"{self.low + (self.high - self.low) * i / (points - 1):.6g}") for i in range(points)]


@dataclass(frozen=True)
class Integer:
    low: int
    high: int
    scale: str = "linear"

    def spec(self) -> str:
        return f"{self.low}:{self.high}:{self.scale}"

    def grid(self, points: int = GRID_POINTS) -> list:
        values = Continuous(self.low, self.high, self.scale).grid(points)
        return sorted({int(round(v)) for v in values})


@dataclass(frozen=True)
class Categorical:
    values: tuple

    def spec(self) -> str:
        return ",".join(str(v) for v in self.values)

    def grid(self, points: int = GRID_POINTS) -> list:
        return list(self.values)


Range = Union[Continuous, Integer, Categorical]

# The seed project's ranges.
DEFAULT_RANGES: dict[str, Range] = {
    "lr": Continuous(0.001, 0.1, "log"),
    "batch-size": Categorical((32, 64, 128)),
    "epochs": Categorical((1, 2)),
}


@dataclass(frozen=True)
class Objective:
    metric: str = "valid_loss"
    goal: str = "minimize"  # "minimize" | "maximize"

    @property
    def sagemaker_type(self) -> str:
        return "Minimize" if self.goal == "minimize" else "Maximize"


@dataclass(frozen=True)
class SearchSpace:
    ranges: Mapping[str, Range] = field(default_factory=lambda: dict(DEFAULT_RANGES))
    objective: Objective = Objective()

    @property
    def metric_definitions(self) -> list[dict[str, str]]:
        return METRIC_DEFINITIONS

    def for_grid(self, points: int = GRID_POINTS) -> "SearchSpace":
        """Every range made categorical, as SageMaker's Grid strategy requires."""
        return replace(self, ranges={n: Categorical(tuple(r.grid(points))) for n, r in self.ranges.items()})

    def grid_size(self) -> int:
        return math.prod(len(r.grid()) for r in self.ranges.values())

    def for_strategy(self, strategy: str) -> "SearchSpace":
        """The space a tuner searches: grid points under the grid strategy, the ranges otherwise."""
        return self.for_grid() if strategy == GRID else self

    def capped_jobs(self, strategy: str, max_jobs: int, max_parallel_jobs: int) -> tuple[int, int]:
        """(max_jobs, max_parallel_jobs) as run: a grid has no more trials than points, and no
        more trials run at once than there are in all."""
        if strategy == GRID:
            max_jobs = min(max_jobs, self.grid_size())
        return max_jobs, min(max_parallel_jobs, max_jobs)

    def to_dict(self) -> dict:
        return {"ranges": {n: to_plain(r) for n, r in self.ranges.items()},
                "objective": {"metric": self.objective.metric, "goal": self.objective.goal}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SearchSpace":
        ranges = {n: from_plain(n, v) for n, v in (d.get("ranges") or {}).items()}
        obj = d.get("objective") or {}
        return cls(ranges, make_objective(obj.get("metric", "valid_loss"), obj.get("goal")))


def to_plain(r: Range) -> Any:
    """Plain JSON form: a list for categorical, the LOW:HIGH:SCALE string otherwise."""
    return list(r.values) if isinstance(r, Categorical) else r.spec()


def from_plain(name: str, value: Any) -> Range:
    if isinstance(value, (list, tuple)):
        return _categorical(name, value)
    return parse_range_value(name, str(value))


def _number(name: str, text: str) -> float | int:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"range {name}: {text!r} is not a number (write e.g. --range lr=0.0001:0.1:log)")
    return value


def _categorical(name: str, values: Iterable[Any]) -> Categorical:
    out = []
    for v in values:
        if isinstance(v, str):
            v = v.strip()
            if not v:
                continue
            try:
                v = json.loads(v)
            except ValueError:
                pass
        if v not in out:
            out.append(v)
    if not out:
        raise ConfigError(f"range {name} is empty; give at least one value, e.g. --range {name}=32,64")
    return Categorical(tuple(out))


def parse_range_value(name: str, text: str) -> Range:
    text = text.strip()
    if not text:
        raise ConfigError(f"range {name} is empty; write e.g. --range lr=0.0001:0.1:log or --range batch-size=32,64")
    if ":" not in text:
        return _categorical(name, text.split(","))
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(f"range {name}={text} is not LOW:HIGH[:linear|log]")
    scale = parts[2].strip().lower() if len(parts) == 3 else "linear"
    if scale not in SCALES:
        raise ConfigError(f"range {name}: scale {scale!r} is not one of {', '.join(SCALES)}")
    low, high = _number(name, parts[0]), _number(name, parts[1])
    if not low < high:
        raise ConfigError(f"range {name}={text} is empty: LOW must be below HIGH")
    if scale == "log" and low <= 0:
        raise ConfigError(f"range {name}={text}: a log-scale range needs LOW > 0")
    if isinstance(low, int) and isinstance(high, int):
        return Integer(low, high, scale)
    return Continuous(float(low), float(high), scale)


def parse_range(assignment: str) -> tuple[str, Range]:
    """'lr=0.0001:0.1:log' -> ('lr', Continuous(...))."""
    name, sep, value = assignment.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(f"range {assignment!r} is not NAME=SPEC (e.g. --range lr=0.0001:0.1:log "
                          "or --range batch-size=32,64,128)")
    return name, parse_range_value(name, value)


def make_objective(metric: str = "valid_loss", goal: str | None = None) -> Objective:
    if metric not in METRIC_NAMES:
        raise ConfigError(f"unknown objective metric {metric!r}; choose one of "
                          f"{', '.join(m for m in METRIC_NAMES if m.startswith('valid_'))}")
    if metric.startswith("test_"):
        raise ConfigError(f"objective {metric} would select on the test split; use valid_loss or valid_acc")
    goal = goal or ("maximize" if metric.endswith("_acc") or metric.endswith("_top5") else "minimize")
    if goal not in ("minimize", "maximize"):
        raise ConfigError(f"objective goal must be minimize or maximize, not {goal!r}")
    return Objective(metric, goal)


def load_space_file(path: str | Path) -> dict:
    """A JSON or TOML file: {"ranges": {"lr": "0.0001:0.1:log", "batch-size": [32, 64]},
    "objective": {"metric": "valid_loss", "goal": "minimize"}}."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read search-space file {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"search-space file {path} does not parse: {exc}") from None


def build_space(*, range_args: Iterable[str] = (), space_file: str | None = None, static: Mapping[str, Any] = {},
                objective: str | None = None, known: set[str] | None = None,
                strategy: str = BAYESIAN) -> SearchSpace:
    """Defaults, then the file, then --range flags. A hyperparameter set statically (-H) drops
    its default range; one given both a range and a static value is an error. Hyperband
    allots epochs itself, so it drops the default epochs range."""
    ranges: dict[str, Range] = dict(DEFAULT_RANGES)
    metric, goal = "valid_loss", None
    explicit: set[str] = set()
    if space_file:
        doc = load_space_file(space_file)
        for name, value in (doc.get("ranges") or {}).items():
            ranges[name] = from_plain(name, value)
            explicit.add(name)
        metric = (doc.get("objective") or {}).get("metric", metric)
        goal = (doc.get("objective") or {}).get("goal")
    for arg in range_args:
        name, r = parse_range(arg)
        ranges[name] = r
        explicit.add(name)
    both = sorted(explicit & set(static))
    if both:
        raise ConfigError(f"{', '.join(both)} given both a range and a fixed value; drop one of them")
    for name in static:
        ranges.pop(name, None)
    if strategy == HYPERBAND and "epochs" not in explicit:
        ranges.pop("epochs", None)
    if known is not None:
        unknown = sorted(set(ranges) - known)
        if unknown:
            raise ConfigError(f"unknown hyperparameter(s) in ranges: {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
    if not ranges:
        raise ConfigError("nothing to tune: every range was fixed; add one with --range NAME=SPEC")
    return SearchSpace(ranges, make_objective(objective or metric, goal if not objective else None))


def check_strategy(strategy: str, space: SearchSpace, max_jobs: int, max_parallel_jobs: int) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if max_jobs < 1:
        raise ConfigError("--max-jobs must be at least 1")
    if max_parallel_jobs > max_jobs:
        raise ConfigError(f"--max-parallel-jobs {max_parallel_jobs} is more than --max-jobs {max_jobs}; "
                          "lower it or raise --max-jobs")
    if strategy == HYPERBAND and "epochs" in space.ranges:
        raise ConfigError("hyperband decides how many epochs each trial gets: drop the epochs range "
                          "(fix it with -H epochs=N, the most any trial may run)")


def hyperband_max_epochs(static_hyperparameters: Mapping[str, Any]) -> int:
    """Hyperband's largest budget per trial: the fixed `epochs`, else the entry scripts' --epochs default."""
    from dogbreed.training.args import get_args_parser

    default = get_args_parser(add_help=False).get_default("epochs")
    return max(int(static_hyperparameters.get("epochs", default)), 1)
