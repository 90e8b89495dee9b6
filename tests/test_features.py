"""Backbone feature cache: computed once, keyed by its inputs, invalidated by data changes;
head-only training on it produces a full, loadable model."""

import json
import os
import shutil

import pytest
import torch

from dogbreed.training.args import add_hpo_args, get_args_parser
from dogbreed.training.data import DogImages
from dogbreed.training.device import select_precision
from dogbreed.training.features import (EpochViews, FeatureCache, FeatureSource, build_backbone_model,
                                        data_fingerprint)
from dogbreed.training.model import ModelConfig, load_model
from dogbreed.training.presets import ClassificationPresetEval


@pytest.fixture
def data_copy(sample_data, tmp_path):
    dest = tmp_path / "data"
    shutil.copytree(sample_data, dest)
    return dest


def _source(data_dir, cache_dir, precision=None, image_size=48):
    data = DogImages.scan(data_dir, splits=("train", "valid"))
    config = ModelConfig(num_classes=len(data.classes), arch="resnet18", image_size=image_size,
                         classes=tuple(data.classes))
    precision = precision or select_precision("cpu", "off")
    model = build_backbone_model(config, "none")
    backbone = precision.prepare_model(model.backbone)
    return FeatureSource(FeatureCache(cache_dir), data, config, "none", backbone, precision, batch_size=32), model


def test_features_computed_once_and_equal_to_the_backbone(data_copy, tmp_path):
    source, model = _source(data_copy, tmp_path / "cache")
    feats, labels = source.features("valid", "eval")
    assert feats.shape == (20, 512) and labels.tolist() == sorted(labels.tolist())
    assert (source.cache.misses, source.cache.hits) == (1, 0)
    again, _ = source.features("valid", "eval")
    assert (source.cache.misses, source.cache.hits) == (1, 1)
    assert torch.equal(feats, again)

    # a fresh process would find the same file
    source2, _ = _source(data_copy, tmp_path / "cache")
    source2.features("valid", "eval")
    assert (source2.cache.misses, source2.cache.hits) == (0, 1)

    # the cached features are what the (deterministic) backbone computes on eval images
    ds = source.data.dataset("valid", ClassificationPresetEval(crop_size=48))
    with torch.inference_mode():
        direct = model.backbone.eval()(torch.stack([ds[i][0] for i in range(4)]))
    assert torch.allclose(direct, feats[:4], atol=1e-4)


def test_cache_key_follows_data_and_inputs(data_copy, tmp_path):
    source, _ = _source(data_copy, tmp_path / "cache")
    key = source.key("train", "eval")
    assert source.key("train", "train-aug-0") != key
    samples = source.data.splits["train"].samples
    before = data_fingerprint(data_copy, samples)
    os.utime(samples[0][0], ns=(1, 1))  # a touched file
    assert data_fingerprint(data_copy, samples) != before
    other_size, _ = _source(data_copy, tmp_path / "cache", image_size=64)
    assert other_size.key("train", "eval").image_size == 64
    assert other_size.key("train", "eval").digest() != key.digest()


def test_added_image_invalidates_the_cache(data_copy, tmp_path):
    source, _ = _source(data_copy, tmp_path / "cache")
    n_before = len(source.features("valid", "eval")[0])
    cls_dir = next((data_copy / "valid").iterdir())
    first = next(cls_dir.iterdir())
    shutil.copy(first, cls_dir / ("extra" + first.suffix))
    fresh, _ = _source(data_copy, tmp_path / "cache")
    feats, _ = fresh.features("valid", "eval")
    assert fresh.cache.misses == 1 and len(feats) == n_before + 1


def test_augmented_views_differ_per_epoch_and_repeat_exactly(data_copy, tmp_path):
    source, _ = _source(data_copy, tmp_path / "cache")
    views = EpochViews(source, "train", 2, batch_size=1000, seed=0)
    epoch1 = next(iter(views))[0]
    epoch2 = next(iter(views))[0]
    epoch3 = next(iter(views))[0]  # view 0 again, from the cache
    assert source.cache.misses == 2 and source.cache.hits == 1
    assert not torch.allclose(epoch1.sort(0).values, epoch2.sort(0).values)
    assert torch.equal(epoch1.sort(0).values, epoch3.sort(0).values)
    # recomputing a view from scratch gives identical features (per-image seeds)
    shutil.rmtree(tmp_path / "cache")
    redo, _ = _source(data_copy, tmp_path / "cache")
    assert torch.equal(redo.features("train", "train-aug-0")[0], source.features("train", "train-aug-0")[0])


