"""An offline sample dataset in the dogImages layout, generated in seconds.

Each class gets its own visual signature a CNN can learn but a single pixel cannot give
away: a shape (disc, square, triangle, stripes...) in a class colour on a textured
background, with random position, size, rotation, brightness and noise per image.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

from dogbreed.errors import DataError

BREEDS = [
    "Affenpinscher", "Afghan_hound", "Airedale_terrier", "Akita", "Alaskan_malamute",
    "American_eskimo_dog", "American_foxhound", "American_staffordshire_terrier",
    "American_water_spaniel", "Anatolian_shepherd_dog", "Australian_cattle_dog",
    "Australian_shepherd", "Australian_terrier", "Basenji", "Basset_hound", "Beagle",
    "Bearded_collie", "Beauceron", "Bedlington_terrier", "Belgian_malinois",
]
SHAPES = ("disc", "square", "triangle", "hstripes", "vstripes", "cross", "ring", "diamond")


@dataclass(frozen=True)
class SynthSpec:
    classes: int = 5
    per_class: int = 24  # training images per class; valid and test get a quarter each
    image_size: int = 64
    seed: int = 0

    def split_counts(self) -> dict[str, int]:
        other = max(2, self.per_class // 4)
        return {"train": self.per_class, "valid": other, "test": other}


def class_name(i: int) -> str:
    breed = BREEDS[i % len(BREEDS)] + ("" if i < len(BREEDS) else f"_{i // len(BREEDS) + 1}")
    return f"{i + 1:03d}.{breed}"


def _class_style(i: int):
    hue = (i * 0.61803398875) % 1.0
    import colorsys

    rgb = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.75, 0.9))
    return SHAPES[i % len(SHAPES)], rgb, (i // len(SHAPES)) % 3


def _draw(i: int, size: int, rng: random.Random):
    from PIL import Image, ImageDraw, ImageFilter

    shape, color, variant = _class_style(i)
    bg = tuple(rng.randint(60, 190) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    for _ in range(6):  # background clutter shared by all classes
        x, y = rng.randint(0, size), rng.randint(0, size)
        r = rng.randint(size // 16, size // 6)
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randint(40, 220) for _ in range(3)))
    s = rng.uniform(0.28, 0.42) * size
    cx, cy = rng.uniform(s, size - s), rng.uniform(s, size - s)
    jitter = rng.uniform(0.8, 1.15)
    col = tuple(max(0, min(255, int(c * jitter))) for c in color)
    width = max(2, int(size / 14) + variant * 2)
    if shape == "disc":
        d.ellipse([cx - s, cy - s, cx + s, cy + s], fill=col)
    elif shape == "ring":
        d.ellipse([cx - s, cy - s, cx + s, cy + s], outline=col, width=width * 2)
    elif shape in ("square", "diamond", "triangle", "cross"):
        a = rng.uniform(-0.4, 0.4) + (math.pi / 4 if shape == "diamond" else 0)
        n = 3 if shape == "triangle" else 4
        angles = [a + 2 * math.pi * k / n for k in range(n)]
        pts = [(cx + s * math.cos(t), cy + s * math.sin(t)) for t in angles]
        if shape == "cross":
            d.line([pts[0], pts[2]], fill=col, width=width * 2)
            d.line([pts[1], pts[3]], fill=col, width=width * 2)
        else:
            d.polygon(pts, fill=col)
    else:
        step = max(4, int(size / (6 + variant)))
        off = rng.randint(0, step)
        for k in range(-1, size // step + 1):
            p = k * step + off
            if shape == "hstripes":
                d.line([(0, p), (size, p)], fill=col, width=width)
            else:
                d.line([(p, 0), (p, size)], fill=col, width=width)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))
    # noise from our own seeded RNG (Image.effect_noise is not reproducible)
    noise = Image.frombytes("L", (size, size), rng.randbytes(size * size)).convert("RGB")
    return Image.blend(img, noise, rng.uniform(0.06, 0.15))


def synthesize(out: str | Path, spec: SynthSpec = SynthSpec(), progress=None) -> dict[str, int]:
    """Write `out/{train,valid,test}/NNN.Breed/*.jpg`; returns images per split."""
    if spec.classes < 2:
        raise DataError(f"--classes must be at least 2, got {spec.classes}")
    if spec.per_class < 1:
        raise DataError(f"--per-class must be at least 1, got {spec.per_class}")
    if not 16 <= spec.image_size <= 1024:
        raise DataError(f"--image-size must be between 16 and 1024, got {spec.image_size}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "train").is_dir():
        raise DataError(f"{out} exists and is not a dogbreed dataset; choose an empty or new folder")
    rng = random.Random(spec.seed)
    counts = {}
    for split, n in spec.split_counts().items():
        for c in range(spec.classes):
            folder = out / split / class_name(c)
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                _draw(c, spec.image_size, rng).save(folder / f"{class_name(c).split('.')[1]}_{k:05d}.jpg", quality=90)
            if progress:
                progress(n)
        counts[split] = n * spec.classes
    return counts
