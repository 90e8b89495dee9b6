"""`dogbreed plan`: what tuning, training and serving would take on SageMaker, at any scale."""

from __future__ import annotations

import click

DOG_IMAGES = 8351  # images in dogImages (train + valid + test)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def money(usd: float | None) -> str:
    if usd is None:
        return "n/a"
    return f"~${usd:,.2f}" if usd >= 1 else f"~${usd:.3f}"


@click.command()
@click.option("--images", type=click.IntRange(1), multiple=True, default=(DOG_IMAGES,), show_default=True,
              help="Dataset size in images; repeat for several scales (e.g. --images 8351 --images 83510).")
@click.option("--trials", type=click.IntRange(1, 500), default=8, show_default=True, help="Tuning trials.")
@click.option("--parallel", type=click.IntRange(1, 100), default=2, show_default=True,
              help="Tuning trials running at once.")
@click.option("--instance-type", default=None,
              help="Training and tuning instance type. [default: `instance_type` setting, ml.m5.xlarge]")
@click.option("--inference-instance-type", default=None,
              help="Serving instance type. [default: `inference_instance_type` setting, ml.m5.large]")
@click.option("--predictions-per-day", type=click.IntRange(0), default=10_000, show_default=True)
@click.option("--results", default=None, metavar="FILE",
              help="Benchmark results to plan from. [default: benchmarks/results.json, written by `make bench`]")
@click.pass_obj
def plan(app, images, trials, parallel, instance_type, inference_instance_type, predictions_per_day, results):
    """Estimate time and cost of feature caching, tuning, final training and serving on SageMaker.

    Every figure is an ESTIMATE computed from per-image times our benchmarks measured
    (listed under the table) and the list prices in the SageMaker price table.

    \b
    Examples:
      dogbreed plan                                          # dogImages, 8 trials, 10,000 predictions/day
      dogbreed plan --images 8351 --images 83510 --images 835100 --predictions-per-day 1000000
    """
    from dogbreed.planning import PlanSpec
    from dogbreed.workflows.plan import plan as make_plans

    s = app.settings
    specs = [PlanSpec(images=n, trials=trials, parallel=parallel, instance_type=instance_type or s.instance_type,
                      inference_instance_type=inference_instance_type or s.inference_instance_type,
                      predictions_per_day=predictions_per_day) for n in images]
    plans = make_plans(app, specs, results)
    for p in plans:
        sp = p.spec
        click.echo(f"\n{sp.images:,} images ({sp.images / DOG_IMAGES:.3g}x dogImages), {sp.trials} trials "
                   f"({sp.parallel} at once) on {sp.instance_type}, {sp.predictions_per_day:,} predictions/day on "
                   f"{sp.inference_instance_type} -- ESTIMATES")
        keys = list(p.inputs)
        rows = [("step", "instances", "time (est.)", "cost (est.)", "from", "")] + [
            (r.step, r.instances, duration(r.seconds) + ("/day" if r.per and r.seconds is not None else ""),
             money(r.usd) + ("/day" if r.per and r.usd is not None else ""),
             ",".join(f"[{keys.index(k) + 1}]" for k in r.inputs), r.note) for r in p.rows]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for row in rows:
            click.echo("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[5])
    click.echo("\nmeasured inputs:")
    for i, source in enumerate(plans[0].inputs.values(), 1):
        click.echo(f"  [{i}] {source}")
    click.echo("assumptions:")
    for line in plans[0].assumptions:
        click.echo(f"  - {line}")
