"""The script-side instrumentation: smdebug hook from the platform's hook config, step
recorder, and training on without smdebug."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
from smdebug.exceptions import TensorUnavailableForStep

from dogbreed.rules import config
from dogbreed.training import instrumentation as I


def args(**kw):
    return types.SimpleNamespace(**{"debugger": True, "profiler": True, **kw})


def test_null_when_nothing_is_configured(tmp_path):
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path)}
    assert type(I.make_instrumentation(args(), env)) is I.NullInstrumentation


def test_step_recorder_writes_one_line_per_step(tmp_path):
    instr = I.make_instrumentation(args(debugger=False), {"DOGBREED_PROFILE_DIR": str(tmp_path / "p")})
    assert isinstance(instr, I.StepRecorder)
    for i in range(3):
        instr.record_step(data_wait_s=0.01 * i, step_s=0.1, batch_size=8)
    instr.close()
    rows = [json.loads(x) for x in (tmp_path / "p" / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2] and rows[2]["data_wait_s"] == 0.02 and rows[0]["batch_size"] == 8


def test_profiler_off_means_no_recorder(tmp_path):
    instr = I.make_instrumentation(args(debugger=False, profiler=False), {"DOGBREED_PROFILE_DIR": str(tmp_path)})
    assert type(instr) is I.NullInstrumentation


HOOK_RUN = """
import json, sys, torch
from torch import nn
from dogbreed.training.instrumentation import make_instrumentation
class A: debugger = True; profiler = True
instr = make_instrumentation(A())
print("KIND", type(instr).__name__, flush=True)
model, loss_fn = nn.Linear(4, 3), nn.CrossEntropyLoss()
instr.attach(model, loss_fn)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for mode, n in (("train", 6), ("eval", 2)):
    instr.set_mode(mode)
    for _ in range(n):
        loss = loss_fn(model(torch.randn(5, 4)), torch.randint(0, 3, (5,)))
        if mode == "train":
            opt.zero_grad(); loss.backward(); opt.step()
            instr.record_step(data_wait_s=0.0, step_s=0.01, batch_size=5)
