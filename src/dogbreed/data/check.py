"""`dogbreed data check`: layout, classes per split, unreadable files, image sizes.

`dataset_files` is the one definition of the files a dataset holds, shared by `data check` and
`data upload`, and agreeing with training (which opens class folders and images through symlinks):
symbolic links to files and folders are followed and listed; links to nothing and loops are
skipped and listed; hidden files and folders are left out.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from dogbreed.errors import ConfigError, DataError


@dataclass
class DatasetFiles:
    """What `dataset_files` found: (relative POSIX path, path) pairs, and the links on the way."""

    root: Path
    files: list[tuple[str, Path]] = field(default_factory=list)
    followed: list[str] = field(default_factory=list)  # symlinks followed (relative paths)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why)


def dataset_files(root) -> DatasetFiles:
    """Every non-hidden regular file under `root`, through symlinked files and folders, sorted."""
    root = Path(root)
    found = DatasetFiles(root)
    visiting = set()

    def walk(folder: Path, rel: str) -> None:
        real = os.path.realpath(folder)
        if real in visiting:
            found.skipped.append((rel, "symbolic link loop"))
            return
        visiting.add(real)
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            path, sub = Path(entry.path), f"{rel}/{entry.name}" if rel else entry.name
            link = entry.is_symlink()
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError:  # ELOOP
                is_dir = is_file = False
            if link and not (is_dir or is_file):
                found.skipped.append((sub, "symbolic link loop" if os.path.lexists(path) and _loops(path)
                                      else "symbolic link to nothing"))
                continue
            if link:
                found.followed.append(sub)
            if is_dir:
                walk(path, sub)
            elif is_file:
                found.files.append((sub, path))
        visiting.discard(real)

    walk(root, "")
    return found


def _loops(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


@dataclass
class CheckReport:
    root: Path
    classes: list[str]
    images: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    smallest_class: dict[str, tuple[str, int]] = field(default_factory=dict)
    links: DatasetFiles | None = None

    @property
    def ok(self) -> bool:
        return all(self.images.get(s, 0) > 0 for s in ("train", "valid"))

    def lines(self) -> list[str]:
        out = [f"dataset: {self.root}", f"classes: {len(self.classes)} (e.g. {', '.join(self.classes[:3])})"]
        for split, n in self.images.items():
            small = self.smallest_class.get(split)
            out.append(f"{split:>6}: {n} images, {len(self.skipped[split])} unreadable"
                       + (f", smallest class {small[0]} ({small[1]})" if small else ""))
            for path in self.skipped[split][:5]:
                out.append(f"        unreadable: {path}")
        if self.links and self.links.followed:
            shown = ", ".join(self.links.followed[:3]) + (" ..." if len(self.links.followed) > 3 else "")
            out.append(f"symlinks: {len(self.links.followed)} followed ({shown}); training and `data upload` "
                       "use what they point to")
        for rel, why in (self.links.skipped if self.links else [])[:5]:
            out.append(f"skipped: {rel} ({why}); training and `data upload` skip it too")
        if not self.ok:
            out.append("problem: train/ and valid/ both need images")
        return out

    def to_dict(self) -> dict:
        links = self.links or DatasetFiles(self.root)
        return {"root": str(self.root), "classes": self.classes, "images": self.images,
                "skipped": self.skipped, "ok": self.ok, "symlinks_followed": links.followed,
                "links_skipped": [{"path": p, "why": w} for p, w in links.skipped]}


def check_dataset(path) -> CheckReport:
    from collections import Counter

    from dogbreed.training.data import DogImages

    data = DogImages.scan(path, check_images="full")
    report = CheckReport(data.root, data.classes, links=dataset_files(data.root))
    for split, scan in data.splits.items():
        report.images[split] = len(scan.samples)
        report.skipped[split] = scan.skipped
        counts = Counter(label for _, label in scan.samples)
        if counts:
            idx, n = min(((i, counts.get(i, 0)) for i in range(len(data.classes))), key=lambda t: t[1])
            report.smallest_class[split] = (data.classes[idx], n)
    if "valid" not in data.splits:
        raise DataError(f"{data.root} has no valid/ split; tuning and training need train/ and valid/")
    return report


def check_local_data(data: str, cache_dir: Path | None = None) -> None:
    """What `dogbreed data check` checks, before any local trial starts. The check decodes every
    image (half a minute for dogImages), so a pass is remembered under `cache_dir` by the
    data's fingerprint (paths, sizes, mtimes): an unchanged dataset is not decoded again."""
    from dogbreed.training.data import find_root
    from dogbreed.training.features import data_fingerprint

    if data.startswith("s3://"):
        raise ConfigError(f"the local backend reads a local folder, not {data}; pass --data DIR "
                          "or use --backend sagemaker")
    marker = None
    if cache_dir is not None and Path(data).is_dir():
        root = find_root(data)
        files = sorted((str(p), 0) for p in root.rglob("*") if p.is_file())
        marker = cache_dir / f"data-check-{data_fingerprint(root, files)}.ok"
        if marker.is_file():
            return
    try:
        report = check_dataset(data)
    except DataError as exc:
        raise DataError(f"{data} fails `dogbreed data check`: {exc}") from None
    if not report.ok:
        raise DataError(f"{data} fails `dogbreed data check`: train/ and valid/ both need readable images")
    if marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"root": str(report.root), "images": report.images}) + "\n")
