"""`dogbreed tune`: hyperparameter tuning (scripts/hpo.py trials) on the chosen backend."""

from __future__ import annotations

import re
import time

import click

from dogbreed.commands.options import (collect_static, data_option, resolve_data, sagemaker_job_options,
                                       static_hyperparameter_options)
from dogbreed.hyperparameters import plain_value
from dogbreed.search_space import STRATEGIES as STRATEGY_CHOICES

# SageMaker's HyperParameterTuningJobName rule, applied on both backends so names travel.
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")


def default_name() -> str:
    import secrets

    return f"dbhpo-{time.strftime('%y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def progress_printer(echo=click.echo):
    seen: set[str] = set()

    def show(result):
        best = result.best
        for t in result.trials:
            if t.status in ("Completed", "Failed", "Stopped") and t.name not in seen:
                seen.add(t.name)
                value = f"{result.objective_metric}={t.objective:.4f}" if t.objective is not None else ""
                if t.failure_reason and t.status != "Completed":
                    value += f" ({t.failure_reason})"
                best_txt = f"{best.objective:.4f} ({best.name})" if best else "-"
                echo(f"trial {len(seen)}/{result.max_jobs} {t.status}: {t.name} {value} | best so far {best_txt}")

    return show


@click.command()
@data_option
@click.option("--max-jobs", type=click.IntRange(1, 500), default=4, show_default=True,
              help="Trials in all (grid: at most the grid's size).")
@click.option("--max-parallel-jobs", type=click.IntRange(1, 100), default=2, show_default=True,
              help="Trials running at once (local: processes sharing this machine's cores).")
@click.option("--strategy", type=click.Choice(STRATEGY_CHOICES), default="bayesian", show_default=True,
              help="bayesian (TPE locally) | random | grid (continuous ranges at 3 points) | hyperband.")
@static_hyperparameter_options
@click.option("--range", "ranges", multiple=True, metavar="NAME=SPEC",
              help="Override or add a range (repeatable): lr=0.0001:0.1:log, dropout=0.1:0.5, "
                   "hidden-units=64:512, batch-size=32,64,128. [default: lr=0.001:0.1:log, "
                   "batch-size=32,64,128, epochs=1,2]")
@click.option("--space", "space_file", default=None, metavar="FILE",
              help="Ranges and objective from a JSON/TOML file ({\"ranges\": {...}, \"objective\": {...}}); "
                   "--range flags override it.")
@click.option("--objective", default=None, type=click.Choice(["valid_loss", "valid_acc"]),
              help="Metric to optimise (loss minimised, accuracy maximised). [default: valid_loss]")
@click.option("--early-stopping/--no-early-stopping", default=False, show_default=True,
              help="Stop trials whose per-epoch objective trails the median (SageMaker: Auto).")
@click.option("--seed", type=int, default=None, help="Seed of the search strategy. [default: random]")
@click.option("--name", default=None, help="Tuning job name (<= 32 chars). [default: dbhpo-<time>-<hex>]")
@sagemaker_job_options(kind="tuning")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Follow the trials until the job ends (no-wait: run in the background).")
@click.option("--attach", default=None, metavar="NAME", help="Follow an existing tuning job instead of starting one.")
@click.option("--resume", default=None, is_flag=False, flag_value="", metavar="[NAME]",
              help="Local: continue an interrupted tuning job (default: the last one) without redoing "
                   "finished trials.")
