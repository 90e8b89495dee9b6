"""Local tuning: Optuna drives `hpo.py` trials through the local job runner.

    <workspace>/tuning/<name>/tuning.json   the spec, status and the driving process
    <workspace>/tuning/<name>/study.db      Optuna's SQLite storage: every trial, its params,
                                            per-epoch objective values and final state
    <workspace>/jobs/<name>-NNN/            one local job per trial (hpo.py), as any other job;
                                            its process forked from the run's warm trial workers
                                            (`trial_workers`: no python/torch start-up per trial)

Strategies: bayesian (TPE), random, grid (continuous ranges at a few points), hyperband
(TPE + Hyperband pruning). `--early-stopping` prunes with the median rule, like
SageMaker's "Auto". Pruning decisions come from the per-epoch objective lines parsed live
from each trial's log. A trial that fails is recorded Failed with its reason and counts
toward max_jobs, as on SageMaker; one cut short by Ctrl-C or a crash is rerun with the
same hyperparameters on resume, so no finished trial is redone and none is recorded twice.

    TuningRecord, TuningFolder    tuning.json: what the job runs and where it stands
    make_sampler, make_pruner     the strategy as Optuna's sampler and pruner
    TuningStudy                   the study, and the few things the tuner does with it
    TrialLoop                     runs trials as local jobs, feeds the pruner, records how they end
    LocalTuner                    create / describe / drive (and resume after a crash)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import queue
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from dogbreed.backends.base import (COMPLETED, FAILED, IN_PROGRESS, STOPPED, TrainingJobSpec, TrialResult,
                                    TuningProgress, TuningResult, TuningSpec)
from dogbreed.backends.local import trial_workers
from dogbreed.backends.local.jobs import LocalJobRunner, RunningJob, job_name
from dogbreed.backends.local.processes import (TERM_GRACE_S, detached_worker_main, pid_alive, start_detached_worker,
                                               stop_signals_interrupt)
from dogbreed.errors import ConfigError, JobNotFoundError
from dogbreed.names import TUNING_JOB_MAX_LENGTH, check_name
from dogbreed.search_space import (GRID, HYPERBAND, RANDOM, Categorical, Continuous, Integer, SearchSpace,
                                   hyperband_max_epochs)
from dogbreed.training import metrics
from dogbreed.training.features import ENV_FEATURE_CACHE, ENV_FEATURE_THREADS
from dogbreed.workspace import Workspace, atomic_write_json

INTERRUPTED = "interrupted"  # user attr of a trial cut short by Ctrl-C/crash (rerun on resume)
FAILURE_REASON = "failure_reason"  # user attr: why a trial failed
JOB = "job"  # user attr: the trial's local job name
ENTRY_POINT = "hpo.py"
# Tuning stops when this many trials in a row fail with the same reason: a broken setup (missing
# weights, bad data, a typo in a hyperparameter) fails every trial alike, and the rest would burn time.
MAX_IDENTICAL_FAILURES = 3
POLL_S = 0.05  # how often the drive loop looks at its trials: a warm trial takes well under a second


class RepeatedFailure(Exception):
    """MAX_IDENTICAL_FAILURES trials in a row failed with the same reason."""


def _optuna():
    from dogbreed._imports import require

    optuna = require("optuna", "local tuning", "optuna>=3.5")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# -- the record file ----------------------------------------------------------------------------
@dataclass
class TuningRecord:
    """tuning.json: what a tuning job runs and where it stands (the trials live in study.db)."""

    name: str
    data: str
    static: dict[str, Any]  # fixed hyperparameters of every trial
    space: dict  # SearchSpace.to_dict(), grid points already expanded for the grid strategy
    strategy: str
    max_jobs: int
    max_parallel_jobs: int
    early_stopping: bool = False
    seed: int | None = None
    status: str = IN_PROGRESS
    created: float = field(default_factory=time.time)
    driver_pid: int | None = None  # the process driving the trials
    failure_reason: str | None = None

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.space)

    @classmethod
    def from_dict(cls, d: dict) -> "TuningRecord":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


class TuningFolder:
    """<workspace>/tuning/<name>/: the record file, the study's database and the driver's log."""

    def __init__(self, workspace: Workspace, name: str):
        self.name = check_name(name, "tuning job name", TUNING_JOB_MAX_LENGTH)
        self.path = workspace.root / "tuning" / name
        self.record_path = self.path / "tuning.json"
        self.storage_url = f"sqlite:///{self.path / 'study.db'}"
        self.driver_log = self.path / "driver.log"

    def exists(self) -> bool:
        return self.record_path.exists()

    def read(self) -> TuningRecord:
        try:
            return TuningRecord.from_dict(json.loads(self.record_path.read_text()))
        except FileNotFoundError:
            raise JobNotFoundError(f"no local tuning job named {self.name!r} in {self.path.parent}") from None

    def write(self, record: TuningRecord) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.record_path, asdict(record))

    def update(self, **values) -> TuningRecord:
        record = self.read()
        for key, value in values.items():
            setattr(record, key, value)
        self.write(record)
        return record


# -- sampler and pruner policy --------------------------------------------------------------------
def make_sampler(record: TuningRecord):
    """TPE for bayesian and hyperband; random sampling for random, and for grid, whose points
    are all enqueued when the job is created (see `TuningStudy.enqueue_grid`)."""
    optuna = _optuna()
    if record.strategy in (RANDOM, GRID):
        return optuna.samplers.RandomSampler(seed=record.seed)
    return optuna.samplers.TPESampler(seed=record.seed, n_startup_trials=max(2, record.max_jobs // 3))


def make_pruner(record: TuningRecord):
    """Hyperband's brackets over epochs; else the median rule with --early-stopping (SageMaker's Auto)."""
    optuna = _optuna()
    if record.strategy == HYPERBAND:
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=hyperband_max_epochs(record.static),
                                              reduction_factor=3)
    if record.early_stopping:
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


# -- the study --------------------------------------------------------------------------------------
class TuningStudy:
    """The Optuna study of one tuning job, in SQLite in its folder, and what the tuner does with it."""

    def __init__(self, folder: TuningFolder, record: TuningRecord, *, create: bool = False):
        optuna = _optuna()
        self.states = optuna.trial.TrialState
        self.storage = optuna.storages.RDBStorage(folder.storage_url, engine_kwargs={"connect_args": {"timeout": 30}})
        kwargs = dict(study_name=record.name, storage=self.storage, sampler=make_sampler(record),
                      pruner=make_pruner(record))
        if create:
            self.study = optuna.create_study(direction=record.search_space.objective.goal, **kwargs)
        else:
            self.study = optuna.load_study(**kwargs)

    def enqueue_grid(self, space: SearchSpace) -> None:
        # Enqueued rather than optuna's GridSampler, which calls study.stop() when the grid is
        # exhausted and that only works inside study.optimize(), not with ask/tell.
        names = list(space.ranges)
        for values in itertools.product(*(space.ranges[n].values for n in names)):
            self.study.enqueue_trial(dict(zip(names, values)))

    def recorded(self) -> list:
        """The trials that are part of the job's record: not queued, not cut short."""
        return [t for t in self.study.get_trials(deepcopy=False)
                if t.state != self.states.WAITING and not t.user_attrs.get(INTERRUPTED)]

    def counted(self) -> int:
        """Trials that count toward max_jobs: finished ones, failures included (as on SageMaker)."""
        S = self.states
        return sum(1 for t in self.recorded() if t.state in (S.COMPLETE, S.PRUNED, S.FAIL))

    def running(self) -> list:
        return self.study.get_trials(deepcopy=False, states=(self.states.RUNNING,))

    def ask(self, space: SearchSpace):
        """A new trial (a queued one first) and its hyperparameters."""
        trial = self.study.ask()
        return trial, suggest(trial, space)

    def complete(self, number: int, value: float) -> None:
        self.study.tell(number, value)

    def prune(self, number: int) -> None:
        self.study.tell(number, state=self.states.PRUNED)

    def fail(self, number: int, reason: str) -> None:
        self._set_user_attr(number, FAILURE_REASON, reason)
        self.study.tell(number, state=self.states.FAIL)

    def interrupt(self, number: int, params: dict) -> None:
        """A trial cut short stops counting, and its hyperparameters are queued for a rerun."""
        trial = self.storage.get_trial(self._trial_id(number))
        if trial.state.is_finished():
            return
        self._set_user_attr(number, INTERRUPTED, True)
        self.study.tell(number, state=self.states.FAIL)
        self.study.enqueue_trial(params, skip_if_exists=False)

    def _trial_id(self, number: int) -> int:
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, number)

    def _set_user_attr(self, number: int, key: str, value: Any) -> None:
        # Through the storage: after a crash only the trial's number is left, not a live optuna.Trial.
        self.storage.set_trial_user_attr(self._trial_id(number), key, value)


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


