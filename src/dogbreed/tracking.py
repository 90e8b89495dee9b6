"""MLflow tracking, optional and off by default (`--tracking-uri`, $DOGBREED_TRACKING_URI or
`tracking_uri` in dogbreed.toml).

Every training job and every tuning trial becomes an MLflow run in the experiment `dogbreed`,
trials nested under their tuning job's run: hyperparameters as params, per-epoch metrics with
their epoch as step, final and test metrics, rule verdicts as `rule.<Name>` tags, the model
artifact's URI, the report as an artifact. The CLI logs what the job reported (a
`JobDescription` / `TuningResult`), so a SageMaker container needs no MLflow.

    sqlite:///mlflow.db                a local store (artifacts in mlartifacts/ beside it)
    ./mlruns, file:///abs/mlruns       MLflow's file store (in maintenance mode upstream; still works)
    http://host:5000                   a tracking server (`mlflow server`)
    arn:aws:sagemaker:...:mlflow-tracking-server/NAME   SageMaker managed MLflow (needs sagemaker-mlflow)

The URI is checked before any job starts; if the store fails later, the CLI says so once and
the job goes on untracked (a tracking outage never costs a training run). Runs are found again
by their `dogbreed.job` tag, so `tune --attach/--resume` continue the same tuning run.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from dogbreed.errors import ConfigError

if TYPE_CHECKING:
    from dogbreed.backends.base import JobDescription, TrialResult, TuningResult

EXPERIMENT = "dogbreed"
EXTRA_HINT = "pip install 'dogbreed[mlflow]'"
JOB_TAG, KIND_TAG, PARENT_TAG = "dogbreed.job", "dogbreed.kind", "mlflow.parentRunId"
# MLflow retries an unreachable server for minutes by default; a CLI should say so in seconds.
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
TERMINAL_STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Stopped": "KILLED"}


def _import_mlflow():
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError(f"--tracking-uri needs MLflow, which is not installed: {EXTRA_HINT}") from None
    return MlflowClient


def normalize_uri(uri: str) -> str:
    """A bare folder is MLflow's file store; a relative sqlite path is made absolute (the same
    store whatever folder the next command runs in); everything else goes to MLflow as given."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).expanduser().resolve())
    if "://" in uri or uri.startswith(("arn:", "databricks")):
        return uri
    return Path(uri).expanduser().resolve().as_uri()


