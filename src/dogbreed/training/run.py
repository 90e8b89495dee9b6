"""`run_training(args)`: what both entry scripts do, top to bottom.

scan data -> build model -> fit with validation/early stopping/checkpoints -> save
artifacts (primary only) -> optionally evaluate once on the test split.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dogbreed.errors import DataError
from dogbreed.training import metrics
from dogbreed.training.environment import TrainingEnv

if TYPE_CHECKING:
    from dogbreed.training.data import DogImages
    from dogbreed.training.device import Precision
    from dogbreed.training.distributed import DistInfo
    from dogbreed.training.model import ModelConfig
    from dogbreed.training.presets import Preprocessing


METRICS_FILE = "metrics.json"  # in the output data dir: the final metrics of a run


def log(msg: str) -> None:
    print(msg, flush=True)


def seed_everything(seed: int | None) -> None:
    if seed is None:
        return
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_paths(args, env: TrainingEnv):
    data = args.data_dir or env.channel("training") or (env.channels and next(iter(env.channels.values())))
    if not data:
        raise DataError("no dataset: pass --data-dir or set SM_CHANNEL_TRAINING")
    model_dir = Path(args.model_dir or env.model_dir)
    out_dir = Path(args.output_data_dir or env.output_data_dir)
    ckpt_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else env.checkpoint_dir
    return Path(data), model_dir, out_dir, ckpt_dir


def model_config_from_args(args, classes):
    """The model's build arguments and its preprocessing: the weights' own (`presets.preprocessing_for`)."""
    from dogbreed.training.model import ModelConfig
    from dogbreed.training.presets import preprocessing_for

    pre = preprocessing_for(args.arch, args.weights, args.image_size)
    return ModelConfig(num_classes=len(classes), arch=args.arch, head=args.head, hidden_units=args.hidden_units,
                       dropout=args.dropout, freeze=args.freeze, image_size=args.image_size, classes=tuple(classes),
                       mean=pre.mean, std=pre.std, resize_size=pre.resize_size, interpolation=pre.interpolation)


def make_optimizer(args, params):
    import torch

    # --freeze all: one empty parameter group (torch refuses an empty list), so the loop and
    # the checkpoints work unchanged
    params = [p for p in params if p.requires_grad] or [{"params": []}]
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    cls = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=args.lr, weight_decay=args.weight_decay)


@dataclass(frozen=True)
class TrainingSetup:
    """What every training run starts from (`prepare_training`)."""

    started: float  # time.time() when the run began
    dist: DistInfo
    precision: Precision
    data: DogImages
    config: ModelConfig  # from the args and the data's classes
    model_dir: Path
    out_dir: Path
    ckpt_dir: Path


def prepare_training(args, *, splits: tuple[str, ...], cached_images: bool = False) -> TrainingSetup:
    """Paths from args/environment, processes, precision and seeds, the scanned data (which needs
    a valid/ split: tuning and early stopping use it) and the model config; logs the data.
    `args.workers` becomes a number (`args.resolve_workers`; `cached_images`: the image cache is on)."""
    import torch

    from dogbreed.training.args import default_workers, resolve_workers
    from dogbreed.training.data import DogImages
    from dogbreed.training.device import select_precision
    from dogbreed.training.distributed import init_distributed

    started = time.time()
    data_dir, model_dir, out_dir, ckpt_dir = resolve_paths(args, TrainingEnv.from_env())
    on_cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    dist = init_distributed("cuda" if on_cuda else "cpu")
    precision = select_precision(args.device, args.mixed_precision, dist.local_rank)
    # building the image cache only decodes (the model is idle): workers help there
    args.build_workers = default_workers() if args.workers == "auto" else args.workers
    args.workers = resolve_workers(args.workers, precision.device_type, cached_images)
    seed_everything(None if args.seed is None else args.seed + dist.rank)

    data = DogImages.scan(data_dir, splits=splits, check_images=args.check_images)
    if "valid" not in data.splits:
        raise DataError(f"{data.root} has no valid/ split; tuning and early stopping need one")
    if dist.is_primary:
        counts = {s: len(scan.samples) for s, scan in data.splits.items()}
        log(f"data: {data.root} classes={len(data.classes)} images={counts} skipped={data.skipped}")
    return TrainingSetup(started=started, dist=dist, precision=precision, data=data,
                         config=model_config_from_args(args, data.classes), model_dir=model_dir, out_dir=out_dir,
                         ckpt_dir=ckpt_dir)


def fit_result(state, data) -> dict:
    """The metrics.json fields both trainings report from `loop.fit`'s final state."""
    return {"best_epoch": state.best_epoch, "best_valid_loss": state.best_loss, "epochs_run": state.epoch,
            "history": state.history, "skipped_images": data.skipped}


