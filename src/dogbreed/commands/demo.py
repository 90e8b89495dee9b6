"""`dogbreed demo`: the whole pipeline on this machine, one real command after another.

Each step is the very command a user would type, run as its own `dogbreed` process, so the
demo shows (and exercises) exactly what the README documents.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from dogbreed.search_space import BAYESIAN

from dogbreed.training.choices import DEFAULT_ARCH, DEFAULT_FREEZE, DEFAULT_WEIGHTS

# Offline defaults: a generated set and a small random-init backbone, so the run takes a few
# minutes on 2 CPU cores. A random backbone's features are large, so learning rates above
# ~0.01 make head training unstable: the offline range stops there. With --data (the real dogImages)
# the script defaults apply:
# ResNet50 with ImageNet weights at 224 px.
SYNTH = {"classes": 5, "per-class": 30, "image-size": 64}
OFFLINE_MODEL = ["--arch", "resnet18", "--weights", "none", "--image-size", "64", "--freeze", "head"]
OFFLINE_RANGES = ["--range", "lr=0.001:0.01:log", "--range", "batch-size=16,32", "--range", "epochs=8,12"]
REAL_MODEL = ["--arch", DEFAULT_ARCH, "--weights", DEFAULT_WEIGHTS, "--freeze", DEFAULT_FREEZE]


class Steps:
    """Runs and narrates numbered steps; stops the demo at the first failure."""

    def __init__(self, base_cmd: list[str], total: int):
        self.base, self.total, self.n, self.started = base_cmd, total, 0, time.perf_counter()

    def title(self, text: str) -> None:
        self.n += 1
        click.secho(f"\n[{self.n}/{self.total}] {text}  (t+{time.perf_counter() - self.started:.0f}s)", bold=True)

    def run(self, *args: str, capture: bool = False) -> str:
        import subprocess

        shown = " ".join(("'" + a + "'") if " " in a else a for a in args)
        click.secho(f"$ dogbreed {shown}", fg="cyan")
        proc = subprocess.run([*self.base, *args], text=True, stdout=subprocess.PIPE if capture else None)
        if proc.returncode != 0:
            raise click.ClickException(f"step {self.n} (`dogbreed {shown}`) failed with exit code "
                                       f"{proc.returncode}; see its output above")
        return proc.stdout or ""


def held_out_images(data: Path, per_class: int = 2) -> list[Path]:
    """A few test-split images, two per breed (of up to 8 breeds), for the final predictions."""
    from dogbreed.training.data import find_root

    test = find_root(data) / "test"
    picks = []
    for folder in sorted(p for p in test.iterdir() if p.is_dir())[:8]:
        picks += sorted(f for f in folder.iterdir() if f.is_file())[:per_class]
    return picks


def print_predictions(doc: list[dict]) -> float:
    from dogbreed.training.model import breed_name

    right = 0
    click.echo(f"{'image':<40} {'true breed':<24} {'predicted (probability)'}")
    for item in doc:
        path = Path(item["image"])
        truth = breed_name(path.parent.name)
        if "error" in item:
            click.echo(f"{path.name:<40} {truth:<24} error: {item['error']}")
            continue
        top = item["predictions"][0]
        ok = top["breed"] == truth
        right += ok
        others = ", ".join(f"{p['breed']} {p['probability']:.2f}" for p in item["predictions"][1:3])
        click.echo(f"{path.name[:39]:<40} {truth:<24} {'OK ' if ok else 'NO '}{top['breed']} "
                   f"({top['probability']:.2f}); then {others}")
    return right / max(len(doc), 1)


@click.command()
@click.option("--data", default=None, type=click.Path(file_okay=False),
              help="A real dataset (dogImages layout): runs ResNet50 with ImageNet weights at 224 px. "
                   "[default: generate a small offline sample set]")
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False),
              help="Where the generated data and the report go.")
@click.option("--max-jobs", default=6, show_default=True, type=click.IntRange(1, 100), help="Tuning trials.")
@click.option("--max-parallel-jobs", default=2, show_default=True, type=click.IntRange(1, 16),
              help="Trials at a time.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the local endpoint on 127.0.0.1.")
@click.option("--keep", is_flag=True, help="Leave the endpoint running at the end (stop it with `dogbreed undeploy`).")
@click.pass_obj
def demo(app, data, out, max_jobs, max_parallel_jobs, port, keep):
    """Run the whole pipeline locally: data, tuning, training with debugger and profiler,
    report, endpoint, predictions. Offline and without AWS. Its time depends on how busy the
    cores are: 39 s measured on 2 idle vCPUs (AMD EPYC), 658 s on the same shared at load 12-20.

    \b
    Examples:
      dogbreed demo                       # generated sample set, no network needed
      dogbreed demo --keep                # then: dogbreed predict some/dog.jpg
      dogbreed demo --data data/dogImages # the real thing (needs ImageNet weights)
    """
    import json
    import sys

    if app.backend_choice != "local":
        raise click.ClickException("the demo runs on the local backend; drop --backend sagemaker "
                                   "(the README shows the SageMaker commands)")
    out_dir = Path(out).absolute()
    base = [sys.executable, "-m", "dogbreed", "--workspace", str(app.workspace.root), "--backend", "local"]
    steps = Steps(base, total=8)
    model_args = REAL_MODEL if data else OFFLINE_MODEL
    ranges = [] if data else OFFLINE_RANGES

    if data:
        steps.title(f"Check the dataset {data}")
        steps.run("data", "check", str(data))
        dataset = Path(data)
    else:
        dataset = out_dir / "data"
        steps.title("Generate an offline sample dataset (dogImages layout)")
        if (dataset / "train").is_dir():
            click.echo(f"reusing {dataset} (delete it to regenerate)")
            steps.run("data", "check", str(dataset))
        else:
            steps.run("data", "synth", "--out", str(dataset), *(f"--{k}={v}" for k, v in SYNTH.items()))

    steps.title(f"Tune: {max_jobs} trials, {max_parallel_jobs} at a time, on cached backbone features")
    steps.run("tune", "--data", str(dataset), *model_args, "--max-jobs", str(max_jobs),
              "--max-parallel-jobs", str(max_parallel_jobs), "--strategy", BAYESIAN, *ranges, "-H", "workers=0")

    steps.title("Train the best configuration with the debugger hook, rules and profiler")
    steps.run("train", "--from-best", "--data", str(dataset), "-H", "workers=0")

    steps.title("Write the HTML report")
    steps.run("report", "--out", str(out_dir / "report"))

    steps.title(f"Deploy the model to a local endpoint on 127.0.0.1:{port}")
    steps.run("deploy", "--port", str(port))

    try:
        steps.title("Predict held-out test images")
        images = held_out_images(dataset)
        doc = json.loads(steps.run("predict", *map(str, images), "--top-k", "3", "--json", capture=True))
        accuracy = print_predictions(doc)
        chance = 1 / len([p for p in (Path(images[0]).parents[1]).iterdir() if p.is_dir()])
        click.echo(f"top-1 on these {len(doc)} held-out images: {accuracy:.0%} (chance: {chance:.0%})")

        steps.title("Endpoints running")
        steps.run("endpoints")
    finally:
        steps.title("Clean up" if not keep else "Leave the endpoint running (--keep)")
        if keep:
            click.echo(f"endpoint left running: open http://127.0.0.1:{port}/ in a browser, or "
                       "`dogbreed predict IMAGE`; stop it with `dogbreed undeploy`")
        else:
            steps.run("undeploy")

    state = app.workspace.state()
    click.secho(f"\ndemo finished in {time.perf_counter() - steps.started:.0f} s", bold=True)
    click.echo(f"  report:   {out_dir / 'report' / 'report.html'}")
    click.echo(f"  model:    {state.get('model_data', {}).get('uri')}")
    click.echo(f"  jobs:     {app.workspace.jobs_dir}  (`dogbreed jobs` lists them; each has logs.txt)")
    click.echo(f"  data:     {dataset}")
