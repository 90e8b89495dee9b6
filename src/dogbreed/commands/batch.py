"""`dogbreed batch`: score a whole folder (or S3 prefix) of images into JSON Lines, no endpoint."""

from __future__ import annotations

import click

from dogbreed.serving.limits import BATCH_SIZE_HELP


@click.command()
@click.argument("source", metavar="SRC")
@click.option("--out", "out", required=True, metavar="FILE.jsonl",
              help="Results, one JSON object per image; must not exist yet (an interrupted run leaves "
                   "FILE.jsonl.partial, which the same command resumes).")
@click.option("--model-data", default=None, metavar="PATH|s3://URI",
              help="model.tar.gz (or an extracted model folder, locally). [default: the model of the last train]")
@click.option("--top-k", type=click.IntRange(1, 1000), default=5, show_default=True, help="Breeds per image.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=None,
              help=f"Local: images per forward pass. [default: {BATCH_SIZE_HELP}]")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Local: image-decoding threads. [default: CPU count between forward passes, at most 4 next to them]")
@click.option("--instance-type", default=None,
              help="SageMaker: transform instance type. [default: ml.m5.large, or `inference_instance_type`]")
@click.option("--instance-count", type=click.IntRange(1, 100), default=1, show_default=True,
              help="SageMaker: transform instances.")
@click.option("--job-name", default=None, help="SageMaker: transform job name. [default: <prefix>-batch-<time>]")
@click.option("--show", type=click.IntRange(0, 1000), default=3, show_default=True,
              help="Results to print (as `predict` prints them) after the summary.")
@click.pass_obj
def batch(app, source, out, model_data, top_k, batch_size, workers, instance_type, instance_count, job_name, show):
    """Score every image under SRC with the trained model; write FILE.jsonl.

    Locally SRC is a folder, scored in this process with the endpoint's own preprocessing and
    output (no server needed); on SageMaker SRC is an s3:// prefix, scored by a Batch Transform
    job whose output is fetched into FILE.jsonl. Each line: {"image", "predictions"} (top-k
    breeds and probabilities, as `predict --json`), or {"image", "error"}.

    \b
    Examples:
      dogbreed batch photos/ --out scores.jsonl
      dogbreed --backend sagemaker batch s3://my-bucket/photos/ --out scores.jsonl --instance-count 2
    """
    import json
    import sys

    from dogbreed.backends.base import BatchSpec
    from dogbreed.commands.endpoint import _print_result
    from dogbreed.workflows.batch import batch_predict

    spec = BatchSpec(model_data=model_data, source=source, out=out, top_k=top_k, batch_size=batch_size,
                     workers=workers, instance_type=instance_type, instance_count=instance_count, job_name=job_name)
    bar = {}

    def progress(done, total):
        if "bar" not in bar:
            bar["bar"] = click.progressbar(length=total, label="scoring", show_pos=True,
                                           file=sys.stderr)
            bar["bar"].__enter__()
        bar["bar"].update(done - bar["bar"].pos)

    try:
        result = batch_predict(app, spec, progress=progress, log=click.echo)
    finally:
        if "bar" in bar:
            bar["bar"].__exit__(None, None, None)
    resumed = f", {result.resumed} already done by an earlier run" if result.resumed else ""
    rate = f" in {result.seconds:.1f} s ({result.images_per_s:.1f} images/s)" if result.seconds else ""
    click.echo(f"scored {result.scored} of {result.total} images{rate}{resumed}; {result.failed} failed -> "
               f"{result.out}" + (f" ({result.location})" if result.location else ""))
    with open(result.out, encoding="utf-8") as f:
        for _, line in zip(range(show), f):
            _print_result(json.loads(line))
    if result.failed:
        raise click.ClickException(f"{result.failed} of {result.total} images failed: their lines in {result.out} "
                                   "say why")