def save_results(model, setup: TrainingSetup, result: dict) -> None:
    """Primary process only: the model artifacts, then METRICS_FILE with the run's duration."""
    from dogbreed.training.model import save_artifacts

    save_artifacts(model, setup.model_dir)
    result["seconds"] = time.time() - setup.started
    setup.out_dir.mkdir(parents=True, exist_ok=True)
    (setup.out_dir / METRICS_FILE).write_text(json.dumps(result, indent=2) + "\n")
    log(f"saved model to {setup.model_dir}")


def make_loader(dataset, *, batch_size, shuffle, workers, sampler=None, seed=None, collate_fn=None,
                pin_memory=False):
    import torch
    from torch.utils.data import DataLoader

    from dogbreed.training.data import collate_skip_none

    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, collate_fn=collate_fn or collate_skip_none,
                      persistent_workers=workers > 0, generator=gen, drop_last=False, pin_memory=pin_memory)


@dataclass
class ImageData:
    """How training reads images: from the decoded-image cache (uint8, normalised per batch by
    `collate`) or by decoding every epoch (`--image-cache off`, or no disk room for the cache)."""

    data: DogImages
    pre: Preprocessing
    cache: object = None  # image_cache.ImageCache, None: decode every epoch
    build_workers: int = 0  # loader workers decoding while the cache is built

    @classmethod
    def from_args(cls, args, data, pre: Preprocessing, *, primary: bool) -> "ImageData":
        if args.image_cache == "off":
            return cls(data, pre)
        from dogbreed.training.image_cache import ImageCache, default_cache_dir

        root = Path(args.image_cache_dir) if args.image_cache_dir else default_cache_dir()
        return cls(data, pre, ImageCache(root, log=log if primary else lambda _: None), args.build_workers)

    def dataset(self, split: str, *, train: bool):
        if self.cache is not None:
            from dogbreed.training.image_cache import cached_dataset

            cached = cached_dataset(self.data, split, self.pre, self.cache, train=train, workers=self.build_workers)
            if cached is not None:
                return cached
        from dogbreed.training.presets import ClassificationPresetEval, ClassificationPresetTrain

        preset = ClassificationPresetTrain if train else ClassificationPresetEval
        return self.data.dataset(split, preset.from_preprocessing(self.pre))

    def describe(self, dataset, workers: int) -> str:
        from dogbreed.training.image_cache import CachedImages

        how = (f"decoded once into {self.cache.root} (uint8, {self.pre.resize_size} px)"
               if isinstance(dataset, CachedImages) else "decoded every epoch")
        return f"images: {how}; {self.pre.describe()}; {workers} loader worker(s)"

    def collate(self, dataset):
        from dogbreed.training.image_cache import CachedImages, NormalizingCollate

        return NormalizingCollate(self.pre) if isinstance(dataset, CachedImages) else None


