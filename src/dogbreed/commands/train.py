"""`dogbreed train`: the final training job (scripts/train_model.py), then one test evaluation."""

from __future__ import annotations

import click

from dogbreed.commands.options import collect_static, data_option, echo_line, resolve_data, static_hyperparameter_options


@click.command()
@data_option
@click.option("--lr", type=float, default=None, help="Learning rate. [default: 0.001]")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None, help="Images per step. [default: 32]")
@click.option("--epochs", type=click.IntRange(1, 1000), default=None, help="Epochs. [default: 5]")
@static_hyperparameter_options
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Data-parallel processes (local: torchrun on this machine; SageMaker: instances).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Stream the log until the job ends.")
@click.pass_obj
def train(app, data, lr, batch_size, epochs, arch, weights, image_size, freeze, extra_hps, processes, wait):
    """Train the model on train/, validate on valid/, evaluate once on test/.

    \b
    Example (CPU smoke run on the sample set, ~1 min):
      dogbreed train --data data/sample --arch resnet18 --weights none --image-size 64 --epochs 3
    """
    from dogbreed.backends.base import COMPLETED, TrainingJobSpec
    from dogbreed.errors import JobFailedError

    hps = collect_static(arch, weights, image_size, freeze, extra_hps, "train_model.py")
    hps.update({k: v for k, v in {"lr": lr, "batch-size": batch_size, "epochs": epochs}.items() if v is not None})
    spec = TrainingJobSpec(entry_point="train_model.py", hyperparameters=hps, data=resolve_data(app, data),
                           base_name="dogbreed-train", processes=processes)
    backend = app.backend()
    job = backend.run_training_job(spec, wait=wait, log=echo_line)
    app.workspace.update(last_training_job={"name": job.name, "backend": backend.name})
    if not wait:
        click.echo(f"started {job.name}; follow it with `dogbreed jobs {job.name}`")
        return
    if job.status != COMPLETED:
        raise JobFailedError(f"training job {job.name} {job.status}: {job.failure_reason}")
    app.workspace.update(model_data={"uri": job.model_data, "job": job.name, "backend": backend.name})
    m = job.metrics
    summary = " ".join(f"{k}={m[k]:.4f}" for k in ("valid_loss", "test_loss", "test_acc", "test_top5") if k in m)
    click.echo(f"job {job.name} Completed: {summary}")
    click.echo(f"model: {job.model_data}")
