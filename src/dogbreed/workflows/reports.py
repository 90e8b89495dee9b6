"""`dogbreed report`: which job a name means, and where its outputs are."""

from __future__ import annotations

from pathlib import Path

from dogbreed.workflows import Session


def write_report(session: Session, job: str | None, out: str | None) -> Path:
    """report.html of a training job (default: the last one) or of a tuning job; returns its path."""
    from dogbreed.errors import JobNotFoundError
    from dogbreed.report import build

    backend_name = None
    if job is None:
        last = session.workspace.require("last_training_job", "run `dogbreed train` first, or pass a JOB name")
        job, backend_name = last["name"], last.get("backend")
    backend = session.backend(backend_name)
    out_dir = Path(out) if out else session.workspace.root / "reports" / job
    try:
        desc = backend.describe_job(job)
    except JobNotFoundError:
        try:
            result = backend.attach_tuning(job, wait=False)
        except JobNotFoundError:
            raise JobNotFoundError(f"no training or tuning job named {job!r} on the {backend.name} backend; "
                                   "`dogbreed jobs` lists training jobs, `dogbreed jobs --tuning` tuning jobs"
                                   ) from None
        return build.tuning_report(result, out_dir)[0]
    from dogbreed.workflows.training import assess

    job_dir = backend.job_outputs(job, out_dir / "job")
    assess(session, backend, desc, job_dir)  # rules evaluated here for client-mode jobs, and the verdict
    return build.training_report(job_dir, out_dir, name=job, status=desc.status,
                                 hyperparameters=desc.hyperparameters, rules=desc.extra.get("rules"),
                                 verdict=desc.extra.get("verdict"))
