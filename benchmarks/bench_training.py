"""Training throughput: our training script (data loading + bf16/channels_last where the CPU
has it) vs the seed's way (fp32) vs the bare model (forward+backward+step on tensors already
in memory, best precision), same model, batch size and image size, in one run. A second row
compares the data paths: the image cache (default) vs decoding every epoch (--image-cache off).

    .venv/bin/python benchmarks/bench_training.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, figure, median, print_table, run, save  # noqa: E402


def script_images_per_sec(data, arch, size, batch, mixed, epochs, tmp, image_cache="auto") -> float:
    from dogbreed.training import metrics

    out = run([sys.executable, str(ROOT / "scripts" / "train_model.py"), "--data-dir", str(data), "--arch", arch,
               "--weights", "none", "--image-size", str(size), "--freeze", "none", "--batch-size", str(batch),
               "--epochs", str(epochs), "--patience", "0", "--mixed-precision", mixed, "--evaluate-test", "false",
               "--debugger", "false", "--profiler", "false", "--resume", "false",
               "--model-dir", f"{tmp}/m", "--output-data-dir", f"{tmp}/o", "--checkpoint-dir", f"{tmp}/c",
               "--image-cache", image_cache, "--image-cache-dir", f"{tmp}/image-cache"])
    return metrics.parse_lines(out.stdout.splitlines())["images_per_sec"][-1]  # last epoch: warmed up


def bare_images_per_sec(arch, size, batch, steps) -> tuple[float, str]:
    import torch

    from dogbreed.training.device import select_precision
    from dogbreed.training.model import ModelConfig, build_model

    best, label = 0.0, ""
    for mixed in ("off", "auto"):
        precision = select_precision("cpu", mixed)
        model = precision.prepare_model(build_model(ModelConfig(num_classes=5, arch=arch, freeze="none",
                                                                image_size=size))).train()
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        x = precision.prepare_input(torch.randn(batch, 3, size, size))
        y = torch.randint(0, 5, (batch,))
        rates = []
        for i in range(steps + 1):
            t = time.perf_counter()
            with precision.autocast():
                loss = torch.nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:  # first step warms up
                rates.append(batch / (time.perf_counter() - t))
        rate = median(rates)
        if rate > best:
            best, label = rate, precision.describe()
    return best, label


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    arch, size, per_class, batch = ("resnet18", 112, 32, 16) if a.quick else ("resnet50", 224, 16, 16)
    from dogbreed.data.synth import SynthSpec, synthesize

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        synthesize(data, SynthSpec(classes=5, per_class=per_class, image_size=size))
        ours, base, decode = [], [], []
        for _ in range(2):  # alternate: the machine's speed drifts
            ours.append(script_images_per_sec(data, arch, size, batch, "auto", 2, tmp))
            decode.append(script_images_per_sec(data, arch, size, batch, "auto", 2, tmp, image_cache="off"))
            base.append(script_images_per_sec(data, arch, size, batch, "off", 2, tmp))
        bare, bare_label = bare_images_per_sec(arch, size, batch, 3 if a.quick else 5)
    figs = [figure(f"training images/s ({arch}, {size}px, batch {batch})", median(ours), median(base), bare,
                   "img/s", target="ours >> fp32 seed; >= 0.9x bare", note=f"bare = {bare_label}"),
            figure(f"data path: image cache vs decoding every epoch ({arch}, {size}px)", median(ours),
                   median(decode), bare, "img/s", target="ours/bare >= 0.9",
                   note="baseline = --image-cache off (PIL decode + augment per epoch, old default workers)")]
    print_table(figs, "training throughput")
    save("training", figs)


if __name__ == "__main__":
    main()
