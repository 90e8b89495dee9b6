"""Each built-in rule on synthetic tensors written with smdebug's own writer: one trial that
must trigger it (IssuesFound) and one that must not (NoIssuesFound)."""

from __future__ import annotations

import numpy as np
import pytest

TRAIN, EVAL = "TRAIN", "EVAL"


def write_trial(path, steps, collections=None):
    """`steps`: [(mode, {tensor: value})] in global-step order; `collections`: name -> tensors.
    Ends with the marker the platform writes, so rules end with NoMoreData."""
    from smdebug.core.collection_manager import CollectionManager
    from smdebug.core.config_constants import DEFAULT_COLLECTIONS_FILE_NAME
    from smdebug.core.modes import ModeKeys
    from smdebug.core.writer import FileWriter

    from dogbreed.training import smdebug_compat

    smdebug_compat.apply()  # the writer on numpy >= 2.3
    counts: dict = {}
    for step, (mode_name, tensors) in enumerate(steps):
        mode = getattr(ModeKeys, mode_name)
        mode_step = counts[mode] = counts.get(mode, -1) + 1
        w = FileWriter(trial_dir=str(path), step=step, worker="worker_0", mode=mode)
        for name, value in tensors.items():
            w.write_tensor(tdata=np.asarray(value, dtype=np.float32), tname=name, mode=mode, mode_step=mode_step)
        w.close()
    cm = CollectionManager()
    for coll, names in (collections or {"losses": ["CrossEntropyLoss_output_0"]}).items():
        for n in names:
            cm.get(coll).add_tensor_name(n)
    cm.export(str(path), DEFAULT_COLLECTIONS_FILE_NAME)
    (path / "training_job_end.ts").write_text("0")
    return path


def losses(mode, values):
    return [(mode, {"CrossEntropyLoss_output_0": v}) for v in values]


def evaluate(path, rule, **params):
    from dogbreed.rules.runner import evaluate_rule

    return evaluate_rule(path, rule, {k: str(v) for k, v in params.items()})


def reductions(tensor, **values):
    """What the default collections save of `tensor`: reductions only (`abs_mean=` for abs)."""
    from smdebug.core.reductions import get_reduction_tensor_name

    return {get_reduction_tensor_name(tensor, k.removeprefix("abs_"), k.startswith("abs_")): v
            for k, v in values.items()}


CASES = {
    # (rule, params, steps that trigger it, steps that do not)
    "LossNotDecreasing-flat": ("LossNotDecreasing", {}, losses(TRAIN, [1.0] * 25),
                               losses(TRAIN, [1.0 * 0.95 ** i for i in range(25)])),
    "LossNotDecreasing-rising": ("LossNotDecreasing", {}, losses(TRAIN, [1.0 + 0.1 * i for i in range(12)]),
                                 losses(TRAIN, [1.0 - 0.02 * i for i in range(12)])),
    "LossNotDecreasing-nan": ("LossNotDecreasing", {}, losses(TRAIN, [1.0, 0.9, float("nan")]),
                              losses(TRAIN, [1.0, 0.9, 0.8])),
    # eval losses are not train losses: a flat EVAL series does not make TRAIN look flat
    "LossNotDecreasing-mode": ("LossNotDecreasing", {"mode": "EVAL"},
                               losses(TRAIN, [1.0 * 0.9 ** i for i in range(12)]) + losses(EVAL, [2.0] * 12),
                               losses(TRAIN, [1.0 * 0.9 ** i for i in range(12)])
                               + losses(EVAL, [2.0 * 0.9 ** i for i in range(12)])),
    "Overfit": ("Overfit", {}, losses(TRAIN, [0.5] * 5) + losses(EVAL, [1.0] * 3),
                losses(TRAIN, [0.5] * 5) + losses(EVAL, [0.52] * 3)),
    "Overfit-patience": ("Overfit", {"patience": 3}, losses(TRAIN, [0.5] * 5) + losses(EVAL, [1.0] * 3),
                         losses(TRAIN, [0.5] * 5) + losses(EVAL, [1.0] * 2)),
    "VanishingGradient": ("VanishingGradient", {},
                          [(TRAIN, {"gradient/fc.weight": np.full(8, 1e-9)})] * 2,
                          [(TRAIN, {"gradient/fc.weight": np.full(8, 1e-3)}),
                           (TRAIN, {"gradient/fc.weight": np.full(8, -1e-3)})]),
    "ExplodingTensor": ("ExplodingTensor", {}, [(TRAIN, {"gradient/fc.weight": np.array([1.0, np.inf])})],
                        [(TRAIN, {"gradient/fc.weight": np.array([1.0, 2.0])})]),
    # the default collections save reductions, not tensors; a signed mean near 0 is not a vanishing gradient
    "VanishingGradient-reductions": ("VanishingGradient", {},
                                     [(TRAIN, reductions("gradient/fc.weight", mean=0.0, abs_mean=1e-9))] * 2,
                                     [(TRAIN, reductions("gradient/fc.weight", mean=1e-12, abs_mean=1e-3))] * 2),
    "ExplodingTensor-reductions": ("ExplodingTensor", {},
                                   [(TRAIN, reductions("gradient/fc.weight", mean=np.nan, max=np.inf, l2=np.inf))],
                                   [(TRAIN, reductions("gradient/fc.weight", mean=0.1, max=2.0, l2=3.0))]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rule_fires_on_bad_tensors_and_not_on_good_ones(case, tmp_path):
    rule, params, bad, good = CASES[case]
    colls = {"gradients": ["gradient/fc.weight"]} if rule in ("VanishingGradient", "ExplodingTensor") else None
    fired = evaluate(write_trial(tmp_path / "bad", bad, colls), rule, **params)
    quiet = evaluate(write_trial(tmp_path / "good", good, colls), rule, **params)
    assert fired["RuleEvaluationStatus"] == "IssuesFound", fired
    assert fired["StatusDetails"]
    assert quiet["RuleEvaluationStatus"] == "NoIssuesFound", quiet


def test_missing_trial_is_an_error_and_unknown_rule_is_named(tmp_path):
    from dogbreed.rules.runner import evaluate_rule, write_end_marker

    write_end_marker(tmp_path / "empty")
    res = evaluate_rule(tmp_path / "empty", "LossNotDecreasing")
    assert res["RuleEvaluationStatus"] == "Error" and "no debugger tensors" in res["StatusDetails"]
    res = evaluate_rule(tmp_path / "empty", "NoSuchRule")
    assert res["RuleEvaluationStatus"] == "Error" and "LossNotDecreasing" in res["StatusDetails"]


def test_bad_parameter_is_reported_as_error(tmp_path):
    path = write_trial(tmp_path / "t", losses(TRAIN, [1.0] * 3))
    res = evaluate(path, "LossNotDecreasing", num_steps="ten")
    assert res["RuleEvaluationStatus"] == "Error" and "ten" in res["StatusDetails"]


def test_rule_stops_when_asked_while_waiting_for_data(tmp_path):
    import threading
    import time

    from dogbreed.rules.runner import evaluate_rule

    path = write_trial(tmp_path / "t", losses(TRAIN, [1.0, 0.9]))
    (path / "training_job_end.ts").unlink()  # a job still running: the rule waits for steps
    stop, box = threading.Event(), {}
    t = threading.Thread(target=lambda: box.update(r=evaluate_rule(path, "LossNotDecreasing", stop=stop)))
    t.start()
    time.sleep(3)  # let it reach the wait for step 2
    assert t.is_alive()
    stop.set()
    t.join(10)
    assert box["r"]["RuleEvaluationStatus"] == "Stopped"
