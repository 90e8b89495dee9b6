"""The hook's batched reductions: the same values, the same bytes and the same index entries
as smdebug's own per-value path, read back by smdebug's trial reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dogbreed.rules import config
from dogbreed.training.batched_saves import SUPPORTED, reduce_many, scalar_event


@pytest.fixture(autouse=True)
def smdebug_writes_on_this_numpy():
    """smdebug's own writer is the reference here: on numpy >= 2.3 it needs the patch the hook applies."""
    from dogbreed.training import smdebug_compat

    smdebug_compat.apply()


@pytest.mark.parametrize("step,mode_name,mode_step,wall_time", [(0, "TRAIN", 0, 1234.5), (5, "TRAIN", 5, 1.7e9),
                                                                (300, "EVAL", 2, 1.7e9), (2**40, "GLOBAL", 7, 0.0)])
def test_events_are_the_bytes_smdebugs_writer_makes(step, mode_name, mode_step, wall_time):
    from smdebug.core.modes import ModeKeys
    from smdebug.core.tfevent.proto.event_pb2 import Event
    from smdebug.core.tfevent.proto.summary_pb2 import Summary
    from smdebug.core.tfevent.util import make_tensor_proto
    from smdebug.core.writer import FileWriter

    mode, value, tag = ModeKeys[mode_name], np.float32(-0.0123), "Reductions/abs_mean/gradient/ResNet_fc.1.weight"
    summary = Summary(value=[Summary.Value(tag=tag, metadata=FileWriter._get_metadata(mode, mode_step),
                                           tensor=make_tensor_proto(nparray_data=value, tag=tag))])
    event = Event(summary=summary, wall_time=wall_time, step=step)
    assert scalar_event(tag, value, step, mode.value, mode_step, wall_time) == event.SerializeToString()


def test_reductions_equal_smdebugs_own():
    from smdebug.pytorch.utils import get_reduction_of_data

    tensors = [torch.randn(64, 3, 3, 3).to(memory_format=torch.channels_last), torch.full((512,), 0.9),
               torch.randn(7) * 1e4 + 3e4, torch.tensor([1.0, float("inf"), -2.0]),
               torch.tensor([1.0, float("nan"), 3.0]), torch.randn(5, dtype=torch.float64)]
    wanted = tuple(sorted(SUPPORTED))
    ours = reduce_many(tensors, wanted)
    assert ours.shape == (len(tensors), len(wanted)) and ours.dtype == np.float32
    for row, t in zip(ours, tensors):
        for value, (name, absolute) in zip(row, wanted):
            theirs = float(get_reduction_of_data(name, t, "t", absolute))
            assert np.isclose(value, theirs, rtol=1e-5, atol=1e-6, equal_nan=True), (t, name, absolute)
    # a constant tensor: float32 rounding of its mean, not the cancellation of sum-of-squares formulas
    assert reduce_many([torch.full((512,), 0.9)], (("std", False),))[0, 0] < 1e-6


def _train(hook_kind: str, tmp_path, colls) -> str:
    """Six train and two eval steps of a small conv net with the hook, batched (ours) or
    smdebug's own per-value path; the tensors folder."""
    import smdebug.pytorch as smd
    from smdebug.core.modes import ModeKeys
    from torch import nn

    from dogbreed.training.instrumentation import DebuggerHook

    out = tmp_path / hook_kind
    cfg = tmp_path / f"{hook_kind}.json"
    cfg.write_text(json.dumps(config.hook_config(str(out), colls)))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    loss_fn, hook = nn.CrossEntropyLoss(), smd.Hook.create_from_json_file(str(cfg))
    if hook_kind == "batched":
        instr = DebuggerHook(hook, ModeKeys)
        instr.attach(model, loss_fn)
    else:
        hook.register_module(model)
        hook.register_loss(loss_fn)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.Generator().manual_seed(1)
    for mode, n in ((ModeKeys.TRAIN, 6), (ModeKeys.EVAL, 2)):
        hook.set_mode(mode)
        for _ in range(n):
            loss = loss_fn(model(torch.randn(5, 3, 8, 8, generator=data)), torch.randint(0, 3, (5,), generator=data))
            if mode == ModeKeys.TRAIN:
                opt.zero_grad()
                loss.backward()
                opt.step()
    hook.close()
    (out / "training_job_end.ts").write_text("0")
    return str(out)


