"""Decoded-image cache for training on images: each image is decoded and resized once, then
every epoch crops, flips and normalises uint8 pixels read from a memory-mapped file.

Geometry, per image: resize the short side to S (PIL, the weights' interpolation, antialiased),
then keep an S x S window of the long side, placed so that its centre C x C crop is the centre
crop of the whole resize (torchvision's rounding of the crop offset). S depends on the split:

- eval splits (valid/test): S = the preprocessing's `resize_size` R, so eval on the cache equals
  `ClassificationPresetEval` exactly: centre crop, then the same float32 normalisation;
- train: S = max(R, C * sqrt(2)), or the photo's own short side if smaller (never enlarged: the
  window then fills the top-left of its S x S slot and its size is stored), so
  RandomResizedCrop(C, scale 0.5-1, ratio 3/4-4/3) + flip on the window resamples the photo's
  pixels once, as decoding each epoch does. (At S = R crops were mostly enlarged twice: measured
  20% less detail than decoding each epoch.) The crops come from the window, not the whole photo:
  a wide photo's far sides are not seen.

One pixel file plus one index file per (data fingerprint, split, R, C, interpolation), named by
a digest of those inputs, like the feature cache: a changed image or preprocessing selects a new
entry. The file is written through a memory map (page cache, not process memory), so a large
dataset does not grow the process; the index (written last) marks it complete, and a lock lets
one process build it while the others (DDP ranks, parallel jobs) wait and read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from dogbreed.training.features import data_fingerprint
from dogbreed.training.files import load_or_build
from dogbreed.training.presets import ClassificationPresetTrain, Preprocessing

ENV_IMAGE_CACHE = "DOGBREED_IMAGE_CACHE"
FORMAT_VERSION = 1
PROGRESS_EVERY_S = 10.0  # a progress line at most this often while building
TRAIN_SCALE, TRAIN_RATIO = ClassificationPresetTrain.SCALE, ClassificationPresetTrain.RATIO  # the same crops


def default_cache_dir() -> Path:
    """$DOGBREED_IMAGE_CACHE, else a temp folder (on SageMaker: inside the container, built on
    the job's first epoch and gone with it; output/ or checkpoints/ would upload it to S3)."""
    env = os.environ.get(ENV_IMAGE_CACHE)
    return Path(env) if env else Path(tempfile.gettempdir()) / "dogbreed-image-cache"


def stored_size(pre: Preprocessing, *, train: bool) -> int:
    """S above: the eval resize, or for training big enough that crops of half the area still
    have C pixels a side."""
    return max(pre.resize_size, math.ceil(pre.crop_size * math.sqrt(2))) if train else pre.resize_size


@dataclass(frozen=True)
class ImageCacheKey:
    data: str  # features.data_fingerprint of the split's samples
    split: str
    resize_size: int
    crop_size: int
    interpolation: str
    stored_size: int

    def digest(self) -> str:
        doc = json.dumps({**asdict(self), "format": FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:24]


def window_offset(length: int, resize: int, crop: int) -> int:
    """Start of the R-long window on a resized side of `length` whose centre crop is the served one."""
    served = int(round((length - crop) / 2.0))  # torchvision's center_crop offset
    inner = int(round((resize - crop) / 2.0))
    return min(max(served - inner, 0), length - resize)


def cached_pixels(img, pre: Preprocessing, size: int, *, enlarge: bool = True):
    """RGB PIL image -> uint8 array [s, s, 3]: the short side resized to s = S, then the window
    (at S = R: the resize the endpoint applies). Without `enlarge`, s = min(S, short side)."""
    import numpy as np
    import torchvision.transforms.functional as F

    size = size if enlarge else min(size, *img.size)
    resized = F.resize(img, size, interpolation=pre.interpolation_mode(), antialias=True)
    w, h = resized.size
    r, c = size, pre.crop_size
    left, top = window_offset(w, r, c), window_offset(h, r, c)
    return np.asarray(resized.crop((left, top, left + r, top + r)), dtype=np.uint8)


class _Decode:
    """Dataset of cache rows, so the build can use DataLoader workers: (index, pixels or None)."""

    def __init__(self, samples, pre: Preprocessing, size: int, enlarge: bool):
        self.samples, self.pre, self.size, self.enlarge = samples, pre, size, enlarge

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        from dogbreed.training.data import load_rgb

        path = self.samples[i][0]
        try:
            return i, cached_pixels(load_rgb(path), self.pre, self.size, enlarge=self.enlarge)
        except Exception as exc:
            print(f"warning: skipping unreadable image {path}: {exc}", file=sys.stderr)
            return i, None


def _as_is(item):
    return item


class Progress:
    """`image cache: train 1200/6680 (180/s, ETA 30 s)` at most every `every_s`, and at the end."""

    def __init__(self, label: str, total: int, log: Callable[[str], None], every_s: float = PROGRESS_EVERY_S):
        self.label, self.total, self.log, self.every_s = label, total, log, every_s
        self.start = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if done < self.total and now - self.last < self.every_s:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate else math.inf
        tail = f"ETA {eta:.0f} s" if done < self.total else f"done in {now - self.start:.1f} s"
        self.log(f"{self.label} {done}/{self.total} images ({rate:.0f}/s, {tail})")


class ImageCache:
    def __init__(self, root: str | os.PathLike, log: Callable[[str], None] = print):
        self.root, self.log = Path(root), log

    def paths(self, key: ImageCacheKey) -> tuple[Path, Path]:
        stem = self.root / f"images-{key.digest()}"
        return stem.with_suffix(".u8"), stem.with_suffix(".json")

    def _load(self, key: ImageCacheKey) -> dict | None:
        pixels, index = self.paths(key)
        try:
            doc = json.loads(index.read_text())
        except (OSError, ValueError):
            return None
        if doc.get("key") != asdict(key) or not pixels.is_file():
            return None
        return {**doc, "pixels": str(pixels)}

    def get(self, key: ImageCacheKey, samples, pre: Preprocessing, *, workers: int = 0) -> dict | None:
        """The entry for `key` (built on a miss): {"pixels": path, "n", "size", "ok": [bool]}.
        None when the disk lacks room for it: the caller decodes every epoch instead."""
        def build():
            need = len(samples) * key.stored_size * key.stored_size * 3
            free = shutil.disk_usage(self.root).free
            if need > free * 0.9:
                self.log(f"image cache: {key.split} needs {need / 1e9:.2f} GB, {self.root} has {free / 1e9:.2f} GB "
                         "free: decoding every epoch instead (set --image-cache-dir to a larger disk)")
                return None
            self._build(key, samples, pre, workers)
            return self._load(key)

        return load_or_build(lambda: self._load(key), self.root / f".images-{key.digest()}.lock", build)

    def _build(self, key: ImageCacheKey, samples, pre: Preprocessing, workers: int) -> None:
        import numpy as np
        import torch
        from torch.utils.data import DataLoader

        pixels, index = self.paths(key)
        r = key.stored_size
        tmp = pixels.with_name(f".{pixels.name}.{os.getpid()}.tmp")
        rows = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(max(len(samples), 1), r, r, 3))
        ok = [False] * len(samples)
        sizes = [0] * len(samples)
        progress = Progress(f"image cache: {key.split}", len(samples), self.log)
        enlarge = key.stored_size == key.resize_size  # eval entries: the served resize, exactly
        # its own generator: the build draws nothing from the global one, so a seeded run trains the
        # same whether it found the cache or built it
        loader = DataLoader(_Decode(samples, pre, r, enlarge), batch_size=None, num_workers=workers, collate_fn=_as_is,
                            generator=torch.Generator())
        try:
            for done, (i, arr) in enumerate(loader, 1):
                if arr is not None:
                    s = arr.shape[0]
                    rows[i, :s, :s] = arr
                    ok[i], sizes[i] = True, s
                progress.update(done)
            rows.flush()
            del rows
            os.replace(tmp, pixels)
        finally:
            tmp.unlink(missing_ok=True)
        doc = {"key": asdict(key), "n": len(samples), "size": r, "ok": ok, "sizes": sizes}
        tmp_index = index.with_name(f".{index.name}.{os.getpid()}.tmp")
        tmp_index.write_text(json.dumps(doc))
        os.replace(tmp_index, index)


class CachedImages:
    """(uint8 tensor [3, C, C], label) from a cache entry: train crops/flips or the eval centre
    crop. The memory map is opened lazily in each process (a DataLoader worker opens its own;
    pickling an open np.memmap would copy the whole array)."""

    def __init__(self, entry: dict, samples, pre: Preprocessing, *, train: bool):
        self.path, self.n, self.size = entry["pixels"], entry["n"], entry["size"]
        self.rows = [i for i, good in enumerate(entry["ok"]) if good]  # unreadable images stay out
        self.sizes = entry["sizes"]  # each window's side (< size: a small photo, not enlarged)
        self.labels = [samples[i][1] for i in range(len(samples))]
        self.targets = [self.labels[i] for i in self.rows]
        self.pre, self.train = pre, train
        self._pixels = None

    def __len__(self):
        return len(self.rows)

    def pixels(self):
        import numpy as np

        if self._pixels is None:
            # copy-on-write: torch wants a writable array; nothing writes, so nothing is copied
            self._pixels = np.memmap(self.path, dtype=np.uint8, mode="c", shape=(max(self.n, 1), self.size,
                                                                                 self.size, 3))
        return self._pixels

    def __getstate__(self):
        return {**self.__dict__, "_pixels": None}

    def __getitem__(self, i):
        import torch
        import torchvision.transforms.functional as F
        from torchvision.transforms import RandomResizedCrop

        row = self.rows[i]
        img = torch.from_numpy(self.pixels()[row]).permute(2, 0, 1)  # a view of the mapped page
        c = self.pre.crop_size
        if not self.train:  # built at S = R: the served centre crop
            top = int(round((self.size - c) / 2.0))
            return img[:, top:top + c, top:top + c].contiguous(), self.labels[row]
        s = self.sizes[row]
        img = img[:, :s, :s]
        top, left, h, w = RandomResizedCrop.get_params(img, TRAIN_SCALE, TRAIN_RATIO)
        out = F.resized_crop(img, top, left, h, w, [c, c], interpolation=self.pre.interpolation_mode(),
                             antialias=True)
        if torch.rand(1).item() < 0.5:
            out = out.flip(-1)
        return out, self.labels[row]


class NormalizingCollate:
    """Stack uint8 images and normalise them as `ClassificationPresetEval.normalize` does (same
    float32 operations in the same order, so cached eval equals the served tensor)."""

    def __init__(self, pre: Preprocessing):
        self.mean, self.std = pre.mean, pre.std

    def __call__(self, batch):
        import torch

        from dogbreed.training.data import collate_skip_none

        x, y = collate_skip_none(batch)
        if not len(y):
            return x, y
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x.float() / 255 - mean) / std, y


def cached_dataset(data, split: str, pre: Preprocessing, cache: ImageCache, *, train: bool, workers: int = 0):
    """The split as a CachedImages (building the cache on a miss), or None without room for it."""
    samples = data.splits[split].samples
    key = ImageCacheKey(data=data_fingerprint(data.root, samples), split=split, resize_size=pre.resize_size,
                        crop_size=pre.crop_size, interpolation=pre.interpolation,
                        stored_size=stored_size(pre, train=train))
    entry = cache.get(key, samples, pre, workers=workers)
    return None if entry is None else CachedImages(entry, samples, pre, train=train)
