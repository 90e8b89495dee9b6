"""`dogbreed data download|synth|check`: get a dataset, or make an offline one, and check it."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def data():
    """Get the dogImages dataset (or an offline sample set) and check it."""


@data.command()
@click.option("--out", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Folder to download and extract into (dogImages/ is created inside).")
@click.option("--url", default=None, help="Archive URL. [default: Udacity's dogImages.zip]")
@click.option("--keep-zip", is_flag=True, help="Keep dogImages.zip after extracting.")
@click.pass_obj
def download(app, out, url, keep_zip):
    """Download dogImages.zip (1.1 GB, resumable), verify and extract it.

    \b
    Example:
      dogbreed data download --out data
    """
    from dogbreed.data.download import DOG_IMAGES_URL, download_dog_images

    bar = {"bar": None}

    def progress(done, total):
        if bar["bar"] is None:
            bar["bar"] = click.progressbar(length=total or 0, label="dogImages.zip", show_pos=False)
            bar["bar"].__enter__()
            bar["last"] = 0
        bar["bar"].update(done - bar["last"])
        bar["last"] = done

    try:
        root = download_dog_images(out, url or DOG_IMAGES_URL, progress, keep_zip)
    finally:
        if bar["bar"] is not None:
            bar["bar"].__exit__(None, None, None)
    app.workspace.update(dataset=str(Path(root).absolute()))
    click.echo(f"dataset ready: {root} (recorded as the default --data)")


@data.command()
@click.option("--out", default="data/sample", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write train/ valid/ test/ into.")
@click.option("--classes", default=5, show_default=True, type=click.IntRange(2, 133), help="Number of breeds.")
@click.option("--per-class", default=24, show_default=True, type=click.IntRange(1, 10000),
              help="Training images per breed; valid/ and test/ get a quarter each (at least 2).")
@click.option("--image-size", default=64, show_default=True, type=click.IntRange(16, 1024), help="Image side in pixels.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same images).")
@click.pass_obj
def synth(app, out, classes, per_class, image_size, seed):
    """Generate an offline sample set in the dogImages layout (seconds, no network).

    \b
    Example:
      dogbreed data synth --out data/sample --classes 5 --per-class 24 --image-size 64
    """
    from dogbreed.data.synth import SynthSpec, synthesize

    spec = SynthSpec(classes=classes, per_class=per_class, image_size=image_size, seed=seed)
    total = sum(spec.split_counts().values()) * classes
    with click.progressbar(length=total, label=f"synthesizing {out}") as bar:
        counts = synthesize(out, spec, progress=bar.update)
    app.workspace.update(dataset=str(Path(out).absolute()))
    click.echo(f"wrote {sum(counts.values())} images {counts} for {classes} classes to {out} "
               "(recorded as the default --data)")


@data.command()
@click.argument("path", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def check(app, path, as_json):
    """Check a dataset: layout, same classes in every split, unreadable images.

    \b
    Example:
      dogbreed data check data/sample
    """
    from dogbreed.data.check import check_dataset

    from dogbreed.errors import StateError

    path = path or app.workspace.get("dataset")
    if not path:
        raise StateError("no PATH given and no dataset recorded; pass a folder, e.g. `dogbreed data check data/sample`")
    report = check_dataset(path)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
    if not report.ok:
        raise SystemExit(1)
