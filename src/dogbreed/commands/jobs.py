"""`dogbreed jobs`: what ran, where, with which result."""

from __future__ import annotations

import json
import time

import click


def format_duration(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def job_row(j) -> list[str]:
    key = "test_acc" if "test_acc" in j.metrics else "valid_loss" if "valid_loss" in j.metrics else None
    metric = f"{key}={j.metrics[key]:.4f}" if key else "-"
    return [j.name, j.backend, j.entry_point, j.status, time.strftime("%Y-%m-%d %H:%M", time.localtime(j.created)),
            format_duration(j.duration_s), metric]


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), *(fmt.format(*map(str, r)) for r in rows)])


@click.command()
@click.argument("name", required=False)
@click.option("--limit", default=20, show_default=True, help="How many recent jobs to list.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def jobs(app, name, limit, as_json):
    """List recent jobs, or describe one (NAME).

    \b
    Examples:
      dogbreed jobs
      dogbreed jobs train-20261129-120000-ab12 --json
    """
    from dogbreed.names import check_name

    backend = app.backend()
    if name:
        j = backend.describe_job(check_name(name, "job name"))
        if as_json:
            click.echo(json.dumps(j.to_dict(), indent=2, default=str))
            return
        click.echo(f"{j.name}  [{j.backend}] {j.status}  {format_duration(j.duration_s)}")
        click.echo(f"  script: {j.entry_point}  data: {j.data}")
        click.echo(f"  hyperparameters: {json.dumps(j.hyperparameters, sort_keys=True)}")
        if j.metrics:
            click.echo("  metrics: " + " ".join(f"{k}={v:.4f}" for k, v in sorted(j.metrics.items())))
        if j.model_data:
            click.echo(f"  model: {j.model_data}")
        if j.failure_reason:
            click.echo(f"  failure: {j.failure_reason}")
        if j.location:
            click.echo(f"  location: {j.location}")
        return
    found = backend.list_jobs(limit)
    if as_json:
        click.echo(json.dumps([j.to_dict() for j in found], indent=2, default=str))
        return
    if not found:
        click.echo(f"no jobs yet on the {backend.name} backend; start one with `dogbreed train` or `dogbreed tune`")
        return
    click.echo(table([job_row(j) for j in found], ["NAME", "BACKEND", "SCRIPT", "STATUS", "CREATED", "TIME", "METRIC"]))
    for j in found:
        if j.status == "Broken":
            click.echo(f"{j.name}: {j.failure_reason}", err=True)
