"""Training jobs: where the hyperparameters come from, the job spec, and what the workspace remembers."""

from __future__ import annotations

import threading
from typing import Any

from dogbreed.backends.base import COMPLETED, TERMINAL, Instrumentation, JobDescription, LogSink, TrainingJobSpec
from dogbreed.workflows import Session
from dogbreed.workflows.data import resolve_data

ENTRY_POINT = "train_model.py"
BASE_NAME = "dogbreed-train"
LIVE_POLL_S = 30.0  # train --wait: how often rule statuses are refreshed while the job runs
INSTRUMENTED = "instrumented_jobs"  # workspace key: job -> {"mode", "rule_params"} of jobs started here
KEEP_INSTRUMENTED = 50


def starting_hyperparameters(session: Session, from_best: bool, from_job: str | None) -> tuple[dict, str | None]:
    """Hyperparameters of the best tuning trial (state `best_job`) or of job `from_job`,
    restricted to the ones train_model.py accepts; and where they came from."""
    from dogbreed import hyperparameters as hp
    from dogbreed.errors import ConfigError

    if from_best and from_job:
        raise ConfigError("--from-best and --from-job both choose the starting hyperparameters; pass one of them")
    if from_best:
        best = session.workspace.require("best_job",
                                         "run `dogbreed tune` first, or pass --from-job NAME or explicit flags")
        found, source = dict(best.get("hyperparameters") or {}), f"best tuning job {best.get('name')}"
    elif from_job:
        found, source = dict(session.backend().describe_job(from_job).hyperparameters), f"job {from_job}"
    else:
        return {}, None
    known = hp.known_script_hyperparameters(ENTRY_POINT)
    return {k: v for k, v in found.items() if k in known}, source


def training_spec(session: Session, *, data: str | None, from_best: bool = False, from_job: str | None = None,
                  static: dict[str, Any] | None = None, flags: dict[str, Any] | None = None, processes: int = 1,
                  instrumentation: Instrumentation | None = None) -> tuple[TrainingJobSpec, str | None]:
    """The final training job: starting hyperparameters, then `static` (already checked), then the
    `flags` given (None = not given). Returns the spec and where the starting values came from."""
    hps, source = starting_hyperparameters(session, from_best, from_job)
    hps.update(static or {})
    hps.update({k: v for k, v in (flags or {}).items() if v is not None})
    spec = TrainingJobSpec(entry_point=ENTRY_POINT, hyperparameters=hps, data=resolve_data(session, data),
                           base_name=BASE_NAME, processes=processes, instrumentation=instrumentation)
    return spec, source


def run_training(session: Session, spec: TrainingJobSpec, *, wait: bool = True,
                 log: LogSink | None = None) -> JobDescription:
    """Run `spec` on the chosen backend and record it (and its model, once Completed). With
    `wait` and the debugger on, rule statuses are refreshed while the job runs and changes
    go to `log`; the finished job's description carries the verdict (`extra["verdict"]`)."""
    from dogbreed.tracking import tracker_for

    tracker_for(session.settings)  # a tracking URI that cannot be used fails here, before the job
    backend = session.backend()
    i = spec.instrumentation
    if i is not None and i.debugger:
        spec.job_name = spec.job_name or _new_job_name(spec.base_name)
        _remember_instrumentation(session, spec.job_name, i)
    live = LiveRules(session, backend, spec.job_name, log) if wait and log and i is not None and i.debugger else None
    if live:
        live.start()
    try:
        job = backend.run_training_job(spec, wait=wait, log=log)
    finally:
        if live:
            live.stop()
    if wait:
        assess(session, backend, job)
    return _record(session, backend, job, wait)


def _new_job_name(base: str) -> str:
    """A unique job name chosen here, so rule statuses can be followed while the job starts."""
    import secrets
    import time

    from dogbreed.names import check_name

    return check_name(f"{base}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}", "training job", 63)


def _remember_instrumentation(session: Session, name: str, i: Instrumentation) -> None:
    known = dict(session.workspace.get(INSTRUMENTED) or {})
    known[name] = {"mode": i.debugger_mode, "rule_params": i.rule_params}
    session.workspace.update(**{INSTRUMENTED: dict(list(known.items())[-KEEP_INSTRUMENTED:])})


