"""`dogbreed tune`: hyperparameter tuning (scripts/hpo.py trials) on the chosen backend."""

from __future__ import annotations

import sys

import click

from dogbreed.commands.options import (collect_static, data_option, emit_json, json_option, sagemaker_job_options,
                                       static_hyperparameter_options)
from dogbreed.hyperparameters import plain_value
from dogbreed.search_space import BAYESIAN, STRATEGIES



class TuneProgress:
    """What `tune` shows while it waits: a line per finished trial, and while a trial builds the
    feature cache, its progress (images done / total, rate, ETA): a bar on a terminal, a line
    every `every_s` seconds otherwise."""

    def __init__(self, err: bool = False, every_s: float = 10.0):
        self.err, self.every_s = err, every_s
        self.tty = (sys.stderr if err else sys.stdout).isatty()
        self.seen: set[str] = set()
        self.bar_shown = False
        self.last_line: dict[str, float] = {}

    def echo(self, line: str, nl: bool = True) -> None:
        click.echo(line, err=self.err, nl=nl)

    def __call__(self, result) -> None:
        best = result.best
        for t in result.trials:
            if t.status in ("Completed", "Failed", "Stopped") and t.name not in self.seen:
                self.seen.add(t.name)
                value = f"{result.objective_metric}={t.objective:.4f}" if t.objective is not None else ""
                if t.failure_reason and t.status != "Completed":
                    value += f" ({t.failure_reason})"
                best_txt = f"{best.objective:.4f} ({best.name})" if best else "-"
                self._end_bar()
                self.echo(f"trial {len(self.seen)}/{result.max_jobs} {t.status}: {t.name} {value} "
                          f"| best so far {best_txt}")

    def trial_line(self, job: str, line: str) -> None:
        """Every log line of a running trial; the feature cache's progress lines are shown."""
        import time

        from dogbreed.training.features import BuildProgress

        p = BuildProgress.parse(line)
        if p is None:
            return
        eta = f"ETA {p.eta_s:.0f} s" if p.eta_s is not None else "ETA ?"
        text = f"feature cache {p.what}: {p.done}/{p.total} images, {p.rate:.1f} img/s, {eta} ({job})"
        if self.tty:
            width = 24
            filled = width * p.done // max(p.total, 1)
            self.echo(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\x1b[K", nl=False)
            self.bar_shown = True
            if p.done >= p.total:
                self._end_bar()
            return
        now = time.monotonic()
        if p.done >= p.total or p.done == 0 or now - self.last_line.get(p.what, 0.0) >= self.every_s:
            self.last_line[p.what] = now
            self.echo(text)

    def _end_bar(self) -> None:
        if self.bar_shown:
            self.echo("")
            self.bar_shown = False


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
    show = TuneProgress(err=as_json)
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
