"""`dogbreed train`: the final training job (scripts/train_model.py) with the debugger hook,
rules and profiler, then one test evaluation; `--status` shows a job's rule statuses."""

from __future__ import annotations

import click

from dogbreed.commands.options import (collect_static, data_option, echo_line, emit_json, json_option,
                                       sagemaker_job_options, static_hyperparameter_options)
from dogbreed.rules.config import DEBUGGER_MODES, DEFAULT_PROFILER_INTERVAL_MS, PROFILER_INTERVALS_MS

PROFILER_INTERVALS = [str(ms) for ms in PROFILER_INTERVALS_MS]


def parse_rule_params(items) -> dict[str, dict[str, str]]:
    from dogbreed.errors import ConfigError
    from dogbreed.rules.config import RULES, check_rule_param

    out: dict[str, dict[str, str]] = {}
    for item in items:
        lhs, sep, value = item.partition("=")
        rule, dot, key = lhs.strip().partition(".")
        if not sep or not dot or not key:
            raise ConfigError(f"rule setting {item!r} is not RULE.KEY=VALUE "
                              "(e.g. --rule-param LossNotDecreasing.num_steps=20)")
        if rule not in RULES:
            raise ConfigError(f"unknown rule {rule!r} in {item!r}; rules: {', '.join(RULES)}")
        out.setdefault(rule, {})[key] = check_rule_param(rule, key.strip(), value.strip())
    return out


def echo_verdict(job, echo=click.echo) -> None:
    v = job.extra.get("verdict")
    if v:
        color = {"ok": "green", "caution": "yellow", "problem": "red"}.get(v.get("level"))
        echo(click.style(f"verdict: {v['headline']}", fg=color, bold=v.get("level") == "problem"))
        for line in v.get("context") or []:
            echo(f"  - {line}")


def echo_rules(job, echo=click.echo) -> None:
    echo_verdict(job, echo)
    rules = job.extra.get("rules") or []
    if not rules:
        echo("rules: none evaluated (debugger and profiler off, or not reported yet)")
        return
    by = job.extra.get("rules_by")
    echo(f"rules (SageMaker parity{', evaluated by ' + by if by else ''}):")
    for r in rules:
        details = f"  {r.get('StatusDetails')}" if r.get("StatusDetails") else ""
        echo(f"  {r['RuleConfigurationName']:<20} {r['RuleEvaluationStatus']}{details}")
    prof = job.extra.get("profiler")
    if prof and prof.get("steps", {}).get("count"):
        s = prof["steps"]
        echo(f"profiler: {s['count']} steps, median {s['median_s']:.3f} s, {s['data_wait_share'] or 0:.0f}% "
             f"waiting for data; findings: {', '.join(prof['triggered']) or 'none'}")


@click.command()
@data_option
@click.option("--from-best", is_flag=True,
              help="Start from the best tuning trial's hyperparameters (from `dogbreed tune`).")
@click.option("--from-job", metavar="NAME", default=None,
              help="Start from the hyperparameters of job NAME (e.g. a tuning trial).")
@click.option("--lr", type=float, default=None, help="Learning rate. [default: 0.001, or the tuned value]")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None,
              help="Images per step. [default: 32, or the tuned value]")
@click.option("--epochs", type=click.IntRange(1, 1000), default=None, help="Epochs. [default: 5, or the tuned value]")
@static_hyperparameter_options
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Data-parallel processes (local: torchrun on this machine; SageMaker: instances).")
@click.option("--debugger", "debugger_mode", type=click.Choice(DEBUGGER_MODES), default="auto", show_default=True,
              is_flag=False, flag_value="auto",
              help="Save tensors with the smdebug hook and evaluate LossNotDecreasing, Overfit, VanishingGradient: "
                   "cloud = SageMaker's rule jobs; client = tensors synced to S3, rules evaluated by dogbreed; "
                   "auto = cloud where the region has Debugger rule images, else client; off = no hook. "
                   "Local jobs are always evaluated by dogbreed on this machine.")
@click.option("--no-debugger", is_flag=True, help="Same as --debugger off.")
@click.option("--profiler/--no-profiler", default=True, show_default=True,
              help="Record system usage and step times; summarise them ProfilerReport-style.")
@click.option("--debug-param", "debug_params", multiple=True, metavar="COLLECTION.KEY=VALUE",
              help="Override what the hook saves, e.g. weights.train.save_interval=50 (repeatable). "
                   "[default: weights, gradients, biases every 5 train and every eval step; losses every step]")
