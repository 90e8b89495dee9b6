"""Training jobs: where the hyperparameters come from, the job spec, and what the workspace remembers."""

from __future__ import annotations

from typing import Any

from dogbreed.backends.base import COMPLETED, Instrumentation, JobDescription, LogSink, TrainingJobSpec
from dogbreed.workflows import Session
from dogbreed.workflows.data import resolve_data

ENTRY_POINT = "train_model.py"
BASE_NAME = "dogbreed-train"


def starting_hyperparameters(session: Session, from_best: bool, from_job: str | None) -> tuple[dict, str | None]:
    """Hyperparameters of the best tuning trial (state `best_job`) or of job `from_job`,
    restricted to the ones train_model.py accepts; and where they came from."""
    from dogbreed import hyperparameters as hp
    from dogbreed.errors import ConfigError

    if from_best and from_job:
        raise ConfigError("--from-best and --from-job both choose the starting hyperparameters; pass one of them")
    if from_best:
        best = session.workspace.require("best_job",
                                         "run `dogbreed tune` first, or pass --from-job NAME or explicit flags")
        found, source = dict(best.get("hyperparameters") or {}), f"best tuning job {best.get('name')}"
    elif from_job:
        found, source = dict(session.backend().describe_job(from_job).hyperparameters), f"job {from_job}"
    else:
        return {}, None
    known = hp.known_script_hyperparameters(ENTRY_POINT)
    return {k: v for k, v in found.items() if k in known}, source


def training_spec(session: Session, *, data: str | None, from_best: bool = False, from_job: str | None = None,
                  static: dict[str, Any] | None = None, flags: dict[str, Any] | None = None, processes: int = 1,
                  instrumentation: Instrumentation | None = None) -> tuple[TrainingJobSpec, str | None]:
    """The final training job: starting hyperparameters, then `static` (already checked), then the
    `flags` given (None = not given). Returns the spec and where the starting values came from."""
    hps, source = starting_hyperparameters(session, from_best, from_job)
    hps.update(static or {})
    hps.update({k: v for k, v in (flags or {}).items() if v is not None})
    spec = TrainingJobSpec(entry_point=ENTRY_POINT, hyperparameters=hps, data=resolve_data(session, data),
                           base_name=BASE_NAME, processes=processes, instrumentation=instrumentation)
    return spec, source


def run_training(session: Session, spec: TrainingJobSpec, *, wait: bool = True,
                 log: LogSink | None = None) -> JobDescription:
    """Run `spec` on the chosen backend and record it (and its model, once Completed)."""
    from dogbreed.tracking import tracker_for

    tracker_for(session.settings)  # a tracking URI that cannot be used fails here, before the job
    backend = session.backend()
    return _record(session, backend, backend.run_training_job(spec, wait=wait, log=log), wait)


def resume_training(session: Session, name: str | None, *, log: LogSink | None = None) -> JobDescription:
    """Run a Failed/Stopped job again from its last checkpoint (default: the last training job)."""
    from dogbreed.tracking import tracker_for

    tracker_for(session.settings)
    backend, name = _job_backend(session, name, "--resume JOB")
    return _record(session, backend, backend.require("resume_training_job")(name, log=log), wait=True)


def training_status(session: Session, name: str | None) -> JobDescription:
    """A training job's description with rule statuses (default: the last training job)."""
    backend, name = _job_backend(session, name, "--status JOB")
    return backend.describe_job(name)


def _job_backend(session: Session, name: str | None, flag: str):
    if name is not None:
        return session.backend(), name
    last = session.workspace.require("last_training_job", f"run `dogbreed train` first, or pass {flag}")
    return session.backend(last.get("backend")), last["name"]


def _record(session: Session, backend, job: JobDescription, wait: bool) -> JobDescription:
    from dogbreed.errors import JobFailedError

    session.workspace.update(last_training_job={"name": job.name, "backend": backend.name})
    if not wait:
        return job
    _track(session, job)
    if job.status != COMPLETED:
        hint = (f"; continue it with `dogbreed train --resume {job.name}`"
                if backend.supports("resume_training_job") else "")
        raise JobFailedError(f"training job {job.name} {job.status}: {job.failure_reason}{hint}")
    session.workspace.update(model_data={"uri": job.model_data, "job": job.name, "backend": backend.name})
    return job


def _track(session: Session, job: JobDescription) -> None:
    """Log the finished job to MLflow (when tracking is on), its report included (written where
    `dogbreed report` writes it, so `deploy` links it from the prediction page too)."""
    from dogbreed.tracking import tracker_for
    from dogbreed.workflows.reports import write_report

    tracker_for(session.settings).log_training(job, report=lambda: write_report(session, job.name, None))
