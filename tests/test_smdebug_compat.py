"""smdebug 1.0.34 on the newest numpy: without dogbreed.training.smdebug_compat its writer fails
(`ndarray.tostring()` is gone since numpy 2.3); with it, tensors saved by the real hook and by
smdebug's own writer read back, equal, through smdebug's own trial reader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dogbreed.rules import config
from dogbreed.training import smdebug_compat

ROOT = Path(__file__).resolve().parents[1]
NEEDS_PATCH = smdebug_compat.needs_patch()
ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "SMDEBUG_LOG_LEVEL": "error"}

WRITE = """
import sys, numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.core.writer import FileWriter
if sys.argv[2] == "shim":
    from dogbreed.training import smdebug_compat
    smdebug_compat.apply()
w = FileWriter(trial_dir=sys.argv[1], step=0, worker="worker_0")
w.write_tensor(tdata=np.arange(6, dtype=np.float32).reshape(2, 3), tname="x", mode=ModeKeys.TRAIN, mode_step=0)
w.close()
print("numpy", np.__version__)
"""


def test_the_writer_fails_on_this_numpy_without_the_shim(tmp_path):
    if not NEEDS_PATCH:
        pytest.skip(f"numpy {np.__version__} still has ndarray.tostring(): the shim stays off")
    out = subprocess.run([sys.executable, "-c", WRITE, str(tmp_path), "plain"], env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0 and "has no attribute 'tostring'" in out.stderr


def test_smdebug_writer_round_trip_every_dtype(tmp_path):
    from smdebug.core.collection_manager import CollectionManager
    from smdebug.core.config_constants import DEFAULT_COLLECTIONS_FILE_NAME
    from smdebug.core.modes import ModeKeys
    from smdebug.core.writer import FileWriter
    from smdebug.trials import create_trial

    assert smdebug_compat.apply() is NEEDS_PATCH
    values = {f"t_{dt}": (np.arange(12).reshape(3, 4) % 5).astype(dt)
              for dt in ("float16", "float32", "float64", "int32", "int64", "uint8", "bool")}
    w = FileWriter(trial_dir=str(tmp_path), step=0, worker="worker_0")
    for name, value in values.items():
        w.write_tensor(tdata=value, tname=name, mode=ModeKeys.TRAIN, mode_step=0)
    w.close()
    collections = CollectionManager()  # the reader waits for the collections file and the end marker
    for name in values:
        collections.get("all").add_tensor_name(name)
    collections.export(str(tmp_path), DEFAULT_COLLECTIONS_FILE_NAME)
    (tmp_path / "training_job_end.ts").write_text("0")
    trial = create_trial(str(tmp_path))
    for name, value in values.items():
        got = trial.tensor(name).value(0, mode=ModeKeys.TRAIN)
        assert got.dtype == value.dtype and np.array_equal(got, value), name


HOOK_RUN = """
import json, torch
from torch import nn
from dogbreed.training.instrumentation import make_instrumentation
class A: debugger = True; profiler = False
torch.manual_seed(0)
instr = make_instrumentation(A())
model, loss_fn = nn.Linear(4, 3), nn.CrossEntropyLoss()
instr.attach(model, loss_fn)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
instr.set_mode("train")
losses = []
for _ in range(6):
    loss = loss_fn(model(torch.randn(5, 4)), torch.randint(0, 3, (5,)))
    losses.append(loss.item())
    opt.zero_grad(); loss.backward(); opt.step()
instr.close()
print("LOSSES", json.dumps(losses))
"""


def test_the_hook_saves_tensors_that_smdebugs_reader_reads_back(tmp_path):
    """The training scripts' own hook (instrumentation.load_debugger_hook applies the shim)."""
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    cfg = tmp_path / "debughookconfig.json"
    cfg.write_text(json.dumps(config.hook_config(str(tmp_path / "tensors"), config.collections())))
    env = dict(ENV, SMDEBUG_CONFIG_FILE_PATH=str(cfg), TRAINING_JOB_NAME="t")
    out = subprocess.run([sys.executable, "-c", HOOK_RUN], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    losses = json.loads(out.stdout.split("LOSSES", 1)[1])
    (tmp_path / "tensors" / "training_job_end.ts").write_text("0")  # what the platform adds
    trial = create_trial(str(tmp_path / "tensors"))
    loss = trial.tensor(trial.tensor_names(collection="losses")[0])
    assert loss.steps(mode=ModeKeys.TRAIN) == list(range(6))
    assert [float(loss.value(s, mode=ModeKeys.TRAIN)) for s in range(6)] == pytest.approx(losses, rel=1e-6)
    weights = trial.tensor_names(collection="weights")  # saved as reductions by default (rules/config.py)
    assert weights
    norms = [float(trial.tensor(w).reduction_value(0, "l2", mode=ModeKeys.TRAIN)) for w in weights]
    assert all(np.isfinite(n) and n > 0 for n in norms), norms


def test_apply_patches_both_places_once():
    from smdebug.core import writer
    from smdebug.core.tfevent import util

    smdebug_compat.apply()
    smdebug_compat.apply()
    patched = writer.make_tensor_proto is util.make_tensor_proto is smdebug_compat.make_tensor_proto
    assert patched is NEEDS_PATCH
