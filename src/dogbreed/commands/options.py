"""Options shared by `tune` and `train`: the static hyperparameters and `-H key=value`."""

from __future__ import annotations

import click

ARCH_CHOICES = ["resnet18", "resnet34", "resnet50", "resnet101"]
FREEZE_CHOICES = ["head", "layer4", "none"]


def data_option(f):
    return click.option("--data", default=None, metavar="DIR|s3://URI",
                        help="Dataset (dogImages layout). [default: the one recorded by the last `data` command]")(f)


def static_hyperparameter_options(f):
    """--arch --weights --image-size --freeze and repeatable -H key=value (None = script default)."""
    for opt in reversed([
        click.option("--arch", type=click.Choice(ARCH_CHOICES), default=None, help="Backbone. [default: resnet50]"),
        click.option("--weights", default=None, metavar="imagenet|none|PATH",
                     help="Backbone weights. [default: imagenet]"),
        click.option("--image-size", type=click.IntRange(32, 1024), default=None,
                     help="Crop size in pixels. [default: 224]"),
        click.option("--freeze", type=click.Choice(FREEZE_CHOICES), default=None,
                     help="What stays frozen: head = train only the classifier. [default: head]"),
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


def resolve_data(app, data: str | None) -> str:
    from dogbreed.errors import StateError

    if data:
        return data
    recorded = app.workspace.get("dataset")
    if not recorded:
        raise StateError("no --data given and no dataset recorded; run `dogbreed data synth --out data/sample` "
                         "or `dogbreed data download`, or pass --data DIR")
    return recorded


def echo_line(line: str) -> None:
    click.echo(line)
