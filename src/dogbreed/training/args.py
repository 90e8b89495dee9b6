"""The hyperparameters every entry script accepts, as one reusable parser.

On SageMaker they arrive as `--key value` (the toolkit's `to_cmd_args`), booleans as
`True`/`False`; paths default to the `SM_*` environment. Every flag states its default.
"""

from __future__ import annotations

import argparse
import os

from dogbreed.training.choices import (ARCH_CHOICES, DEFAULT_ARCH, DEFAULT_DROPOUT, DEFAULT_FREEZE, DEFAULT_HEAD,
                                       DEFAULT_HIDDEN_UNITS, DEFAULT_IMAGE_SIZE, DEFAULT_WEIGHTS, FREEZE_CHOICES,
                                       HEAD_CHOICES)


def str2bool(value) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on", "y", "t"):
        return True
    if v in ("0", "false", "no", "off", "n", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


def default_workers() -> int:
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def workers_arg(value) -> int | str:
    """`--workers`: "auto" or a count of worker processes."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected auto or a number of processes (0 or more), got {value!r}")
    return n


def resolve_workers(workers: int | str, device_type: str, cached_images: bool) -> int:
    """"auto": no worker process when training on the CPU from the image cache (each batch costs
    ~0.4 ms/image to crop, and a worker only takes cores from the model: measured slower with one
    on 2 cores), else min(4, cores - 1)."""
    if workers != "auto":
        return int(workers)
    return 0 if cached_images and device_type == "cpu" else default_workers()


def get_args_parser(add_help: bool = True, description: str = "dogbreed training") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, add_help=add_help,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hp = p.add_argument_group("hyperparameters")
    hp.add_argument("--lr", type=float, default=0.001, help="learning rate")
    hp.add_argument("--batch-size", type=int, default=32, help="images per step (per process)")
    hp.add_argument("--epochs", type=int, default=5, help="passes over the training split")
    hp.add_argument("--arch", default=DEFAULT_ARCH, help=" | ".join(ARCH_CHOICES))
    hp.add_argument("--weights", default=DEFAULT_WEIGHTS, help="imagenet | none | path to a state dict")
    hp.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, help="crop size in pixels")
    hp.add_argument("--freeze", default=DEFAULT_FREEZE,
                    help=" | ".join(FREEZE_CHOICES) + " (head: train only the head)")
    hp.add_argument("--head", default=DEFAULT_HEAD, help="classifier head: " + " | ".join(HEAD_CHOICES))
    hp.add_argument("--hidden-units", type=int, default=DEFAULT_HIDDEN_UNITS, help="width of the MLP head")
    hp.add_argument("--dropout", type=float, default=DEFAULT_DROPOUT, help="dropout before the last layer")
    hp.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"], help="optimizer")
    hp.add_argument("--weight-decay", type=float, default=0.0, help="L2 / decoupled weight decay")
    hp.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    hp.add_argument("--patience", type=int, default=3,
                    help="early stopping: epochs without valid_loss improvement (0 = off)")
    hp.add_argument("--seed", type=int, default=None, help="random seed for a deterministic run (default: random)")

    rt = p.add_argument_group("runtime")
    rt.add_argument("--device", default="auto", help="auto | cpu | cuda")
    rt.add_argument("--mixed-precision", default="auto", help="auto | on | off: bf16 on fast-bf16 CPUs, AMP on CUDA")
    rt.add_argument("--workers", type=workers_arg, default="auto",
                    help="data-loader worker processes; auto: 0 on CPU with the image cache, else min(4, cores-1)")
    rt.add_argument("--resume", type=str2bool, default=True,
                    help="continue from the checkpoint dir if a checkpoint is there")
    rt.add_argument("--check-images", type=str2bool, default=True,
                    help="open every image's header when scanning the dataset")
    rt.add_argument("--image-cache", default="auto", choices=["auto", "off"],
                    help="auto: decode and resize each image once into a uint8 cache; epochs crop from it")
    rt.add_argument("--image-cache-dir", default=None,
                    help="image cache folder (default: $DOGBREED_IMAGE_CACHE, else a temp folder)")

    paths = p.add_argument_group("paths (default: SageMaker environment)")
    paths.add_argument("--data-dir", default=None, help="dataset root (default: $SM_CHANNEL_TRAINING)")
    paths.add_argument("--model-dir", default=None, help="where model artifacts go (default: $SM_MODEL_DIR)")
    paths.add_argument("--output-data-dir", default=None, help="metrics and reports (default: $SM_OUTPUT_DATA_DIR)")
    paths.add_argument("--checkpoint-dir", default=None, help="checkpoints (default: /opt/ml/checkpoints)")
    return p


def add_debugger_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags of the final-training script only: debugger hook and profiler."""
    g = p.add_argument_group("instrumentation")
    g.add_argument("--debugger", type=str2bool, default=True, help="save tensors with the smdebug hook when configured")
    g.add_argument("--profiler", type=str2bool, default=True, help="record step and data-wait times when configured")
    g.add_argument("--evaluate-test", type=str2bool, default=True, help="evaluate once on the test split at the end")
    return p


def add_hpo_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Flags of the tuning-trial script only: the backbone feature cache."""
    g = p.add_argument_group("feature cache (frozen backbone)")
    g.add_argument("--feature-cache", default="auto", choices=["auto", "off"],
                   help="auto: with --freeze head, train the head on cached backbone features")
    g.add_argument("--feature-views", type=int, default=4,
                   help="augmented views per training image in the cache; epoch e uses view e mod N")
    g.add_argument("--feature-cache-dir", default=None,
                   help="cache folder (default: $DOGBREED_FEATURE_CACHE, else a temp folder)")
    return p
