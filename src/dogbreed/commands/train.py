"""`dogbreed train`: the final training job (scripts/train_model.py) with the debugger hook,
rules and profiler, then one test evaluation; `--status` shows a job's rule statuses."""

from __future__ import annotations

import click

from dogbreed.commands.options import (collect_static, data_option, echo_line, resolve_data, sagemaker_job_options,
                                       static_hyperparameter_options)

ENTRY_POINT = "train_model.py"
PROFILER_INTERVALS = ["100", "200", "500", "1000", "5000", "60000"]


def starting_hyperparameters(app, from_best: bool, from_job: str | None) -> tuple[dict, str | None]:
    """Hyperparameters of the best tuning trial (state `best_job`) or of job `from_job`,
    restricted to the ones train_model.py accepts; and where they came from."""
    from dogbreed import hyperparameters as hp
    from dogbreed.errors import ConfigError

    if from_best and from_job:
        raise ConfigError("--from-best and --from-job both choose the starting hyperparameters; pass one of them")
    if from_best:
        best = app.workspace.require("best_job", "run `dogbreed tune` first, or pass --from-job NAME or explicit flags")
        found, source = dict(best.get("hyperparameters") or {}), f"best tuning job {best.get('name')}"
    elif from_job:
        found, source = dict(app.backend().describe_job(from_job).hyperparameters), f"job {from_job}"
    else:
        return {}, None
    known = hp.known_script_hyperparameters(ENTRY_POINT)
    return {k: v for k, v in found.items() if k in known}, source


def parse_rule_params(items) -> dict[str, dict[str, str]]:
    from dogbreed.errors import ConfigError
    from dogbreed.rules.config import RULES

    out: dict[str, dict[str, str]] = {}
    for item in items:
        lhs, sep, value = item.partition("=")
        rule, dot, key = lhs.strip().partition(".")
        if not sep or not dot or not key:
            raise ConfigError(f"rule setting {item!r} is not RULE.KEY=VALUE (e.g. --rule-param LossNotDecreasing.num_steps=20)")
        if rule not in RULES:
            raise ConfigError(f"unknown rule {rule!r} in {item!r}; rules: {', '.join(RULES)}")
        out.setdefault(rule, {})[key] = value.strip()
    return out


def instrument(app, backend, spec, *, debugger, profiler, debug_params, rule_params, interval_ms) -> dict:
    """Debugger/profiler settings into the spec (local) or estimator keyword arguments (SageMaker)."""
    options = dict(debugger=debugger, profiler=profiler, collection_overrides=debug_params, interval_ms=interval_ms)
    if backend.name == "sagemaker":
        from dogbreed.backends.sagemaker.debugger import estimator_kwargs

        return estimator_kwargs(rule_overrides=rule_params, **options)
    from dogbreed.backends.local.debugger import configure_job
    from dogbreed.rules.runner import rules_with_params

    configure_job(spec, app.workspace, rules=rules_with_params(overrides=rule_params), **options)
    return {}


def echo_rules(job) -> None:
    rules = job.extra.get("rules") or []
    if not rules:
        if job.backend == "local" and job.location:
            from pathlib import Path

            from dogbreed.rules.runner import read_results

            rules = read_results(Path(job.location) / "rule-output")
    if not rules:
        click.echo("rules: none evaluated (debugger and profiler off, or not reported yet)")
        return
    click.echo("rules:")
    for r in rules:
        details = f"  {r.get('StatusDetails')}" if r.get("StatusDetails") else ""
        click.echo(f"  {r['RuleConfigurationName']:<20} {r['RuleEvaluationStatus']}{details}")
    prof = job.extra.get("profiler")
    if prof and prof.get("steps", {}).get("count"):
        s = prof["steps"]
        click.echo(f"profiler: {s['count']} steps, median {s['median_s']:.3f} s, "
                   f"{s['data_wait_share'] or 0:.0f}% waiting for data; findings: {', '.join(prof['triggered']) or 'none'}")


@click.command()
@data_option
@click.option("--from-best", is_flag=True, help="Start from the best tuning trial's hyperparameters (from `dogbreed tune`).")
@click.option("--from-job", metavar="NAME", default=None, help="Start from the hyperparameters of job NAME (e.g. a tuning trial).")
@click.option("--lr", type=float, default=None, help="Learning rate. [default: 0.001, or the tuned value]")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None, help="Images per step. [default: 32, or the tuned value]")
@click.option("--epochs", type=click.IntRange(1, 1000), default=None, help="Epochs. [default: 5, or the tuned value]")
@static_hyperparameter_options
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Data-parallel processes (local: torchrun on this machine; SageMaker: instances).")
@click.option("--debugger/--no-debugger", default=True, show_default=True,
              help="Save tensors with the smdebug hook and evaluate LossNotDecreasing, Overfit, VanishingGradient.")
@click.option("--profiler/--no-profiler", default=True, show_default=True,
              help="Record system usage and step times; summarise them ProfilerReport-style.")
