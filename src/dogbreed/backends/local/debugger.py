"""Debugger and profiler for local jobs: what SageMaker's platform does around a training job.

`configure(spec, workspace, ...)` writes into the spec what the platform would give the
container: `debughookconfig.json` / `profilerconfig.json` (with paths inside the job folder)
and the variables that point smdebug and the step recorder at them. The rules to run go in
`debugrules.json`, shaped like the CreateTrainingJob request's rule configurations.

`DebuggerPlugin` (a job-runner plugin) then, for jobs that have those files:
- on start: samples system metrics in SageMaker's system-monitor format at the configured
  interval, and starts one thread per rule that follows the trial while the job runs
  (statuses InProgress, then IssuesFound as soon as a rule fires);
- on exit: writes the `training_job_end.ts` markers (smdebug writes none under
  TRAINING_JOB_NAME), lets the rules finish, writes `rule-output/`, and records the rule
  statuses and the profiler summary in the job description (`extra["rules"]`, `extra["profiler"]`).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Iterable, Mapping

from dogbreed.backends.base import TrainingJobSpec
from dogbreed.job_folder import PROFILER_DIR, RULE_OUTPUT_DIR, TENSORS_DIR
from dogbreed.rules import config
from dogbreed.training import environment as E
from dogbreed.training.system_monitor import NODE_ID, SystemSampler  # noqa: F401 (NODE_ID: part of this API)

RULES_FILE = "debugrules.json"
PROFILER_REPORT = "ProfilerReport"
RULE_JOIN_TIMEOUT_S = 300


def configure(spec: TrainingJobSpec, job_root: Path, *, debugger: bool = True, profiler: bool = True,
              collection_overrides: Iterable[str] = (), rules: Mapping[str, Mapping[str, str]] | None = None,
              interval_ms: int = config.DEFAULT_PROFILER_INTERVAL_MS) -> TrainingJobSpec:
    """Add the debugger/profiler config files and environment of a job that will run in `job_root`."""
    from dogbreed.rules.runner import rules_with_params

    cfg_dir = job_root / "input" / "config"
    if debugger:
        spec.config_files[config.HOOK_CONFIG_FILE] = config.hook_config(
            str(job_root / TENSORS_DIR), config.collections(collection_overrides))
        spec.config_files[RULES_FILE] = {"DebugRuleConfigurations": [
            {"RuleConfigurationName": name, "RuleParameters": {"rule_to_invoke": name, **params}}
            for name, params in (rules if rules is not None else rules_with_params()).items()]}
        spec.env[E.SMDEBUG_CONFIG_FILE_PATH] = str(cfg_dir / config.HOOK_CONFIG_FILE)
    if profiler:
        spec.config_files[config.PROFILER_CONFIG_FILE] = config.profiler_config(interval_ms)
        spec.env[E.SMPROFILER_CONFIG_PATH] = str(cfg_dir / config.PROFILER_CONFIG_FILE)
        spec.env[E.DOGBREED_PROFILE_DIR] = str(job_root / PROFILER_DIR / "dogbreed")
    return spec


def configure_job(spec: TrainingJobSpec, workspace, **options) -> TrainingJobSpec:
    """`configure` for a job of this workspace: fixes the job's name so its folder is known."""
    from dogbreed.backends.local.jobs import job_name

    spec.job_name = spec.job_name or job_name(spec.base_name)
    return configure(spec, workspace.job_dir(spec.job_name), **options)


class _RuleThread(threading.Thread):
    def __init__(self, trial_dir: Path, out_dir: Path, name: str, params: dict):
        super().__init__(daemon=True, name=f"rule-{name}")
        self.trial_dir, self.out_dir, self.rule, self.params = trial_dir, out_dir, name, params
        self.stop_event = threading.Event()
        self.result: dict | None = None

    def run(self) -> None:
        from dogbreed.rules.runner import evaluate_rule, write_result

        self.result = evaluate_rule(self.trial_dir, self.rule, self.params, stop=self.stop_event)
        write_result(self.out_dir, self.result, self.params)


class DebuggerPlugin:
    """Job-runner plugin (see backends/local/jobs.PLUGINS); one instance per job."""

    def __init__(self):
        self.sampler: SystemSampler | None = None
        self.rule_threads: list[_RuleThread] = []

    @staticmethod
    def _read(layout, name: str) -> dict | None:
        path = layout.config_dir / name
        return json.loads(path.read_text()) if path.is_file() else None

    def on_start(self, layout, pid: int) -> None:
        prof = self._read(layout, config.PROFILER_CONFIG_FILE)
        if prof and not prof.get("DisableProfiler"):
            interval = int(prof.get("ProfilingIntervalInMilliseconds", config.DEFAULT_PROFILER_INTERVAL_MS)) / 1000
            self.sampler = SystemSampler(layout.root / PROFILER_DIR, interval)
            self.sampler.start()
        hook = self._read(layout, config.HOOK_CONFIG_FILE)
        rules = self._read(layout, RULES_FILE) or {}
        if hook:
            from dogbreed.rules.runner import IN_PROGRESS, status, write_result

            trial_dir = Path(hook.get("LocalPath") or layout.root / TENSORS_DIR)
            out_dir = layout.root / RULE_OUTPUT_DIR
            for rc in rules.get("DebugRuleConfigurations", []):
                params = {k: v for k, v in rc.get("RuleParameters", {}).items() if k != "rule_to_invoke"}
                name = rc.get("RuleParameters", {}).get("rule_to_invoke", rc["RuleConfigurationName"])
                write_result(out_dir, status(name, IN_PROGRESS), params)
                t = _RuleThread(trial_dir, out_dir, name, params)
                t.start()
                self.rule_threads.append(t)

    def on_exit(self, layout, desc) -> None:
        from dogbreed.rules.runner import ERROR, status, write_end_marker, write_result

        if self.sampler is not None:
            self.sampler.stop()
            self._profiler_summary(layout, desc)
        hook = self._read(layout, config.HOOK_CONFIG_FILE)
        if hook:
            write_end_marker(Path(hook.get("LocalPath") or layout.root / TENSORS_DIR))
        results = []
        for t in self.rule_threads:
            t.join(RULE_JOIN_TIMEOUT_S)
            if t.result is None:
                t.stop_event.set()
                t.join(10)
                t.result = t.result or status(t.rule, ERROR, f"rule did not finish within {RULE_JOIN_TIMEOUT_S} s")
                write_result(layout.root / RULE_OUTPUT_DIR, t.result, t.params)
            results.append(t.result)
        if self.sampler is not None and "profiler" in desc.extra:
            triggered = desc.extra["profiler"]["triggered"]
            results.append(status(PROFILER_REPORT, "IssuesFound" if triggered else "NoIssuesFound",
                                  ", ".join(triggered)))
        if results:
            keep = ("RuleConfigurationName", "RuleEvaluationStatus", "StatusDetails", "FiredAt")
            desc.extra["rules"] = [{k: r[k] for k in keep if k in r} for r in results]

    def _profiler_summary(self, layout, desc) -> None:
        from dogbreed.rules.profiler import summarize

        summary = summarize(layout.root / PROFILER_DIR, workers=_int(desc.hyperparameters.get("workers")),
                            cpus=os.cpu_count(), job_start=desc.started)
        out = layout.root / RULE_OUTPUT_DIR / PROFILER_REPORT / "profiler-output" / "profiler-reports"
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        desc.extra["profiler"] = {"triggered": summary["triggered"], "steps": summary["steps"],
                                  "system": summary["system"]}


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
