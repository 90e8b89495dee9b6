"""The verdict headline (rules/verdict.py) on epoch trends, and the parity fixes of the rules it
explains: LossNotDecreasing's documented default mode, Overfit's one-decimal message."""

from __future__ import annotations

import pytest

from dogbreed.rules.verdict import Epoch, judge
from tests.test_rules import EVAL, TRAIN, evaluate, losses, write_trial

NOISY_BUT_FALLING = [Epoch(1.64, 1.2), Epoch(1.1, 0.9), Epoch(0.8, 0.7), Epoch(0.6, 0.5)]
LND_FIRED = {"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluationStatus": "IssuesFound",
             "StatusDetails": "CrossEntropyLoss_output_0 rose 9.0% from 1.643 to 1.791"}
OVERFIT_AT_0 = {"RuleConfigurationName": "Overfit", "RuleEvaluationStatus": "IssuesFound", "FiredAt": ["EVAL", 0],
                "StatusDetails": "validation loss 0.7087 is 10.3% above training loss 0.6424"}


def test_healthy_run_with_parity_alarms_reads_healthy_and_explains_them():
    v = judge(NOISY_BUT_FALLING, [LND_FIRED, OVERFIT_AT_0])
    assert v.level == "ok" and v.headline.startswith("HEALTHY: training loss fell 1.64 -> 0.6 over 4 epochs")
    assert "best validation loss 0.5 at epoch 4" in v.headline
    assert any("per-batch noise" in c for c in v.context)
    assert any("first evaluation, before batch-norm statistics settled" in c and "0.5 vs training 0.6" in c
               for c in v.context)


@pytest.mark.parametrize("epochs, steps, word, rule", [
    ([Epoch(1.61, 1.61), Epoch(1.609, 1.61), Epoch(1.61, 1.61)], None, "NOT LEARNING", "LossNotDecreasing"),
    ([Epoch(1.6, 1.7), Epoch(9.0, 40.0)], None, "DIVERGING", "LossNotDecreasing"),
    # a blow-up inside the first epoch: epoch means fall (900 -> 30), the first steps were at 1.6
    ([Epoch(900.0, 50.0), Epoch(30.0, 40.0)], [1.6, 1.7, 1.6, 5e3, 2e3, 40.0, 30.0], "DIVERGING", "LossNotDecreasing"),
    ([Epoch(1.6, float("nan"))], None, "DIVERGING", "LossNotDecreasing"),
    ([Epoch(1.6, 1.61, 0.2, 0.3), Epoch(1.2, 1.7, 0.25, 0.6), Epoch(0.6, 2.0, 0.2, 0.9)], None, "MEMORISING",
     "Overfit"),
    ([], [1.6, 1.61, 1.6, 1.59, 1.6, 1.61, 1.6, 1.6, 1.61, 1.6], "NOT LEARNING", "LossNotDecreasing"),
])
def test_broken_trends_name_the_problem_and_the_rule(epochs, steps, word, rule):
    v = judge(epochs, [], steps, classes=5)
    assert v.level == "problem" and v.headline.startswith(word + ":"), v.headline
    assert f"seen by {rule}" in v.headline


def test_memorising_needs_chance_level_accuracy_when_accuracies_are_known():
    # the validation loss spikes in the last epoch but accuracy was far above chance: a caution, not memorising
    v = judge([Epoch(1.22, 0.567, 0.95), Epoch(0.51, 0.546, 0.8), Epoch(0.54, 1.663, 0.6)], [], classes=5)
    assert v.level == "caution" and v.headline.startswith("HEALTHY")
    assert "3.0x its best" in v.context[0] and "epoch 2's" in v.context[0]


def test_labels_without_signal_read_at_chance():
    # shuffled labels at small scale: the training loss falls from a batch-norm-inflated start, accuracy stays at chance
    epochs = [Epoch(2.08, 88.5, 0.2, 0.23), Epoch(1.75, 9.66, 0.14, 0.21), Epoch(1.64, 2.6, 0.14, 0.2),
              Epoch(1.62, 1.66, 0.2, 0.2)]
    v = judge(epochs, [], classes=5)
    assert v.headline.startswith("AT CHANCE: validation accuracy never rose above chance (best 20%, guessing 20%)")
    assert "seen by Overfit on the epoch trend" in v.headline
    memorised = [Epoch(1.6, 1.61, 0.2, 0.3), Epoch(1.2, 1.7, 0.25, 0.6), Epoch(0.6, 2.0, 0.2, 0.9)]
    assert judge(memorised, [], classes=5).headline.startswith("MEMORISING")


def test_no_losses_no_verdict():
    assert judge([], []).level == "unknown"


def test_loss_not_decreasing_reads_eval_steps_by_default_as_sagemaker_documents(tmp_path):
    # falling TRAIN losses, flat EVAL losses: with no mode, SageMaker checks EVAL first
    steps = losses(TRAIN, [1.0 * 0.9 ** i for i in range(12)]) + losses(EVAL, [2.0] * 12)
    path = write_trial(tmp_path / "t", steps)
    fired = evaluate(path, "LossNotDecreasing")
    assert fired["RuleEvaluationStatus"] == "IssuesFound" and "EVAL steps" in fired["StatusDetails"]
    assert fired["FiredAt"] == ["EVAL", 10]
    assert evaluate(path, "LossNotDecreasing", mode="TRAIN")["RuleEvaluationStatus"] == "NoIssuesFound"


def test_overfit_message_is_not_rounded_into_its_threshold(tmp_path):
    path = write_trial(tmp_path / "t", losses(TRAIN, [0.6424] * 3) + losses(EVAL, [0.7087]))
    res = evaluate(path, "Overfit")
    assert res["RuleEvaluationStatus"] == "IssuesFound"
    assert "is 10.3% above training loss 0.6424 (threshold 10.0%)" in res["StatusDetails"]
    assert res["FiredAt"] == ["EVAL", 0]


def test_wrong_parameter_type_is_an_error_with_the_reason(tmp_path):
    path = write_trial(tmp_path / "t", losses(TRAIN, [1.0] * 3))
    res = evaluate(path, "Overfit", ratio_threshold="high")
    assert res["RuleEvaluationStatus"] == "Error"
    assert res["StatusDetails"] == "cannot evaluate Overfit: parameter ratio_threshold='high' is not a number"
