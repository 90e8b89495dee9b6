"""Local tuning: Optuna drives `hpo.py` trials through the local job runner.

    <workspace>/tuning/<name>/tuning.json   the spec, status and the driving process
    <workspace>/tuning/<name>/study.db      Optuna's SQLite storage: every trial, its params,
                                            per-epoch objective values and final state
    <workspace>/jobs/<name>-NNN/            one local job per trial (hpo.py), as any other job

Strategies: bayesian (TPE), random, grid (continuous ranges at a few points), hyperband
(TPE + Hyperband pruning). `--early-stopping` prunes with the median rule, like
SageMaker's "Auto". Pruning decisions come from the per-epoch objective lines parsed live
from each trial's log. A trial that fails is recorded Failed with its reason and counts
toward max_jobs, as on SageMaker; one cut short by Ctrl-C or a crash is rerun with the
same hyperparameters on resume, so no finished trial is redone and none is recorded twice.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import queue
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dogbreed.backends.base import (COMPLETED, FAILED, IN_PROGRESS, STOPPED, TrainingJobSpec, TrialResult,
                                    TuningProgress, TuningResult, TuningSpec)
from dogbreed.backends.local.jobs import LocalJobRunner, RunningJob, job_name
from dogbreed.backends.local.processes import detached_worker_main, pid_alive
from dogbreed.errors import ConfigError, JobNotFoundError
from dogbreed.search_space import Categorical, Continuous, Integer, SearchSpace
from dogbreed.training import metrics
from dogbreed.training.features import ENV_FEATURE_CACHE
from dogbreed.workspace import Workspace, atomic_write_json

SCRIPT_DEFAULT_EPOCHS = 5  # scripts' --epochs default: Hyperband's max resource when epochs is not set
INTERRUPTED = "interrupted"  # user attr of a trial cut short by Ctrl-C/crash (rerun on resume)


def _optuna():
    from dogbreed._imports import require

    optuna = require("optuna", "local tuning", "optuna>=3.5")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass
class _Active:
    trial: object  # optuna.Trial
    job: RunningJob
    steps: int = 0
    prune_requested: bool = False


class LocalTuner:
    def __init__(self, workspace: Workspace, runner: LocalJobRunner | None = None):
        self.ws = workspace
        self.runner = runner or LocalJobRunner(workspace)

    # -- files ------------------------------------------------------------------------------
    def folder(self, name: str) -> Path:
        return self.ws.root / "tuning" / name

    def _record_path(self, name: str) -> Path:
        return self.folder(name) / "tuning.json"

    def _read(self, name: str) -> dict:
        try:
            return json.loads(self._record_path(name).read_text())
        except FileNotFoundError:
            raise JobNotFoundError(f"no local tuning job named {name!r} in {self.ws.root / 'tuning'}") from None

    def _update(self, name: str, **values) -> dict:
        record = self._read(name)
        record.update(values)
        atomic_write_json(self._record_path(name), record)
        return record

    def _storage(self, name: str):
        optuna = _optuna()
        url = f"sqlite:///{self.folder(name) / 'study.db'}"
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 30}})

    # -- creating ---------------------------------------------------------------------------
    def create(self, spec: TuningSpec) -> str:
        name = spec.name or job_name("hpo")
        if self._record_path(name).exists():
            raise ConfigError(f"a tuning job named {name!r} exists already; pick another --name "
                              f"or continue it with --resume {name}")
        space: SearchSpace = spec.space.for_grid() if spec.strategy == "grid" else spec.space
        max_jobs = min(spec.max_jobs, space.grid_size()) if spec.strategy == "grid" else spec.max_jobs
        record = {"name": name, "status": IN_PROGRESS, "created": time.time(), "data": spec.data,
                  "static": spec.static_hyperparameters, "space": space.to_dict(), "strategy": spec.strategy,
                  "max_jobs": max_jobs, "max_parallel_jobs": min(spec.max_parallel_jobs, max_jobs),
                  "early_stopping": spec.early_stopping, "seed": spec.seed, "driver_pid": None}
        self.folder(name).mkdir(parents=True, exist_ok=True)
        atomic_write_json(self._record_path(name), record)
        study = self._study(record, create=True)
        if spec.strategy == "grid":
            # Enqueued rather than optuna's GridSampler, which calls study.stop() when the grid is
            # exhausted and that only works inside study.optimize(), not with ask/tell.
            names = list(space.ranges)
            for values in itertools.product(*(space.ranges[n].values for n in names)):
                study.enqueue_trial(dict(zip(names, values)))
        return name

    def _study(self, record: dict, create: bool = False):
        optuna = _optuna()
        space = SearchSpace.from_dict(record["space"])
        strategy, seed = record["strategy"], record.get("seed")
        if strategy in ("random", "grid"):  # grid: every point is enqueued at creation (see `create`)
            sampler = optuna.samplers.RandomSampler(seed=seed)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, record["max_jobs"] // 3))
        if strategy == "hyperband":
            max_epochs = int(record["static"].get("epochs", SCRIPT_DEFAULT_EPOCHS))
            pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1), reduction_factor=3)
        elif record.get("early_stopping"):
            pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
        else:
            pruner = optuna.pruners.NopPruner()
        kwargs = dict(study_name=record["name"], storage=self._storage(record["name"]), sampler=sampler, pruner=pruner)
        if create:
            return optuna.create_study(direction=space.objective.goal, **kwargs)
        return optuna.load_study(**kwargs)

    # -- describing -------------------------------------------------------------------------
    def describe(self, name: str) -> TuningResult:
        record = self._read(name)
        optuna = _optuna()
        study = self._study(record)
        space = SearchSpace.from_dict(record["space"])
        S = optuna.trial.TrialState
        trials: list[TrialResult] = []
        for t in study.get_trials(deepcopy=False):
            if t.user_attrs.get(INTERRUPTED) or t.state == S.WAITING:
                continue
            job = t.user_attrs.get("job", f"trial-{t.number}")
            status = {S.COMPLETE: COMPLETED, S.PRUNED: STOPPED, S.FAIL: FAILED}.get(t.state, IN_PROGRESS)
            value = t.value if t.state == S.COMPLETE else (
                t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
            duration = None
            try:
                duration = self.runner.describe(job).duration_s
            except JobNotFoundError:
                pass
            reason = t.user_attrs.get("failure_reason") or ("pruned (early stopping)" if status == STOPPED else None)
            trials.append(TrialResult(job, status, dict(t.params), value, duration, reason))
        status, reason = record["status"], record.get("failure_reason")
        if status == IN_PROGRESS and not pid_alive(record.get("driver_pid")):
            status, reason = STOPPED, f"the tuning process stopped; `dogbreed tune --resume {name}` continues it"
        completed = [t for t in trials if t.status == COMPLETED and t.objective is not None]
        best = min(completed, key=lambda t: space.objective.sort_key(t.objective)) if completed else None
        return TuningResult(name=name, backend="local", status=status, strategy=record["strategy"],
                            objective_metric=space.objective.metric, objective_goal=space.objective.goal,
                            max_jobs=record["max_jobs"], trials=trials, best=best, location=str(self.folder(name)),
                            failure_reason=reason)

    # -- driving ----------------------------------------------------------------------------
    def start_detached(self, name: str) -> None:
        """Drive in a background process that outlives this one (`--no-wait`)."""
        with open(self.folder(name) / "driver.log", "a") as log:
            proc = subprocess.Popen([sys.executable, "-m", "dogbreed.backends.local.tuning", str(self.ws.root), name],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self._update(name, driver_pid=proc.pid, status=IN_PROGRESS)

    def drive(self, name: str, progress: TuningProgress | None = None) -> TuningResult:
        """Run trials until max_jobs have finished; resumable (see module docstring)."""
        record = self._read(name)
        pid = record.get("driver_pid")
        if pid and pid != os.getpid() and pid_alive(pid) and record["status"] == IN_PROGRESS:
            raise ConfigError(f"tuning job {name} is running in process {pid}; follow it with "
                              f"`dogbreed tune --attach {name}`")
        record = self._update(name, driver_pid=os.getpid(), status=IN_PROGRESS, failure_reason=None)
        optuna = _optuna()
        study = self._study(record)
        space = SearchSpace.from_dict(record["space"])
        self._recover(study, space.objective.metric)
        events: queue.Queue = queue.Queue()
        active: dict[int, _Active] = {}
        threads = max(1, (os.cpu_count() or 1) // record["max_parallel_jobs"])
        env = {ENV_FEATURE_CACHE: str(self.ws.cache_dir / "features"), "OMP_NUM_THREADS": str(threads)}
        S = optuna.trial.TrialState

        def counted() -> int:
            return sum(1 for t in study.get_trials(deepcopy=False)
                       if t.state in (S.COMPLETE, S.PRUNED) or (t.state == S.FAIL and not t.user_attrs.get(INTERRUPTED)))

        def report():
            if progress:
                progress(self.describe(name))

        try:
            while True:
                done = counted()
                while len(active) < record["max_parallel_jobs"] and done + len(active) < record["max_jobs"]:
                    trial = study.ask()
                    params = suggest(trial, space)
                    job = f"{name}-{trial.number + 1:03d}"
                    trial.set_user_attr("job", job)
                    spec = TrainingJobSpec(entry_point="hpo.py", hyperparameters={**record["static"], **params},
                                           data=record["data"], base_name=name, job_name=job, env=env)
                    running = self.runner.start(spec, log=lambda line, n=trial.number: events.put((n, line)))
                    active[trial.number] = _Active(trial, running)
                if not active:
                    break
                finished = [n for n, a in active.items() if a.job.done()]
                self._drain(events, active, space)
                for n in finished:
                    self._finish(study, active.pop(n), space)
                if finished:
                    report()
                else:
                    time.sleep(0.2)
        except BaseException as exc:
            for a in active.values():
                a.job.stop()
            for a in active.values():
                a.job.wait()
                self._interrupt(study, a.trial)
            status = STOPPED if isinstance(exc, KeyboardInterrupt) else FAILED
            self._update(name, status=status, failure_reason=f"{type(exc).__name__}: {exc}" if status == FAILED
                         else f"stopped by the user; `dogbreed tune --resume {name}` continues it")
            raise
        result = self.describe(name)
        if result.best is None:
            reasons = sorted({t.failure_reason for t in result.trials if t.failure_reason})
            self._update(name, status=FAILED, failure_reason="no trial completed: " + "; ".join(reasons)[:900])
        else:
            self._update(name, status=COMPLETED)
        return self.describe(name)

    def _drain(self, events: queue.Queue, active: dict[int, _Active], space: SearchSpace) -> None:
        metric = space.objective.metric
        while True:
            try:
                number, line = events.get_nowait()
            except queue.Empty:
                return
            a = active.get(number)
            value = metrics.parse_line(line).get(metric)
            if a is None or value is None or math.isnan(value):
                continue
            a.steps += 1
            a.trial.report(value, a.steps)
            if not a.prune_requested and a.trial.should_prune():
                a.prune_requested = True
                a.job.stop()

    def _finish(self, study, a: _Active, space: SearchSpace) -> None:
        optuna = _optuna()
        S = optuna.trial.TrialState
        desc = a.job.wait()
        metric = space.objective.metric
        if a.prune_requested:
            study.tell(a.trial, state=S.PRUNED)
        elif desc.status == COMPLETED and metric in desc.metrics:
            study.tell(a.trial, desc.metrics[metric])
        else:
            reason = desc.failure_reason or f"no {metric} metric in the log"
            a.trial.set_user_attr("failure_reason", reason)
            study.tell(a.trial, state=S.FAIL)

    def _interrupt(self, study, trial) -> None:
        """Mark a cut-short trial as not counting and queue its hyperparameters for a rerun."""
        optuna = _optuna()
        params = dict(trial.params)
        trial.set_user_attr(INTERRUPTED, True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(params, skip_if_exists=False)

    def _recover(self, study, metric: str) -> None:
        """After a crash: trials still marked running either finished (their job says so) or
        are rerun."""
        optuna = _optuna()
        S = optuna.trial.TrialState
        for t in study.get_trials(deepcopy=False, states=(S.RUNNING,)):
            job = t.user_attrs.get("job")
            desc = None
            if job:
                try:
                    desc = self.runner.describe(job)
                except JobNotFoundError:
                    desc = None
            if desc is not None and desc.status == COMPLETED and metric in desc.metrics:
                study.tell(t.number, desc.metrics[metric])
            else:  # a live handle on the stored trial (optuna keeps its id private)
                self._interrupt(study, optuna.trial.Trial(study, t._trial_id))


def check_local_data(data: str, cache_dir: Path | None = None) -> None:
    """What `dogbreed data check` checks, before any trial starts. The check decodes every
    image (half a minute for dogImages), so a pass is remembered under `cache_dir` by the
    data's fingerprint (paths, sizes, mtimes): an unchanged dataset is not decoded again."""
    from dogbreed.data.check import check_dataset
    from dogbreed.errors import DataError
    from dogbreed.training.data import find_root
    from dogbreed.training.features import data_fingerprint

    if data.startswith("s3://"):
        raise ConfigError(f"the local backend reads a local folder, not {data}; pass --data DIR "
                          "or use --backend sagemaker")
    marker = None
    if cache_dir is not None and Path(data).is_dir():
        root = find_root(data)
        files = sorted((str(p), 0) for p in root.rglob("*") if p.is_file())
        marker = cache_dir / f"data-check-{data_fingerprint(root, files)}.ok"
        if marker.is_file():
            return
    try:
        report = check_dataset(data)
    except DataError as exc:
        raise DataError(f"{data} fails `dogbreed data check`: {exc}") from None
    if not report.ok:
        raise DataError(f"{data} fails `dogbreed data check`: train/ and valid/ both need readable images")
    if marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"root": str(report.root), "images": report.images}) + "\n")


def suggest(trial, space: SearchSpace) -> dict:
    out = {}
    for name, r in space.ranges.items():
        if isinstance(r, Categorical):
            out[name] = trial.suggest_categorical(name, list(r.values))
        elif isinstance(r, Integer):
            out[name] = trial.suggest_int(name, r.low, r.high, log=r.scale == "log")
        elif isinstance(r, Continuous):
            out[name] = trial.suggest_float(name, r.low, r.high, log=r.scale == "log")
    return out


def main(argv: list[str] | None = None) -> None:  # the driver that `LocalTuner.start_detached` starts
    detached_worker_main(lambda workspace, name: LocalTuner(workspace).drive(name), argv)


if __name__ == "__main__":
    main()
