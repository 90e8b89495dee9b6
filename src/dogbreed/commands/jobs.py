"""`dogbreed jobs`: what ran, where, with which result."""

from __future__ import annotations

import json
import time

import click

from dogbreed.commands.complete import complete_jobs


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


class JobsGroup(click.Group):
    """`jobs [NAME] [--tuning]` lists or describes (the `list` subcommand); `jobs rm` and `jobs prune` delete."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not set(args) & {"-h", "--help"}:
            args = ["list", *args]
        elif not args:
            args = ["list"]
        return super().parse_args(ctx, args)


@click.group(cls=JobsGroup)
def jobs():
    """List recent jobs, describe one, delete finished ones.

    \b
    Examples:
      dogbreed jobs                                    # recent training jobs and trials
      dogbreed jobs --tuning                           # tuning jobs
      dogbreed jobs dogbreed-train-20261129-120000-ab12 --json
      dogbreed jobs rm dbhpo-261129-120000-ab12-002
      dogbreed jobs prune --older-than 7d
    """


@jobs.command("list")
@click.argument("name", required=False, shell_complete=complete_jobs)
@click.option("--limit", default=20, show_default=True, help="How many recent jobs to list.")
@click.option("--tuning", is_flag=True, help="List tuning jobs instead of training jobs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_jobs(app, name, limit, tuning, as_json):
    """List recent jobs (or tuning jobs), or describe one (NAME, a training or tuning job)."""
    from dogbreed.workflows.operations import TUNING, find_job, list_tuning_jobs

    if tuning and not name:
        backend, found = list_tuning_jobs(app, limit)
        if as_json:
            click.echo(json.dumps([t.to_dict() for t in found], indent=2, default=str))
        elif not found:
            click.echo(f"no tuning jobs yet on the {backend.name} backend; start one with `dogbreed tune`")
        else:
            click.echo(table([tuning_row(t) for t in found], ["NAME", "BACKEND", "STRATEGY", "STATUS", "TRIALS",
                                                              "BEST"]))
        return
    backend = app.backend()
    if name:
        kind, backend, j = find_job(app, name)
        if kind == TUNING:
            show_tuning(j, as_json)
            return
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


def tuning_row(t) -> list[str]:
    best = f"{t.objective_metric}={t.best.objective:.4f} ({t.best.name})" if t.best else "-"
    return [t.name, t.backend, t.strategy, t.status, f"{len(t.finished)}/{t.max_jobs}", best]


def show_tuning(result, as_json: bool) -> None:
    from dogbreed.report.trials import table_lines

    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    click.echo(f"{result.name}  [{result.backend}] tuning {result.status}  {result.strategy}, "
               f"{len(result.finished)}/{result.max_jobs} trial(s), {result.objective_goal} {result.objective_metric}")
    if result.failure_reason:
        click.echo(f"  ({result.failure_reason})")
    for line in table_lines(result):
        click.echo("  " + line)
    if result.location:
        click.echo(f"  location: {result.location}")


def _show_plan(plan) -> None:
    from dogbreed.workflows.operations import human_size

    for r in plan:
        click.echo(f"  {r.name}  {human_size(r.size)}" + (f"  kept: {r.refused}" if r.refused else ""))


def _delete(app, backend, plan, yes: bool) -> None:
    from dogbreed.workflows.operations import human_size, remove

    going = [r for r in plan if r.refused is None]
    if not going:
        return
    total = sum(r.size for r in going)
    if not yes:
        click.confirm(f"delete {len(going)} job(s), {human_size(total)}?", abort=True, err=True)
    freed = sum(size for _, size in remove(app, backend, plan))
    click.echo(f"deleted {len(going)} job(s), freed {human_size(freed)}")


@jobs.command("rm")
@click.argument("names", nargs=-1, required=True, shell_complete=complete_jobs)
@click.option("--force", is_flag=True, help="Also remove the recorded best trial or a job whose model an endpoint "
                                            "serves.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
@click.pass_obj
def rm(app, names, force, yes):
    """Delete finished jobs and their files (local). The size each frees is shown first.

    Running jobs, the recorded best trial and the job behind a running endpoint stay
    (the last two go with --force).

    \b
    Example:
      dogbreed jobs rm dbhpo-261129-120000-ab12-001 dbhpo-261129-120000-ab12-002
    """
    from dogbreed.errors import ConfigError
    from dogbreed.workflows.operations import plan_removal

    backend, plan = plan_removal(app, list(names), force=force)
    _show_plan(plan)
    _delete(app, backend, plan, yes)
    refused = [r for r in plan if r.refused]
    if refused:
        raise ConfigError(f"{len(refused)} job(s) not removed: " + "; ".join(f"{r.name}: {r.refused}"
                                                                             for r in refused))


@jobs.command("prune")
@click.option("--older-than", default=None, metavar="AGE", help="Only jobs that ended longer ago than AGE "
                                                                "(e.g. 7d, 12h, 30m). [default: any age]")
@click.option("--keep-best", type=click.IntRange(0, 1000), default=1, show_default=True,
              help="Keep this many best trials of each tuning job.")
@click.option("--force", is_flag=True, help="Also remove the recorded best trial and a job whose model an endpoint "
                                            "serves.")
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
@click.pass_obj
def prune(app, older_than, keep_best, force, dry_run, yes):
    """Delete finished local jobs, keeping the best trials, the recorded best job and
    the job behind a running endpoint. Sizes are shown before anything is deleted.

    \b
    Examples:
      dogbreed jobs prune --older-than 7d --dry-run
      dogbreed jobs prune --keep-best 2 --yes
    """
    from dogbreed.workflows.operations import human_size, parse_age, plan_prune

    age = parse_age(older_than) if older_than else None
    backend, plan = plan_prune(app, older_than_s=age, keep_best=keep_best, force=force)
    if not plan:
        click.echo("nothing to prune")
        return
    going = [r for r in plan if r.refused is None]
    click.echo(f"{len(going)} job(s) to delete, {human_size(sum(r.size for r in going))}:")
    _show_plan(plan)
    if not dry_run:
        _delete(app, backend, plan, yes)
