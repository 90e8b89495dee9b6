"""Run a rule on an smdebug trial and report it as SageMaker does.

Outcome -> `RuleEvaluationStatus`: condition met -> IssuesFound (details = the rule's
message); `NoMoreData` (the end marker was reached) -> NoIssuesFound; any other exception ->
Error; asked to stop -> Stopped. Without `training_job_end.ts` in the trial folder a rule
waits for more steps, exactly like a rule job waiting for a running training job.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Mapping

from dogbreed.rules import config

IN_PROGRESS, NO_ISSUES, ISSUES, ERROR, STOPPED = "InProgress", "NoIssuesFound", "IssuesFound", "Error", "Stopped"
END_MARKER = "training_job_end.ts"
RESULT_FILE = "result.json"

os.environ.setdefault("SMDEBUG_LOG_LEVEL", "warning")  # smdebug logs every rule step at INFO otherwise


def status(name: str, state: str, details: str = "", fired_at: tuple[str, int] | None = None) -> dict:
    """A `RuleEvaluationStatus` item; `FiredAt` (ours, not SageMaker's): [mode, mode step] of the finding."""
    out = {"RuleConfigurationName": name, "RuleEvaluationStatus": state, "StatusDetails": details,
           "LastModifiedTime": time.time()}
    if fired_at is not None:
        out["FiredAt"] = list(fired_at)
    return out


def write_end_marker(trial_dir: Path) -> None:
    """What the platform writes when a training job ends (smdebug does not, under TRAINING_JOB_NAME)."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    marker = trial_dir / END_MARKER
    if not marker.exists():
        marker.write_text(str(time.time()))


class _StoppableRule:
    """Wraps a rule so that a stop request ends `invoke_rule`'s polling loop."""

    def __init__(self, rule, stop: threading.Event):
        self.rule, self.stop = rule, stop

    def __getattr__(self, item):
        return getattr(self.rule, item)

    def invoke(self, step):
        # smdebug's own wait sleeps until the step exists, deaf to a stop request: wait here
        from smdebug.analysis.utils import refresh
        from smdebug.trials.trial import StepState

        trial = self.rule.base_trial
        with refresh(trial):
            while trial.has_passed_step(step) == StepState.NOT_YET_AVAILABLE:
                ended = os.path.exists(os.path.join(str(trial.path), END_MARKER))
                if self.stop.wait(0.05 if ended else 1.0):  # once ended, the next refresh sees it
                    raise _StopRequested()
        if self.stop.is_set():
            raise _StopRequested()
        return self.rule.invoke(step)


class _StopRequested(Exception):
    pass


def evaluate_rule(trial_dir: str | Path, name: str, params: Mapping[str, str] | None = None, *,
                  stop: threading.Event | None = None, wait_for_data_s: float | None = None) -> dict:
    """Evaluate built-in rule `name` (parameters as strings) on the trial in `trial_dir`.
    Blocks until the trial's end marker is reached, the rule fires, or `stop` is set."""
    from smdebug.exceptions import NoMoreData, RuleEvaluationConditionMet
    from smdebug.rules.rule_invoker import invoke_rule
    from smdebug.trials import create_trial

    from dogbreed.rules.builtin import RULE_CLASSES

    stop = stop or threading.Event()
    trial_dir = Path(trial_dir)
    if name not in RULE_CLASSES:
        return status(name, ERROR, f"no local implementation of rule {name}; known: {', '.join(RULE_CLASSES)}")
    # create_trial waits for the hook's collections file; don't start before it is there
    deadline = None if wait_for_data_s is None else time.time() + wait_for_data_s
    collections_dir = trial_dir / "collections"
    while not collections_dir.is_dir():
        if (trial_dir / END_MARKER).exists() or stop.is_set() or (deadline and time.time() > deadline):
            return status(name, ERROR, f"no debugger tensors were saved in {trial_dir} "
                                       "(was the hook configured and smdebug importable in the job?)")
        stop.wait(0.5)
    try:
        trial = create_trial(str(trial_dir))
        if (trial_dir / END_MARKER).exists():
            # smdebug waits 1 s after seeing the marker for files still being written; the job
            # had already exited when the marker was written, so nothing is
            trial._training_end_delay_refresh = 0
        rule = RULE_CLASSES[name](trial, "", **dict(params or {}))
        invoke_rule(_StoppableRule(rule, stop), raise_eval_cond=True)
    except RuleEvaluationConditionMet as exc:
        return status(name, ISSUES, rule.message or str(exc), rule.fired_at)
    except NoMoreData:
        return status(name, NO_ISSUES, "")
    except _StopRequested:
        return status(name, STOPPED, "stopped before the job's data ended")
    except Exception as exc:  # reported, like a failed rule job, never raised into the job runner
        return status(name, ERROR, f"cannot evaluate {name}: {exc}"[:1024])
    return status(name, NO_ISSUES, "")


def evaluate_copy(trial_dir: Path, rules: Mapping[str, Mapping[str, str]], *, running: bool) -> list[dict]:
    """The rules on a synced copy of a job's tensors (SageMaker client mode). The copy is all
    there is to read, so it gets the end marker; while the job runs, a rule that found nothing
    yet reads InProgress rather than NoIssuesFound."""
    write_end_marker(trial_dir)
    out = []
    for name, params in rules.items():
        res = evaluate_rule(trial_dir, name, params, wait_for_data_s=0)
        if running and res["RuleEvaluationStatus"] == NO_ISSUES:
            res = status(name, IN_PROGRESS, "no issues in the steps synced so far")
        out.append(res)
    return out


def rules_with_params(names=None, overrides: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, dict]:
    """Rule name -> parameters: rulesconfig defaults with `overrides` merged."""
    names = list(config.RULES) if names is None else list(names)
    out = {}
    for n in names:
        out[n] = dict(config.RULES.get(n, {}).get("params", {}))
        out[n].update((overrides or {}).get(n, {}))
    return out


def write_result(output_dir: Path, result: dict, params: Mapping[str, str]) -> None:
    """rule-output/<Rule>/result.json"""
    d = output_dir / result["RuleConfigurationName"]
    d.mkdir(parents=True, exist_ok=True)
    (d / RESULT_FILE).write_text(json.dumps({**result, "RuleParameters": dict(params)}, indent=2) + "\n")


def read_results(output_dir: Path) -> list[dict]:
    out = []
    if output_dir.is_dir():
        for f in sorted(output_dir.glob(f"*/{RESULT_FILE}")):
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                continue
    return out


def run_rules(trial_dir: str | Path, output_dir: str | Path, rules: Mapping[str, Mapping[str, str]] | None = None,
              wait_for_data_s: float | None = 0.0) -> list[dict]:
    """Evaluate `rules` (default: config.RULES) one after another on a finished trial."""
    results = []
    for name, params in (rules or rules_with_params()).items():
        res = evaluate_rule(trial_dir, name, params, wait_for_data_s=wait_for_data_s)
        write_result(Path(output_dir), res, params)
        results.append(res)
    return results