# -- the drive loop ---------------------------------------------------------------------------------
@dataclass
class _ActiveTrial:
    trial: Any  # optuna.Trial
    params: dict
    job: RunningJob
    steps: int = 0  # objective values reported to the pruner so far
    prune_requested: bool = False


class TrialLoop:
    """Runs a tuning job's trials as local jobs until max_jobs have finished: keeps up to
    max_parallel_jobs running, feeds each trial's per-epoch objective (parsed live from its
    log) to the pruner, and records how each trial ends."""

    def __init__(self, record: TuningRecord, study: TuningStudy, runner: LocalJobRunner, env: dict[str, str],
                 on_line: Callable[[str, str], None] | None = None):
        self.record, self.study, self.runner, self.env = record, study, runner, env
        self.on_line = on_line  # (trial job, log line): every line the trials print, as they come
        self.space = record.search_space
        self.metric = self.space.objective.metric
        self.events: queue.Queue = queue.Queue()  # (trial number, log line) from the jobs' log threads
        self.active: dict[int, _ActiveTrial] = {}
        self.failures: list[str] = []  # reasons of the trials that failed last, in a row
        self.best: tuple[float, str] | None = None  # (objective, job) of the best completed trial

    def run(self, on_trial_finished: Callable[[], None] = lambda: None) -> None:
        while True:
            self._start_trials()
            if not self.active:
                return
            finished = [n for n, a in self.active.items() if a.job.done()]
            self._feed_objective_values()
            for number in finished:  # one at a time: a Ctrl-C in `on_trial_finished` leaves the rest unrecorded
                self._record_end(self.active[number])
                del self.active[number]
                on_trial_finished()
            if not finished:
                time.sleep(POLL_S)

    def stop_all(self) -> None:
        """Stop every running trial and queue it for a rerun on resume."""
        for a in self.active.values():
            a.job.stop()
        for a in self.active.values():
            a.job.wait()
            self.study.interrupt(a.trial.number, a.params)

    def _start_trials(self) -> None:
        done = self.study.counted()
        while len(self.active) < self.record.max_parallel_jobs and done + len(self.active) < self.record.max_jobs:
            trial, params = self.study.ask(self.space)
            job = f"{self.record.name}-{trial.number + 1:03d}"
            trial.set_user_attr(JOB, job)
            spec = TrainingJobSpec(entry_point=ENTRY_POINT, hyperparameters={**self.record.static, **params},
                                   data=self.record.data, base_name=self.record.name, job_name=job, env=self.env)
            running = self.runner.start(spec, log=lambda line, n=trial.number: self.events.put((n, line)))
            self.active[trial.number] = _ActiveTrial(trial, params, running)

    def _feed_objective_values(self) -> None:
        while True:
            try:
                number, line = self.events.get_nowait()
            except queue.Empty:
                return
            a = self.active.get(number)
            if a is not None and self.on_line is not None:
                self.on_line(a.job.name, line)
            value = metrics.parse_line(line).get(self.metric)
            if a is None or value is None or math.isnan(value):
                continue
            a.steps += 1
            a.trial.report(value, a.steps)
            if not a.prune_requested and a.trial.should_prune():
                a.prune_requested = True
                a.job.stop()

    def _record_end(self, a: _ActiveTrial) -> None:
        desc = a.job.wait()
        number = a.trial.number
        if a.prune_requested:
            self.study.prune(number)
            self._drop_model(desc.name)
        elif desc.status == COMPLETED and self.metric in desc.metrics:
            self.study.complete(number, desc.metrics[self.metric])
            self.failures.clear()
            self._keep_best_model(desc.metrics[self.metric], desc.name)
        else:
            reason = desc.failure_reason or f"no {self.metric} metric in the log"
            self.study.fail(number, reason)
            self.failures.append(reason)
            if self.failures[-MAX_IDENTICAL_FAILURES:] == [reason] * MAX_IDENTICAL_FAILURES:
                raise RepeatedFailure(f"stopped after {MAX_IDENTICAL_FAILURES} trials in a row failed alike: {reason}")

    def _keep_best_model(self, value: float, job: str) -> None:
        """Only the best trial keeps its model (model/ and model.tar.gz: a ResNet18 trial's folder
        measured 87 MB with them, 76 KB without): the others keep their log, metrics and
        hyperparameters, enough for reports and `train --from-job`."""
        better = self.best is None or (value < self.best[0] if self.space.objective.goal == "minimize"
                                       else value > self.best[0])
        if better:
            if self.best is not None:
                self._drop_model(self.best[1])
            self.best = (value, job)
        else:
            self._drop_model(job)

    def _drop_model(self, job: str) -> None:
        self.runner.drop_model(job, f"not the best trial of {self.record.name}")


