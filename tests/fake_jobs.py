"""A training job folder as a finished job leaves it (metrics.json, profiler files), written
without training, for report tests at dogImages' scale: classes come from a dataset generated
by `dogbreed data synth`, the confusion matrix from a rule stated here."""

from __future__ import annotations

import json
from pathlib import Path

from dogbreed.data.synth import SynthSpec, synthesize

TEST_IMAGES = 4  # per breed


def synth_classes(root: Path, classes: int) -> list[str]:
    """Class folder names of a generated dataset (tiny images: only the names are used)."""
    synthesize(root, SynthSpec(classes=classes, per_class=1, image_size=16, seed=0))
    return sorted(p.name for p in (root / "test").iterdir())


def confusion(n: int) -> list[list[int]]:
    """Breed i is right on 4 - (i % 4) of its 4 test images (i % 4 = 0: all right), the misses
    going to breed i + 1; except breed 7, all 4 of whose images are taken for breed 0 (the most
    confused pair, and the worst breed)."""
    m = [[0] * n for _ in range(n)]
    for i in range(n):
        miss = TEST_IMAGES if i == 7 else i % TEST_IMAGES
        m[i][i] = TEST_IMAGES - miss
        if miss:
            m[i][0 if i == 7 else (i + 1) % n] += miss
    return m


def fake_training_job(root: Path, classes: list[str], *, snapshots: int = 40) -> Path:
    """`root` laid out like a job folder: output/data/metrics.json and output/profiler/ (CPU at 100%)."""
    m = confusion(len(classes))
    correct = sum(m[i][i] for i in range(len(m)))
    total = TEST_IMAGES * len(m)
    test = {"loss": 1.5, "top1": correct / total, "top5": 0.9, "n": total, "confusion_matrix": m, "classes": classes,
            "per_breed_accuracy": {c: m[i][i] / TEST_IMAGES for i, c in enumerate(classes)}}
    metrics = {"best_epoch": 2, "best_valid_loss": 1.2, "seconds": 60.0, "test": test,
               "history": [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.3 * e, "valid_loss": 1.8 / e,
                            "valid_acc": 0.25 * e} for e in (1, 2)]}
    data = root / "output" / "data"
    data.mkdir(parents=True)
    (data / "metrics.json").write_text(json.dumps(metrics))
    system = root / "output" / "profiler" / "system" / "incremental" / "2026010100"
    system.mkdir(parents=True)
    rows = []
    for k in range(snapshots):
        t = 1_800_000_000.0 + k
        rows += [{"Type": "cpu", "Name": f"cpu{c}", "Dimension": "CPUUtilization", "Value": 100.0, "NodeId": "algo-1",
                  "Timestamp": t} for c in range(2)]
        rows += [{"Type": "cpu", "Name": "cpu", "Dimension": "I/OWaitPercentage", "Value": 0.0, "NodeId": "algo-1",
                  "Timestamp": t},
                 {"Type": "memory", "Name": "memory", "Dimension": "MemoryUsedPercent", "Value": 35.0,
                  "NodeId": "algo-1", "Timestamp": t}]
    (system / "1800000000.algo-1.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    steps = root / "output" / "profiler" / "dogbreed"
    steps.mkdir(parents=True)
    (steps / "steps.jsonl").write_text("".join(
        json.dumps({"step": s, "t": 1_800_000_000.0 + s, "step_s": 0.5, "data_wait_s": 0.01, "batch_size": 16}) + "\n"
        for s in range(12)))
    return root
