"""Options shared by `tune` and `train`: the static hyperparameters and `-H key=value`."""

from __future__ import annotations

import click

from dogbreed.training.choices import (ARCH_CHOICES, DEFAULT_ARCH, DEFAULT_FREEZE, DEFAULT_IMAGE_SIZE, DEFAULT_WEIGHTS,
                                       FREEZE_CHOICES, MIN_IMAGE_SIZE)


def data_option(f):
    return click.option("--data", default=None, metavar="DIR|s3://URI",
                        help="Dataset (dogImages layout). [default: the one recorded by the last `data` command]")(f)


def static_hyperparameter_options(f):
    """--arch --weights --image-size --freeze and repeatable -H key=value (None = script default)."""
    for opt in reversed([
        click.option("--arch", type=click.Choice(ARCH_CHOICES), default=None,
                     help=f"Backbone. [default: {DEFAULT_ARCH}]"),
        click.option("--weights", default=None, metavar="imagenet|none|PATH",
                     help=f"Backbone weights. [default: {DEFAULT_WEIGHTS}]"),
        click.option("--image-size", type=click.IntRange(MIN_IMAGE_SIZE, 1024), default=None,
                     help=f"Crop size in pixels. [default: {DEFAULT_IMAGE_SIZE}]"),
        click.option("--freeze", type=click.Choice(FREEZE_CHOICES), default=None,
                     help=f"What stays frozen: head = train only the classifier. [default: {DEFAULT_FREEZE}]"),
        click.option("-H", "--hyperparameter", "extra_hps", multiple=True, metavar="KEY=VALUE",
                     help="Any other script hyperparameter, e.g. -H weight-decay=0.0001 (repeatable)."),
    ]):
        f = opt(f)
    return f


def collect_static(arch, weights, image_size, freeze, extra_hps, entry_point: str) -> dict:
    """Static hyperparameters from the flags; names checked against the script's parser."""
    from dogbreed import hyperparameters as hp

    out = {k: v for k, v in {"arch": arch, "weights": weights, "image-size": image_size, "freeze": freeze}.items()
           if v is not None}
    out.update(hp.parse_assignments(extra_hps))
    hp.check_names(out, entry_point)
    return out


def sagemaker_job_options(f=None, *, kind: str = "training"):
    """--instance-type --spot/--no-spot --network-isolation --max-run --max-wait for SageMaker jobs.

    The values go straight into the resolved settings (`app.settings`, source "flag --spot"), so
    the command body needs no parameters for them. kind="tuning" sets the trial instance type.
    Use as `@sagemaker_job_options` or `@sagemaker_job_options(kind="tuning")`.
    """
    from dogbreed.settings import flag_setter

    instance_key = {"training": "instance_type", "tuning": "tuning_instance_type"}[kind]

    def decorate(func):
        for opt in reversed([
            click.option("--instance-type", default=None, expose_value=False, callback=flag_setter(instance_key),
                         help="SageMaker instance type. [default: ml.m5.xlarge, or `%s` in dogbreed.toml]"
                              % instance_key),
            click.option("--spot/--no-spot", default=None, expose_value=False, callback=flag_setter("spot"),
                         help="SageMaker managed spot training, checkpointed to S3 and resumed after an "
                              "interruption. [default: off, or `spot` in dogbreed.toml]"),
            click.option("--network-isolation/--no-network-isolation", default=None, expose_value=False,
                         callback=flag_setter("network_isolation"),
                         help="SageMaker: the training container reaches no network (EnableNetworkIsolation); "
                              "nothing is pip-installed, so the smdebug hook and Debugger rules are off. "
                              "[default: off, or `network_isolation` in dogbreed.toml]"),
            click.option("--max-run", default=None, metavar="DURATION", expose_value=False,
                         callback=flag_setter("max_run"),
                         help="SageMaker stops a job after this long, e.g. 90m or 2h. [default: 6h]"),
            click.option("--max-wait", default=None, metavar="DURATION", expose_value=False,
                         callback=flag_setter("max_wait"),
                         help="Spot only: give up after this long, waiting for capacity included. "
                              "[default: 2 x --max-run]"),
        ]):
            func = opt(func)
        return func

    return decorate(f) if f is not None else decorate


def echo_line(line: str, err: bool = False) -> None:
    """A job's log line on the console; `#metric` lines are for the parsers (they stay in logs.txt)."""
    if not line.startswith("#metric "):
        click.echo(line, err=err)


def json_option(f):
    """--json: the result as one JSON document on stdout; everything else goes to stderr."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the result as one JSON document on stdout (progress and log on stderr).")(f)


def emit_json(document) -> None:
    import json

    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))
