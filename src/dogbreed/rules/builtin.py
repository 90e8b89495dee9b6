"""SageMaker Debugger's built-in rules, re-implemented on `smdebug.rules.Rule` (PyPI smdebug
ships the hook and the trial reader, not the rules).

Parameters arrive as strings, as in a rule job's `RuleParameters`; defaults are those of
smdebug-rulesconfig (the values the SageMaker SDK sends). `invoke_at_step` gets a *global*
step, which spans TRAIN and EVAL steps; each rule looks at the mode it is about.
`self.message` says why a rule fired (it becomes the status details).
"""

from __future__ import annotations

import math

from smdebug.core.modes import ModeKeys
from smdebug.exceptions import TensorUnavailableForStep
from smdebug.rules.rule import Rule

_MODES = {"TRAIN": ModeKeys.TRAIN, "EVAL": ModeKeys.EVAL, "PREDICT": ModeKeys.PREDICT, "GLOBAL": ModeKeys.GLOBAL}


def _bool(value) -> bool:
    text = str(value).strip().lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        raise ValueError(f"{value!r} is not true or false")
    return text in ("1", "true", "yes", "on")


def _number(kind, name: str, value):
    """`kind(value)`, or a ValueError naming the parameter (parameters arrive as strings)."""
    try:
        return kind(str(value).strip())
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"parameter {name}={value!r} is not {what}") from None


def _mode(value) -> ModeKeys | None:
    if value in (None, ""):
        return None
    if isinstance(value, ModeKeys):
        return value
    try:
        return _MODES[str(value).upper().removeprefix("MODEKEYS.")]
    except KeyError:
        raise ValueError(f"unknown mode {value!r}; use one of {', '.join(_MODES)}") from None


class _DogbreedRule(Rule):
    """Common plumbing: parameter parsing, tensor selection, the message of the last finding."""

    def __init__(self, base_trial, action_str: str = "", **params):
        super().__init__(base_trial, action_str=action_str)
        self.params = params
        self.message = ""
        self.fired_at: tuple[str, int] | None = None  # (mode name, mode step) of the last finding

    def _fire(self, mode, mode_step: int, message: str) -> bool:
        self.message, self.fired_at = message, (mode.name, int(mode_step))
        return True

    def _tensor_names(self, collection: str | None, regex: str = "") -> list[str]:
        names: set[str] = set()
        if collection:
            names.update(self.base_trial.tensor_names(collection=collection))
        if regex:
            names.update(self.base_trial.tensor_names(regex=[r for r in regex.split(",") if r]))
        return sorted(names)

    def _mode_step(self, step: int):
        return self.base_trial.mode_modestep(step)

    def _value(self, name: str, step: int, mode=ModeKeys.GLOBAL) -> float | None:
        try:
            return float(self.base_trial.tensor(name).reduction_value(step, "mean", mode=mode))
        except TensorUnavailableForStep:
            return None


class LossNotDecreasing(_DogbreedRule):
    """Checks the loss at least every `num_steps` steps of `mode` against the newest loss
    `num_steps` or more steps earlier: fires when it rose by more than
    `increase_threshold_percent` % or fell by less than `diff_percent` %. A non-finite loss
    fires at once. No `mode`: as SageMaker documents it, EVAL if the trial has EVAL steps,
    else TRAIN, else GLOBAL (per-batch values: see `dogbreed.rules.verdict` for the trend)."""

    def __init__(self, base_trial, action_str: str = "", tensor_regex: str = "", use_losses_collection="True",
                 num_steps="10", diff_percent="0.1", increase_threshold_percent="5", mode=""):
        super().__init__(base_trial, action_str)
        self.tensor_regex = tensor_regex
        self.use_losses = _bool(use_losses_collection)
        self.num_steps = _number(int, "num_steps", num_steps)
        self.diff_percent = _number(float, "diff_percent", diff_percent)
        self.increase_threshold_percent = _number(float, "increase_threshold_percent", increase_threshold_percent)
        self.mode = _mode(mode)
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.last_checked: dict[str, int] = {}

    def _checked_mode(self) -> ModeKeys:
        if self.mode is not None:
            return self.mode
        for mode in (ModeKeys.EVAL, ModeKeys.TRAIN):
            if self.base_trial.steps(mode=mode):
                return mode
        return ModeKeys.GLOBAL

    def invoke_at_step(self, step):
        checked = self._checked_mode()
        mode, mode_step = self._mode_step(step)
        if checked == ModeKeys.GLOBAL:
            mode_step = step
        elif mode != checked:
            return False
        fired = False
        for name in self._tensor_names("losses" if self.use_losses else None, self.tensor_regex):
            loss = self._value(name, mode_step, checked)
            if loss is None:
                continue
            if not math.isfinite(loss):
                return self._fire(checked, mode_step, f"{name} is {loss} at {checked.name} step {mode_step}")
            hist = self.history.setdefault(name, [])
            hist.append((mode_step, loss))
            if mode_step - self.last_checked.get(name, hist[0][0]) < self.num_steps:
                continue
            earlier = [v for s, v in hist if s <= mode_step - self.num_steps]
            if not earlier:
                continue
            self.last_checked[name] = mode_step
            before = earlier[-1]
            change = (loss - before) / abs(before) * 100 if before else 0.0
            if change > self.increase_threshold_percent:
                fired = self._fire(checked, mode_step, f"{name} rose {change:.1f}% from {before:.4g} to {loss:.4g} "
                                                       f"over {self.num_steps}+ {checked.name} steps "
                                                       f"(at step {mode_step})")
            elif -change < self.diff_percent:
                fired = self._fire(checked, mode_step,
                                   f"{name} went from {before:.4g} to {loss:.4g} over {self.num_steps}+ {checked.name} "
                                   f"steps (at step {mode_step}): less than the {self.diff_percent:g}% decrease "
                                   "required")
        return fired


