"""Write a report's HTML and its PNGs into a folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dogbreed.workspace import atomic_write_text

if TYPE_CHECKING:
    from dogbreed.backends.base import TuningResult


def training_report(job_dir: Path, out_dir: Path, *, name: str, status: str = "", hyperparameters=None,
                    rules=None, verdict: dict | None = None) -> Path:
    from dogbreed.report import charts, html
    from dogbreed.report.data import load_training

    d = load_training(job_dir, name=name, status=status, hyperparameters=hyperparameters, rules=rules,
                      workers=(hyperparameters or {}).get("workers"))
    out_dir.mkdir(parents=True, exist_ok=True)
    test = d.metrics.get("test") or {}
    figs = {"losses": charts.loss_curves(d.losses, out_dir / "losses.png", charts.rule_marks(d.rules)),
            "system": charts.system_usage(d.snapshots, out_dir / "system.png"),
            "steps": charts.step_times(d.steps, out_dir / "step_times.png"),
            "confusion": charts.confusion(test.get("confusion_matrix"), test.get("classes", []),
                                          out_dir / "confusion.png")}
    path = out_dir / "report.html"
    atomic_write_text(path, html.training_page(d, figs, verdict))
    return path


def tuning_report(result: TuningResult, out_dir: Path, *, html_name: str = "report.html",
                  chart_name: str = "history.png") -> tuple[Path, Path | None]:
    """The report of a tuning job (a `TuningResult`): `html_name` and Optuna's views in `out_dir`,
    the optimization history as `chart_name`. Returns (html, history chart); the chart is None
    when no trial has an objective value yet."""
    from dogbreed.report import html, optuna_views

    out_dir.mkdir(parents=True, exist_ok=True)
    views = optuna_views.draw(optuna_views.load_study(result), out_dir, history_name=chart_name)
    path = out_dir / html_name
    atomic_write_text(path, html.tuning_page(result, views, optuna_views.dashboard_command(result)))
    return path, views[0].path
