"""Decoded-image cache: eval on it is the served preprocessing exactly, train crops are random
and well formed, it is built once per (data, preprocessing), skips unreadable images, reports
progress, and the training script uses it."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from dogbreed.training.data import DogImages
from dogbreed.training.image_cache import (ImageCache, ImageCacheKey, NormalizingCollate, Progress,
                                           cached_dataset, window_offset)
from dogbreed.training.presets import ClassificationPresetEval, default_preprocessing, preprocessing_for

from tests.conftest import ROOT, TINY_HPS

SIZES = [(300, 200), (199, 301), (117, 117), (161, 120), (120, 161)]  # odd/even margins, both orientations


@pytest.fixture
def photos(tmp_path):
    """A dogImages-layout set of non-square noise photos (every pixel matters), two classes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for split in ("train", "valid"):
        for c, cls in enumerate(("001.A", "002.B")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i, (w, h) in enumerate(SIZES):
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{c}_{i}.png")
    return root


@pytest.mark.parametrize("pre", [default_preprocessing(112), preprocessing_for("resnet50", "imagenet", 112),
                                 preprocessing_for("resnet50", "imagenet", 96)], ids=lambda p: p.describe()[:18])
def test_eval_on_the_cache_equals_the_served_preprocessing(photos, tmp_path, pre):
    data = DogImages.scan(photos, splits=("train", "valid"))
    ds = cached_dataset(data, "valid", pre, ImageCache(tmp_path / "cache"), train=False)
    served = ClassificationPresetEval.from_preprocessing(pre)
    collate = NormalizingCollate(pre)
    for i, (path, label) in enumerate(data.splits["valid"].samples):
        x, y = collate([ds[i]])
        assert y.tolist() == [label]
        with Image.open(path) as im:
            expected = served(im.convert("RGB"))
        assert torch.equal(x[0], expected), path


def test_window_keeps_the_served_centre_crop():
    for length in range(116, 400):
        off = window_offset(length, 116, 112)
        assert 0 <= off <= length - 116
        assert off + round((116 - 112) / 2) == int(round((length - 112) / 2.0))


def test_train_crops_are_random_flipped_and_well_formed(photos, tmp_path):
    pre = default_preprocessing(64)
    data = DogImages.scan(photos, splits=("train", "valid"))
    ds = cached_dataset(data, "train", pre, ImageCache(tmp_path / "cache"), train=True)
    torch.manual_seed(0)
    a = [ds[0][0] for _ in range(8)]
    assert all(t.shape == (3, 64, 64) and t.dtype == torch.uint8 for t in a)
    assert len({t.sum().item() for t in a}) > 1  # different crops each time
    torch.manual_seed(0)
    assert all(torch.equal(t, ds[0][0]) for t in a)  # drawn from torch's random state: seedable
    x, _ = NormalizingCollate(pre)([ds[i] for i in range(len(ds))])
    assert x.dtype == torch.float32 and x.shape == (len(ds), 3, 64, 64)


def test_built_once_per_data_and_preprocessing(photos, tmp_path):
    data = DogImages.scan(photos, splits=("train", "valid"))
    cache = ImageCache(tmp_path / "cache")
    first = cached_dataset(data, "train", default_preprocessing(64), cache, train=True)
    stamp = os.stat(first.path).st_mtime_ns
    again = cached_dataset(data, "train", default_preprocessing(64), cache, train=True)
    assert again.path == first.path and os.stat(again.path).st_mtime_ns == stamp  # a hit: not rebuilt
    other = cached_dataset(data, "train", preprocessing_for("resnet50", "imagenet", 64), cache, train=True)
    assert other.path != first.path  # resize 66 vs 73
    (photos / "train" / "001.A" / "0_0.png").touch()
    os.utime(photos / "train" / "001.A" / "0_0.png", ns=(1, 1))
    changed = cached_dataset(DogImages.scan(photos, splits=("train", "valid")), "train", default_preprocessing(64),
                             cache, train=True)
    assert changed.path != first.path


def test_unreadable_image_is_left_out(photos, tmp_path, capsys):
    bad = photos / "train" / "002.B" / "1_0.png"
    data = DogImages.scan(photos, splits=("train", "valid"))
    bad.write_bytes(bad.read_bytes()[:200])  # truncated after the header check
    ds = cached_dataset(data, "train", default_preprocessing(64), ImageCache(tmp_path / "cache"), train=False)
    assert len(ds) == len(data.splits["train"].samples) - 1
    assert sorted(set(ds.targets)) == [0, 1]
    assert "skipping unreadable image" in capsys.readouterr().err


def test_progress_line_counts_rate_and_eta():
    lines = []
    p = Progress("image cache: train", 4, lines.append, every_s=0)
    for done in range(1, 5):
        p.update(done)
    assert lines[0].startswith("image cache: train 1/4 images (") and "ETA" in lines[0]
    assert lines[-1].startswith("image cache: train 4/4 images (") and "done in" in lines[-1]


def test_no_disk_room_means_decoding_every_epoch(photos, tmp_path, monkeypatch):
    import shutil as sh

    monkeypatch.setattr(sh, "disk_usage", lambda _: sh._ntuple_diskusage(1, 1, 1))
    lines = []
    data = DogImages.scan(photos, splits=("train", "valid"))
    assert cached_dataset(data, "train", default_preprocessing(64), ImageCache(tmp_path / "c", lines.append),
                          train=True) is None
    assert "decoding every epoch instead" in lines[0]


def test_dataset_pickles_without_its_memory_map(photos, tmp_path):
    import pickle

    data = DogImages.scan(photos, splits=("train", "valid"))
    ds = cached_dataset(data, "valid", default_preprocessing(64), ImageCache(tmp_path / "cache"), train=False)
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._pixels is None and torch.equal(clone[1][0], ds[1][0])


def test_training_script_trains_from_the_cache(sample_data, tmp_path):
    hps = {**TINY_HPS, "epochs": 1, "workers": "auto"}
    cmd = [sys.executable, str(ROOT / "scripts" / "train_model.py"), "--data-dir", str(sample_data),
           "--evaluate-test", "true", "--debugger", "false", "--profiler", "false", "--resume", "false",
           "--model-dir", str(tmp_path / "m"), "--output-data-dir", str(tmp_path / "o"),
           "--checkpoint-dir", str(tmp_path / "c"), "--image-cache-dir", str(tmp_path / "cache")]
    for k, v in hps.items():
        cmd += [f"--{k}", str(v)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert out.returncode == 0, out.stderr
    assert "images: decoded once into" in out.stdout and "0 loader worker(s)" in out.stdout
    assert "image cache: test 20/20 images" in out.stdout
    assert len(list((tmp_path / "cache").glob("images-*.u8"))) == 3  # train, valid, test
    config = json.loads((tmp_path / "m" / "model_config.json").read_text())
    assert config["resize_size"] == 55 and config["image_size"] == 48
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["test"]["n"] == 20
    shutil.rmtree(tmp_path / "cache")


def test_key_digest_covers_every_field():
    base = ImageCacheKey("d", "train", 128, 112, "bilinear", 159)
    others = [ImageCacheKey("e", "train", 128, 112, "bilinear", 159),
              ImageCacheKey("d", "valid", 128, 112, "bilinear", 159),
              ImageCacheKey("d", "train", 116, 112, "bilinear", 159),
              ImageCacheKey("d", "train", 128, 96, "bilinear", 159),
              ImageCacheKey("d", "train", 128, 112, "bicubic", 159),
              ImageCacheKey("d", "train", 128, 112, "bilinear", 128)]
    assert len({k.digest() for k in [base, *others]}) == 7



def test_train_windows_are_never_enlarged(photos, tmp_path):
    data = DogImages.scan(photos, splits=("train", "valid"))
    pre = default_preprocessing(112)  # train windows: 159 px (112 * sqrt 2), or a smaller photo's short side
    ds = cached_dataset(data, "train", pre, ImageCache(tmp_path / "cache"), train=True)
    assert sorted(set(ds.sizes)) == [117, 120, 159]
    assert all(ds[i][0].shape == (3, 112, 112) for i in range(len(ds)))
