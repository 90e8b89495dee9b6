"""`dogbreed data check`: layout, classes per split, unreadable files, image sizes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dogbreed.errors import ConfigError, DataError


@dataclass
class CheckReport:
    root: Path
    classes: list[str]
    images: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    smallest_class: dict[str, tuple[str, int]] = field(default_factory=dict)

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
        if not self.ok:
            out.append("problem: train/ and valid/ both need images")
        return out

    def to_dict(self) -> dict:
        return {"root": str(self.root), "classes": self.classes, "images": self.images,
                "skipped": self.skipped, "ok": self.ok}


def check_dataset(path) -> CheckReport:
    from collections import Counter

    from dogbreed.training.data import DogImages

    data = DogImages.scan(path, check_images="full")
    report = CheckReport(data.root, data.classes)
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
