"""`dogbreed data download|synth|check|upload`: get a dataset, or make an offline one, check it, push it to S3."""

from __future__ import annotations

import json

import click

from dogbreed.settings import flag_setter
from dogbreed.workflows.data import record_local_dataset


@click.group()
def data():
    """Get the dogImages dataset (or an offline sample set), check it, upload it to S3."""


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
    record_local_dataset(app, root)
    click.echo(f"dataset ready: {root} (recorded as the default --data)")


@data.command()
@click.option("--out", default="data/sample", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write train/ valid/ test/ into.")
@click.option("--classes", default=5, show_default=True, type=click.IntRange(2, 133), help="Number of breeds.")
@click.option("--per-class", default=24, show_default=True, type=click.IntRange(1, 10000),
              help="Training images per breed; valid/ and test/ get a quarter each (at least 2).")
@click.option("--image-size", default=64, show_default=True, type=click.IntRange(16, 1024),
              help="Image side in pixels.")
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
    record_local_dataset(app, out)
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
    from dogbreed.workflows.data import recorded_local_dataset

    report = check_dataset(recorded_local_dataset(app, path, "check"))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
    if not report.ok:
        raise SystemExit(1)


@data.command()
@click.argument("path", required=False)
@click.option("--prefix", default=None, metavar="KEY/PREFIX",
              help="Where under the bucket; a trailing slash makes no difference. "
                   "[default: <prefix setting>/data/<folder name>, e.g. dogbreed/data/dogImages]")
@click.option("--bucket", default=None, expose_value=False, callback=flag_setter("bucket"),
              help="S3 bucket. [default: --bucket of dogbreed, $DOGBREED_BUCKET, dogbreed.toml, "
                   "or the SageMaker default bucket]")
@click.option("--jobs", "concurrency", default=16, show_default=True, type=click.IntRange(1, 128),
              help="Parallel transfers.")
@click.pass_obj
def upload(app, path, prefix, concurrency):
    """Upload a dataset to S3 (parallel; skips files already there with the same size and checksum).

    Re-running after an interruption uploads only what is missing. The S3 URI is recorded
    as the default --data of SageMaker jobs.

    \b
    Example:
      dogbreed --region us-east-1 data upload data/dogImages --bucket my-bucket
    """
    import threading

    from dogbreed.workflows.data import stage_dataset

    bar, lock = {}, threading.Lock()

    def on_plan(todo, skipped, nbytes):
        click.echo(f"{skipped} file(s) already in S3 and unchanged; {todo} to upload ({nbytes / 1e6:.1f} MB)")
        if todo:
            bar["bar"] = click.progressbar(length=nbytes, label="uploading", show_pos=False)
            bar["bar"].__enter__()

    def progress(n):
        with lock:
            bar["bar"].update(n)

    try:
        result = stage_dataset(app, path, prefix=prefix, concurrency=concurrency, on_plan=on_plan, progress=progress)
    finally:
        if "bar" in bar:
            bar["bar"].__exit__(None, None, None)
    click.echo(f"{result.uri}: {len(result.uploaded)} uploaded ({result.bytes_uploaded / 1e6:.1f} MB), "
               f"{result.skipped} unchanged (recorded as the default --data of SageMaker jobs)")
