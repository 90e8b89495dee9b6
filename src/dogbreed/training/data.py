"""Datasets in the dogImages layout: `<root>/{train,valid,test}/NNN.Breed_name/*.jpg`.

Unreadable or corrupt images are skipped and counted, never a crash: a cheap header check
when the folder is scanned, and a guarded decode in `__getitem__` whose failures the
collate function drops.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dogbreed.errors import DataError

SPLITS = ("train", "valid", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_IMAGE_PIXELS = 89_478_485  # PIL's default bomb limit, stated explicitly


def find_root(path: str | os.PathLike) -> Path:
    """The folder holding train/valid/test: `path` itself or its single subfolder (dogImages/)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"dataset folder {path} does not exist; run `dogbreed data download` or `dogbreed data synth`")
    if (path / "train").is_dir():
        return path
    subdirs = [p for p in path.iterdir() if p.is_dir() and (p / "train").is_dir()]
    if len(subdirs) == 1:
        return subdirs[0]
    raise DataError(f"{path} has no train/ folder; expected {path}/train/NNN.Breed_name/*.jpg (dogImages layout)")


def class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_classes(root: Path, splits=SPLITS) -> list[str]:
    """Class folders, checked to be identical across the splits that exist."""
    present = [s for s in splits if (root / s).is_dir()]
    if "train" not in present:
        raise DataError(f"{root} has no train/ split")
    classes = class_folders(root / "train")
    if len(classes) < 2:
        raise DataError(f"{root}/train has {len(classes)} class folder(s); need at least 2")
    for split in present:
        other = class_folders(root / split)
        if other != classes:
            only_train = sorted(set(classes) - set(other))[:3]
            only_other = sorted(set(other) - set(classes))[:3]
            raise DataError(
                f"{split}/ and train/ have different classes (only in train: {only_train}, "
                f"only in {split}: {only_other}); every split needs the same breed folders"
            )
    return classes


def image_ok(path: Path, full: bool = False) -> bool:
    """PIL can identify the file and its size is sane; with `full`, it also decodes completely
    (catches truncated files, at the cost of a full decode)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            if full and 0 < w * h <= MAX_IMAGE_PIXELS:
                im.load()
            return 0 < w * h <= MAX_IMAGE_PIXELS
    except Exception:
        return False


@dataclass
class SplitScan:
    samples: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def scan_split(split_dir: Path, classes: list[str], check_images: bool | str = True) -> SplitScan:
    """`check_images`: False (extension only), True (header), "full" (decode every image)."""
    scan = SplitScan()
    for idx, cls in enumerate(classes):
        folder = split_dir / cls
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not entry.is_file() or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            readable = not check_images or image_ok(path, full=check_images == "full")
            if path.suffix.lower() not in IMAGE_EXTENSIONS or not readable:
                scan.skipped.append(str(path))
                continue
            scan.samples.append((str(path), idx))
    return scan


def load_rgb(path: str):
    """Decode an image fully, applying EXIF orientation, as RGB."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return im.convert("RGB")


class ImageListDataset:
    """(path, label) pairs -> (tensor, label); a failed decode yields None (dropped by collate)."""

    def __init__(self, samples, transform):
        self.samples = samples
        self.targets = [s[1] for s in samples]
        self.transform = transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        try:
            return self.transform(load_rgb(path)), label
        except Exception as exc:
            print(f"warning: skipping unreadable image {path}: {exc}", file=sys.stderr)
            return None


def collate_skip_none(batch):
    import torch

    batch = [b for b in batch if b is not None]
    if not batch:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    xs, ys = zip(*batch)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long)


@dataclass
class DogImages:
    root: Path
    classes: list[str]
    splits: dict[str, SplitScan]

    @classmethod
    def scan(cls, path: str | os.PathLike, splits=SPLITS, check_images: bool | str = True) -> "DogImages":
        root = find_root(path)
        classes = list_classes(root, splits)
        scans = {s: scan_split(root / s, classes, check_images) for s in splits if (root / s).is_dir()}
        if not scans["train"].samples:
            raise DataError(f"{root}/train has no readable images")
        return cls(root, classes, scans)

    @property
    def skipped(self) -> dict[str, int]:
        return {s: len(scan.skipped) for s, scan in self.splits.items()}

    def dataset(self, split: str, transform):
        if split not in self.splits:
            raise DataError(f"{self.root} has no {split}/ split")
        return ImageListDataset(self.splits[split].samples, transform)
