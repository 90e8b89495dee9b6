"""GPU check: AMP training with the debugger hook, the feature cache and the endpoint, each through
the real `dogbreed` CLI on generated data, with their figures next to the bare model on the same device.

    benchmarks/gpu_check.sh                 # on a CUDA machine (< 8 min on an H200)
    benchmarks/gpu_check.sh --device cpu    # dry run of every step on the CPU, tiny sizes

Steps (each one `dogbreed` command, its figure read from what the command reports):
1. `dogbreed train --freeze none` (resnet50, 224 px, AMP on CUDA, smdebug hook + profiler on):
   images/s from the job's metrics vs a bare forward+backward on in-memory tensors, same batch
   and precision.
2. `dogbreed tune --freeze head --max-jobs 1 -H epochs=1`: its trial builds the feature cache of
   train/ (one view) and valid/ (the trial's log says how long); images/s vs a bare backbone
   forward on in-memory tensors at the cache's batch size.
3. `dogbreed deploy` (local) + concurrent clients posting JPEGs: images/s vs the bare batched
   forward of the same model (same batch size and precision), then `dogbreed undeploy`.
Prints one table with the GPU's name (torch.cuda.get_device_name) and writes
benchmarks/out/gpu_check.json.

Exit status: 0 measured; 3 no CUDA device visible (one line says so, nothing measured; `--device
cpu` runs the dry run instead); 1 a step failed (its command and output are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

NO_CUDA = 3


@dataclass(frozen=True)
class Sizes:
    arch: str
    image_size: int
    classes: int
    per_class: int
    photo_size: int
    batch: int
    epochs: int
    clients: int
    burst_s: float
    rounds: int


SIZES = {
    "cuda": Sizes("resnet50", 224, 10, 64, 256, 64, 2, 32, 5.0, 3),
    "cpu": Sizes("resnet18", 64, 3, 8, 80, 8, 1, 4, 1.0, 2),  # dry run: every step, tiny
}


class StepFailed(Exception):
    pass


class Cli:
    """`python -m dogbreed` in a scratch workspace; the CPU dry run hides any GPU from the jobs."""

    def __init__(self, ws: Path, device: str):
        self.env = dict(os.environ, DOGBREED_WORKSPACE=str(ws))
        if device == "cpu":
            self.env["CUDA_VISIBLE_DEVICES"] = ""

    def __call__(self, *args, timeout: float = 420) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "dogbreed", *map(str, args)]
        print(f"$ dogbreed {' '.join(map(str, args))}", flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout)
        if r.returncode != 0:
            raise StepFailed(f"`dogbreed {' '.join(map(str, args))}` exited {r.returncode}:\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r


def device_line(device: str) -> str | None:
    """The device's name, or None when CUDA was asked for and torch sees none."""
    import torch

    if device == "cpu":
        return f"CPU dry run ({machine()}), torch {torch.__version__}"
    if not torch.cuda.is_available():
        return None
    return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(fn, images_per_call: int, seconds: float, device: str) -> float:
    """Images/s of `fn` after two warm-up calls, timed until `seconds` have passed."""
    fn()
    fn()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += images_per_call
    sync(device)
    return n / (time.perf_counter() - t0)


def bare_training(s: Sizes, classes: int, seconds: float) -> float:
    """Forward+backward+step on in-memory tensors, the precision a training job picks on this device."""
    import torch

    from dogbreed.training.device import select_precision
    from dogbreed.training.model import ModelConfig, build_model

    p = select_precision()
    model = p.prepare_model(build_model(ModelConfig(num_classes=classes, arch=s.arch, image_size=s.image_size,
                                                    freeze="none")).train())
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = p.grad_scaler()
    x = p.prepare_input(torch.randn(s.batch, 3, s.image_size, s.image_size))
    y = torch.randint(0, classes, (s.batch,), device=p.device)

    def step():
        opt.zero_grad(set_to_none=True)
        with p.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return rate(step, s.batch, seconds, p.device)


def bare_backbone(s: Sizes, seconds: float) -> float:
    """The frozen backbone's forward on in-memory tensors (what the feature cache computes per image)."""
    import torch

    from dogbreed.training.device import select_precision
    from dogbreed.training.model import ModelConfig, build_model

    from dogbreed.training.features import feature_batch_size

    p = select_precision()
    backbone = p.prepare_model(build_model(ModelConfig(num_classes=2, arch=s.arch,
                                                       image_size=s.image_size)).backbone.eval())
    batch = feature_batch_size(p)
    x = p.prepare_input(torch.randn(batch, 3, s.image_size, s.image_size))

    def forward():
        with torch.inference_mode(), p.autocast():
            backbone(x)

    return rate(forward, batch, seconds, p.device)


def features_seconds(log: str) -> float:
    m = re.search(r"features: \d+ cache hit\(s\), \d+ computed in ([\d.]+) s", log)
    if not m:
        raise StepFailed(f"the feature-cache line is missing from the training log:\n{log[-2000:]}")
    return float(m.group(1))


