"""Operating jobs: stop one, read its log, list tuning jobs, and delete what is no longer needed.

A name may be a training job or a tuning job; `find_job` says which, on the backend the workspace
recorded it on (else the chosen one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from dogbreed.backends.base import IN_PROGRESS, TERMINAL, Backend, JobDescription, TuningResult
from dogbreed.workflows import Session

TRAINING, TUNING = "training", "tuning"


def _recorded_backend(session: Session, name: str) -> Backend:
    for key in ("last_training_job", "last_tuning_job", "best_job"):
        recorded = session.workspace.get(key) or {}
        if recorded.get("name") == name and recorded.get("backend"):
            return session.backend(recorded["backend"])
    return session.backend()


def find_job(session: Session, name: str) -> tuple[str, Backend, JobDescription | TuningResult]:
    """(TRAINING or TUNING, its backend, its description); JobNotFoundError naming both kinds."""
    from dogbreed.errors import JobNotFoundError

    backend = _recorded_backend(session, name)
    try:
        return TRAINING, backend, backend.describe_job(name)
    except JobNotFoundError:
        pass
    try:
        return TUNING, backend, backend.attach_tuning(name, wait=False)
    except JobNotFoundError:
        raise JobNotFoundError(f"no training or tuning job named {name!r} on the {backend.name} backend; "
                               "`dogbreed jobs` and `dogbreed jobs --tuning` list them") from None


def _running_default(session: Session) -> str:
    """The last training job if it runs, else the last tuning job if it runs."""
    from dogbreed.errors import StateError

    for key in ("last_training_job", "last_tuning_job"):
        recorded = session.workspace.get(key) or {}
        if not recorded.get("name"):
            continue
        kind, _, found = find_job(session, recorded["name"])
        if found.status == IN_PROGRESS:
            return recorded["name"]
    raise StateError("no running job recorded in this workspace; pass JOB (`dogbreed jobs` lists them)")


def stop_job(session: Session, name: str | None) -> tuple[str, JobDescription | TuningResult]:
    """Stop a training or tuning job (default: the last one that runs); returns (kind, description)."""
    from dogbreed.names import check_name

    name = check_name(name, "job name") if name else _running_default(session)
    kind, backend, _ = find_job(session, name)
    if kind == TRAINING:
        return kind, backend.require("stop_job")(name)
    return kind, backend.require("stop_tuning")(name)


def job_logs(session: Session, name: str | None, follow: bool = False) -> Iterator[str]:
    """The log lines of a training job (default: the last one); with `follow`, until it ends."""
    from dogbreed.errors import ConfigError
    from dogbreed.names import check_name

    if name is None:
        last = session.workspace.require("last_training_job", "run `dogbreed train` first, or pass JOB")
        name = last["name"]
    check_name(name, "job name")
    kind, backend, found = find_job(session, name)
    if kind == TUNING:
        trials = ", ".join(t.name for t in found.trials[:3]) or "none yet"
        raise ConfigError(f"{name} is a tuning job; its trials have the logs (e.g. {trials}): "
                          f"`dogbreed jobs {name}` lists them")
    return backend.require("job_logs")(name, follow=follow)


def list_tuning_jobs(session: Session, limit: int = 20) -> tuple[Backend, list[TuningResult]]:
    backend = session.backend()
    return backend, backend.require("list_tuning_jobs")(limit)


# -- removing jobs ---------------------------------------------------------------------------------
@dataclass
class Removal:
    """A job that was asked to go: its size, and why it stays (None: it may go)."""

    name: str
    size: int = 0
    refused: str | None = None


def _protected(session: Session, backend: Backend) -> dict[str, str]:
    """Jobs that stay without --force: the recorded best trial, and the job behind a running endpoint."""
    out = {}
    best = session.workspace.get("best_job") or {}
    if best.get("name") and best.get("backend", backend.name) == backend.name:
        out[best["name"]] = "it is the recorded best tuning trial (`train --from-best` uses it)"
    for endpoint in backend.list_endpoints():
        if endpoint.status != "InService" or not endpoint.model_data:
            continue
        for job in backend.list_jobs(10_000):
            if job.location and endpoint.model_data.startswith(job.location.rstrip("/") + "/"):
                out[job.name] = f"endpoint {endpoint.name} serves its model"
            elif job.model_data and endpoint.model_data == job.model_data:
                out[job.name] = f"endpoint {endpoint.name} serves its model"
    return out


def plan_removal(session: Session, names: list[str], *, force: bool = False) -> tuple[Backend, list[Removal]]:
    """What `jobs rm NAME...` would do, before anything is deleted."""
    from dogbreed.errors import JobNotFoundError
    from dogbreed.names import check_name

    backend = session.backend()
    backend.require("remove_job")
    protected = _protected(session, backend)
    plan = []
    for name in names:
        check_name(name, "job name")
        try:
            job = backend.describe_job(name)
        except JobNotFoundError as exc:
            plan.append(Removal(name, refused=str(exc)))
            continue
        plan.append(_removal(backend, job, protected, force))
    return backend, plan


def _removal(backend: Backend, job: JobDescription, protected: dict[str, str], force: bool) -> Removal:
    size = backend.job_size(job.name)
    if job.status not in TERMINAL:
        return Removal(job.name, size, f"it is {job.status}; `dogbreed stop {job.name}` first")
    if job.name in protected and not force:
        return Removal(job.name, size, protected[job.name] + "; --force removes it anyway")
    return Removal(job.name, size)


def plan_prune(session: Session, *, older_than_s: float | None, keep_best: int,
               force: bool = False) -> tuple[Backend, list[Removal]]:
    """Finished jobs to delete: those older than `older_than_s` (None: any age), except the
    `keep_best` best trials of each tuning job and (without `force`) the protected ones."""
    backend = session.backend()
    backend.require("remove_job")
    protected = _protected(session, backend)
    keep = set()
    if backend.supports("list_tuning_jobs"):
        for result in backend.list_tuning_jobs(10_000):
            keep.update(t.name for t in result.ranked()[:keep_best] if t.objective is not None)
    now = time.time()
    plan = []
    for job in backend.list_jobs(10_000):
        if job.status not in TERMINAL or job.name in keep:
            continue
        if older_than_s is not None and now - (job.ended or job.created) < older_than_s:
            continue
        removal = _removal(backend, job, protected, force)
        if removal.refused is None or job.name in protected:
            plan.append(removal)
    return backend, plan


def remove(session: Session, backend: Backend, plan: list[Removal]) -> Iterator[tuple[Removal, int]]:
    """Delete the jobs of `plan` that may go; yields each with the bytes freed. The workspace
    forgets what pointed at a removed job (last training job, its model, the best trial)."""
    for removal in plan:
        if removal.refused is None:
            yield removal, backend.remove_job(removal.name)
            _forget(session, removal.name)


# workspace state key -> the field of it that names a job
_REFERS_TO_JOB = {"last_training_job": "name", "model_data": "job", "best_job": "name"}


def _forget(session: Session, job: str) -> None:
    state = session.workspace.state()
    gone = [key for key, name in _REFERS_TO_JOB.items() if (state.get(key) or {}).get(name) == job]
    if gone:
        session.workspace.update(**dict.fromkeys(gone))


def parse_age(text: str) -> float:
    """'7d', '12h', '30m', '90s' -> seconds."""
    from dogbreed.errors import ConfigError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    number, unit = text[:-1], text[-1:].lower()
    try:
        value = float(number)
    except ValueError:
        value = -1
    if unit not in units or value < 0:
        raise ConfigError(f"age {text!r} is not NUMBER+UNIT: e.g. 7d, 12h, 30m (units: s m h d w)")
    return value * units[unit]


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
