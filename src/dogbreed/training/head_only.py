"""`run_head_training(args)`: a trial with a frozen backbone, trained on cached features.

Same loops (`loop.fit`), same metric lines and the same artifacts as `run.run_training`;
only the model the loops see is the head, and the batches are backbone features from
`features.FeatureCache`. The saved model is the full network (deterministic backbone +
trained head), so it serves like any other.
"""

from __future__ import annotations

from pathlib import Path

from dogbreed.training.run import fit_result, log, make_optimizer, prepare_training, save_results


def cached_features_apply(args) -> bool:
    """Cached features need a frozen backbone and a single process."""
    import os

    return (getattr(args, "feature_cache", "auto") != "off" and args.freeze == "head"
            and int(os.environ.get("WORLD_SIZE", "1")) == 1)


def run_head_training(args) -> dict:
    from torch import nn

    from dogbreed.training.features import (EpochViews, FeatureCache, FeatureSource, build_backbone_model,
                                           default_cache_dir, feature_batch_size)
    from dogbreed.training.loop import fit

    setup = prepare_training(args, splits=("train", "valid"))  # a single process: see cached_features_apply
    precision, data, config = setup.precision, setup.data, setup.config
    cache = FeatureCache(Path(args.feature_cache_dir) if args.feature_cache_dir else default_cache_dir())
    log(f"model: {config.arch} weights={args.weights} freeze=head head={config.head}: training the head on "
        f"cached backbone features ({args.feature_views} augmented view(s), cache {cache.root}) "
        f"on {precision.describe()}")

    model = build_backbone_model(config, args.weights, cache)
    source = FeatureSource(cache, data, config, args.weights, model.backbone, precision,
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
    result = {**fit_result(state, data),
              "feature_cache": {"dir": str(cache.root), "hits": cache.hits, "misses": cache.misses,
                                "compute_seconds": cache.compute_seconds}}
    save_results(model, setup, result)
    return result