def _artifact_location(uri: str) -> str | None:
    """sqlite stores keep artifacts beside the database (MLflow's default is ./mlruns of the cwd)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).expanduser().resolve().parent / "mlartifacts").as_uri()
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    if "Failed to establish a new connection" in text or "Max retries exceeded" in text:
        return "no MLflow server answers there"  # requests' message runs to several hundred characters
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first[:200] + '...' if len(first) > 200 else first}".rstrip(": ")


class NullTracker:
    """Tracking off: every call does nothing, so workflows have no branches for it."""

    enabled = False

    def log_training(self, job: JobDescription, report: Callable[[], Path] | None = None) -> None:
        pass

    def start_tuning(self, name: str, params: dict) -> None:
        pass

    def log_tuning(self, result: TuningResult, describe: Callable[[str], JobDescription] | None = None,
                   report: Callable[[], Path] | None = None, final: bool = False) -> None:
        pass


class Tracker(NullTracker):
    enabled = True

    def __init__(self, uri: str, source: str = "flag --tracking-uri", warn: Callable[[str], None] = print):
        """`warn` receives the one line said when the store fails, and the run ids logged."""
        self.uri = normalize_uri(uri)
        self.warn = warn
        self.lost = False
        MlflowClient = _import_mlflow()
        if self.uri.startswith("arn:aws:sagemaker"):
            try:
                import sagemaker_mlflow  # noqa: F401
            except ImportError:
                raise ConfigError(f"tracking URI {uri} ({source}) is a SageMaker MLflow ARN, which needs the "
                                  "sagemaker-mlflow plugin: pip install sagemaker-mlflow") from None
        for k, v in HTTP_ENV.items():
            os.environ.setdefault(k, v)
        for noisy in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..." on every new store
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if self.uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the user asked for a file store
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
            found = self.client.get_experiment_by_name(EXPERIMENT)
            self.experiment_id = (found.experiment_id if found else
                                  self.client.create_experiment(EXPERIMENT, _artifact_location(self.uri)))
        except Exception as exc:  # any store error: one line, before a job starts
            raise ConfigError(f"tracking URI {uri} ({source}) cannot be used: {_first_line(exc)}; "
                              "check it (e.g. sqlite:///mlflow.db, http://host:5000) or drop the setting") from None

    # -- the store, guarded: after the first failure nothing more is tried ------------------------
    def _guard(self, what: str, fn: Callable, *args, **kwargs):
        if self.lost:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            self.lost = True
            self.warn(f"tracking: could not {what} at {self.uri} ({_first_line(exc)}); "
                      "the job goes on, nothing more is logged to MLflow in this command")
            return None

    def _find(self, job: str, parent: str | None = None):
        query = f"tags.`{JOB_TAG}` = '{job}'"
        if parent:
            query += f" and tags.`{PARENT_TAG}` = '{parent}'"
        runs = self.client.search_runs([self.experiment_id], query, max_results=1)
        return runs[0] if runs else None

    def _run(self, job: str, kind: str, parent: str | None = None) -> str:
        found = self._find(job, parent)
        if found:
            return found.info.run_id
        tags = {JOB_TAG: job, KIND_TAG: kind, **({PARENT_TAG: parent} if parent else {})}
        return self.client.create_run(self.experiment_id, run_name=job, tags=tags).info.run_id

    def _log_job(self, run_id: str, job: JobDescription, params: dict | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        run = self.client.get_run(run_id).data
        # logged again (train --resume, tune --attach): only the epochs the run does not have yet
        last = {k: max(m.step for m in self.client.get_metric_history(run_id, k)) for k in run.metrics}
        metrics = [Metric(name, float(v), now, step) for name, values in job.metric_series.items()
                   for step, v in enumerate(values, 1) if name != "epoch" and step > last.get(name, 0)]
        metrics += [Metric(name, float(v), now, 0) for name, v in job.metrics.items()
                    if name not in job.metric_series and name not in run.metrics]
        hps = {**(params or {}), **job.hyperparameters}
        existing = run.params
        tags = {"dogbreed.backend": job.backend, "dogbreed.status": job.status, "dogbreed.entry_point": job.entry_point}
        if job.model_data:
            tags["dogbreed.model_data"] = job.model_data
        if job.location:
            tags["dogbreed.location"] = job.location
        if job.failure_reason:
            tags["dogbreed.failure_reason"] = job.failure_reason[:5000]
        rules = job.extra.get("rules") or []
        for r in rules:
            tags[f"rule.{r.get('RuleConfigurationName')}"] = str(r.get("RuleEvaluationStatus"))
        if rules and "rules_issues_found" not in run.metrics:
            metrics.append(Metric("rules_issues_found", sum(r.get("RuleEvaluationStatus") == "IssuesFound"
                                                            for r in rules), now, 0))
        for i in range(0, len(metrics), 900):  # MLflow's batch limit is 1000 metrics
            self.client.log_batch(run_id, metrics=metrics[i:i + 900])
        self.client.log_batch(run_id, params=[Param(k, json.dumps(v) if not isinstance(v, str) else v)
                                              for k, v in sorted(hps.items()) if k not in existing],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        if rules:
            self.client.log_dict(run_id, {"rules": rules, "profiler": job.extra.get("profiler")}, "rules.json")

    def _log_report(self, run_id: str, report: Callable[[], Path] | None) -> None:
        if report is None:
            return
        try:
            path = report()
        except Exception as exc:  # a report that cannot be built must not lose the run
            self.warn(f"tracking: the report could not be built ({_first_line(exc)}); the run is logged without it")
            return
        self.client.log_artifact(run_id, str(path), "report")

    # -- what workflows call ---------------------------------------------------------------------
    def log_training(self, job: JobDescription, report: Callable[[], Path] | None = None) -> None:
        """One run for a finished training job: params, per-epoch and test metrics, rules, model URI, report."""
        def log():
            run_id = self._run(job.name, "training")
            self._log_job(run_id, job)
            self._log_report(run_id, report)
            self.client.set_terminated(run_id, TERMINAL_STATUS.get(job.status, "FINISHED"))
            self.warn(f"mlflow: training job {job.name} logged as run {run_id} (experiment {EXPERIMENT}, {self.uri})")
            return run_id

        return self._guard("log training job " + job.name, log)

    def start_tuning(self, name: str, params: dict) -> None:
        """The tuning job's parent run, created before its first trial (shows as RUNNING)."""
        def start():
            from mlflow.entities import Param

            run_id = self._run(name, "tuning")
            existing = self.client.get_run(run_id).data.params
            self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())
                                                  if k not in existing])
            return run_id

        return self._guard("start tuning job " + name, start)

    def log_tuning(self, result: TuningResult, describe: Callable[[str], JobDescription] | None = None,
                   report: Callable[[], Path] | None = None, final: bool = False):
        """Finished trials not logged yet as nested runs; when `final`, the best value, the report and the end."""
        def log():
            from mlflow.entities import Metric, RunTag

            parent = self._run(result.name, "tuning")
            for t in result.finished:
                if self._find(t.name, parent) is None:
                    self._log_trial(parent, t, describe)
            if not final:
                return parent
            tags = [RunTag("dogbreed.backend", result.backend), RunTag("dogbreed.status", result.status),
                    RunTag("dogbreed.strategy", result.strategy),
                    RunTag("dogbreed.objective", f"{result.objective_goal} {result.objective_metric}")]
            metrics = [Metric("trials_finished", len(result.finished), int(time.time() * 1000), 0)]
            if result.best is not None:
                tags.append(RunTag("dogbreed.best_trial", result.best.name))
                metrics.append(Metric(f"best_{result.objective_metric}", result.best.objective,
                                      int(time.time() * 1000), 0))
            self.client.log_batch(parent, metrics=metrics, tags=tags)
            self._log_report(parent, report)
            if result.status != "InProgress":
                self.client.set_terminated(parent, TERMINAL_STATUS.get(result.status, "FINISHED"))
            self.warn(f"mlflow: tuning job {result.name} logged as run {parent} with {len(result.finished)} nested "
                      f"trial run(s) (experiment {EXPERIMENT}, {self.uri})")
            return parent

        return self._guard("log tuning job " + result.name, log)

    def _log_trial(self, parent: str, trial: TrialResult, describe) -> None:
        from dogbreed.backends.base import JobDescription
        from dogbreed.errors import DogbreedError

        job = None
        if describe is not None:
            try:
                job = describe(trial.name)
            except DogbreedError:  # a trial job that left no record: log what the tuner knows
                job = None
        if job is None:
            job = JobDescription(name=trial.name, status=trial.status, backend="", failure_reason=trial.failure_reason)
        run_id = self._run(trial.name, "trial", parent)
        self._log_job(run_id, job, params=trial.hyperparameters)
        self.client.set_terminated(run_id, TERMINAL_STATUS.get(trial.status, "FINISHED"))


_TRACKERS: dict[tuple, NullTracker] = {}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tracker_for(settings, warn: Callable[[str], None] = _stderr) -> NullTracker:
    """The tracker the settings ask for (a `NullTracker` when `tracking_uri` is unset), checked once
    per process; raises ConfigError (one line) when the URI cannot be used."""
    uri = getattr(settings, "tracking_uri", None)
    if not uri:
        return NullTracker()
    key = (uri, id(warn))
    if key not in _TRACKERS:
        _TRACKERS[key] = Tracker(uri, settings.source("tracking_uri"), warn)
    return _TRACKERS[key]

