"""Read a job folder (local, or a SageMaker job's outputs downloaded into the same layout)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from dogbreed.job_folder import METRICS_FILE as METRICS
from dogbreed.job_folder import PROFILER_DIR as PROFILER
from dogbreed.job_folder import RULE_OUTPUT_DIR as RULE_OUTPUT
from dogbreed.job_folder import TENSORS_DIR as TENSORS


@dataclass
class TrainingReportData:
    name: str
    status: str = ""
    hyperparameters: dict = field(default_factory=dict)
    losses: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # "train"/"eval" -> (mode step, value)
    rules: list[dict] = field(default_factory=list)
    profiler: dict | None = None  # rules.profiler.summarize(...)
    snapshots: list[dict] = field(default_factory=list)  # per-timestamp system usage
    steps: list[dict] = field(default_factory=list)  # step timings
    metrics: dict = field(default_factory=dict)  # output/data/metrics.json
    notes: list[str] = field(default_factory=list)  # what could not be read, and why


def read_losses(trial_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Loss values per mode from the debugger trial (the `losses` collection)."""
    os.environ.setdefault("SMDEBUG_LOG_LEVEL", "warning")
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    trial = create_trial(str(trial_dir))
    out: dict[str, list[tuple[int, float]]] = {}
    names = trial.tensor_names(collection="losses")
    for label, mode in (("train", ModeKeys.TRAIN), ("eval", ModeKeys.EVAL)):
        for name in names[:1]:
            t = trial.tensor(name)
            out[label] = [(s, float(t.value(s, mode=mode))) for s in t.steps(mode=mode)]
    return out


def load_training(job_dir: Path, *, name: str, status: str = "", hyperparameters: dict | None = None,
                  rules: list | None = None, workers: int | None = None) -> TrainingReportData:
    from dogbreed.rules import profiler as P
    from dogbreed.rules.runner import read_results

    d = TrainingReportData(name=name, status=status, hyperparameters=dict(hyperparameters or {}))
    tensors = job_dir / TENSORS
    if (tensors / "collections").is_dir():
        try:
            d.losses = read_losses(tensors)
        except Exception as exc:  # a damaged trial must not cost the rest of the report
            d.notes.append(f"could not read the debugger tensors in {tensors}: {exc}")
    else:
        d.notes.append("no debugger tensors (the job ran with --no-debugger, or smdebug was unavailable)")
    d.rules = rules or read_results(job_dir / RULE_OUTPUT)
    prof = job_dir / PROFILER
    if prof.is_dir():
        d.profiler = P.summarize(prof, workers=workers, cpus=os.cpu_count())
        d.snapshots = P.snapshots(P.read_system_metrics(prof))
        d.steps = P.read_steps(prof)
    else:
        d.notes.append("no profiler data (the job ran with --no-profiler)")
    metrics = job_dir / METRICS
    if metrics.is_file():
        d.metrics = json.loads(metrics.read_text())
    else:
        d.notes.append("no output/data/metrics.json (the job did not finish)")
    return d
