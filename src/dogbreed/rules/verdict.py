"""The headline a person can act on: is this training healthy, and if not, what is wrong?

SageMaker's rules judge single per-batch loss values (LossNotDecreasing compares one batch's
loss with another's `num_steps` earlier; Overfit fires on the very first evaluation), so
they alarm on healthy runs. Their statuses stay visible (SageMaker parity); the verdict
judges the *trend*: the mean loss per epoch (one TRAIN phase and the EVAL phase after it in
the debugger tensors, or the epoch lines of metrics.json), and explains each alarm a
parity rule raised ("per-batch noise", "first evaluation, before batch-norm settled").

Problems, first match wins:
- DIVERGING: a loss is NaN/inf, or the last epoch's training loss is more than `RISE` above the
  first step's (the untrained model's; an epoch's mean hides a blow-up inside it), or above
  `WORSE_THAN_CHANCE` x the loss of guessing, ln(classes) (LossNotDecreasing).
- NOT LEARNING: the training loss fell by less than `MIN_DROP` (LossNotDecreasing).
- MEMORISING: the training loss fell, the validation loss never improved, and validation
  accuracy stays near chance (when accuracies are known), else the validation loss ends more
  than `GAP` above the training loss (Overfit).
- AT CHANCE: (accuracies known) validation accuracy never rose above `NEAR_CHANCE` x chance
  over 3+ epochs, and training accuracy did not either: the labels carry no signal it found.
A healthy run whose validation loss ends far above its best gets a caution (the saved model
is the best epoch's).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

RISE = 0.20  # the training loss ends 20% above where it started
WORSE_THAN_CHANCE = 1.5
MIN_DROP = 0.03  # ... or less than 3% below it
GAP = 0.25  # memorising without accuracies: final validation loss 25% above the final training loss
NEAR_CHANCE = 2.0  # memorising: best validation accuracy at most twice chance (1 / classes)
SPIKE = 1.5  # caution: final validation loss 50% above the best one
OK, CAUTION, PROBLEM, UNKNOWN = "ok", "caution", "problem", "unknown"


@dataclass
class Epoch:
    train: float
    valid: float | None = None
    valid_acc: float | None = None
    train_acc: float | None = None


@dataclass
class Verdict:
    level: str  # ok | caution | problem | unknown
    headline: str
    context: list[str] = field(default_factory=list)  # why each parity alarm does (not) matter

    def to_dict(self) -> dict:
        return {"level": self.level, "headline": self.headline, "context": list(self.context)}

    def lines(self) -> list[str]:
        return [f"verdict: {self.headline}"] + [f"  - {c}" for c in self.context]


def _finite(values) -> bool:
    return all(math.isfinite(v) for v in values)


def _fired(rules: list[dict]) -> dict[str, dict]:
    return {r.get("RuleConfigurationName", ""): r for r in rules or []
            if r.get("RuleEvaluationStatus") == "IssuesFound"}


def _smoothed_ends(steps: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last fifth of the per-step losses (at least one value each)."""
    w = max(1, len(steps) // 5)
    return sum(steps[:w]) / w, sum(steps[-w:]) / w


def judge(epochs: list[Epoch], rules: list[dict] | None = None, steps: list[float] | None = None,
          classes: int | None = None, gradients_saved: bool | None = None) -> Verdict:
    """The verdict from per-epoch mean losses (and the per-step training losses, for one-epoch
    runs; `classes` for chance accuracy), with context for every parity rule that reported IssuesFound."""
    steps = steps or []
    fired = _fired(rules or [])
    losses = [e.train for e in epochs] + [e.valid for e in epochs if e.valid is not None] + steps
    if not epochs and not steps:
        return Verdict(UNKNOWN, "no verdict: no loss values were recorded (debugger off, or the job saved none yet)")
    if not _finite(losses):
        return Verdict(PROBLEM, "DIVERGING: the loss became NaN/inf; lower the learning rate "
                                f"(seen by {_seen(fired, 'LossNotDecreasing', 'ExplodingTensor')})")
    if len(epochs) >= 2:
        start, end, over = epochs[0].train, epochs[-1].train, f"{len(epochs)} epochs"
    else:
        start, end = _smoothed_ends(steps) if steps else (epochs[0].train, epochs[0].train)
        over = f"{len(steps)} steps (smoothed)"
    change = (end - start) / abs(start) if start else 0.0
    origin = steps[0] if steps else start  # the loss before the first update
    rise = (end - origin) / abs(origin) if origin else 0.0
    chance = math.log(classes) if classes and classes > 1 else None
    if rise > RISE or (chance and end > WORSE_THAN_CHANCE * chance):
        versus = f" (guessing scores {chance:.3g})" if chance else ""
        seen = _seen(fired, "LossNotDecreasing")
        return Verdict(PROBLEM, f"DIVERGING: training loss went from {origin:.4g} (first step) to {end:.4g} over "
                                f"{over}{versus}; lower the learning rate (seen by {seen})")
    if -change < MIN_DROP:
        seen = _seen(fired, "LossNotDecreasing", "VanishingGradient")
        why = ("no gradient was saved at all: every parameter is frozen" if gradients_saved is False
               else "is the learning rate 0, or every layer frozen?")
        return Verdict(PROBLEM, f"NOT LEARNING: training loss {start:.4g} -> {end:.4g} over {over} ({change:+.1%}); "
                                f"{why} (seen by {seen})")
    valid = [e.valid for e in epochs if e.valid is not None]
    accs = [e.valid_acc for e in epochs if e.valid_acc is not None]
    never_improved = len(valid) >= 2 and min(valid[1:]) >= valid[0] * (1 - MIN_DROP)
    if accs and classes:
        chance_level = max(accs) <= NEAR_CHANCE / classes
    else:
        chance_level = bool(valid) and valid[-1] > end * (1 + GAP)
    train_accs = [e.train_acc for e in epochs if e.train_acc is not None]
    if classes and len(accs) >= 3 and max(accs) <= NEAR_CHANCE / classes:
        if train_accs and train_accs[-1] >= max(accs) + 0.2:
            never_improved = chance_level = True  # memorising: the training images, not the breeds
        else:
            return Verdict(PROBLEM, f"AT CHANCE: validation accuracy never rose above chance (best {max(accs):.0%}, "
                                    f"guessing {1 / classes:.0%}) and training accuracy ended at "
                                    f"{(train_accs or [0.0])[-1]:.0%}: do the labels match the images? "
                                    f"(seen by {_seen(fired, 'Overfit', 'LossNotDecreasing')})")
    if never_improved and chance_level:
        return Verdict(PROBLEM, f"MEMORISING: training loss fell {start:.4g} -> {end:.4g} but validation loss did not "
                                f"({valid[0]:.4g} -> {valid[-1]:.4g}); the model learns the training images, not the "
                                f"breeds: check the labels, add data or regularisation "
                                f"(seen by {_seen(fired, 'Overfit')})")
    best = min(range(len(valid)), key=valid.__getitem__) if valid else None
    head = f"HEALTHY: training loss fell {start:.4g} -> {end:.4g} over {over}"
    if best is not None:
        head += f"; best validation loss {valid[best]:.4g} at epoch {best + 1}"
    context = _explain(fired, epochs, start, end)
    if best is not None and valid[-1] > valid[best] * SPIKE:
        ratio = valid[-1] / valid[best]
        context.insert(0, f"caution: validation loss ended at {valid[-1]:.4g}, {ratio:.1f}x its best; "
                          f"the saved model is epoch {best + 1}'s (more data, a lower learning rate or early stopping "
                          "would steady it)")
        return Verdict(CAUTION, head, context)
    return Verdict(OK, head, context)


def _seen(fired: dict, *names: str) -> str:
    """The rules that saw the problem: parity rules that fired, else the first named one judged on the trend."""
    hits = [n for n in names if n in fired]
    return ", ".join(hits) if hits else f"{names[0]} on the epoch trend"


def _explain(fired: dict, epochs: list[Epoch], start: float, end: float) -> list[str]:
    out = []
    if "LossNotDecreasing" in fired:
        out.append(f"LossNotDecreasing IssuesFound is per-batch noise: it compares single batches "
                   f"({fired['LossNotDecreasing'].get('StatusDetails', '')}); the trend falls {start:.4g} -> {end:.4g}")
    if "Overfit" in fired:
        r = fired["Overfit"]
        at = (r.get("FiredAt") or [None, None])[1]
        last = epochs[-1] if epochs else None
        final = (f"; at the end validation loss is {last.valid:.4g} vs training {last.train:.4g}"
                 if last and last.valid is not None else "")
        when = "the first evaluation, before batch-norm statistics settled" if at == 0 else f"eval step {at}"
        out.append(f"Overfit IssuesFound at {when}{final}")
    if "VanishingGradient" in fired:
        out.append(f"VanishingGradient IssuesFound ({fired['VanishingGradient'].get('StatusDetails', '')}), "
                   "but the loss falls: a frozen or saturated layer, not a stalled model")
    return out


# -- inputs from a job folder ------------------------------------------------------------------
def gradients_saved(trial_dir: Path) -> bool:
    """Whether the hook saved any gradient (none at all: nothing was trainable)."""
    from smdebug.trials import create_trial

    return bool(create_trial(str(trial_dir)).tensor_names(collection="gradients"))


def epochs_from_trial(trial_dir: Path) -> tuple[list[Epoch], list[float]]:
    """Per-epoch mean losses from the debugger tensors (a TRAIN phase and the EVAL phase after
    it make one epoch) and the per-step training losses. A last EVAL phase longer than the
    first one also holds the test pass: only its first (validation-sized) part counts."""
    os.environ.setdefault("SMDEBUG_LOG_LEVEL", "warning")
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    trial = create_trial(str(trial_dir))
    names = trial.tensor_names(collection="losses")
    if not names:
        return [], []
    tensor = trial.tensor(names[0])
    phases: list[tuple[ModeKeys, list[float]]] = []
    for step in tensor.steps():
        mode, mode_step = trial.mode_modestep(step)
        value = float(tensor.value(mode_step, mode=mode))
        if not phases or phases[-1][0] != mode:
            phases.append((mode, []))
        phases[-1][1].append(value)
    train_steps = [v for m, vs in phases if m == ModeKeys.TRAIN for v in vs]
    epochs: list[Epoch] = []
    eval_len = None
    for i, (mode, values) in enumerate(phases):
        if mode != ModeKeys.TRAIN:
            continue
        nxt = phases[i + 1][1] if i + 1 < len(phases) and phases[i + 1][0] == ModeKeys.EVAL else []
        eval_len = eval_len or len(nxt) or None
        nxt = nxt[:eval_len] if eval_len else nxt
        epochs.append(Epoch(_mean(values), _mean(nxt) if nxt else None))
    return epochs, train_steps


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def epochs_from_history(history: list[dict]) -> list[Epoch]:
    def num(h, key):
        return float(h[key]) if h.get(key) is not None else None

    return [Epoch(float(h["train_loss"]), num(h, "valid_loss"), num(h, "valid_acc"), num(h, "train_acc"))
            for h in history if h.get("train_loss") is not None]


def judge_job(job_dir: Path | None, rules: list[dict] | None, metric_series: dict | None = None) -> Verdict:
    """The verdict of a job folder laid out like a local job's: epoch lines of
    output/data/metrics.json when the job finished, else the debugger tensors, else the
    epoch metrics parsed from the log (`metric_series`)."""
    epochs: list[Epoch] = []
    steps: list[float] = []
    note, classes, grads = "", None, None
    if job_dir is not None:
        tensors = job_dir / "output" / "tensors"
        if (tensors / "collections").is_dir():
            try:
                epochs, steps = epochs_from_trial(tensors)
                grads = gradients_saved(tensors)
            except Exception as exc:  # a damaged or half-synced trial: fall back to the metrics
                note = f"debugger tensors unreadable ({type(exc).__name__}: {exc})"
        metrics = job_dir / "output" / "data" / "metrics.json"
        if metrics.is_file():
            try:
                doc = json.loads(metrics.read_text())
                epochs = epochs_from_history(doc.get("history", [])) or epochs
                classes = len((doc.get("test") or {}).get("classes") or []) or None
            except (OSError, ValueError, KeyError, TypeError):
                pass
    if not epochs and metric_series and metric_series.get("train_loss"):
        valid = metric_series.get("valid_loss") or []
        epochs = [Epoch(t, valid[i] if i < len(valid) else None) for i, t in enumerate(metric_series["train_loss"])]
    verdict = judge(epochs, rules, steps, classes, grads)
    if note:
        verdict.context.append(note)
    return verdict
