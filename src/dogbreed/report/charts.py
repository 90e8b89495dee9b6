"""Figures as PNG files (matplotlib's Agg backend: no display, no network). Each function
returns the file it wrote, or None when there is nothing to plot."""

from __future__ import annotations

from pathlib import Path


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
    ax.set_ylim(-2, 105)  # headroom: a line at 100% stays visible instead of merging with the frame
    ax.set_yticks(range(0, 101, 20))
    ax.set_xlabel("seconds since the first sample")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # beside the plot, never over a line
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
    """The full matrix, only while its labels are readable (`report.classes.READABLE_CLASSES`);
    counts written in white on dark cells and in black on light ones."""
    from dogbreed.report.classes import READABLE_CLASSES, labels

    if not matrix or len(matrix) > READABLE_CLASSES:
        return None
    plt = _plt()
    n = len(matrix)
    size = 3 + n * 0.42
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    names = [name[:28] for name in labels(classes)]
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    dark = max(max(row) for row in matrix) / 2
    for i in range(n):
        for j in range(n):
            if matrix[i][j] or i == j:
                ax.text(j, i, matrix[i][j], ha="center", va="center", fontsize=8 if n <= 12 else 6,
                        color="white" if matrix[i][j] > dark else "#111")
    return _save(fig, path)
