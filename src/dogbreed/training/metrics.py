"""One source for metric log lines and the regexes both tuners read them with.

Scripts print `emit("valid_loss", 0.53)` -> ``#metric valid_loss=0.530000;``. SageMaker's
tuner and the local job runner both parse logs with `METRIC_DEFINITIONS`; the last value
seen for a metric is its final value (as on SageMaker).
"""

from __future__ import annotations

import math
import re
from typing import Iterable

PREFIX = "#metric"
METRIC_NAMES = (
    "train_loss",
    "train_acc",
    "valid_loss",
    "valid_acc",
    "test_loss",
    "test_acc",
    "test_top5",
    "epoch",
    "images_per_sec",
)
_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"

METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": name, "Regex": rf"{PREFIX} {name}=" + _NUMBER + ";"} for name in METRIC_NAMES
]
_COMPILED = [(d["Name"], re.compile(d["Regex"])) for d in METRIC_DEFINITIONS]


def format_metric(name: str, value: float) -> str:
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; add it to dogbreed.training.metrics.METRIC_NAMES")
    return f"{PREFIX} {name}={float(value):.6f};"


def emit(name: str, value: float) -> None:
    print(format_metric(name, value), flush=True)


def parse_line(line: str) -> dict[str, float]:
    """Metrics on one log line: per definition `re.search`, float(group 1), unparsable skipped."""
    found = {}
    for name, regex in _COMPILED:
        m = regex.search(line)
        if m:
            try:
                found[name] = float(m.group(1))
            except ValueError:
                continue
    return found


def parse_lines(lines: Iterable[str]) -> dict[str, list[float]]:
    """Every datapoint of every metric, in log order."""
    series: dict[str, list[float]] = {}
    for line in lines:
        for name, value in parse_line(line).items():
            series.setdefault(name, []).append(value)
    return series


def final_metrics(series: dict[str, list[float]]) -> dict[str, float]:
    return {name: values[-1] for name, values in series.items() if values and not math.isnan(values[-1])}
