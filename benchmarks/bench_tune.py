"""Tuning with a frozen backbone: 8 local trials through `dogbreed tune` (head-only training on
cached bf16/channels_last backbone features) vs the seed's way (every trial re-runs the
frozen backbone in fp32 each epoch) vs the bare limit (one backbone pass over train/).

Both sides run as real local trials, one at a time, with the same 8 hyperparameter sets: ours
through the tuner (each trial forked from its warm trial workers), the baseline as the seed ran
them (a fresh `python hpo.py` process per trial, fp32, the full network every epoch, no cache).
The naive side is slow by design, so by default only some of its trials run (one per distinct
epoch count) and its 8-trial total is extrapolated from them with a per-trial fit
`start-up + epochs x epoch cost` (marked in the note); `--naive-trials 8` runs all of them.

    .venv/bin/python benchmarks/bench_tune.py            # ~1,000 images, 224 px, resnet50 (many minutes)
    .venv/bin/python benchmarks/bench_tune.py --quick    # 200 images, 64 px, resnet18 (~60 s)

`--quick` is a smoke run of the same measurement: at 64 px a backbone pass takes well under
a second, so start-up and packing dominate both sides and the ratios say little. The targets
apply to the full run.

Also measured, alternating in one run once the cache is warm: a whole trial job forked from the
warm workers vs the same trial as a fresh process (DOGBREED_TRIAL_WORKERS=off).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure, print_table, save  # noqa: E402

TRIALS = 8


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def synth(root: Path, classes: int, per_class: int, image_size: int) -> Path:
    from dogbreed.data.synth import SynthSpec, synthesize

    out = root / "data"
    synthesize(out, SynthSpec(classes=classes, per_class=per_class, image_size=image_size, seed=0))
    return out


def children_cpu() -> float:
    """CPU seconds of finished child processes (the trials): unlike wall time, barely
    affected by other work sharing the machine."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_ours(ws_root: Path, data: Path, static: dict, trials: int = TRIALS, name: str = "bench-ours",
             seed: int = 0) -> tuple[float, float, list]:
    """The real local tuner; returns wall and CPU seconds and the trial job descriptions."""
    from dogbreed.backends.base import TuningSpec
    from dogbreed.backends.local.jobs import LocalJobRunner
    from dogbreed.backends.local.tuning import LocalTuner
    from dogbreed.search_space import build_space
    from dogbreed.workspace import Workspace

    ws = Workspace.resolve(ws_root)
    tuner = LocalTuner(ws)
    space = build_space(static=static, range_args=["lr=0.001:0.05:log"])
    spec = TuningSpec(data=str(data), static_hyperparameters=static, space=space, strategy="random",
                      max_jobs=trials, max_parallel_jobs=1, seed=seed, name=name)
    t, cpu = time.perf_counter(), children_cpu()
    result = tuner.drive(tuner.create(spec))
    wall, cpu = time.perf_counter() - t, children_cpu() - cpu
    runner = LocalJobRunner(ws)
    jobs = [runner.describe(tr.name) for tr in result.trials]
    bad = [j.name for j in jobs if j.status != "Completed"]
    if bad:
        raise SystemExit(f"trials failed: {bad}; see {ws_root}/jobs/*/logs.txt")
    return wall, cpu, jobs


def run_naive(ws_root: Path, data: Path, static: dict, trials: list) -> list[tuple[int, float, float]]:
    """The same hyperparameters, the seed's way: full network, fp32, no cache. (epochs, wall s, CPU s)."""
    from dogbreed.backends.base import TrainingJobSpec
    from dogbreed.backends.local.jobs import LocalJobRunner
    from dogbreed.workspace import Workspace

    runner = LocalJobRunner(Workspace.resolve(ws_root))
    out = []
    for i, hps in enumerate(trials):
        spec = TrainingJobSpec(entry_point="hpo.py", data=str(data), job_name=f"bench-naive-{i}",
                               hyperparameters={**hps, "feature-cache": "off", "mixed-precision": "off"})
        t, cpu = time.perf_counter(), children_cpu()
        desc = runner.run(spec)
        if desc.status != "Completed":
            raise SystemExit(f"naive trial failed: {desc.failure_reason}")
        out.append((int(hps["epochs"]), time.perf_counter() - t, children_cpu() - cpu))
    return out


def warm_vs_fresh(ws_root: Path, data: Path, static: dict, rounds: int = 2, trials: int = 3):
    """Whole trial jobs at warm cache, forked from warm workers vs fresh processes, alternating
    rounds of `trials` each: {mode: (job wall seconds, CPU seconds per trial)}. The forked side's
    CPU includes its server's one-off start (imports, warm-up), spread over the round's trials."""
    from dogbreed.backends.local.trial_workers import ENV_SWITCH

    out: dict[str, tuple[list, list]] = {"on": ([], []), "off": ([], [])}
    for r in range(rounds):
        for mode, (walls, cpus) in out.items():
            os.environ[ENV_SWITCH] = mode
            try:
                _, cpu, jobs = run_ours(ws_root, data, static, trials, name=f"bench-{mode}-{r}", seed=100 + r)
            finally:
                os.environ.pop(ENV_SWITCH, None)
            walls += [j.duration_s for j in jobs]
            cpus.append(cpu / trials)
    return out


