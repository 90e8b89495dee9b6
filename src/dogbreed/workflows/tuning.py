"""Tuning jobs: the spec (search space, strategy, caps), starting or following one, and the best trial."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dogbreed.search_space import BAYESIAN
from dogbreed.backends.base import IN_PROGRESS, LogSink, TuningProgress, TuningResult, TuningSpec
from dogbreed.workflows import Session
from dogbreed.workflows.data import resolve_data

ENTRY_POINT = "hpo.py"


def default_name() -> str:
    import secrets

    return f"dbhpo-{time.strftime('%y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def tuning_spec(session: Session, *, data: str | None, static: dict[str, Any], ranges=(), space_file: str | None = None,
                objective: str | None = None, strategy: str = BAYESIAN, max_jobs: int = 4,
                max_parallel_jobs: int = 2, early_stopping: bool = False, seed: int | None = None,
                name: str | None = None) -> TuningSpec:
    """Everything checked here, before any job starts; `static` is already checked against hpo.py."""
    from dogbreed import hyperparameters as hp
    from dogbreed.names import TUNING_JOB_MAX_LENGTH, check_name
    from dogbreed.search_space import build_space, check_strategy

    if name is not None:  # SageMaker's tuning-job rule on both backends, so names travel
        check_name(name, "tuning job name", TUNING_JOB_MAX_LENGTH)
    space = build_space(range_args=ranges, space_file=space_file, static=static, objective=objective,
                        known=hp.known_script_hyperparameters(ENTRY_POINT), strategy=strategy)
    check_strategy(strategy, space, max_jobs, max_parallel_jobs)
    max_jobs, max_parallel_jobs = space.capped_jobs(strategy, max_jobs, max_parallel_jobs)
    return TuningSpec(data=resolve_data(session, data), static_hyperparameters=static, space=space, strategy=strategy,
                      max_jobs=max_jobs, max_parallel_jobs=max_parallel_jobs, early_stopping=early_stopping,
                      name=name or default_name(), seed=seed)


def start_tuning(session: Session, spec: TuningSpec, *, wait: bool = True, progress: TuningProgress | None = None,
                 log: LogSink = print) -> TuningResult:
    """Check `spec` on the chosen backend (its notes go to `log`), record it as the last tuning job, start it."""
    from dogbreed.tracking import tracker_for

    tracker = tracker_for(session.settings)  # a tracking URI that cannot be used fails here, before any trial
    backend = session.backend()
    for note in backend.check_tuning(spec):
        log(note)
    log(f"tuning {spec.name} on {backend.name}: {spec.max_jobs} trial(s), {spec.max_parallel_jobs} at a time, "
        f"{spec.strategy}; {spec.space.objective.goal} {spec.space.objective.metric} over "
        + ", ".join(f"{n}={r.spec()}" for n, r in spec.space.ranges.items()))
    session.workspace.update(last_tuning_job={"name": spec.name, "backend": backend.name})
    tracker.start_tuning(spec.name, {"strategy": spec.strategy, "max_jobs": spec.max_jobs,
                                     "max_parallel_jobs": spec.max_parallel_jobs, "early_stopping": spec.early_stopping,
                                     **{n: r.spec() for n, r in spec.space.ranges.items()},
                                     **spec.static_hyperparameters})
    return backend.start_tuning(spec, wait=wait, progress=_tracked(session, backend, progress))


def _tracked(session: Session, backend, progress: TuningProgress | None) -> TuningProgress | None:
    """`progress`, and each finished trial logged to MLflow as a nested run (when tracking is on)."""
    from dogbreed.tracking import tracker_for

    tracker = tracker_for(session.settings)
    if not tracker.enabled:
        return progress

    def both(result: TuningResult) -> None:
        tracker.log_tuning(result, backend.describe_job)
        if progress:
            progress(result)

    both.trial_line = getattr(progress, "trial_line", None)  # the local tuner's live trial lines
    return both


def attach_tuning(session: Session, name: str, *, wait: bool = True,
                  progress: TuningProgress | None = None) -> TuningResult:
    backend = session.backend()
    return backend.attach_tuning(name, wait=wait, progress=_tracked(session, backend, progress))


def resume_tuning(session: Session, name: str | None, *, wait: bool = True,
                  progress: TuningProgress | None = None) -> TuningResult:
    """Continue an interrupted tuning job (default: the last one) without redoing finished trials."""
    from dogbreed.errors import StateError

    last = session.workspace.get("last_tuning_job") or {}
    target = name or last.get("name")
    if not target:
        raise StateError("no tuning job recorded; pass --resume NAME")
    backend = session.backend(last.get("backend") if target == last.get("name") else None)
    return backend.require("resume_tuning", target)(target, wait=wait, progress=_tracked(session, backend, progress))


def tuning_folder(session: Session, name: str) -> Path:
    return session.workspace.root / "tuning" / name


def record_result(session: Session, result: TuningResult) -> dict | None:
    """Remember the tuning job and, when it has one, its best trial for `train --from-best`."""
    from dogbreed.hyperparameters import plain_value
    from dogbreed.report.build import tuning_report
    from dogbreed.tracking import tracker_for

    backend = session.backend()
    session.workspace.update(last_tuning_job={"name": result.name, "backend": backend.name})
    tracker_for(session.settings).log_tuning(result, backend.describe_job, final=True,
                                             report=lambda: tuning_report(result, _report_folder(session,
                                                                                                  result.name))[0])
    if result.status == IN_PROGRESS or result.best is None:
        return None
    best_job = backend.describe_job(result.best.name)
    best = {"name": result.best.name, "backend": backend.name, "tuning_job": result.name,
            "hyperparameters": {k: plain_value(v) for k, v in best_job.hyperparameters.items()},
            "objective": {"metric": result.objective_metric, "value": result.best.objective}}
    session.workspace.update(best_job=best)
    return best


def _report_folder(session: Session, name: str) -> Path:
    return session.workspace.root / "reports" / name  # where `dogbreed report NAME` writes it