def endpoint_figures(cli: Cli, s: Sizes, model_data: str, tmp: Path) -> dict:
    """Deploy locally, load it with concurrent clients, compare with the bare batched forward."""
    from bench_serving import burst, free_port, make_images

    from dogbreed.serving import handler
    from dogbreed.serving.model_dir import prepare_model_dir

    port = free_port()
    images = make_images(32)
    cli("deploy", "--model-data", model_data, "--name", "gpu-check", "--port", port,
        "--max-batch-size", s.clients)
    try:
        photo = tmp / "dog.jpg"
        photo.write_bytes(images[0])
        answer = json.loads(cli("predict", photo, "--json").stdout)
        loaded = handler.model_fn(str(prepare_model_dir(model_data, tmp / "bare-model")))
        x = handler.preprocess([handler.decode_image(b) for b in (images * s.clients)[:s.clients]], loaded.transform)
        burst(port, images, s.burst_s / 2, s.clients)  # warm-up
        rounds = []
        for _ in range(s.rounds):  # alternate: the machine's speed drifts
            ours, lat, rows = burst(port, images, s.burst_s, s.clients)
            bare = rate(lambda: handler.predict_fn(x, loaded), s.clients, s.burst_s, "cpu")  # predict_fn syncs
            rounds.append({"ours": ours, "bare": bare, "ratio": ours / bare, "p50_ms": statistics.median(lat) * 1000,
                           "mean_rows": statistics.mean(rows)})
        return {"precision": loaded.precision.describe(), "predict_answered": bool(answer), "rounds": rounds}
    finally:
        cli("undeploy")


def run(device: str, keep: Path | None) -> dict:
    s = SIZES[device]
    tmp = keep or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    tmp.mkdir(parents=True, exist_ok=True)
    cli = Cli(tmp / "ws", device)
    data = tmp / "data"
    started = time.perf_counter()
    try:
        cli("data", "synth", "--out", data, "--classes", s.classes, "--per-class", s.per_class,
            "--image-size", s.photo_size)
        common = ["--data", data, "--arch", s.arch, "--weights", "none", "--image-size", s.image_size, "--json"]
        t = time.perf_counter()
        job = json.loads(cli("train", *common, "--freeze", "none", "--epochs", s.epochs,
                             "--batch-size", s.batch).stdout)
        train = {"seconds": time.perf_counter() - t, "images_per_sec": job["metrics"]["images_per_sec"],
                 "gpu_sampled": job["extra"]["profiler"]["system"]["gpu"],
                 "rules": {r["RuleConfigurationName"]: r["RuleEvaluationStatus"] for r in job["extra"]["rules"]}}
        train["bare"] = bare_training(s, s.classes, 3.0)
        tuning = json.loads(cli("tune", *common, "--freeze", "head", "--max-jobs", 1, "--max-parallel-jobs", 1,
                                "-H", "epochs=1").stdout)
        trial_log = cli("logs", tuning["trials"][0]["name"])
        images = sum(1 for split in ("train", "valid") for f in (data / split).rglob("*") if f.is_file())
        cache_s = features_seconds(trial_log.stdout + trial_log.stderr)
        cache = {"seconds": cache_s, "images": images, "images_per_sec": images / cache_s,
                 "bare": bare_backbone(s, 3.0)}
        endpoint = endpoint_figures(cli, s, job["model_data"], tmp)
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"sizes": s.__dict__, "train": train, "feature_cache": cache, "endpoint": endpoint,
            "seconds": time.perf_counter() - started}


def report(name: str, result: dict) -> None:
    s, tr, fc, ep = result["sizes"], result["train"], result["feature_cache"], result["endpoint"]
    ratios = [r["ratio"] for r in ep["rounds"]]
    print(f"\nGPU check on {name} ({s['arch']}, {s['image_size']} px, batch {s['batch']}), "
          f"{result['seconds']:.0f} s in all")
    print(f"  training, AMP + debugger hook + profiler: {tr['images_per_sec']:.1f} img/s (job metric) vs bare "
          f"forward+backward {tr['bare']:.1f} img/s = {tr['images_per_sec'] / tr['bare']:.2f}x; GPU sampled: "
          f"{tr['gpu_sampled']}; rules: {', '.join(f'{k} {v}' for k, v in tr['rules'].items())}")
    print(f"  feature cache: {fc['images']} images in {fc['seconds']:.1f} s = {fc['images_per_sec']:.1f} img/s vs bare "
          f"backbone forward {fc['bare']:.1f} img/s = {fc['images_per_sec'] / fc['bare']:.2f}x")
    print(f"  endpoint, {s['clients']} clients, {ep['precision']}: "
          + "; ".join(f"{r['ours']:.1f} vs bare {r['bare']:.1f} img/s = {r['ratio']:.2f}x "
                      f"(p50 {r['p50_ms']:.0f} ms, {r['mean_rows']:.1f} rows/call)" for r in ep["rounds"])
          + f"; median {statistics.median(ratios):.2f}x")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="exit status: 0 measured, 3 no CUDA device (nothing measured), 1 a step failed")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda: measure (default); cpu: dry run of every step at tiny sizes")
    p.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp folder)")
    a = p.parse_args(argv)
    if a.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # this process's bare figures too (torch is not imported yet)
    name = device_line(a.device)
    if name is None:
        import torch

        print(f"gpu_check: no CUDA device visible to torch {torch.__version__}: nothing measured "
              "(run it on a CUDA machine, or --device cpu for a dry run)")
        return NO_CUDA
    print(f"gpu_check on {name}", flush=True)
    try:
        result = run(a.device, a.keep)
    except (StepFailed, subprocess.TimeoutExpired) as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 1
    report(name, result)
    save("gpu_check", [], device=name, dry_run=a.device == "cpu", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