@click.option("--rule-param", "rule_params", multiple=True, metavar="RULE.KEY=VALUE",
              help="Override a rule parameter, e.g. LossNotDecreasing.num_steps=20 (repeatable). "
                   "[default: SageMaker's]")
@click.option("--profiler-interval", type=click.Choice(PROFILER_INTERVALS), default=str(DEFAULT_PROFILER_INTERVAL_MS),
              show_default=True,
              help="System-monitor interval in milliseconds.")
@sagemaker_job_options
@click.option("--wait/--no-wait", default=True, show_default=True, help="Stream the log until the job ends.")
@click.option("--status", "status_of", is_flag=False, flag_value="", default=None, metavar="[JOB]",
              help="Show a training job's status and rule evaluation statuses instead of training "
                   "(default JOB: the last training job).")
@click.option("--resume", "resume_of", is_flag=False, flag_value="", default=None, metavar="[JOB]",
              help="Local: run a Failed/Stopped training job again in its folder, continuing from its last "
                   "checkpoint (default JOB: the last training job).")
@json_option
@click.pass_obj
def train(app, data, from_best, from_job, lr, batch_size, epochs, arch, weights, image_size, freeze, extra_hps,
          processes, debugger_mode, no_debugger, profiler, debug_params, rule_params, profiler_interval, wait,
          status_of, resume_of, as_json):
    """Train the model on train/, validate on valid/, evaluate once on test/, with the
    debugger hook, rules and profiler (SageMaker's, or their local equivalents).

    \b
    Examples:
      dogbreed train --from-best                       # the tuned configuration
      dogbreed train --data data/sample --arch resnet18 --weights none --image-size 64 --epochs 3
      dogbreed train --status                          # rule statuses of the last training job
      dogbreed train --resume                          # continue a killed job from its checkpoint
    """
    from dogbreed.backends.base import Instrumentation
    from dogbreed.rules.config import collections
    from dogbreed.workflows import training

    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    log = (lambda line: echo_line(line, err=True)) if as_json else echo_line
    if status_of is not None:
        show_status(training.training_status(app, status_of or None), echo, as_json)
        return
    if resume_of is not None:
        echo(f"resuming {resume_of or 'the last training job'} from its last checkpoint")
        show_outcome(training.resume_training(app, resume_of or None, log=log), True, echo, as_json)
        return
    debugger = not no_debugger and debugger_mode != "off"
    collections(debug_params)  # a malformed --debug-param fails here, before any check of the job
    instrumentation = Instrumentation(debugger=debugger, debugger_mode=debugger_mode if debugger else "off",
                                      profiler=profiler, collection_overrides=tuple(debug_params),
                                      rule_params=parse_rule_params(rule_params),
                                      interval_ms=int(profiler_interval))
    spec, source = training.training_spec(
        app, data=data, from_best=from_best, from_job=from_job,
        static=collect_static(arch, weights, image_size, freeze, extra_hps, training.ENTRY_POINT),
        flags={"lr": lr, "batch-size": batch_size, "epochs": epochs}, processes=processes,
        instrumentation=instrumentation)
    if source:
        echo(f"hyperparameters from {source} (flags override): "
             + " ".join(f"{k}={v}" for k, v in sorted(spec.hyperparameters.items())))
    show_outcome(training.run_training(app, spec, wait=wait, log=log), wait, echo, as_json)


def show_outcome(job, wait: bool, echo=click.echo, as_json: bool = False) -> None:
    if as_json:
        emit_json(job.to_dict())
    if not wait:
        echo(f"started {job.name}; follow it with `dogbreed logs {job.name} --follow`, stop it with "
             f"`dogbreed stop {job.name}`")
        return
    m = job.metrics
    summary = " ".join(f"{k}={m[k]:.4f}" for k in ("valid_loss", "test_loss", "test_acc", "test_top5") if k in m)
    echo(f"job {job.name} Completed: {summary}")
    echo(f"model: {job.model_data}")
    echo_rules(job, echo)
    echo(f"report: dogbreed report {job.name}")


def show_status(job, echo=click.echo, as_json: bool = False) -> None:
    from dogbreed.commands.jobs import format_duration

    if as_json:
        emit_json(job.to_dict())
    echo(f"{job.name}  [{job.backend}] {job.status}  {format_duration(job.duration_s)}")
    if job.failure_reason:
        echo(f"  failure: {job.failure_reason}")
    echo_rules(job, echo)
