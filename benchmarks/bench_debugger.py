"""Debugger + profiler overhead: one local training epoch with the smdebug hook (default save
intervals: weights/gradients/biases every 5 train steps, losses every step), the step
recorder and the system sampler, vs the same epoch uninstrumented, vs a bare torch loop.
Runs alternate (ours, baseline, bare, ours, ...) and the median of each is reported.

    .venv/bin/python benchmarks/bench_debugger.py [--quick]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure, median, print_table, save  # noqa: E402

os.environ.setdefault("SMDEBUG_LOG_LEVEL", "error")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer images and rounds (< 60 s)")
    p.add_argument("--freeze", default="head", choices=["head", "layer4", "none"],
                   help="freeze policy (default: head, the training default; none saves every weight)")
    a = p.parse_args(argv)
    per_class, rounds, size = (8, 2, 48) if a.quick else (48, 5, 96)

    import torch
    from torch import nn

    from dogbreed.backends.local.debugger import SystemSampler
    from dogbreed.data.synth import SynthSpec, synthesize
    from dogbreed.rules import config
    from dogbreed.training.data import DogImages
    from dogbreed.training.device import select_precision
    from dogbreed.training.instrumentation import Composite, NullInstrumentation, StepRecorder, load_debugger_hook
    from dogbreed.training.loop import train_one_epoch
    from dogbreed.training.model import ModelConfig, build_model
    from dogbreed.training.presets import ClassificationPresetTrain
    from dogbreed.training.run import make_loader

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-debugger-"))
    # --freeze none writes ~1.6 GB of tensors; registered first, this runs after smdebug's own
    # exit handler (which writes training_job_end.ts into the folder)
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    synthesize(tmp / "data", SynthSpec(classes=5, per_class=per_class, image_size=size, seed=0))
    data = DogImages.scan(tmp / "data", splits=("train",), check_images=False)
    ds = data.dataset("train", ClassificationPresetTrain(crop_size=size))
    loader = make_loader(ds, batch_size=16, shuffle=True, workers=0, seed=0)
    precision = select_precision("cpu", "off", 0)
    cfg = ModelConfig(num_classes=5, arch="resnet18", head="mlp", hidden_units=256, dropout=0.2, freeze=a.freeze,
                      image_size=size, classes=tuple(data.classes))

    def setup():
        model = build_model(cfg, "none")
        return model, nn.CrossEntropyLoss(), torch.optim.Adam([q for q in model.parameters() if q.requires_grad],
                                                              lr=1e-3)

    # ours: the hook from the hook config the local backend writes, + step recorder + sampler
    hook_cfg = tmp / "debughookconfig.json"
    hook_cfg.write_text(json.dumps(config.hook_config(str(tmp / "tensors"), config.collections())))
    m_ours, l_ours, o_ours = setup()
    hook = load_debugger_hook({"SMDEBUG_CONFIG_FILE_PATH": str(hook_cfg)})
    instr = Composite([hook, StepRecorder(tmp / "profiler")])
    instr.attach(m_ours, l_ours)
    m_base, l_base, o_base = setup()

    def epoch_ours():
        sampler = SystemSampler(tmp / "profiler", config.DEFAULT_PROFILER_INTERVAL_MS / 1000)
        sampler.start()
        t = time.perf_counter()
        train_one_epoch(m_ours, loader, l_ours, o_ours, precision, precision.grad_scaler(), instr)
        took = time.perf_counter() - t
        sampler.stop()
        return took

    def epoch_base():
        t = time.perf_counter()
        train_one_epoch(m_base, loader, l_base, o_base, precision, precision.grad_scaler(), NullInstrumentation())
        return time.perf_counter() - t

    m_bare, l_bare, o_bare = setup()

    def epoch_bare():
        m_bare.train()
        t = time.perf_counter()
        for x, y in loader:
            o_bare.zero_grad()
            l_bare(m_bare(x), y).backward()
            o_bare.step()
        return time.perf_counter() - t

    epoch_base(), epoch_ours(), epoch_bare()  # warm-up (allocator, first hook save)
    times = {"ours": [], "base": [], "bare": []}
    for _ in range(rounds):
        times["ours"].append(epoch_ours())
        times["base"].append(epoch_base())
        times["bare"].append(epoch_bare())
    instr.close()
    ours, base, bare = (median(times[k]) for k in ("ours", "base", "bare"))
    steps = len(loader)
    saved = sum(f.stat().st_size for f in (tmp / "tensors").rglob("*") if f.is_file())
    figs = [figure(f"debugger+profiler: train epoch, resnet18 {size}px freeze={a.freeze}, {steps} steps",
                   round(ours, 3), round(base, 3),
                   round(bare, 3), "s", target="overhead <= 10% (ours/baseline <= 1.10)", higher_is_better=False,
                   note=f"overhead {100 * (ours / base - 1):.1f}%; tensors saved {saved / 1e6:.0f} MB")]
    print_table(figs, "debugger + profiler overhead (median of %d alternating rounds)" % rounds)
    print(f"overhead vs uninstrumented epoch: {100 * (ours / base - 1):+.1f}%  "
          f"(tensor data written: {saved / 1e6:.0f} MB)")
    save("debugger", figs, rounds=times)


if __name__ == "__main__":
    main()