@click.option("--debug-param", "debug_params", multiple=True, metavar="COLLECTION.KEY=VALUE",
              help="Override what the hook saves, e.g. weights.train.save_interval=50 (repeatable). "
                   "[default: weights, gradients, biases every 5 train and every eval step; losses every step]")
@click.option("--rule-param", "rule_params", multiple=True, metavar="RULE.KEY=VALUE",
              help="Override a rule parameter, e.g. LossNotDecreasing.num_steps=20 (repeatable). [default: SageMaker's]")
@click.option("--profiler-interval", type=click.Choice(PROFILER_INTERVALS), default="500", show_default=True,
              help="System-monitor interval in milliseconds.")
@sagemaker_job_options
@click.option("--wait/--no-wait", default=True, show_default=True, help="Stream the log until the job ends.")
@click.option("--status", "status_of", is_flag=False, flag_value="", default=None, metavar="[JOB]",
              help="Show a training job's status and rule evaluation statuses instead of training "
                   "(default JOB: the last training job).")
@click.option("--resume", "resume_of", is_flag=False, flag_value="", default=None, metavar="[JOB]",
              help="Local: run a Failed/Stopped training job again in its folder, continuing from its last "
                   "checkpoint (default JOB: the last training job).")
@click.pass_obj
def train(app, data, from_best, from_job, lr, batch_size, epochs, arch, weights, image_size, freeze, extra_hps,
          processes, debugger, profiler, debug_params, rule_params, profiler_interval, wait, status_of, resume_of):
    """Train the model on train/, validate on valid/, evaluate once on test/, with the
    debugger hook, rules and profiler (SageMaker's, or their local equivalents).

    \b
    Examples:
      dogbreed train --from-best                       # the tuned configuration
      dogbreed train --data data/sample --arch resnet18 --weights none --image-size 64 --epochs 3
      dogbreed train --status                          # rule statuses of the last training job
      dogbreed train --resume                          # continue a killed job from its checkpoint
    """
    from dogbreed.backends.base import TrainingJobSpec

    if status_of is not None:
        show_status(app, status_of or None)
        return
    if resume_of is not None:
        name, backend_name = resume_of or None, None
        if name is None:
            last = app.workspace.require("last_training_job", "run `dogbreed train` first, or pass --resume JOB")
            name, backend_name = last["name"], last.get("backend")
        backend = app.backend(backend_name)
        click.echo(f"resuming {name} from its last checkpoint")
        finish(app, backend, backend.resume_training_job(name, log=echo_line), wait=True)
        return
    hps, source = starting_hyperparameters(app, from_best, from_job)
    hps.update(collect_static(arch, weights, image_size, freeze, extra_hps, ENTRY_POINT))
    hps.update({k: v for k, v in {"lr": lr, "batch-size": batch_size, "epochs": epochs}.items() if v is not None})
    if source:
        click.echo(f"hyperparameters from {source} (flags override): "
                   + " ".join(f"{k}={v}" for k, v in sorted(hps.items())))
    spec = TrainingJobSpec(entry_point=ENTRY_POINT, hyperparameters=hps, data=resolve_data(app, data),
                           base_name="dogbreed-train", processes=processes)
    backend = app.backend()
    extra = instrument(app, backend, spec, debugger=debugger, profiler=profiler, debug_params=debug_params,
                       rule_params=parse_rule_params(rule_params), interval_ms=int(profiler_interval))
    finish(app, backend, backend.run_training_job(spec, wait=wait, log=echo_line, **extra), wait)


def finish(app, backend, job, wait: bool) -> None:
    """Record the job (and its model, when it Completed) in the workspace; print the outcome."""
    from dogbreed.backends.base import COMPLETED
    from dogbreed.errors import JobFailedError

    app.workspace.update(last_training_job={"name": job.name, "backend": backend.name})
    if not wait:
        click.echo(f"started {job.name}; follow it with `dogbreed train --status {job.name}`")
        return
    if job.status != COMPLETED:
        hint = f"; continue it with `dogbreed train --resume {job.name}`" if backend.name == "local" else ""
        raise JobFailedError(f"training job {job.name} {job.status}: {job.failure_reason}{hint}")
    app.workspace.update(model_data={"uri": job.model_data, "job": job.name, "backend": backend.name})
    m = job.metrics
    summary = " ".join(f"{k}={m[k]:.4f}" for k in ("valid_loss", "test_loss", "test_acc", "test_top5") if k in m)
    click.echo(f"job {job.name} Completed: {summary}")
    click.echo(f"model: {job.model_data}")
    echo_rules(job)
    click.echo(f"report: dogbreed report {job.name}")


def show_status(app, name: str | None) -> None:
    from dogbreed.commands.jobs import format_duration

    backend_name = None
    if name is None:
        last = app.workspace.require("last_training_job", "run `dogbreed train` first, or pass --status JOB")
        name, backend_name = last["name"], last.get("backend")
    job = app.backend(backend_name).describe_job(name)
    click.echo(f"{job.name}  [{job.backend}] {job.status}  {format_duration(job.duration_s)}")
    if job.failure_reason:
        click.echo(f"  failure: {job.failure_reason}")
    echo_rules(job)