class Overfit(_DogbreedRule):
    """Fires when the mean validation loss of an evaluation pass exceeds the mean training
    loss of the training phase before it by more than `ratio_threshold` (relative), for
    `patience` consecutive evaluation steps from global step `start_step` on."""

    def __init__(self, base_trial, action_str: str = "", tensor_regex: str = "", start_step="0", patience="1",
                 ratio_threshold="0.1"):
        super().__init__(base_trial, action_str)
        self.tensor_regex = tensor_regex
        self.start_step = _number(int, "start_step", start_step)
        self.patience = _number(int, "patience", patience)
        self.ratio_threshold = _number(float, "ratio_threshold", ratio_threshold)
        self.train: list[float] = []
        self.eval: list[float] = []
        self.last_mode = None
        self.streak = 0

    def invoke_at_step(self, step):
        mode, mode_step = self._mode_step(step)
        names = self._tensor_names(None if self.tensor_regex else "losses", self.tensor_regex)
        values = [v for v in (self._value(n, mode_step, mode) for n in names) if v is not None]
        if not values or mode not in (ModeKeys.TRAIN, ModeKeys.EVAL):
            return False
        value = sum(values) / len(values)
        if mode != self.last_mode:  # a new phase starts: keep the last finished training phase
            if mode == ModeKeys.TRAIN:
                self.train = []
            self.eval = []
            self.last_mode = mode
        (self.train if mode == ModeKeys.TRAIN else self.eval).append(value)
        if mode != ModeKeys.EVAL or not self.train or step < self.start_step:
            return False
        mean_train, mean_eval = sum(self.train) / len(self.train), sum(self.eval) / len(self.eval)
        ratio = (mean_eval - mean_train) / abs(mean_train) if mean_train else math.inf
        self.streak = self.streak + 1 if ratio > self.ratio_threshold else 0
        if self.streak >= self.patience:
            # one decimal: 10.3% must not read "10% above ... (threshold 10%)"
            return self._fire(mode, mode_step, f"validation loss {mean_eval:.4g} is {ratio:.1%} above training loss "
                                               f"{mean_train:.4g} (threshold {self.ratio_threshold:.1%}) at eval step "
                                               f"{mode_step}")
        return False


class VanishingGradient(_DogbreedRule):
    """Fires when the mean absolute value of any saved gradient falls below `threshold`."""

    def __init__(self, base_trial, action_str: str = "", threshold="0.0000001"):
        super().__init__(base_trial, action_str)
        self.threshold = _number(float, "threshold", threshold)

    def invoke_at_step(self, step):
        for name in self._tensor_names("gradients"):
            try:
                value = float(self.base_trial.tensor(name).reduction_value(step, "mean", abs=True))
            except TensorUnavailableForStep:
                continue
            if value < self.threshold:
                mode, mode_step = self._mode_step(step)
                return self._fire(mode, mode_step, f"{name} has mean |gradient| {value:.3g} < {self.threshold:g} "
                                                   f"at {mode.name} step {mode_step}")
        return False


class ExplodingTensor(_DogbreedRule):
    """Fires on a NaN (or, unless `only_nan`, an infinite) value in the chosen tensors
    (default: every saved tensor), or in their reductions where only those were saved."""

    def __init__(self, base_trial, action_str: str = "", collection_names: str = "", tensor_regex: str = "",
                 only_nan="False"):
        super().__init__(base_trial, action_str)
        self.collections = [c for c in collection_names.split(",") if c]
        self.tensor_regex = tensor_regex
        self.only_nan = _bool(only_nan)

    def invoke_at_step(self, step):
        names: set[str] = set()
        for c in self.collections:
            names.update(self._tensor_names(c))
        if self.tensor_regex:
            names.update(self._tensor_names(None, self.tensor_regex))
        if not self.collections and not self.tensor_regex:
            names.update(self.base_trial.tensor_names(step=step))
        import numpy as np

        for name in sorted(names):
            value = self._saved(name, step)
            if value is None:
                continue
            bad = np.isnan(value).any() or (not self.only_nan and np.isinf(value).any())
            if bad:
                mode, mode_step = self._mode_step(step)
                kind = "NaN" if np.isnan(value).any() else "infinite"
                return self._fire(mode, mode_step, f"{name} has {kind} values at {mode.name} step {mode_step}")
        return False


    def _saved(self, name: str, step: int):
        """The tensor at `step`, or its saved reductions (the default collections save only
        those: any NaN/inf element makes mean, max, the norms... NaN/inf); None if neither."""
        import numpy as np

        tensor = self.base_trial.tensor(name)
        try:
            return tensor.value(step)
        except TensorUnavailableForStep:
            pass
        try:
            values = list(tensor.reduction_values(step).values())
        except TensorUnavailableForStep:
            return None
        return np.concatenate([np.asarray(v, dtype=float).ravel() for v in values]) if values else None


RULE_CLASSES = {cls.__name__: cls for cls in (LossNotDecreasing, Overfit, VanishingGradient, ExplodingTensor)}