def run_training(args, *, instrumentation=None, evaluate_test: bool = False) -> dict:
    """Train per `args`; returns the final metrics. Raises DogbreedError subclasses on bad input."""
    from torch import nn
    from torch.utils.data import DistributedSampler, Subset

    from dogbreed.training.checkpoint import Checkpointer
    from dogbreed.training.distributed import barrier, cleanup, shard
    from dogbreed.training.instrumentation import NullInstrumentation
    from dogbreed.training.loop import evaluate, fit
    from dogbreed.training.model import build_model

    setup = prepare_training(args, splits=("train", "valid", "test") if evaluate_test else ("train", "valid"),
                             cached_images=args.image_cache != "off")
    dist, precision, data, config = setup.dist, setup.precision, setup.data, setup.config
    instr = instrumentation or NullInstrumentation()
    if dist.is_primary:
        log(f"model: {config.arch} weights={args.weights} freeze={config.freeze} head={config.head} "
            f"on {precision.describe()}" + (f", {dist.world_size} processes" if dist.enabled else ""))

    model = precision.prepare_model(build_model(config, args.weights))
    loss_fn = nn.CrossEntropyLoss()
    instr.attach(model, loss_fn)
    optimizer = make_optimizer(args, model.parameters())

    images = ImageData.from_args(args, data, config.preprocessing, primary=dist.is_primary)
    train_ds = images.dataset("train", train=True)
    valid_ds = images.dataset("valid", train=False)
    train_collate, valid_collate = images.collate(train_ds), images.collate(valid_ds)
    if dist.is_primary:
        log(images.describe(train_ds, args.workers))
    loader_kw = {"batch_size": args.batch_size, "workers": args.workers, "pin_memory": precision.device_type == "cuda"}
    train_sampler = None
    ddp_model = model
    if dist.enabled:
        train_sampler = DistributedSampler(train_ds, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                           seed=args.seed or 0)
        valid_ds = Subset(valid_ds, shard(list(range(len(valid_ds))), dist))
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if precision.device_type == "cuda" else None)
    train_loader = make_loader(train_ds, shuffle=True, sampler=train_sampler, seed=args.seed,
                               collate_fn=train_collate, **loader_kw)
    valid_loader = make_loader(valid_ds, shuffle=False, collate_fn=valid_collate, **loader_kw)

    plain_args = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))}
    ckpt = Checkpointer(setup.ckpt_dir, config=config.to_dict(), args=plain_args, enabled=dist.is_primary)
    state, best = None, None
    if args.resume:
        loaded = ckpt.load() if dist.is_primary else None
        if dist.enabled:  # every rank resumes from rank 0's checkpoint
            import torch.distributed as tdist

            box = [loaded]
            tdist.broadcast_object_list(box, src=0)
            loaded = box[0]
        if loaded:
            saved, best = loaded
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            state = Checkpointer.fit_state(saved)
            if dist.is_primary:
                log(f"resumed from {setup.ckpt_dir} after epoch {state.epoch}")

    def on_epoch_end(st, row, best_sd):
        ckpt.save(model, optimizer, st, best_sd, improved=st.best_epoch == st.epoch)

    try:
        state, best = fit(ddp_model, train_loader, valid_loader, loss_fn=loss_fn, optimizer=optimizer,
                          precision=precision, epochs=args.epochs, patience=args.patience, instr=instr, dist=dist,
                          state=state, best_state_dict=best, on_epoch_end=on_epoch_end,
                          train_sampler=train_sampler, log=log)
        if best is not None:
            model.load_state_dict(best)
        result = fit_result(state, data)

        if evaluate_test and "test" in data.splits:
            test_ds = images.dataset("test", train=False)
            collate = images.collate(test_ds)
            if dist.enabled:
                test_ds = Subset(test_ds, shard(list(range(len(test_ds))), dist))
            test_loader = make_loader(test_ds, shuffle=False, collate_fn=collate, **loader_kw)
            te, confusion = evaluate(model, test_loader, loss_fn, precision, instr, dist, num_classes=len(data.classes))
            per_class = (confusion.diag().double() / confusion.sum(1).clamp(min=1).double()).tolist()
            result["test"] = {"loss": te.loss, "top1": te.acc, "top5": te.top5, "n": te.n,
                              "per_breed_accuracy": dict(zip(data.classes, per_class)),
                              "confusion_matrix": confusion.tolist(), "classes": data.classes}
            if dist.is_primary:
                log(f"test: loss={te.loss:.4f} top1={te.acc:.4f} top5={te.top5:.4f} on {te.n} images")
                metrics.emit("test_loss", te.loss)
                metrics.emit("test_acc", te.acc)
                metrics.emit("test_top5", te.top5)

        if dist.is_primary:
            save_results(model, setup, result)
        barrier(dist)
        return result
    finally:
        instr.close()
        cleanup(dist)


def script_main(parse_args, *, evaluate_test: bool, instrumentation_factory=None, choose_training=None) -> None:
    """Entry-script wrapper: user errors become one line on stderr and exit code 2; the
    job runner records that line as the failure reason. `choose_training(args)` may return
    another training function (hpo.py: head-only training on cached features)."""
    from dogbreed.errors import DogbreedError

    args = parse_args()
    try:
        custom = choose_training(args) if choose_training else None
        if custom is not None:
            custom(args)
            return
        instr = instrumentation_factory(args) if instrumentation_factory else None
        run_training(args, instrumentation=instr, evaluate_test=getattr(args, "evaluate_test", evaluate_test))
    except DogbreedError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        failure = os.environ.get("SM_OUTPUT_DIR")
        if failure:
            Path(failure).mkdir(parents=True, exist_ok=True)
            (Path(failure) / "failure").write_text(str(exc)[:1024])
        sys.exit(2)
