"""`dogbreed tune`: hyperparameter tuning (scripts/hpo.py trials) on the chosen backend."""

from __future__ import annotations

import click

from dogbreed.commands.options import (collect_static, data_option, emit_json, json_option, sagemaker_job_options,
                                       static_hyperparameter_options)
from dogbreed.hyperparameters import plain_value
from dogbreed.search_space import BAYESIAN, STRATEGIES



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
@click.option("--strategy", type=click.Choice(STRATEGIES), default=BAYESIAN, show_default=True,
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
@json_option
@click.pass_obj
def tune(app, data, max_jobs, max_parallel_jobs, strategy, arch, weights, image_size, freeze, extra_hps, ranges,
         space_file, objective, early_stopping, seed, name, wait, attach, resume, as_json):
    """Tune hyperparameters: trials of scripts/hpo.py, best one remembered for `train --from-best`.

    The objective is measured on valid/ (the test split is never used for selection).
    With a frozen backbone (--freeze head, the default) trials train only the head on
    backbone features computed once and cached.

    \b
    Example (CPU, sample set; 72 s measured on 2 vCPUs shared at load average ~21):
      dogbreed tune --data data/sample --arch resnet18 --weights none --image-size 64 \\
          --max-jobs 4 --max-parallel-jobs 2 --range lr=0.001:0.1:log
    """
    from dogbreed.errors import JobFailedError
    from dogbreed.workflows import tuning

    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    show = progress_printer(echo)
    try:
        if attach:
            result = tuning.attach_tuning(app, attach, wait=wait, progress=show)
        elif resume is not None:
            result = tuning.resume_tuning(app, resume or None, wait=wait, progress=show)
        else:
            spec = tuning.tuning_spec(
                app, data=data, static=collect_static(arch, weights, image_size, freeze, extra_hps, tuning.ENTRY_POINT),
                ranges=ranges, space_file=space_file, objective=objective, strategy=strategy, max_jobs=max_jobs,
                max_parallel_jobs=max_parallel_jobs, early_stopping=early_stopping, seed=seed, name=name)
            result = tuning.start_tuning(app, spec, wait=wait, progress=show, log=echo)
    except KeyboardInterrupt:
        click.echo("interrupted; finished trials are kept: `dogbreed tune --resume` continues", err=True)
        raise SystemExit(130) from None

    best = tuning.record_result(app, result)
    if as_json:
        emit_json({**result.to_dict(), "best_job": best})
    if result.status == "InProgress":
        echo(f"tuning job {result.name} is running; follow it with `dogbreed tune --attach {result.name}`, "
             f"stop it with `dogbreed stop {result.name}`")
        return
    _report(app, result, best, echo)
    if result.best is None:
        raise JobFailedError(f"tuning job {result.name} {result.status}: "
                             f"{result.failure_reason or 'no trial completed'}")


def _report(app, result, best, echo=click.echo) -> None:
    from dogbreed.report.build import tuning_report
    from dogbreed.report.trials import table_lines
    from dogbreed.workflows.tuning import tuning_folder

    echo(f"tuning job {result.name} {result.status}: {len(result.finished)} trial(s)")
    if result.status != "Completed" and result.failure_reason:
        echo(f"  ({result.failure_reason})")
    for line in table_lines(result):
        echo("  " + line)
    html, chart = tuning_report(result, tuning_folder(app, result.name), html_name="objective.html",
                                chart_name="objective.png")
    echo(f"plots: {chart or '(no trial value yet)'} {html}")
    if best is None:
        return
    echo(f"best: {result.best.name} {result.objective_metric}={result.best.objective:.4f} "
         + " ".join(f"{k}={plain_value(v)}" for k, v in sorted(result.best.hyperparameters.items())))
    echo("next: dogbreed train --from-best")
