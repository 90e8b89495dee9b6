"""Figures as PNG files (matplotlib's Agg backend: no display, no network). Each function
returns the file it wrote, or None when there is nothing to plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dogbreed.backends.base import TuningResult

STATUS_COLORS = {"Completed": "tab:blue", "Stopped": "tab:orange"}  # any other status (Failed): red


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path


def rule_marks(rules: list[dict]) -> list[tuple[str, int, str]]:
    """(curve "train"/"eval", mode step, rule) for each rule that fired where it says (`FiredAt`)."""
    out = []
    for r in rules or []:
        at = r.get("FiredAt")
        if r.get("RuleEvaluationStatus") == "IssuesFound" and at and str(at[0]).upper() in ("TRAIN", "EVAL"):
            out.append((str(at[0]).lower(), int(at[1]), r.get("RuleConfigurationName", "")))
    return out


def loss_curves(losses: dict, path: Path, marks: list[tuple[str, int, str]] = ()) -> Path | None:
    """TRAIN and EVAL loss per step; a dashed red line where each rule fired, labelled with its name."""
    if not any(losses.values()):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, label in zip(axes, ("train", "eval")):
        pts = losses.get(label) or []
        if pts:
            ax.plot([s for s, _ in pts], [v for _, v in pts], marker="." if len(pts) < 60 else None)
        for i, (curve, step, rule) in enumerate(m for m in marks if m[0] == label):
            ax.axvline(step, color="#b00", linestyle="--", linewidth=1)
            ax.annotate(f"{rule} fired", xy=(step, 1 - 0.08 * (i + 1)), xycoords=("data", "axes fraction"),
                        color="#b00", fontsize=8, ha="left")
        ax.set_title(f"{label.upper()} loss (CrossEntropyLoss_output_0)")
        ax.set_xlabel(f"{label} step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def system_usage(snapshots: list[dict], path: Path) -> Path | None:
    if not snapshots:
        return None
    plt = _plt()
    t0 = snapshots[0]["t"]
    x = [s["t"] - t0 for s in snapshots]
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(x, [s["cpu"] for s in snapshots], label="CPU % (mean of cores)")
    if any(s["memory"] is not None for s in snapshots):
        ax.plot(x, [s["memory"] or 0 for s in snapshots], label="memory %")
    if any(s["gpu"] is not None for s in snapshots):
        ax.plot(x, [s["gpu"] or 0 for s in snapshots], label="GPU %")
        ax.plot(x, [s["gpu_mem"] or 0 for s in snapshots], label="GPU memory %")
    ax.plot(x, [s["iowait"] for s in snapshots], label="I/O wait %")
    ax.set_ylim(0, 100)
    ax.set_xlabel("seconds since the first sample")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def step_times(steps: list[dict], path: Path) -> Path | None:
    if not steps:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].hist([s["step_s"] * 1000 for s in steps], bins=min(40, max(5, len(steps) // 2)))
    axes[0].set_title("step time")
    axes[0].set_xlabel("ms")
    axes[1].plot([s["step_s"] * 1000 for s in steps], label="compute")
    axes[1].plot([s["data_wait_s"] * 1000 for s in steps], label="waiting for data")
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("ms")
    axes[1].legend(fontsize=8)
    return _save(fig, path)


def confusion(matrix: list[list[int]], classes: list[str], path: Path) -> Path | None:
    if not matrix:
        return None
    plt = _plt()
    n = len(matrix)
    size = min(14, 3 + n * 0.12) if n > 20 else 3 + n * 0.5
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        labels = [c.split(".", 1)[-1][:18] for c in classes]
        ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels, fontsize=7)
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, matrix[i][j], ha="center", va="center", fontsize=8)
    return _save(fig, path)


def tuning_objective(result: TuningResult, path: Path) -> Path | None:
    """The objective of each trial (a `TuningResult`), against trial order and against each
    numeric hyperparameter; the best trial circled."""
    import math

    points = [(i, t) for i, t in enumerate(result.trials, 1)
              if t.objective is not None and not math.isnan(t.objective)]
    if not points:
        return None
    plt = _plt()
    keys = sorted({k for _, t in points for k, v in t.hyperparameters.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
    fig, axes = plt.subplots(1, 1 + len(keys), figsize=(3.6 * (1 + len(keys)), 3.4), squeeze=False)
    axes = axes[0]
    colors = [STATUS_COLORS.get(t.status, "tab:red") for _, t in points]
    axes[0].scatter([i for i, _ in points], [t.objective for _, t in points], c=colors)
    best = next(((i, t) for i, t in points if result.best is not None and t.name == result.best.name), None)
    if best is not None:
        axes[0].scatter([best[0]], [best[1].objective], s=160, facecolors="none", edgecolors="black", label="best")
        axes[0].legend(loc="best")
    axes[0].set_title(f"objective per trial ({result.strategy})")
    axes[0].set_xlabel("trial")
    axes[0].set_ylabel(result.objective_metric)
    for ax, k in zip(axes[1:], keys):
        with_k = [(t.hyperparameters[k], t.objective, c) for (_, t), c in zip(points, colors) if k in t.hyperparameters]
        ax.scatter([x for x, _, _ in with_k], [y for _, y, _ in with_k], c=[c for _, _, c in with_k])
        if k == "lr":
            ax.set_xscale("log")
        ax.set_title(f"objective vs {k}")
        ax.set_xlabel(k)
    return _save(fig, path)
