"""Backbone feature cache: a frozen backbone's output is computed once, then every trial and
every epoch trains only the head on it.

One cache file per (data fingerprint, split, arch, weights, image size, view, precision,
preprocessing), named by a digest of those inputs, so changing any of them (an image added,
touched or removed; other weights; another crop size or resize) selects a different file: stale features are
never read. Training images get a few augmented views (`train-aug-0..V-1`, each with its
own fixed random crops/flips); epoch e trains on view e mod V, so augmentation keeps its
benefit and a view is only computed when an epoch first needs it. Parallel trials share
the work: a per-file lock lets one compute while the others wait and then read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from dogbreed.training.files import file_lock, load_or_build, torch_save_atomic

ENV_FEATURE_CACHE = "DOGBREED_FEATURE_CACHE"
ENV_FEATURE_THREADS = "DOGBREED_FEATURE_THREADS"
FORMAT_VERSION = 1
# Images per backbone call while filling the cache. No gradients are kept, so this is about
# speed only: on CPU small batches keep activations in cache (ResNet50 bf16 on 2 vCPUs, 224 px,
# augmented views, decoding included, 4 alternating rounds: 70.9 img/s at 8, 63.3 at 16); on a
# GPU big batches fill the device.
FEATURE_BATCH = {"cpu": 8, "cuda": 128}


def feature_batch_size(precision) -> int:
    return FEATURE_BATCH.get(precision.device_type, 64)


def data_fingerprint(root: str | os.PathLike, samples: list[tuple[str, int]]) -> str:
    """Digest of every file's relative path, label, size and mtime: changes when the data does."""
    h = hashlib.sha256()
    root = Path(root)
    for path, label in samples:
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, root)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def weights_id(weights: str | None) -> str:
    """'imagenet' / 'none' as is; a file by path, size and mtime."""
    if not weights or weights in ("none", "imagenet"):
        return weights or "none"
    st = os.stat(weights)
    return f"file:{Path(weights).resolve()}:{st.st_size}:{st.st_mtime_ns}"


@dataclass(frozen=True)
class FeatureKey:
    data: str
    split: str
    arch: str
    weights: str
    image_size: int
    view: str  # "eval" | "train-aug-N"
    precision: str
    preprocessing: str  # presets.Preprocessing.describe(): resize, crop, interpolation, mean, std

    def digest(self) -> str:
        doc = json.dumps({**asdict(self), "format": FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:24]


def default_cache_dir() -> Path:
    """$DOGBREED_FEATURE_CACHE (the local backend's shared cache), else a temp folder: on
    SageMaker each trial has its own instance, and output/ would upload the cache to S3."""
    env = os.environ.get(ENV_FEATURE_CACHE)
    return Path(env) if env else Path(tempfile.gettempdir()) / "dogbreed-feature-cache"


class FeatureCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.hits = self.misses = 0
        self.compute_seconds = 0.0

    def path(self, key: FeatureKey) -> Path:
        return self.root / f"{key.digest()}.pt"

    def _hit(self, key: FeatureKey):
        """(features, labels) stored for `key`, counted as a hit; None if absent or unusable."""
        import torch

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # torn or foreign file: recompute rather than fail the trial
            return None
        if blob.get("key") != asdict(key):
            return None
        self.hits += 1
        return blob["features"], blob["labels"]

    def get(self, key: FeatureKey, compute: Callable[[], tuple]):
        """(features, labels) for `key`, computing and storing them on a miss."""
        def build():
            start = time.perf_counter()
            features, labels = compute()
            self.compute_seconds += time.perf_counter() - start
            self.misses += 1
            torch_save_atomic({"key": asdict(key), "features": features, "labels": labels}, self.path(key))
            return features, labels

        return load_or_build(lambda: self._hit(key), self.root / f".{key.digest()}.lock", build)


class ViewImages:
    """A split's images as one cache file sees them: the eval preset, or training view `seed`,
    whose image i draws its augmentation with torch seeded by (seed * 1_000_003 + i): the same
    view in any loader worker, thread or run. Item i: (float tensor [3, H, W], label), or None
    for an image that cannot be read (a warning; the collate drops it)."""

    def __init__(self, samples: list[tuple[str, int]], preset, seed: int | None = None):
        self.samples, self.preset, self.seed = samples, preset, seed

    def __len__(self):
        return len(self.samples)

    def draw(self, i: int):
        """Image i's augmentation (None for the eval view), from its header; False if unreadable."""
        if self.seed is None:
            return None
        import torch
        from PIL import Image

        path = self.samples[i][0]
        try:
            with Image.open(path) as im:
                width, height = im.size
                if im.getexif().get(ORIENTATION) in TRANSPOSING_ORIENTATIONS:  # load_rgb turns it upright
                    width, height = height, width
        except Exception as exc:
            _skip(path, exc)
            return False
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + i)
            return self.preset.draw(width, height)

    def array(self, i: int, augmentation):
        """(channels-last float32 array [H, W, 3], label) of image i, or None."""
        from dogbreed.training.data import load_rgb

        path, label = self.samples[i]
        if augmentation is False:
            return None
        try:
            img = load_rgb(path)
            return (self.preset.array(img, augmentation) if augmentation else self.preset.array(img)), label
        except Exception as exc:
            _skip(path, exc)
            return None

    def __getitem__(self, i):
        import torch

        item = self.array(i, self.draw(i))
        return None if item is None else (torch.from_numpy(item[0]).permute(2, 0, 1).contiguous(), item[1])


