"""The trials of a tuning job as rows, best first: the text table `dogbreed tune` prints and
the trials table of the HTML report are the same rows."""

from __future__ import annotations

import math

from dogbreed.backends.base import TuningResult


def _value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _objective(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def trial_rows(result: TuningResult) -> list[list[str]]:
    """A header, then one row per trial in `result.ranked()` order (best objective first)."""
    names = sorted({k for t in result.trials for k in t.hyperparameters})
    rows = [["#", "trial", "status", result.objective_metric, "duration", *names]]
    for rank, t in enumerate(result.ranked(), 1):
        rows.append([str(rank), t.name, t.status, _objective(t.objective), _duration(t.duration_s),
                     *[_value(t.hyperparameters[n]) if n in t.hyperparameters else "-" for n in names]])
    return rows


def table_lines(result: TuningResult) -> list[str]:
    """`trial_rows` as aligned plain-text lines."""
    rows = trial_rows(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