@click.pass_obj
def tune(app, data, max_jobs, max_parallel_jobs, strategy, arch, weights, image_size, freeze, extra_hps, ranges,
         space_file, objective, early_stopping, seed, name, wait, attach, resume):
    """Tune hyperparameters: trials of scripts/hpo.py, best one remembered for `train --from-best`.

    The objective is measured on valid/ (the test split is never used for selection).
    With a frozen backbone (--freeze head, the default) trials train only the head on
    backbone features computed once and cached.

    \b
    Example (CPU, sample set, about a minute):
      dogbreed tune --data data/sample --arch resnet18 --weights none --image-size 64 \\
          --max-jobs 4 --max-parallel-jobs 2 --range lr=0.001:0.1:log
    """
    from dogbreed.errors import JobFailedError, StateError

    backend = app.backend()
    show = progress_printer()
    try:
        if attach:
            result = backend.attach_tuning(attach, wait=wait, progress=show)
        elif resume is not None:
            last = app.workspace.get("last_tuning_job") or {}
            target = resume or last.get("name")
            if not target:
                raise StateError("no tuning job recorded; pass --resume NAME")
            result = backend.resume_tuning(target, wait=wait, progress=show)
        else:
            spec = _build_spec(app, data, max_jobs, max_parallel_jobs, strategy, arch, weights, image_size, freeze,
                               extra_hps, ranges, space_file, objective, early_stopping, seed, name)
            for note in backend.check_tuning(spec):
                click.echo(note)
            click.echo(f"tuning {spec.name} on {backend.name}: {spec.max_jobs} trial(s), {spec.max_parallel_jobs} at "
                       f"a time, {strategy}; {spec.space.objective.goal} {spec.space.objective.metric} over "
                       + ", ".join(f"{n}={r.spec()}" for n, r in spec.space.ranges.items()))
            app.workspace.update(last_tuning_job={"name": spec.name, "backend": backend.name})
            result = backend.start_tuning(spec, wait=wait, progress=show)
    except KeyboardInterrupt:
        click.echo("interrupted; finished trials are kept: `dogbreed tune --resume` continues", err=True)
        raise SystemExit(130) from None

    app.workspace.update(last_tuning_job={"name": result.name, "backend": backend.name})
    if result.status == "InProgress":
        click.echo(f"tuning job {result.name} is running; follow it with `dogbreed tune --attach {result.name}`")
        return
    _report(app, backend, result)
    if result.best is None:
        raise JobFailedError(f"tuning job {result.name} {result.status}: {result.failure_reason or 'no trial completed'}")


def _build_spec(app, data, max_jobs, max_parallel_jobs, strategy, arch, weights, image_size, freeze, extra_hps,
                ranges, space_file, objective, early_stopping, seed, name):
    """Everything checked here, before any job starts."""
    from dogbreed import hyperparameters as hp
    from dogbreed.backends.base import TuningSpec
    from dogbreed.errors import ConfigError
    from dogbreed.search_space import build_space, check_strategy

    if name is not None and not NAME_RE.match(name):
        raise ConfigError(f"tuning job name {name!r} must be 1-32 letters, digits or dashes, starting with a "
                          "letter or digit")
    static = collect_static(arch, weights, image_size, freeze, extra_hps, "hpo.py")
    space = build_space(range_args=ranges, space_file=space_file, static=static, objective=objective,
                        known=hp.known_script_hyperparameters("hpo.py"), strategy=strategy)
    check_strategy(strategy, space, max_jobs, max_parallel_jobs)
    if strategy == "grid":  # no more trials than grid points
        max_jobs = min(max_jobs, space.for_grid().grid_size())
        max_parallel_jobs = min(max_parallel_jobs, max_jobs)
    return TuningSpec(data=resolve_data(app, data), static_hyperparameters=static, space=space, strategy=strategy,
                      max_jobs=max_jobs, max_parallel_jobs=max_parallel_jobs, early_stopping=early_stopping,
                      name=name or default_name(), seed=seed)


def _report(app, backend, result) -> None:
    from dogbreed.report.build import tuning_report
    from dogbreed.report.trials import table_lines

    click.echo(f"tuning job {result.name} {result.status}: {len(result.finished)} trial(s)")
    if result.status != "Completed" and result.failure_reason:
        click.echo(f"  ({result.failure_reason})")
    for line in table_lines(result):
        click.echo("  " + line)
    html, chart = tuning_report(result, app.workspace.root / "tuning" / result.name, html_name="objective.html",
                                chart_name="objective.png")
    click.echo("plots: " + " ".join(str(path) for path in (chart, html) if path))
    if result.best is None:
        return
    best_job = backend.describe_job(result.best.name)
    hps = {k: plain_value(v) for k, v in best_job.hyperparameters.items()}
    app.workspace.update(best_job={
        "name": result.best.name, "backend": backend.name, "tuning_job": result.name, "hyperparameters": hps,
        "objective": {"metric": result.objective_metric, "value": result.best.objective}})
    click.echo(f"best: {result.best.name} {result.objective_metric}={result.best.objective:.4f} "
               + " ".join(f"{k}={plain_value(v)}" for k, v in sorted(result.best.hyperparameters.items())))
    click.echo("next: dogbreed train --from-best")
