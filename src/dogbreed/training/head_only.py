"""`run_head_training(args)`: a trial with a frozen backbone, trained on cached features.

Same loops (`loop.fit`), same metric lines and the same artifacts as `run.run_training`;
only the model the loops see is the head, and the batches are backbone features from
`features.FeatureCache`. The saved model is the full network (deterministic backbone +
trained head), so it serves like any other.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from dogbreed.errors import DataError
from dogbreed.training.environment import TrainingEnv
from dogbreed.training.run import log, make_optimizer, model_config_from_args, resolve_paths, seed_everything


def cached_features_apply(args) -> bool:
    """Cached features need a frozen backbone and a single process."""
    import os

    return (getattr(args, "feature_cache", "auto") != "off" and args.freeze == "head"
            and int(os.environ.get("WORLD_SIZE", "1")) == 1)


def run_head_training(args) -> dict:
    from torch import nn

    from dogbreed.training.data import DogImages
    from dogbreed.training.device import select_precision
    from dogbreed.training.features import (EpochViews, FeatureCache, FeatureSource, build_backbone_model,
                                           default_cache_dir, feature_batch_size)
    from dogbreed.training.loop import fit
    from dogbreed.training.model import save_artifacts

    started = time.time()
    env = TrainingEnv.from_env()
    data_dir, model_dir, out_dir, _ = resolve_paths(args, env)
    precision = select_precision(args.device, args.mixed_precision)
    seed_everything(args.seed)

    data = DogImages.scan(data_dir, splits=("train", "valid"), check_images=args.check_images)
    if "valid" not in data.splits:
        raise DataError(f"{data.root} has no valid/ split; tuning and early stopping need one")
    config = model_config_from_args(args, data.classes)
    cache = FeatureCache(Path(args.feature_cache_dir) if args.feature_cache_dir else default_cache_dir())
    log(f"data: {data.root} classes={len(data.classes)} "
        f"images={ {s: len(scan.samples) for s, scan in data.splits.items()} } skipped={data.skipped}")
    log(f"model: {config.arch} weights={args.weights} freeze=head head={config.head}: training the head on "
        f"cached backbone features ({args.feature_views} augmented view(s), cache {cache.root}) "
        f"on {precision.describe()}")

    model = build_backbone_model(config, args.weights, cache)
    backbone = precision.prepare_model(model.backbone)
    source = FeatureSource(cache, data, config, args.weights, backbone, precision,
                           batch_size=feature_batch_size(precision), workers=args.workers)
    head = model.head.to(precision.device)
    train_views = EpochViews(source, "train", args.feature_views, batch_size=args.batch_size, seed=args.seed)
    valid_loader = EpochViews(source, "valid", 1, batch_size=args.batch_size).loader("eval", shuffle=False)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = make_optimizer(args, head.parameters())

    state, best = fit(head, train_views, valid_loader, loss_fn=loss_fn, optimizer=optimizer, precision=precision,
                      epochs=args.epochs, patience=args.patience, log=log)
    if best is not None:
        head.load_state_dict(best)
    log(f"features: {cache.hits} cache hit(s), {cache.misses} computed in {cache.compute_seconds:.1f} s")

    model.head = head.to("cpu").float()
    model.backbone = model.backbone.to("cpu").float()
    save_artifacts(model, model_dir)
    result = {"best_epoch": state.best_epoch, "best_valid_loss": state.best_loss, "epochs_run": state.epoch,
              "history": state.history, "skipped_images": data.skipped, "seconds": time.time() - started,
              "feature_cache": {"dir": str(cache.root), "hits": cache.hits, "misses": cache.misses,
                                "compute_seconds": cache.compute_seconds}}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"saved model to {model_dir}")
    return result