instr.close()
"""


def test_hook_saves_the_configured_collections_in_a_subprocess(tmp_path):
    cfg = tmp_path / "debughookconfig.json"
    cfg.write_text(json.dumps(config.hook_config(str(tmp_path / "tensors"), config.collections())))
    env = {"SMDEBUG_CONFIG_FILE_PATH": str(cfg), "TRAINING_JOB_NAME": "t", "DOGBREED_PROFILE_DIR": str(tmp_path / "p"),
           "PATH": "/usr/bin:/bin", "SMDEBUG_LOG_LEVEL": "error"}
    out = subprocess.run([sys.executable, "-c", HOOK_RUN], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "KIND Composite" in out.stdout

    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    (tmp_path / "tensors" / "training_job_end.ts").write_text("0")  # what the platform adds
    trial = create_trial(str(tmp_path / "tensors"))
    loss = trial.tensor(trial.tensor_names(collection="losses")[0])
    assert loss.steps(mode=ModeKeys.TRAIN) == list(range(6)) and loss.steps(mode=ModeKeys.EVAL) == [0, 1]
    grads = trial.tensor_names(collection="gradients")
    assert grads and trial.tensor(grads[0]).steps(mode=ModeKeys.TRAIN) == [0, 5]  # every 5 train steps
    assert len((tmp_path / "p" / "steps.jsonl").read_text().splitlines()) == 6
    # parameters as reductions, not full tensors: what VanishingGradient reads is there
    grad = trial.tensor(grads[0])
    assert grad.reduction_value(5, "mean", mode=ModeKeys.TRAIN, abs=True) > 0
    assert {r for r, _ in grad.reduction_values(5, mode=ModeKeys.TRAIN)} == {"mean", "std", "min", "max", "l2"}
    with pytest.raises(TensorUnavailableForStep):
        grad.value(5, mode=ModeKeys.TRAIN)


def test_full_tensors_when_a_collection_asks_for_them(tmp_path):
    """The README's recipe: a collection without reductions saves the full tensors it matches."""
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    colls = config.collections(["full.include_regex=weight$", "full.train.save_interval=3"])
    cfg = tmp_path / "debughookconfig.json"
    cfg.write_text(json.dumps(config.hook_config(str(tmp_path / "tensors"), colls)))
    env = {"SMDEBUG_CONFIG_FILE_PATH": str(cfg), "TRAINING_JOB_NAME": "t", "PATH": "/usr/bin:/bin",
           "SMDEBUG_LOG_LEVEL": "error"}
    out = subprocess.run([sys.executable, "-c", HOOK_RUN], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (tmp_path / "tensors" / "training_job_end.ts").write_text("0")
    trial = create_trial(str(tmp_path / "tensors"))
    weight, grad = trial.tensor("Linear_weight"), trial.tensor("gradient/Linear_weight")
    for t in (weight, grad):
        assert t.value(3, mode=ModeKeys.TRAIN).shape == (3, 4)  # the full collection's step
        with pytest.raises(TensorUnavailableForStep):
            t.value(5, mode=ModeKeys.TRAIN)  # only the reductions of the default collections
        assert t.reduction_value(5, "l2", mode=ModeKeys.TRAIN) > 0


def test_training_goes_on_without_smdebug(tmp_path):
    cfg = tmp_path / "debughookconfig.json"
    cfg.write_text(json.dumps(config.hook_config(str(tmp_path / "tensors"), config.collections())))
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "smdebug.py").write_text("raise ImportError('smdebug removed for this test')\n")
    code = ("import sys; sys.path.insert(0, %r)\n" % str(blocker)) + HOOK_RUN
    env = {"SMDEBUG_CONFIG_FILE_PATH": str(cfg), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "KIND NullInstrumentation" in out.stdout
    assert out.stderr.count("smdebug is not importable") == 1
    assert not (tmp_path / "tensors").exists()


def test_collection_overrides_and_bad_ones():
    from dogbreed.errors import ConfigError

    c = config.collections(["weights.train.save_interval=50", "relu_input.include_regex=.*relu_input"])
    assert c["weights"] == {"train.save_interval": "50", "eval.save_interval": "1", "reductions": config.REDUCTIONS}
    assert c["relu_input"] == {"include_regex": ".*relu_input"}
    with pytest.raises(ConfigError, match="COLLECTION.KEY=VALUE"):
        config.collections(["weights=5"])
    with pytest.raises(ConfigError, match="one SageMaker accepts"):
        config.profiler_config(300)


FROZEN_RUN = HOOK_RUN.replace(
    "model, loss_fn = nn.Linear(4, 3), nn.CrossEntropyLoss()",
    "model, loss_fn = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3)), nn.CrossEntropyLoss()\n"
    "model[0].weight.requires_grad_(False); model[0].bias.requires_grad_(False)")


def test_frozen_parameters_are_not_saved(tmp_path):
    """A frozen backbone never changes: only trainable weights and biases are written."""
    cfg = tmp_path / "debughookconfig.json"
    cfg.write_text(json.dumps(config.hook_config(str(tmp_path / "tensors"), config.collections())))
    env = {"SMDEBUG_CONFIG_FILE_PATH": str(cfg), "TRAINING_JOB_NAME": "t", "PATH": "/usr/bin:/bin",
           "SMDEBUG_LOG_LEVEL": "error"}
    out = subprocess.run([sys.executable, "-c", FROZEN_RUN], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr

    from smdebug.trials import create_trial

    (tmp_path / "tensors" / "training_job_end.ts").write_text("0")
    trial = create_trial(str(tmp_path / "tensors"))
    assert trial.tensor_names(collection="weights") == ["Sequential_1.weight"]
    assert trial.tensor_names(collection="biases") == ["Sequential_1.bias"]
    assert trial.tensor_names(collection="losses")  # the loss is still saved every step


MODULES_RUN = HOOK_RUN.replace(
    "model, loss_fn = nn.Linear(4, 3), nn.CrossEntropyLoss()",
    "model, loss_fn = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3)), nn.CrossEntropyLoss()").replace(
    "instr.attach(model, loss_fn)",
    "instr.attach(model, loss_fn)\n"
    "print('SUBMODULE_HOOKS', sum(len(m._forward_hooks) for m in model.children()), flush=True)")


def test_submodules_are_hooked_only_when_a_collection_saves_their_tensors(tmp_path):
    """The default collections (parameters, gradients, loss) need no per-module forward hook;
    a collection of module outputs gets them and its tensors are saved."""
    from smdebug.trials import create_trial

    for name, overrides, hooks in (("default", [], 0), ("relu", ["relu.include_regex=_output_0"], 3)):
        run = tmp_path / name
        cfg = run / "debughookconfig.json"
        run.mkdir()
        cfg.write_text(json.dumps(config.hook_config(str(run / "tensors"), config.collections(overrides))))
        env = {"SMDEBUG_CONFIG_FILE_PATH": str(cfg), "TRAINING_JOB_NAME": "t", "PATH": "/usr/bin:/bin",
               "SMDEBUG_LOG_LEVEL": "error"}
        out = subprocess.run([sys.executable, "-c", MODULES_RUN], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert f"SUBMODULE_HOOKS {hooks}" in out.stdout
        (run / "tensors" / "training_job_end.ts").write_text("0")
        trial = create_trial(str(run / "tensors"))
        assert trial.tensor_names(collection="losses") and trial.tensor_names(collection="gradients")
        assert trial.tensor_names(collection="weights") == ["Sequential_0.weight", "Sequential_2.weight"]
        if name == "relu":
            assert "1_output_0" in trial.tensor_names(collection="relu")


def test_client_mode_system_monitor_writes_samples_and_the_end_marker(tmp_path):
    import time

    env = {"DOGBREED_SYSTEM_MONITOR": json.dumps({"dir": str(tmp_path / "profiler"), "interval_ms": 100})}
    instr = I.make_instrumentation(args(debugger=False), env)
    assert isinstance(instr, I.SystemMonitor)
    time.sleep(0.5)
    instr.close()
    rows = [json.loads(x) for f in (tmp_path / "profiler" / "system").rglob("*.algo-1.json")
            for x in f.read_text().splitlines()]
    assert {"cpu0", "MemoryUsedPercent"} <= {r["Name"] for r in rows}
    assert (tmp_path / "profiler" / "system" / "training_job_end.ts").is_file()


def test_unusable_client_settings_train_on_without_them(tmp_path, capsys):
    env = {"DOGBREED_HOOK_CONFIG": "{not json", "SAGEMAKER_BASE_DIR": str(tmp_path),
           "DOGBREED_SYSTEM_MONITOR": "[]"}
    assert type(I.make_instrumentation(args(), env)) is I.NullInstrumentation
    err = capsys.readouterr().err
    assert "DOGBREED_HOOK_CONFIG is not a usable hook config" in err and "no system metrics" in err


def test_a_hook_config_without_its_tensor_folder_is_refused_and_leaves_no_temp_folder(tmp_path, capsys,
                                                                                        monkeypatch):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    env = {"DOGBREED_HOOK_CONFIG": "{}", "SAGEMAKER_BASE_DIR": str(tmp_path)}
    assert I.load_debugger_hook(env) is None
    assert "DOGBREED_HOOK_CONFIG is not a usable hook config ('LocalPath')" in capsys.readouterr().err
    assert list(scratch.iterdir()) == []


def test_fused_reductions_equal_smdebugs_own():
    """The hook's reductions, computed together, are the values smdebug computes one by one."""
    import torch
    from smdebug.pytorch.utils import get_reduction_of_data

    fused = I.FusedReductions(get_reduction_of_data)
    t = torch.randn(64, 3, 3, 3).to(memory_format=torch.channels_last)
    asked = [(r, False) for r in ("mean", "std", "min", "max", "l1", "l2", "variance", "sum")] + \
            [(r, True) for r in ("mean", "max", "min", "l1", "l2")]
    for name, absolute in asked:
        ours, theirs = fused(name, t, "w", absolute), get_reduction_of_data(name, t, "w", absolute)
        assert torch.allclose(torch.as_tensor(ours), theirs, rtol=1e-5), (name, absolute)
    t.mul_(2)  # changed in place: not the cached statistics
    assert torch.allclose(torch.as_tensor(fused("max", t, "w", False)), t.max())
    nan = torch.tensor([1.0, float("nan"), 3.0])
    asked = (("mean", True), ("max", False), ("l2", False))
    assert all(torch.isnan(torch.as_tensor(fused(name, nan, "g", a))) for name, a in asked)