ORIENTATION = 0x0112  # EXIF tag; orientations 5-8 swap width and height
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def _skip(path: str, exc: BaseException) -> None:
    print(f"warning: skipping unreadable image {path}: {exc}", file=sys.stderr)


def build_backbone_model(config, weights: str | None, cache: "FeatureCache | None" = None):
    """The network whose backbone the cache describes (`model.build_model`: deterministic for
    --weights none); its head is fresh, from the trial's own seed.

    With a cache, the backbone's weights are stored next to the features the first time and
    later trials build the network around them (`model.build_model_with_backbone`, fast).
    """
    import torch

    from dogbreed.training.model import BACKBONE_SEED, build_model, build_model_with_backbone

    if cache is None:
        return build_model(config, weights)
    ident = json.dumps({"arch": config.arch, "weights": weights_id(weights), "seed": BACKBONE_SEED,
                        "torch": torch.__version__.split("+")[0], "format": FORMAT_VERSION}, sort_keys=True)
    path = cache.root / f"backbone-{hashlib.sha256(ident.encode()).hexdigest()[:24]}.pt"
    if not path.is_file():
        with file_lock(cache.root / f".{path.name}.lock"):
            if not path.is_file():
                model = build_model(config, weights)
                torch_save_atomic(model.backbone.state_dict(), path)
                return model
    # mmap: the tensors are the page-cached file's pages until written to; a warm trial never
    # runs the backbone, it only saves it with the trained head
    return build_model_with_backbone(config, torch.load(path, map_location="cpu", weights_only=True, mmap=True))


def inference_backbone(backbone, precision):
    """The frozen backbone as it computes features: BatchNorm folded (model.fold_batchnorm), on
    the precision's device, memory format and weight precision (`Precision.prepare_frozen`). The
    model that is saved keeps its own layers."""
    from dogbreed.training.model import fold_batchnorm

    return precision.prepare_frozen(fold_batchnorm(backbone.eval()))


@dataclass(frozen=True)
class BuildProgress:
    """How far the computation of one cache file is: what the trial prints and the tuner reads."""

    what: str  # "train/train-aug-0", "valid/eval"
    done: int  # images
    total: int
    rate: float  # images/s so far
    eta_s: float | None  # seconds left at that rate

    def line(self) -> str:
        eta = f"{self.eta_s:.0f} s" if self.eta_s is not None else "?"
        return f"{PROGRESS_PREFIX} {self.what} {self.done}/{self.total} images, {self.rate:.1f} img/s, ETA {eta}"

    @classmethod
    def parse(cls, line: str) -> "BuildProgress | None":
        m = _PROGRESS_RE.match(line.strip())
        if not m:
            return None
        what, done, total, rate, eta = m.groups()
        return cls(what, int(done), int(total), float(rate), None if eta == "?" else float(eta))


PROGRESS_PREFIX = "feature cache:"
_PROGRESS_RE = re.compile(re.escape(PROGRESS_PREFIX) + r" (\S+) (\d+)/(\d+) images, ([\d.]+) img/s, ETA (\?|[\d.]+)")


class ProgressPrinter:
    """`(done, total)` -> a BuildProgress line on stdout (the trial's log), the first and the last
    batch and at most one every `every_s` seconds in between."""

    def __init__(self, what: str, every_s: float = 2.0, out: Callable[[str], None] | None = None):
        self.what, self.every_s = what, every_s
        self.out = out or (lambda line: print(line, flush=True))
        self.started = time.perf_counter()
        self.last = -every_s

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter() - self.started
        if done < total and now - self.last < self.every_s:
            return
        self.last = now
        rate = done / now if now > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else None
        self.out(BuildProgress(self.what, done, total, rate, eta).line())


def compute_features(backbone, images: ViewImages, precision, *, batch_size: int, workers: int,
                     progress: Callable[[int, int], None] | None = None):
    """Run the frozen backbone over `images` once; unreadable images are dropped.
    `progress(done, total)` after every batch (images, counting dropped ones)."""
    import torch

    from dogbreed.training.device import forward_fills_the_cpu
    from dogbreed.training.fused import cpu_forward

    if forward_fills_the_cpu(precision.device_type):
        batches = _decoded_between_passes(images, batch_size)
    else:
        batches = _loaded_alongside(images, batch_size, workers)
    feats, labels = [], []
    total, done = len(images), 0
    backbone.eval()
    if progress:
        progress(0, total)
    forward = None
    with torch.inference_mode():
        for x, y, n in batches:
            done += n
            if len(y) > 0:
                x = precision.prepare_input(x)
                forward = forward or cpu_forward(backbone, precision, x)
                feats.append(forward(x).detach().to("cpu"))
                labels.append(y)
            if progress:
                progress(done, total)
    dim = getattr(backbone, "feature_dim", None)
    if not feats:
        return torch.empty(0, dim or 0), torch.empty(0, dtype=torch.long)
    return torch.cat(feats), torch.cat(labels)