def _assert_same(ours, theirs):
    """Same tensor names, steps, full values and reductions (shape included) in both trials."""
    from smdebug.core.modes import ModeKeys
    from smdebug.exceptions import TensorUnavailableForStep

    assert ours.tensor_names() == theirs.tensor_names()
    for c in theirs.collections():
        assert ours.tensor_names(collection=c) == theirs.tensor_names(collection=c), c
    for name in theirs.tensor_names():
        a, b = ours.tensor(name), theirs.tensor(name)
        for mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
            assert a.steps(mode=mode) == b.steps(mode=mode), name
            for step in b.steps(mode=mode):
                ra, rb = a.reduction_values(step, mode=mode), b.reduction_values(step, mode=mode)
                assert ra.keys() == rb.keys(), name
                for key in rb:
                    assert np.shape(ra[key]) == np.shape(rb[key]), (name, step, key)
                    assert np.isclose(ra[key], rb[key], rtol=1e-4, atol=1e-7), (name, step, key)
                try:
                    value = b.value(step, mode=mode)
                except TensorUnavailableForStep:
                    with pytest.raises(TensorUnavailableForStep):
                        a.value(step, mode=mode)
                else:
                    assert np.allclose(a.value(step, mode=mode), value, rtol=1e-5, atol=1e-7), (name, step)


@pytest.mark.parametrize("overrides", [[], ["full.include_regex=weight$", "full.train.save_interval=3"]],
                         ids=["default collections", "with a collection of full tensors"])
def test_batched_saves_read_back_as_smdebugs_own(tmp_path, overrides):
    """What the batched path writes reads back as what smdebug's own path writes; a tensor in
    a collection of full tensors is left to smdebug, reductions included."""
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    colls = config.collections(overrides)
    ours, theirs = (create_trial(_train(kind, tmp_path, colls)) for kind in ("batched", "smdebug"))
    for c in ("weights", "biases", "gradients", "losses"):
        assert ours.tensor_names(collection=c) != []
    _assert_same(ours, theirs)
    steps = ours.tensor("gradient/Sequential_4.weight").steps(mode=ModeKeys.TRAIN)
    assert steps == ([0, 3, 5] if overrides else [0, 5])
    if overrides:
        assert ours.tensor("Sequential_4.weight").value(3, mode=ModeKeys.TRAIN).shape == (3, 144)


def test_gradients_are_saved_when_a_parameter_gets_none(tmp_path):
    """A parameter the loss does not reach never gets a gradient: the others are saved after
    the step (`record_step`), not lost."""
    import smdebug.pytorch as smd
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial
    from torch import nn

    from dogbreed.training.instrumentation import DebuggerHook

    cfg = tmp_path / "hook.json"
    cfg.write_text(json.dumps(config.hook_config(str(tmp_path / "t"), config.collections())))
    model, loss_fn = nn.ModuleDict({"used": nn.Linear(4, 3), "unused": nn.Linear(4, 3)}), nn.CrossEntropyLoss()
    model.forward = lambda x: model["used"](x)
    instr = DebuggerHook(smd.Hook.create_from_json_file(str(cfg)), ModeKeys)
    instr.attach(model, loss_fn)
    instr.set_mode("train")
    for _ in range(2):
        loss_fn(model(torch.randn(5, 4)), torch.randint(0, 3, (5,))).backward()
        instr.record_step(data_wait_s=0.0, step_s=0.0, batch_size=5)
    instr.close()
    (tmp_path / "t" / "training_job_end.ts").write_text("0")
    trial = create_trial(str(tmp_path / "t"))
    assert trial.tensor_names(collection="gradients") == ["gradient/ModuleDict_used.bias",
                                                          "gradient/ModuleDict_used.weight"]
    assert trial.tensor("gradient/ModuleDict_used.weight").reduction_value(0, "mean", mode=ModeKeys.TRAIN, abs=True) > 0
