"""What a finished tuning job looks like to a person: the trial table (best first) and a
PNG + self-contained HTML plot of the objective against trial order and learning rate."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

from dogbreed.backends.base import TuningResult


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def table_rows(result: TuningResult) -> list[list[str]]:
    """Header + one row per trial, best objective first."""
    names = sorted({k for t in result.trials for k in t.hyperparameters})
    rows = [["#", "trial", "status", result.objective_metric, "duration", *names]]
    for rank, t in enumerate(result.ranked(), 1):
        objective = "-" if t.objective is None or math.isnan(t.objective) else f"{t.objective:.4f}"
        rows.append([str(rank), t.name, t.status, objective, _duration(t.duration_s),
                     *[_fmt(t.hyperparameters[n]) if n in t.hyperparameters else "-" for n in names]])
    return rows


def format_table(result: TuningResult) -> list[str]:
    rows = table_rows(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _points(result: TuningResult):
    return [(i, t) for i, t in enumerate(result.trials, 1)
            if t.objective is not None and not math.isnan(t.objective)]


def render_png(result: TuningResult) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = _points(result)
    with_lr = [(t.hyperparameters["lr"], t) for _, t in points if isinstance(t.hyperparameters.get("lr"), (int, float))]
    fig, axes = plt.subplots(1, 2 if with_lr else 1, figsize=(10 if with_lr else 5.5, 3.8), squeeze=False)
    ax = axes[0][0]
    colors = {"Completed": "tab:blue", "Stopped": "tab:orange"}
    ax.scatter([i for i, _ in points], [t.objective for _, t in points],
               c=[colors.get(t.status, "tab:red") for _, t in points])
    if result.best is not None:
        best_i = next(i for i, t in points if t.name == result.best.name)
        ax.scatter([best_i], [result.best.objective], s=160, facecolors="none", edgecolors="black", label="best")
        ax.legend(loc="best")
    ax.set_xlabel("trial")
    ax.set_ylabel(result.objective_metric)
    ax.set_title(f"{result.name} ({result.strategy})")
    if with_lr:
        ax2 = axes[0][1]
        ax2.scatter([lr for lr, _ in with_lr], [t.objective for _, t in with_lr],
                    c=[colors.get(t.status, "tab:red") for _, t in with_lr])
        ax2.set_xscale("log")
        ax2.set_xlabel("lr")
        ax2.set_ylabel(result.objective_metric)
        ax2.set_title("objective vs learning rate")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def render_html(result: TuningResult, png: bytes) -> str:
    rows = table_rows(result)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    best = (f"<p>Best: <b>{html.escape(result.best.name)}</b> {html.escape(result.objective_metric)} = "
            f"{result.best.objective:.4f}</p>" if result.best else "<p>No trial completed.</p>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Tuning {html.escape(result.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}</style></head>
<body><h1>Tuning job {html.escape(result.name)}</h1>
<p>{html.escape(result.backend)} backend, strategy {html.escape(result.strategy)}, status {html.escape(result.status)},
objective: {html.escape(result.objective_goal)} {html.escape(result.objective_metric)}</p>
{best}
<img alt="objective vs trial and learning rate" src="data:image/png;base64,{base64.b64encode(png).decode()}">
<table><tr>{head}</tr>{body}</table></body></html>
"""


def write_report(result: TuningResult, folder: str | Path) -> tuple[Path, Path]:
    """objective.png and objective.html in `folder` (the tuning job's folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png = render_png(result)
    png_path, html_path = folder / "objective.png", folder / "objective.html"
    png_path.write_bytes(png)
    html_path.write_text(render_html(result, png))
    return png_path, html_path
