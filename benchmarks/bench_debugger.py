"""Debugger + profiler overhead: one local training epoch with the smdebug hook (default
collections: reductions of weights/gradients/biases every 5 train steps, the loss every step),
the step recorder and the system sampler, vs the same epoch uninstrumented, vs a bare torch
loop; with --full, also a hook saving full weight/gradient tensors (the default before #18).
Runs alternate (ours, [full,] baseline, bare, ours, ...) and the median of each is reported,
with the tensor data each hook wrote per epoch.

    .venv/bin/python benchmarks/bench_debugger.py [--quick] [--freeze none] [--arch resnet50]
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


def full_tensor_collections(colls: dict) -> dict:
    """The same collections saving full tensors instead of reductions (the default before #18)."""
    return {name: {k: v for k, v in params.items() if k != "reductions"} for name, params in colls.items()}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def save_sizes(arch: str, colls: dict, tmp: Path) -> dict[str, float]:
    """Bytes one save writes, by mode: a few steps at 32 px (what is saved does not depend on
    the image size); each global step has its own event file."""
    import torch
    import smdebug.pytorch as smd
    from smdebug.core.modes import ModeKeys
    from torch import nn

    from dogbreed.rules import config
    from dogbreed.training.instrumentation import DebuggerHook
    from dogbreed.training.model import ModelConfig, build_model

    tmp.mkdir(parents=True, exist_ok=True)
    cfg_path = tmp / f"sizes-{arch}.json"
    cfg_path.write_text(json.dumps(config.hook_config(str(tmp / f"sizes-{arch}"), colls)))
    model = build_model(ModelConfig(num_classes=5, arch=arch, freeze="none", image_size=32, classes=tuple("abcde")),
                        "none")
    hook, loss_fn = DebuggerHook(smd.Hook.create_from_json_file(str(cfg_path)), ModeKeys), nn.CrossEntropyLoss()
    hook.attach(model, loss_fn)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    hook.set_mode("train")
    for _ in range(2):  # global steps 0 (saved) and 1 (loss only)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    hook.set_mode("eval")
    with torch.no_grad():
        loss_fn(model(x), y)  # global step 2
    hook.close()
    step = {int(f.name[:12]): f.stat().st_size for f in (tmp / f"sizes-{arch}").rglob("*.tfevents")}
    index = sum(f.stat().st_size for f in (tmp / f"sizes-{arch}" / "index").rglob("*.json"))
    return {"train_save": step[0], "train_loss_only": step[1], "eval_save": step[2], "index_all": index}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer images and rounds (< 60 s)")
    p.add_argument("--freeze", default="head", choices=["head", "layer4", "none"],
                   help="freeze policy (default: head, the training default; none saves every weight)")
    p.add_argument("--arch", default="resnet18", help="backbone (default resnet18)")
    p.add_argument("--rounds", type=int, help="alternating rounds (default 5, --quick 2)")
    p.add_argument("--per-class", type=int, help="training images per class, 5 classes (default 48, --quick 8)")
    p.add_argument("--image-size", type=int, help="image size (default 96, --quick 48)")
    p.add_argument("--full", action="store_true",
                   help="also a second hook saving full tensors, side by side (two smdebug hooks in one process)")
    p.add_argument("--sizes", action="store_true", help="only the bytes one save writes, resnet18 and resnet50")
    a = p.parse_args(argv)
    if a.sizes:
        from dogbreed.rules import config

        tmp = Path(tempfile.mkdtemp(prefix="bench-debugger-sizes-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        for arch in ("resnet18", "resnet50"):
            for kind, colls in (("reductions", config.collections()),
                                ("full tensors", full_tensor_collections(config.collections()))):
                print(arch, kind, save_sizes(arch, colls, tmp / kind.replace(" ", "-")), flush=True)
        return
    per_class, rounds, size = (8, 2, 48) if a.quick else (48, 5, 96)
    rounds, per_class, size = a.rounds or rounds, a.per_class or per_class, a.image_size or size
    load_start = os.getloadavg()

    import torch
    from torch import nn

    from dogbreed.backends.local.debugger import SystemSampler
    from dogbreed.data.synth import SynthSpec, synthesize
    from dogbreed.rules import config
    from dogbreed.training.data import DogImages
    from dogbreed.training.device import select_precision
    from dogbreed.training.instrumentation import (Composite, DebuggerHook, NullInstrumentation, StepRecorder,
                                                   load_debugger_hook)
    from dogbreed.training.loop import train_one_epoch
    from dogbreed.training.model import ModelConfig, build_model
    from dogbreed.training.presets import ClassificationPresetTrain
    from dogbreed.training.run import make_loader

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-debugger-"))
    # full tensors at --freeze none are ~1.6 GB; registered first, this runs after smdebug's own
    # exit handler (which writes training_job_end.ts into the folder)
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    synthesize(tmp / "data", SynthSpec(classes=5, per_class=per_class, image_size=size, seed=0))
    data = DogImages.scan(tmp / "data", splits=("train",), check_images=False)
    ds = data.dataset("train", ClassificationPresetTrain(crop_size=size))
    loader = make_loader(ds, batch_size=16, shuffle=True, workers=0, seed=0)
    precision = select_precision("cpu", "off", 0)
    cfg = ModelConfig(num_classes=5, arch=a.arch, head="mlp", hidden_units=256, dropout=0.2, freeze=a.freeze,
                      image_size=size, classes=tuple(data.classes))

    def setup():
        model = build_model(cfg, "none")
        return model, nn.CrossEntropyLoss(), torch.optim.Adam([q for q in model.parameters() if q.requires_grad],
                                                              lr=1e-3)

    def hook_config(name: str, colls: dict) -> Path:
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(config.hook_config(str(tmp / name), colls)))
        return path

    def instrumented(name: str, hook):
        """A model with `hook` + step recorder attached, and a timed epoch that runs the sampler too."""
        model, loss_fn, opt = setup()
        instr = Composite([hook, StepRecorder(tmp / f"{name}-profiler")])
        instr.attach(model, loss_fn)

        def epoch():
            sampler = SystemSampler(tmp / f"{name}-profiler", config.DEFAULT_PROFILER_INTERVAL_MS / 1000)
            sampler.start()
            t, cpu = time.perf_counter(), time.process_time()
            train_one_epoch(model, loader, loss_fn, opt, precision, precision.grad_scaler(), instr)
            took = time.perf_counter() - t, time.process_time() - cpu
            sampler.stop()
            return took

        return instr, epoch

    # ours: the hook from the hook config the local backend writes (what a job's script loads)
    instr_ours, epoch_ours = instrumented(
        "tensors", load_debugger_hook({"SMDEBUG_CONFIG_FILE_PATH": str(hook_config("tensors", config.collections()))}))
    variants = {"ours": epoch_ours}
    instrs = [instr_ours]
    if a.full:  # a second hook object (smdebug's get_hook returns the first one)
        import smdebug.pytorch as smd
        from smdebug.core.modes import ModeKeys

        full_cfg = hook_config("full", full_tensor_collections(config.collections()))
        instr_full, variants["full"] = instrumented("full", DebuggerHook(smd.Hook.create_from_json_file(
            str(full_cfg)), ModeKeys))
        instrs.append(instr_full)
    m_base, l_base, o_base = setup()

    def epoch_base():
        t, cpu = time.perf_counter(), time.process_time()
        train_one_epoch(m_base, loader, l_base, o_base, precision, precision.grad_scaler(), NullInstrumentation())
        return time.perf_counter() - t, time.process_time() - cpu

    m_bare, l_bare, o_bare = setup()

    def epoch_bare():
        m_bare.train()
        t, cpu = time.perf_counter(), time.process_time()
        for x, y in loader:
            o_bare.zero_grad()
            l_bare(m_bare(x), y).backward()
            o_bare.step()
        return time.perf_counter() - t, time.process_time() - cpu

    variants.update(base=epoch_base, bare=epoch_bare)
    for run in variants.values():  # warm-up (allocator, first hook save)
        run()
    times = {k: [] for k in variants}
    for _ in range(rounds):
        for k, run in variants.items():
            times[k].append(run())
    for instr in instrs:
        instr.close()
    # wall time, and the CPU time of the whole process (every thread: the hook's writer, the
    # sampler), which a busy machine disturbs less
    med = {k: median([w for w, _ in v]) for k, v in times.items()}
    cpu = {k: median([c for _, c in v]) for k, v in times.items()}
    steps, epochs = len(loader), rounds + 1
    load = f"load average {load_start[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    mb = {k: folder_bytes(tmp / folder) / epochs / 1e6 for k, folder in (("ours", "tensors"), ("full", "full"))
          if (tmp / folder).is_dir()}
    what = f"train epoch, {a.arch} {size}px freeze={a.freeze}, {steps} steps of 16"
    figs = [figure(f"debugger+profiler: {what}", round(med["ours"], 3), round(med["base"], 3), round(med["bare"], 3),
                   "s", target="overhead <= 10% (ours/baseline <= 1.10)", higher_is_better=False,
                   note=f"overhead {100 * (med['ours'] / med['base'] - 1):.1f}%; tensor data {mb['ours']:.2f} MB per "
                        f"epoch; {load}")]
    figs.append(figure(f"debugger+profiler, CPU time: {what}", round(cpu["ours"], 3), round(cpu["base"], 3),
                       round(cpu["bare"], 3), "cpu-s", target="overhead <= 10% (ours/baseline <= 1.10)",
                       higher_is_better=False,
                       note=f"overhead {100 * (cpu['ours'] / cpu['base'] - 1):.1f}% of CPU time; {load}"))
    if "full" in med:
        figs.append(figure(f"same, full weight/gradient tensors (the default before #18): {what}",
                           round(med["full"], 3), round(med["base"], 3), round(med["bare"], 3), "s",
                           target="for comparison", higher_is_better=False,
                           note=f"overhead {100 * (med['full'] / med['base'] - 1):.1f}%; tensor data "
                                f"{mb['full']:.0f} MB per epoch; CPU time overhead "
                                f"{100 * (cpu['full'] / cpu['base'] - 1):.1f}%; {load}"))
    print_table(figs, "debugger + profiler overhead (median of %d alternating rounds)" % rounds)
    for f in figs:
        print(f"{f['name']}: {f['note']}")
    save("debugger", figs, rounds=times, mb_per_epoch=mb)


if __name__ == "__main__":
    main()
