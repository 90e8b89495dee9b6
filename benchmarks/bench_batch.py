"""Bulk prediction: `dogbreed batch` (the offline scorer) vs the same folder through a local
endpoint with `dogbreed predict` vs the bare batched forward, side by side in one run.

    .venv/bin/python benchmarks/bench_batch.py [--quick]

- ours: serving.batch.score_folder over a folder of photo-sized JPEGs (reading, decoding and
  preprocessing in a thread pool, forward, top-k, writing JSON Lines; same preprocessing and
  output as the endpoint). Model load is excluded, as on the bare side; the fresh model's first
  forward passes are included (a real run pays them once), so the folder is large enough
  (640 images, 20 batches) that they are not the figure.
- endpoint path: `dogbreed deploy` (a local server) once, then `dogbreed predict FOLDER --json`
  per round, wall time of the whole command (one request per image, as a user would do it).
- ours, warm model: the same pipeline (serving.batch.score_batches) on the model already loaded
  and warmed in this process, which is what a long run converges to (a fresh model's first
  forward passes weigh heavily when the folder holds only a few batches).
- bare model: the trained model as torch runs it (its own layers, bf16 autocast, channels_last),
  forward only, on a batch already decoded and preprocessed in memory (batch = --batch-size).
- bare, as served: the same with the forward ours runs (BatchNorm folded into the convolutions,
  bf16 weights stored once, on CPU the oneDNN-fused graph: handler.model_fn): what is left between
  ours and it is the scoring pipeline's own cost.
Rounds alternate ours / endpoint / bare; the table reports medians and the median per-round
ratio, since this shared machine's speed drifts from minute to minute.
Full: resnet50 --weights none, 224 px, 133 classes, 640 images. --quick: resnet18, 112 px, 64 images.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import free_port, make_images, make_model  # noqa: E402
from common import figure, print_table, save  # noqa: E402


def dogbreed(ws: Path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOGBREED_WORKSPACE=str(ws))
    return subprocess.run([sys.executable, "-m", "dogbreed", *map(str, args)], capture_output=True, text=True,
                          env=env, check=True)


def plain(loaded, model_dir: Path):
    """`loaded` with the trained model's own layers (no BatchNorm folding), same precision, run by
    eager PyTorch (no fused graph)."""
    import dataclasses

    from dogbreed.training.model import load_model

    model = load_model(model_dir).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return dataclasses.replace(loaded, model=loaded.precision.prepare_model(model), forward=None)


def bare_rate(loaded, batch: list[bytes], seconds: float) -> float:
    from dogbreed.serving import handler

    x = handler.preprocess([handler.decode_image(b) for b in batch], loaded.transform)
    handler.predict_fn(x, loaded)  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        handler.predict_fn(x, loaded)
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="resnet18 at 112 px, 64 images")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--images", type=int, default=None, help="images in the folder (default: 640, quick: 64)")
    p.add_argument("--batch-size", type=int, default=None, help="default: dogbreed batch's (by device)")
    a = p.parse_args(argv)
    arch, size = ("resnet18", 112) if a.quick else ("resnet50", 224)
    n = a.images or (64 if a.quick else 640)
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    ws = tmp / "ws"
    deployed = False
    try:
        from dogbreed.serving import handler
        from dogbreed.serving.batch import score_batches, score_folder

        model_dir = make_model(tmp, arch, size)
        images = make_images(n)
        folder = tmp / "photos"
        folder.mkdir()
        for i, data in enumerate(images):
            (folder / f"dog_{i:05d}.jpg").write_bytes(data)
        files = sorted(folder.iterdir())
        from dogbreed.serving.limits import default_batch_size

        loaded = handler.model_fn(str(model_dir))
        unfolded = plain(loaded, model_dir)
        a.batch_size = a.batch_size or default_batch_size(loaded.precision.device_type)
        print(f"{arch} {size}px 133 classes, {n} images of 400x300, batch {a.batch_size}, {os.cpu_count()} CPUs; "
              f"model on {loaded.precision.describe()}", flush=True)
        dogbreed(ws, "deploy", "--model-data", model_dir, "--name", "bench-batch", "--port", free_port())
        deployed = True
        dogbreed(ws, "predict", folder / "dog_00000.jpg")  # warm-up
        rows = []
        for r in range(a.rounds):
            out = tmp / f"round{r}.jsonl"
            ours = score_folder(model_dir, folder, out, batch_size=a.batch_size)
            assert ours["scored"] == n, ours
            ours_rate = n / ours["seconds"]
            t = time.perf_counter()
            dogbreed(ws, "predict", folder, "--json")
            endpoint_rate = n / (time.perf_counter() - t)
            bare = bare_rate(unfolded, (images * a.batch_size)[:a.batch_size], ours["seconds"])
            served = bare_rate(loaded, (images * a.batch_size)[:a.batch_size], ours["seconds"])
            t = time.perf_counter()
            assert sum(len(batch) for batch in score_batches(loaded, files, folder, batch_size=a.batch_size)) == n
            warm = n / (time.perf_counter() - t)
            rows.append((ours_rate, endpoint_rate, bare, warm, os.getloadavg()[0], served))
            print(f"round {r + 1}: ours {ours_rate:.1f} img/s ({ours_rate / bare:.3f}x bare model, "
                  f"{ours_rate / served:.3f}x bare as served), endpoint+predict {endpoint_rate:.1f}, bare model "
                  f"{bare:.1f}, bare as served {served:.1f}, ours with the warm model {warm:.1f} "
                  f"({warm / bare:.3f}x); load {rows[-1][4]:.1f}", flush=True)
        med = statistics.median
        ours_m, endpoint_m, bare_m, warm_m = (med(r[i] for r in rows) for i in range(4))
        served_m = med(r[5] for r in rows)
        figures = [
            figure("batch scoring vs bare model's batched forward", ours_m, None, bare_m, "img/s",
                   target=">= 0.9x bare",
                   note=f"median per-round ratio {med(r[0] / r[2] for r in rows):.3f} (rounds: "
                        f"{', '.join(f'{r[0] / r[2]:.3f}' for r in rows)}); {arch} {size}px, {n} images"),
            figure("batch scoring vs bare forward as served (BatchNorm folded, oneDNN-fused)", ours_m, None, served_m,
                   "img/s",
                   note=f"median per-round ratio {med(r[0] / r[5] for r in rows):.3f}: the pipeline's own cost"),
            figure("batch scoring pipeline, warm model, vs bare batched forward", warm_m, None, bare_m, "img/s",
                   target=">= 0.9x bare", note=f"median per-round ratio {med(r[3] / r[2] for r in rows):.3f}"),
            figure("batch scoring vs the same folder through the local endpoint (predict)", ours_m, endpoint_m,
                   None, "img/s", target="far ahead",
                   note=f"median per-round ratio {med(r[0] / r[1] for r in rows):.2f}x"),
        ]
        print_table(figures, "bulk prediction")
        save("batch", figures, arch=arch, image_size=size, images=n, batch_size=a.batch_size,
             precision=loaded.precision.describe(), rounds=[list(r) for r in rows],
             per_image_s={"batch_scoring": 1 / ours_m, "endpoint_predict": 1 / endpoint_m, "bare_forward": 1 / bare_m,
                          "bare_forward_as_served": 1 / served_m})
    finally:
        if deployed:
            dogbreed(ws, "undeploy")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
