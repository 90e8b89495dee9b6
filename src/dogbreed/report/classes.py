"""What the test confusion matrix says at any number of breeds (dogImages has 133): the most
confused pairs and per-breed accuracy, worst first. The full matrix is drawn only while its
labels stay readable (`READABLE_CLASSES`). Every breed is labelled `training.model.breed_name`
style ("Afghan hound"), here and in the charts."""

from __future__ import annotations

from dataclasses import dataclass

from dogbreed.training.model import breed_name

READABLE_CLASSES = 30  # above this the matrix's tick labels no longer fit: tables carry it instead
TOP_PAIRS = 20


@dataclass(frozen=True)
class Confusion:
    true: str
    predicted: str
    count: int
    share: float  # of the true breed's test images


@dataclass(frozen=True)
class BreedAccuracy:
    breed: str
    correct: int
    images: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else 0.0


def labels(classes: list[str]) -> list[str]:
    return [breed_name(c) for c in classes]


def confused_pairs(matrix: list[list[int]], classes: list[str], top: int = TOP_PAIRS) -> list[Confusion]:
    """Off-diagonal cells, largest count first (ties: larger share first, then by name)."""
    names = labels(classes)
    pairs = [Confusion(names[i], names[j], n, n / sum(row)) for i, row in enumerate(matrix)
             for j, n in enumerate(row) if i != j and n > 0]
    pairs.sort(key=lambda p: (-p.count, -p.share, p.true, p.predicted))
    return pairs[:top]


def per_breed(matrix: list[list[int]], classes: list[str]) -> list[BreedAccuracy]:
    """Each breed's test accuracy, worst first (ties by name)."""
    rows = [BreedAccuracy(name, row[i], sum(row)) for i, (name, row) in enumerate(zip(labels(classes), matrix))]
    return sorted(rows, key=lambda r: (r.accuracy, r.breed))