# -- the tuner ----------------------------------------------------------------------------------------
class LocalTuner:
    def __init__(self, workspace: Workspace, runner: LocalJobRunner | None = None):
        self.ws = workspace
        self.runner = runner or LocalJobRunner(workspace)

    def folder(self, name: str) -> TuningFolder:
        return TuningFolder(self.ws, name)

    def create(self, spec: TuningSpec) -> str:
        name = spec.name or job_name("hpo")
        folder = self.folder(name)
        if folder.exists():
            raise ConfigError(f"a tuning job named {name!r} exists already; pick another --name "
                              f"or continue it with --resume {name}")
        space = spec.space.for_strategy(spec.strategy)
        max_jobs, max_parallel_jobs = spec.space.capped_jobs(spec.strategy, spec.max_jobs, spec.max_parallel_jobs)
        record = TuningRecord(name=name, data=spec.data, static=spec.static_hyperparameters, space=space.to_dict(),
                              strategy=spec.strategy, max_jobs=max_jobs, max_parallel_jobs=max_parallel_jobs,
                              early_stopping=spec.early_stopping, seed=spec.seed)
        folder.write(record)
        study = TuningStudy(folder, record, create=True)
        if spec.strategy == GRID:
            study.enqueue_grid(space)
        return name

    def describe(self, name: str) -> TuningResult:
        folder = self.folder(name)
        record = folder.read()
        study = TuningStudy(folder, record)
        objective = record.search_space.objective
        trials = [self._trial_result(study, t) for t in study.recorded()]
        status, reason = record.status, record.failure_reason
        if status == IN_PROGRESS and not pid_alive(record.driver_pid):
            status, reason = STOPPED, f"the tuning process stopped; `dogbreed tune --resume {name}` continues it"
        result = TuningResult(name=name, backend="local", status=status, strategy=record.strategy,
                              objective_metric=objective.metric, objective_goal=objective.goal,
                              max_jobs=record.max_jobs, trials=trials, location=str(folder.path),
                              failure_reason=reason)
        result.best = next((t for t in result.ranked() if t.status == COMPLETED and t.objective is not None), None)
        return result

    def _trial_result(self, study: TuningStudy, t) -> TrialResult:
        S = study.states
        job = t.user_attrs.get(JOB, f"trial-{t.number}")
        status = {S.COMPLETE: COMPLETED, S.PRUNED: STOPPED, S.FAIL: FAILED}.get(t.state, IN_PROGRESS)
        if t.state == S.COMPLETE:
            value = t.value
        else:  # the last objective value it reported, if any
            value = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        try:
            duration = self.runner.describe(job).duration_s
        except JobNotFoundError:
            duration = None
        reason = t.user_attrs.get(FAILURE_REASON) or ("pruned (early stopping)" if status == STOPPED else None)
        return TrialResult(job, status, dict(t.params), value, duration, reason)

    def start_detached(self, name: str) -> None:
        """Drive in a background process that outlives this one (`--no-wait`)."""
        folder = self.folder(name)
        pid = start_detached_worker("dogbreed.backends.local.tuning", self.ws, name, log_file=folder.driver_log)
        folder.update(driver_pid=pid, status=IN_PROGRESS)

    def drive(self, name: str, progress: TuningProgress | None = None) -> TuningResult:
        """Run trials until max_jobs have finished; resumable (see module docstring)."""
        folder = self.folder(name)
        record = folder.read()
        pid = record.driver_pid
        if pid and pid != os.getpid() and pid_alive(pid) and record.status == IN_PROGRESS:
            raise ConfigError(f"tuning job {name} is running in process {pid}; follow it with "
                              f"`dogbreed tune --attach {name}`")
        record = folder.update(driver_pid=os.getpid(), status=IN_PROGRESS, failure_reason=None)
        env = self._trial_env(record)
        with self._trial_runner(env, folder) as runner:
            return self._drive(folder, record, runner, env, progress)

    @contextlib.contextmanager
    def _trial_runner(self, env: dict[str, str], folder: TuningFolder) -> Iterator[LocalJobRunner]:
        """The job runner of the trials: each forked from warm trial workers (see `trial_workers`),
        or with DOGBREED_TRIAL_WORKERS=off a fresh process each."""
        if not trial_workers.enabled():
            yield self.runner
            return
        with trial_workers.TrialWorkers(ENTRY_POINT, env=env, log_file=folder.driver_log) as workers:
            yield LocalJobRunner(self.ws, launch=workers.launch)

    def _drive(self, folder: TuningFolder, record: TuningRecord, runner: LocalJobRunner, env: dict[str, str],
               progress: TuningProgress | None) -> TuningResult:
        name = record.name
        study = TuningStudy(folder, record)
        self._recover(study, record.search_space.objective.metric)
        loop = TrialLoop(record, study, runner, env, on_line=getattr(progress, "trial_line", None))
        loop.best = self._best_so_far(name)
        try:
            with stop_signals_interrupt():
                loop.run(on_trial_finished=lambda: progress(self.describe(name)) if progress else None)
        except RepeatedFailure as exc:
            loop.stop_all()
            folder.update(status=FAILED, failure_reason=str(exc))
            return self.describe(name)
        except BaseException as exc:
            loop.stop_all()
            if isinstance(exc, KeyboardInterrupt):
                folder.update(status=STOPPED, failure_reason=_stopped_by_the_user(name))
            else:
                folder.update(status=FAILED, failure_reason=f"{type(exc).__name__}: {exc}")
            raise
        result = self.describe(name)
        if result.best is None:
            reasons = sorted({t.failure_reason for t in result.trials if t.failure_reason})
            folder.update(status=FAILED, failure_reason="no trial completed: " + "; ".join(reasons)[:900])
        else:
            folder.update(status=COMPLETED)
        return self.describe(name)

    def _best_so_far(self, name: str) -> tuple[float, str] | None:
        best = self.describe(name).best
        return (best.objective, best.name) if best else None

    def list(self, limit: int = 20) -> list[TuningResult]:
        root = self.ws.root / "tuning"
        names = [d.name for d in root.iterdir() if (d / "tuning.json").is_file()] if root.is_dir() else []
        records = []
        for n in names:
            try:
                records.append(self.folder(n).read())
            except (ValueError, OSError):
                continue
        records.sort(key=lambda r: r.created, reverse=True)
        return [self.describe(r.name) for r in records[:limit]]

    def stop(self, name: str) -> TuningResult:
        """Stop the process driving the trials: it stops them and records the job Stopped (resumable)."""
        record = self.folder(name).read()
        result = self.describe(name)
        if result.status != IN_PROGRESS:
            raise ConfigError(f"tuning job {name} is not running ({result.status}); nothing to stop")
        os.kill(record.driver_pid, signal.SIGTERM)
        # The driver stops its trials one after another (each SIGKILLed after TERM_GRACE_S at worst),
        # records Stopped and exits; on a loaded machine that can take a while, so wait for it to.
        deadline = time.time() + TERM_GRACE_S * (record.max_parallel_jobs + 1) + DRIVER_STOP_SLACK_S
        while pid_alive(record.driver_pid) and time.time() < deadline:
            time.sleep(0.2)
        if pid_alive(record.driver_pid):  # an unresponsive driver: end it and its trials from here
            os.kill(record.driver_pid, signal.SIGKILL)
            for trial in result.trials:
                if trial.status == IN_PROGRESS:
                    with contextlib.suppress(JobNotFoundError):
                        with contextlib.suppress(ConfigError):  # its script may have ended with the driver
                            self.runner.stop(trial.name)
                        self.runner.record_stopped(trial.name)  # the driver ran its runner
        if self.folder(name).read().status == IN_PROGRESS:
            self.folder(name).update(status=STOPPED, failure_reason=_stopped_by_the_user(name))
        return self.describe(name)

    def _trial_env(self, record: TuningRecord) -> dict[str, str]:
        """Trials share the cached backbone features and split this machine's cores, except while
        one computes a cache file (the others wait for it)."""
        cores = os.cpu_count() or 1
        threads = max(1, cores // record.max_parallel_jobs)
        return {ENV_FEATURE_CACHE: str(self.ws.cache_dir / "features"), "OMP_NUM_THREADS": str(threads),
                ENV_FEATURE_THREADS: str(cores)}

    def _recover(self, study: TuningStudy, metric: str) -> None:
        """After a crash: trials still marked running either finished (their job says so) or
        are rerun."""
        for t in study.running():
            job = t.user_attrs.get(JOB)
            try:
                desc = self.runner.describe(job) if job else None
            except JobNotFoundError:
                desc = None
            if desc is not None and desc.status == COMPLETED and metric in desc.metrics:
                study.complete(t.number, desc.metrics[metric])
            else:
                study.interrupt(t.number, dict(t.params))


DRIVER_STOP_SLACK_S = 30.0  # what `stop` allows the driver beyond its trials' grace periods


def _stopped_by_the_user(name: str) -> str:
    return f"stopped by the user; `dogbreed tune --resume {name}` continues it"


def main(argv: list[str] | None = None) -> None:  # the driver that `LocalTuner.start_detached` starts
    detached_worker_main(lambda workspace, name: LocalTuner(workspace).drive(name), argv)


if __name__ == "__main__":
    main()
