"""`dogbreed report [JOB]`: a self-contained HTML report of a training or tuning job."""

from __future__ import annotations

import click


@click.command()
@click.argument("job", required=False)
@click.option("--out", default=None, metavar="DIR",
              help="Folder for report.html and its PNGs. [default: <workspace>/reports/JOB]")
@click.pass_obj
def report(app, job, out):
    """Write an HTML report of JOB and print its path.

    A training job gets loss curves from the debugger tensors, rule results, system usage,
    step times, test metrics and the confusion matrix; a tuning job gets its trials table
    and plots. SageMaker jobs' outputs are downloaded from S3 first.

    \b
    Examples:
      dogbreed report                                   # the last training job
      dogbreed report dogbreed-tune-20261129-120000-ab12   # a tuning job
    """
    from pathlib import Path

    from dogbreed.errors import JobNotFoundError
    from dogbreed.report import build

    backend_name = None
    if job is None:
        last = app.workspace.require("last_training_job", "run `dogbreed train` first, or pass a JOB name")
        job, backend_name = last["name"], last.get("backend")
    backend = app.backend(backend_name)
    out_dir = Path(out) if out else app.workspace.root / "reports" / job
    try:
        desc = backend.describe_job(job)
    except JobNotFoundError:
        desc = None
    if desc is None:
        path = _tuning(app, backend, job, out_dir)
    else:
        if backend.name == "sagemaker":
            from dogbreed.backends.sagemaker.debugger import download_outputs

            job_dir = download_outputs(backend.ctx, job, out_dir / "job")
        else:
            job_dir = Path(desc.location)
        path = build.training_report(job_dir, out_dir, name=job, status=desc.status,
                                     hyperparameters=desc.hyperparameters, rules=desc.extra.get("rules"))
    click.echo(str(path))


def _tuning(app, backend, name, out_dir):
    """The report of the backend's tuning job `name`."""
    from dogbreed.errors import JobNotFoundError
    from dogbreed.report import build

    try:
        result = backend.attach_tuning(name, wait=False)
    except JobNotFoundError:
        raise JobNotFoundError(f"no training or tuning job named {name!r} on the {backend.name} backend; "
                               "`dogbreed jobs` lists them") from None
    html, _ = build.tuning_report(result, out_dir)
    return html