def test_head_only_trial_saves_a_full_model(sample_data, tmp_path):
    from dogbreed.training.head_only import cached_features_apply, run_head_training

    args = add_hpo_args(get_args_parser()).parse_args([
        "--data-dir", str(sample_data), "--arch", "resnet18", "--weights", "none", "--image-size", "48",
        "--epochs", "2", "--batch-size", "16", "--workers", "0", "--lr", "0.01", "--seed", "0",
        "--model-dir", str(tmp_path / "model"), "--output-data-dir", str(tmp_path / "out"),
        "--feature-cache-dir", str(tmp_path / "cache"), "--feature-views", "2"])
    assert cached_features_apply(args)
    result = run_head_training(args)
    assert result["epochs_run"] == 2 and result["feature_cache"]["misses"] == 3  # valid + 2 train views
    again = run_head_training(args)
    assert again["feature_cache"] == {**again["feature_cache"], "hits": 3, "misses": 0}
    assert again["best_valid_loss"] == pytest.approx(result["best_valid_loss"], rel=1e-5)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["history"][0]["valid_loss"] > 0

    model = load_model(tmp_path / "model")
    data = DogImages.scan(sample_data, splits=("train", "valid"))
    ref = build_backbone_model(model.config, "none")
    for k, v in ref.backbone.state_dict().items():  # the backbone the features came from
        assert torch.equal(model.backbone.state_dict()[k], v), k
    assert model.config.classes == tuple(data.classes)

    args.freeze = "layer4"
    assert not cached_features_apply(args)  # unfrozen layers: full training


def test_build_progress_lines_round_trip_and_are_throttled():
    from dogbreed.training.features import BuildProgress, ProgressPrinter

    p = BuildProgress("train/train-aug-0", 512, 1000, 21.34, 22.9)
    assert p.line() == "feature cache: train/train-aug-0 512/1000 images, 21.3 img/s, ETA 23 s"
    assert BuildProgress.parse(p.line()) == BuildProgress("train/train-aug-0", 512, 1000, 21.3, 23.0)
    assert BuildProgress.parse("feature cache: valid/eval 0/9 images, 0.0 img/s, ETA ?").eta_s is None
    assert BuildProgress.parse("epoch 1/2: train_loss=1.0") is None

    lines = []
    show = ProgressPrinter("valid/eval", every_s=3600, out=lines.append)
    for done in (0, 16, 32, 40):
        show(done, 40)
    assert [BuildProgress.parse(x).done for x in lines] == [0, 40]  # the first and the last only


def test_computing_features_prints_progress(data_copy, tmp_path, capsys):
    source, _ = _source(data_copy, tmp_path / "cache")
    source.features("valid", "eval")
    from dogbreed.training.features import BuildProgress

    seen = [BuildProgress.parse(x) for x in capsys.readouterr().out.splitlines()]
    seen = [p for p in seen if p]
    assert seen[0].done == 0 and seen[-1].done == seen[-1].total == 20 and seen[-1].what == "valid/eval"


def test_a_cache_file_is_computed_on_the_cores_the_tuner_gives(monkeypatch):
    from dogbreed.training.features import ENV_FEATURE_THREADS, all_cores

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # a trial's share of the cores
        monkeypatch.setenv(ENV_FEATURE_THREADS, "2")
        with all_cores():
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
        monkeypatch.delenv(ENV_FEATURE_THREADS)  # SageMaker: the trial's own setting
        with all_cores():
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def _augmented_as_torchvision(path, seed, i, crop):
    """Training view `seed`'s image i the way torchvision's own transforms give it."""
    from torchvision import transforms as T

    from dogbreed.training.data import load_rgb
    from dogbreed.training.presets import IMAGENET_MEAN, IMAGENET_STD

    compose = T.Compose([T.RandomResizedCrop(crop, scale=(0.5, 1.0), antialias=True), T.RandomHorizontalFlip(),
                         T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    torch.manual_seed(seed * 1_000_003 + i)
    return compose(load_rgb(path))


def test_a_training_view_decoded_by_threads_is_torchvisions_augmentation_bit_for_bit(data_copy):
    from PIL import Image

    from dogbreed.training.features import ViewImages, _decoded_between_passes, _loaded_alongside
    from dogbreed.training.presets import ClassificationPresetTrain

    data = DogImages.scan(data_copy, splits=("train",))
    samples = data.splits["train"].samples[:12]
    rotated = samples[3][0]  # a portrait phone photo: EXIF says turn it, so its upright size is swapped
    with Image.open(rotated) as im:
        exif = im.getexif()
        exif[0x0112] = 6
        im.crop((0, 0, im.width, im.height // 2)).save(rotated, exif=exif)
    broken = samples[5][0]
    open(broken, "wb").write(b"not an image")
    images = ViewImages(samples, ClassificationPresetTrain(crop_size=40), seed=3)
    expected = [_augmented_as_torchvision(p, 3, i, 40) for i, (p, _) in enumerate(samples) if p != broken]

    threaded = list(_decoded_between_passes(images, batch_size=5))
    assert [n for _, _, n in threaded] == [5, 5, 2]
    x = torch.cat([x for x, _, _ in threaded])
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, torch.stack(expected))
    assert torch.cat([y for _, y, _ in threaded]).tolist() == [y for p, y in samples if p != broken]
    loaded = list(_loaded_alongside(images, batch_size=5, workers=0))
    assert [n for _, _, n in loaded] == [5, 5, 2] and torch.equal(torch.cat([x for x, _, _ in loaded]), x)