def backbone_pass_seconds(data: Path, arch: str, size: int, mixed: str) -> float:
    """One pass of the bare backbone over train/ (decode + preprocess + forward)."""
    import torch
    from torch.utils.data import DataLoader

    from dogbreed.training.data import DogImages, collate_skip_none
    from dogbreed.training.device import select_precision
    from dogbreed.training.features import build_backbone_model
    from dogbreed.training.model import ModelConfig
    from dogbreed.training.presets import ClassificationPresetEval

    d = DogImages.scan(data, splits=("train",))
    precision = select_precision("cpu", mixed)
    model = build_backbone_model(ModelConfig(num_classes=len(d.classes), arch=arch, image_size=size), "none")
    backbone = precision.prepare_model(model.backbone).eval()
    loader = DataLoader(d.dataset("train", ClassificationPresetEval(crop_size=size)), batch_size=64,
                        collate_fn=collate_skip_none)
    t, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode(), precision.autocast():
        for x, _ in loader:
            backbone(precision.prepare_input(x))
    return time.perf_counter() - t, time.process_time() - cpu


def forked_trial_cpu(job_dir: Path, trials: int = 3) -> list[float]:
    """CPU seconds of warm-cache trials forked as the warm trial workers fork them: a helper
    process imports and warms up like the server, then forks the trial `job_dir` ran (its
    argv, environment and folder; outputs to a scratch folder) and reads each child's rusage."""
    out = subprocess.run([sys.executable, __file__, "--forked-trial-cpu", str(job_dir), str(trials)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _forked_trial_cpu_main(job_dir: str, trials: int) -> None:
    import importlib

    from dogbreed import hyperparameters as hp
    from dogbreed.backends.local import trial_workers as tw
    from dogbreed.backends.local.layout import JobLayout

    for module in tw.PRELOAD:
        importlib.import_module(module)
    tw.warm_up()
    layout, desc = JobLayout(Path(job_dir)), json.loads((Path(job_dir) / "job.json").read_text())
    env = {**os.environ, **layout.environment(job_name=desc["name"], entry_point="hpo.py",
                                              user_hps=desc["hyperparameters"],
                                              channels={"training": layout.channel_dir("training")})}
    env.update(desc["extra"].get("env") or {})
    cpu = []
    for i in range(trials):
        with tempfile.TemporaryDirectory(prefix="forked-trial-") as scratch:
            argv = ["hpo.py", *hp.to_cmd_args(hp.decode(hp.encode(desc["hyperparameters"]))),
                    "--model-dir", f"{scratch}/model", "--output-data-dir", f"{scratch}/out",
                    "--checkpoint-dir", f"{scratch}/ckpt"]
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                tw._run_trial({"argv": argv, "cwd": str(layout.code_dir), "env": env}, w)
            os.close(w)
            with os.fdopen(r) as fh:
                fh.read()
            _, status, usage = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"forked trial failed: exit {os.waitstatus_to_exitcode(status)}")
        cpu.append(round(usage.ru_utime + usage.ru_stime, 3))
    print(json.dumps(cpu))


def extrapolate(measured: list[tuple[int, float]], epochs: list[int]) -> float:
    """Fit seconds = a + b * epochs on the measured naive trials; total over `epochs`."""
    by_e: dict[int, list[float]] = {}
    for e, s in measured:
        by_e.setdefault(e, []).append(s)
    means = {e: sum(v) / len(v) for e, v in by_e.items()}
    if len(means) == 1:
        (e0, s0), = means.items()
        return sum(s0 * e / e0 for e in epochs)
    (e1, s1), (e2, s2) = sorted(means.items())[0], sorted(means.items())[-1]
    b = (s2 - s1) / (e2 - e1)
    a = s1 - b * e1
    return sum(a + b * e for e in epochs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="200 images at 64 px with resnet18 (< 60 s)")
    p.add_argument("--naive-trials", type=int, default=0,
                   help="naive trials actually run (default: one per distinct epoch count; 8 = all)")
    p.add_argument("--forked-trial-cpu", nargs=2, metavar=("JOB_DIR", "N"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.forked_trial_cpu:
        return _forked_trial_cpu_main(a.forked_trial_cpu[0], int(a.forked_trial_cpu[1]))
    if a.quick:
        classes, per_class, synth_px, arch, size = 5, 40, 72, "resnet18", 64
    else:
        classes, per_class, synth_px, arch, size = 10, 100, 256, "resnet50", 224

    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        tmp = Path(tmp)
        data = synth(tmp, classes, per_class, synth_px)
        static = {"arch": arch, "weights": "none", "image-size": size, "freeze": "head", "workers": 1,
                  "patience": 0}
        ours_s, ours_cpu, jobs = run_ours(tmp / "ws", data, static)
        trials = [j.hyperparameters for j in jobs]
        epochs = [int(h["epochs"]) for h in trials]
        if a.naive_trials:
            pick = list(range(min(a.naive_trials, TRIALS)))
        else:
            pick = [epochs.index(e) for e in sorted(set(epochs))]
        measured = run_naive(tmp / "ws", data, static, [trials[i] for i in pick])
        wall_runs = [(e, w) for e, w, _ in measured]
        cpu_runs = [(e, c) for e, _, c in measured]
        naive_s = sum(w for _, w in wall_runs) if len(pick) == TRIALS else extrapolate(wall_runs, epochs)
        naive_cpu = sum(c for _, c in cpu_runs) if len(pick) == TRIALS else extrapolate(cpu_runs, epochs)

        # per-trial cost once the cache is warm: the trials that computed no features
        # (in-script seconds, and the whole trial process with python/torch start-up and packing)
        reports = [json.loads((Path(j.location) / "output" / "data" / "metrics.json").read_text()) for j in jobs]
        warm = [(j, m) for j, m in zip(jobs, reports) if m["feature_cache"]["misses"] == 0]
        in_script = [m["seconds"] for _, m in warm]
        process = [j.duration_s for j, _ in warm]
        cache_s = sum(m["feature_cache"]["compute_seconds"] for m in reports)
        both = warm_vs_fresh(tmp / "ws", data, static)
        (forked, forked_cpu), (fresh, fresh_cpu) = both["on"], both["off"]
        trial_cpu = forked_trial_cpu(Path(warm[0][0].location))
        fp32_pass, fp32_cpu = backbone_pass_seconds(data, arch, size, "off")
        bf16_pass, _ = backbone_pass_seconds(data, arch, size, "auto")

    n_train = classes * per_class
    note_naive = ("all 8 naive trials run" if len(pick) == TRIALS else
                  f"naive: {len(pick)} of 8 trials run (epochs {sorted(set(epochs))}), total extrapolated")
    per_trial = sum(in_script) / len(in_script)
    per_process = sum(process) / len(process)
    forked_s, fresh_s = mean(forked), mean(fresh)
    figures = [
        figure(f"{TRIALS} trials wall time ({n_train} imgs {size}px {arch}, frozen)", round(ours_s, 1),
               round(naive_s, 1), None, "s", target=">= 25x", higher_is_better=False, note=note_naive),
        figure(f"{TRIALS} trials CPU time (same runs; robust to a shared machine)", round(ours_cpu, 1),
               round(naive_cpu, 1), None, "cpu-s", target=">= 25x", higher_is_better=False, note=note_naive),
        figure("per-trial cost, cache warm (whole trial job) vs one fp32 backbone pass", round(per_process, 2),
               None, round(fp32_pass, 2), "s", target="<= 1% of a pass", higher_is_better=False,
               note=f"in-script {per_trial:.2f} s ({per_trial / fp32_pass:.2%} of the pass); bf16 pass "
                    f"{bf16_pass:.2f} s; {len(warm)} of {TRIALS} trials were warm; building the cache took "
                    f"{cache_s:.1f} s"),
        figure("warm trial job: forked from warm workers vs a fresh process", round(forked_s, 2),
               round(fresh_s, 2), None, "s", target="start-up gone", higher_is_better=False,
               note=f"{len(forked)} + {len(fresh)} trials at warm cache, alternating rounds"),
        figure("warm trial CPU: forked (server start included) vs a fresh process", round(mean(forked_cpu), 2),
               round(mean(fresh_cpu), 2), None, "cpu-s", target="start-up gone", higher_is_better=False,
               note=f"per trial, rounds of 3: forked {forked_cpu}, fresh {fresh_cpu}"),
        figure("warm-cache trial CPU (forked child, no packing) vs one fp32 backbone pass, CPU", mean(trial_cpu),
               None, round(fp32_cpu, 1), "cpu-s", target="<= 1% of a pass", higher_is_better=False,
               note=f"{len(trial_cpu)} forked trials: {trial_cpu} cpu-s"),
    ]
    figures[-1]["of_bare"] = round(mean(trial_cpu) / fp32_cpu, 4)
    figures[2]["of_bare"] = round(per_process / fp32_pass, 4)
    figures[2]["of_bf16_pass"] = round(per_process / bf16_pass, 4)
    figures[2]["in_script_of_bare"] = round(per_trial / fp32_pass, 4)
    print_table(figures, f"bench_tune ({'quick' if a.quick else 'full'}): ours = cached features, "
                         "baseline = seed-style fp32 full forward every epoch, bare = one backbone pass")
    print(f"   {note_naive}; per-trial (whole job)/fp32 pass = {figures[2]['of_bare']:.2%}, in-script "
          f"{per_trial:.2f} s = {per_trial / fp32_pass:.2%}; {len(warm)} warm trials, cache built in "
          f"{cache_s:.1f} s; warm trial forked {forked_s:.2f} s vs fresh process {fresh_s:.2f} s")
    save("tune", figures, quick=a.quick, trial_epochs=epochs, naive_measured=measured, forked_trials_s=forked,
         fresh_trials_s=fresh, round_cpu_per_trial={"forked": forked_cpu, "fresh": fresh_cpu},
         forked_trial_cpu_s=trial_cpu,
         load_average=[round(x, 2) for x in os.getloadavg()])


if __name__ == "__main__":
    main()