def _decoded_between_passes(images: ViewImages, batch_size: int):
    """(x, y, images taken) batches for a CPU forward that uses every core: each batch is decoded by
    a thread per core between forward passes, not by a loader process competing with them. x is
    channels_last already. (ResNet50 bf16, 2 vCPUs, 224 px, batch 16, 4 alternating rounds: 63.3 img/s
    with the threads, 61.0 decoding in the forward's own thread.)"""
    import torch

    from dogbreed.training.presets import ClassificationPresetEval

    with ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="decode") as pool:
        for start in range(0, len(images), batch_size):
            index = range(start, min(start + batch_size, len(images)))
            draws = [images.draw(i) for i in index]  # here, in order: the RNG is torch's global one
            items = [item for item in pool.map(images.array, index, draws) if item is not None]
            x = ClassificationPresetEval.batch([a for a, _ in items]) if items else torch.empty(0)
            yield x, torch.tensor([label for _, label in items], dtype=torch.long), len(index)


def _loaded_alongside(images: ViewImages, batch_size: int, workers: int):
    """(x, y, images taken) batches from loader processes that decode while the device computes."""
    from torch.utils.data import DataLoader

    from dogbreed.training.data import collate_skip_none

    loader = DataLoader(images, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate_skip_none)
    total = len(images)
    for k, (x, y) in enumerate(loader):
        yield x, y, min(batch_size, total - k * batch_size)


@contextlib.contextmanager
def all_cores():
    """$DOGBREED_FEATURE_THREADS threads (the local tuner sets it to the machine's cores) for the
    backbone while a cache file is computed. Parallel trials each get a share of the cores
    (OMP_NUM_THREADS), but while one computes a file the others wait on its lock: with 2 trials
    on 2 cores, one core would sit idle."""
    import torch

    before = torch.get_num_threads()
    wanted = os.environ.get(ENV_FEATURE_THREADS, "")
    torch.set_num_threads(max(before, int(wanted) if wanted.isdigit() else 0))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FeatureSource:
    """Features of one dataset for one backbone, by split and view, through a FeatureCache."""

    def __init__(self, cache: FeatureCache, data, config, weights: str | None, backbone, precision, *,
                 batch_size: int = 64, workers: int = 0):
        """`backbone`: the network's frozen backbone; it is prepared for inference
        (`inference_backbone`) only when a feature file has to be computed."""
        self.cache, self.data, self.config, self.weights = cache, data, config, weights
        self.backbone, self.precision = backbone, precision
        self._inference = None
        self.batch_size, self.workers = batch_size, workers
        self._fingerprints: dict[str, str] = {}

    def key(self, split: str, view: str) -> FeatureKey:
        if split not in self._fingerprints:
            self._fingerprints[split] = data_fingerprint(self.data.root, self.data.splits[split].samples)
        return FeatureKey(data=self._fingerprints[split], split=split, arch=self.config.arch,
                          weights=weights_id(self.weights), image_size=self.config.image_size, view=view,
                          precision=self.precision.describe(), preprocessing=self.config.preprocessing.describe())

    def features(self, split: str, view: str = "eval"):
        from dogbreed.training.presets import ClassificationPresetEval, ClassificationPresetTrain

        def compute():
            pre = self.config.preprocessing
            samples = self.data.splits[split].samples
            if view == "eval":
                images = ViewImages(samples, ClassificationPresetEval.from_preprocessing(pre))
            else:
                seed = int(view.rsplit("-", 1)[1]) + 1
                images = ViewImages(samples, ClassificationPresetTrain.from_preprocessing(pre), seed)
            if self._inference is None:
                self._inference = inference_backbone(self.backbone, self.precision)
            with all_cores():
                return compute_features(self._inference, images, self.precision, batch_size=self.batch_size,
                                        workers=self.workers, progress=ProgressPrinter(f"{split}/{view}"))

        return self.cache.get(self.key(split, view), compute)


class EpochViews:
    """An iterable of (features, labels) batches whose k-th pass uses augmented view k mod V,
    so `loop.fit` (which iterates the loader once per epoch) sees a fresh view each epoch."""

    def __init__(self, source: FeatureSource, split: str, views: int, *, batch_size: int, seed: int | None = None):
        self.source, self.split, self.views = source, split, max(1, views)
        self.batch_size, self.seed = batch_size, seed
        self.passes = 0

    def loader(self, view: str, *, shuffle: bool):
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        feats, labels = self.source.features(self.split, view)
        gen = torch.Generator().manual_seed(self.seed + self.passes) if self.seed is not None else None
        return DataLoader(TensorDataset(feats.float(), labels), batch_size=self.batch_size, shuffle=shuffle,
                          generator=gen)

    def __iter__(self):
        view = f"train-aug-{self.passes % self.views}"
        loader = self.loader(view, shuffle=True)
        self.passes += 1
        return iter(loader)