def assess(session: Session, backend, job: JobDescription, job_dir=None) -> JobDescription:
    """Put the verdict in `job.extra["verdict"]`. When the backend reported no rule statuses
    but the job's outputs hold debugger tensors (SageMaker client mode), evaluate the rules
    here first, on a copy of the outputs (`job_dir`, default: fetched into the workspace
    cache). Never raises for unreadable outputs."""
    from dogbreed.rules import runner, verdict

    known = (session.workspace.get(INSTRUMENTED) or {}).get(job.name) or {}
    try:
        job_dir = job_dir or backend.job_outputs(job.name, session.workspace.cache_dir / "jobs" / job.name)
    except Exception as exc:  # S3 unreachable, a vanished job folder: say so, keep the rest
        job.extra["verdict"] = verdict.Verdict(verdict.UNKNOWN, f"no verdict: could not read the job's outputs "
                                                                f"({type(exc).__name__}: {exc})").to_dict()
        return job
    running = job.status not in TERMINAL
    if not job.extra.get("rules"):
        params = runner.rules_with_params(overrides=known.get("rule_params"))
        tensors = job_dir / "output" / "tensors"
        if (tensors / "collections").is_dir():
            job.extra["rules"] = runner.evaluate_copy(tensors, params, running=running)
            job.extra["rules_by"] = "dogbreed, client-side"
        elif known.get("mode") in ("client", "auto"):
            state, why = ((runner.IN_PROGRESS, "waiting for the job's first tensors to sync to S3") if running else
                          (runner.ERROR, "no debugger tensors were synced to S3 (was smdebug importable in the job?)"))
            job.extra["rules"] = [runner.status(name, state, why) for name in params]
    job.extra["verdict"] = verdict.judge_job(job_dir, job.extra.get("rules"), job.metric_series).to_dict()
    return job


class LiveRules(threading.Thread):
    """While `train --wait` runs: every LIVE_POLL_S, the job's rule statuses (evaluated here
    when the backend has none); each change goes to `log` as one line."""

    def __init__(self, session: Session, backend, name: str, log: LogSink, poll_s: float = LIVE_POLL_S):
        super().__init__(daemon=True, name="dogbreed-live-rules")
        self.session, self.backend, self.name, self.log, self.poll_s = session, backend, name, log, poll_s
        self.stop_event = threading.Event()
        self.seen: dict[str, tuple[str, str]] = {}

    def run(self) -> None:
        while not self.stop_event.wait(self.poll_s):
            try:
                job = self.backend.describe_job(self.name)
                if job.status in TERMINAL:
                    return
                rules = job.extra.get("rules") or assess(self.session, self.backend, job).extra.get("rules") or []
            except Exception:  # not created yet, S3 throttled...: a monitor never stops the job; next round
                continue
            for r in rules:
                key = (r.get("RuleEvaluationStatus", ""), r.get("StatusDetails", ""))
                if self.seen.get(r.get("RuleConfigurationName")) != key:
                    self.seen[r.get("RuleConfigurationName")] = key
                    self.log(f"rule {r.get('RuleConfigurationName')}: {key[0]}" + (f"  {key[1]}" if key[1] else ""))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


def resume_training(session: Session, name: str | None, *, log: LogSink | None = None) -> JobDescription:
    """Run a Failed/Stopped job again from its last checkpoint (default: the last training job)."""
    from dogbreed.tracking import tracker_for

    tracker_for(session.settings)
    backend, name = _job_backend(session, name, "--resume JOB")
    return _record(session, backend, backend.require("resume_training_job", name)(name, log=log), wait=True)


def training_status(session: Session, name: str | None) -> JobDescription:
    """A training job's description with rule statuses and the verdict (default: the last training job)."""
    backend, name = _job_backend(session, name, "--status JOB")
    return assess(session, backend, backend.describe_job(name))


def _job_backend(session: Session, name: str | None, flag: str):
    if name is not None:
        return session.backend(), name
    last = session.workspace.require("last_training_job", f"run `dogbreed train` first, or pass {flag}")
    return session.backend(last.get("backend")), last["name"]


def _record(session: Session, backend, job: JobDescription, wait: bool) -> JobDescription:
    from dogbreed.errors import JobFailedError

    session.workspace.update(last_training_job={"name": job.name, "backend": backend.name})
    if not wait:
        return job
    _track(session, job)
    if job.status != COMPLETED:
        hint = (f"; continue it with `dogbreed train --resume {job.name}`"
                if backend.supports("resume_training_job") else "")
        raise JobFailedError(f"training job {job.name} {job.status}: {job.failure_reason}{hint}")
    session.workspace.update(model_data={"uri": job.model_data, "job": job.name, "backend": backend.name})
    return job


def _track(session: Session, job: JobDescription) -> None:
    """Log the finished job to MLflow (when tracking is on), its report included (written where
    `dogbreed report` writes it, so `deploy` links it from the prediction page too)."""
    from dogbreed.tracking import tracker_for
    from dogbreed.workflows.reports import write_report

    tracker_for(session.settings).log_training(job, report=lambda: write_report(session, job.name, None))
