"""The one interface both backends satisfy: the only door between workflows and where jobs run.

Commands parse, call a workflow (`dogbreed.workflows`) and print; workflows talk only to
`Backend`; `LocalBackend` and `SageMakerBackend` implement it. Everything a backend needs
travels as data in the specs below (debugger and profiler settings included); each backend
turns it into its own form.

Core methods are abstract: every backend has them. Optional capabilities (`OPTIONAL`) are
methods a backend defines only if it can do them; a caller asks `backend.supports(name)`, or
calls `backend.require(name)`, which returns the bound method or raises one `ConfigError`
saying why the backend cannot and what to do instead (`Backend.instead`).
"""

from __future__ import annotations

import abc
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from dogbreed.rules.config import DEFAULT_PROFILER_INTERVAL_MS
from dogbreed.search_space import BAYESIAN
from dogbreed.serving.limits import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS
from dogbreed.workspace import Workspace

# SageMaker's TrainingJobStatus values, used by both backends.
IN_PROGRESS, COMPLETED, FAILED, STOPPING, STOPPED = "InProgress", "Completed", "Failed", "Stopping", "Stopped"
TERMINAL = (COMPLETED, FAILED, STOPPED)

LogSink = Callable[[str], None]  # receives one log line

@dataclass
class Instrumentation:
    """Debugger hook, rules and profiler for a training job, as data; each backend turns it into
    its own form (local: config files + rule threads; SageMaker: the request's Debug*/Profiler* fields)."""

    debugger: bool = True
    # where the rules run (rules.config.DEBUGGER_MODES but "off", which is debugger=False): local
    # jobs always evaluate them on this machine; SageMaker: "cloud" rule jobs, "client" (the
    # hook's tensors synced to S3, judged by dogbreed) or "auto" (cloud where the region has them)
    debugger_mode: str = "auto"
    profiler: bool = True
    collection_overrides: tuple[str, ...] = ()  # "COLLECTION.KEY=VALUE"
    rule_params: dict[str, dict[str, str]] = field(default_factory=dict)  # rule -> {param: value}
    interval_ms: int = DEFAULT_PROFILER_INTERVAL_MS  # one of rules.config.PROFILER_INTERVALS_MS


@dataclass
class TrainingJobSpec:
    """What to run. Hyperparameters are plain Python values; backends encode them."""

    entry_point: str  # "hpo.py" | "train_model.py"
    hyperparameters: dict[str, Any]
    data: str  # local folder or s3:// URI, mounted as the "training" channel
    base_name: str = "dogbreed"
    processes: int = 1  # local: torchrun processes; SageMaker: instance_count
    instance_type: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # extra files for input/config/ (e.g. debughookconfig.json), name -> JSON document
    config_files: dict[str, Any] = field(default_factory=dict)
    job_name: str | None = None  # None: base_name + timestamp
    max_run_s: int | None = None
    instrumentation: Instrumentation | None = None  # None: no debugger, rules or profiler


@dataclass
class JobDescription:
    name: str
    status: str
    backend: str
    entry_point: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # final (last) value of each
    metric_series: dict[str, list[float]] = field(default_factory=dict)
    model_data: str | None = None  # model.tar.gz URI
    failure_reason: str | None = None
    location: str | None = None  # job folder or console URL
    data: str | None = None
    pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "JobDescription":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


# -- tuning ----------------------------------------------------------------------------------
@dataclass
class TuningSpec:
    """A tuning job: trials of `hpo.py` over `space` (a dogbreed.search_space.SearchSpace)."""

    data: str
    static_hyperparameters: dict[str, Any]
    space: Any
    strategy: str = BAYESIAN  # one of search_space.STRATEGIES
    max_jobs: int = 4
    max_parallel_jobs: int = 2
    early_stopping: bool = False
    name: str | None = None  # None: generated
    seed: int | None = None
    instance_type: str | None = None  # SageMaker; spot and max_run come from the settings


@dataclass
class TrialResult:
    name: str
    status: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # the tuned values
    objective: float | None = None
    duration_s: float | None = None
    failure_reason: str | None = None


@dataclass
class TuningResult:
    name: str
    backend: str
    status: str  # InProgress | Completed | Failed | Stopped
    strategy: str
    objective_metric: str
    objective_goal: str  # minimize | maximize
    max_jobs: int
    trials: list[TrialResult] = field(default_factory=list)
    best: TrialResult | None = None
    location: str | None = None
    failure_reason: str | None = None

    @property
    def finished(self) -> list[TrialResult]:
        return [t for t in self.trials if t.status in TERMINAL]

    def ranked(self) -> list[TrialResult]:
        """Trials with an objective first, best first; the rest after, in trial order."""
        def key(t: TrialResult):
            v = t.objective
            if v is None:
                return (1, 0.0)
            return (0, v if self.objective_goal == "minimize" else -v)

        return sorted(self.trials, key=key)

    def to_dict(self) -> dict:
        return asdict(self)


TuningProgress = Callable[[TuningResult], None]


def follow_tuning(describe: Callable[[], TuningResult], progress: TuningProgress | None = None,
                  poll_s: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> TuningResult:
    """Poll `describe` until the tuning job ends, calling `progress` whenever a trial finishes."""
    seen = -1
    while True:
        result = describe()
        if progress and len(result.finished) != seen:
            seen = len(result.finished)
            progress(result)
        if result.status != IN_PROGRESS:
            return result
        sleep(poll_s)


# -- endpoints -------------------------------------------------------------------------------
@dataclass
class EndpointSpec:
    """What to deploy: a model artifact (model.tar.gz path/URI, or an extracted folder locally)."""

    model_data: str
    name: str | None = None  # None: dogbreed-<timestamp>
    # local server
    port: int = 8080
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    trust_code: bool = False  # run a code/ the archive brings (other than the project's inference.py)
    # SageMaker
    instance_type: str | None = None  # None: the configured inference instance type
    serverless: bool = False
    memory_mb: int = 4096
    max_concurrency: int = 5
    timeout_s: float = 600.0  # how long deploy waits for the endpoint to turn healthy
    auto_delete_after_s: int | None = None  # local: the server exits; SageMaker: expiry tag for cleanup
    autoscaling: Autoscaling | None = None  # SageMaker real-time only (capability "autoscale_endpoint")
    env: dict = field(default_factory=dict)  # SageMaker: the model container's environment, over serving_config's
    job: str | None = None  # the training job the model came from (local: shown on the prediction page)
    report: str | None = None  # local: that job's report.html, linked from the prediction page


@dataclass(frozen=True)
class Autoscaling:
    """Target tracking on invocations per instance: between `min_instances` and `max_instances`
    instances, adding one when an instance gets more than `target_invocations` requests a minute."""

    min_instances: int
    max_instances: int
    target_invocations: float  # per instance per minute (SageMakerVariantInvocationsPerInstance)


@dataclass
class EndpointDescription:
    name: str
    backend: str
    status: str  # SageMaker's EndpointStatus values: Creating | InService | Failed | ...
    url: str | None = None  # local: http://127.0.0.1:PORT
    model_data: str | None = None
    created: float | None = None
    failure_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # pid, port, instance type, serverless config

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EndpointDescription":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


class EndpointConnection(abc.ABC):
    """An open line to one endpoint; `predict` sends many images through one of these."""

    @abc.abstractmethod
    def invoke(self, body: bytes, content_type: str, accept: str = "application/json") -> tuple[bytes, str]:
        """POST one request; return (body, content type); raise EndpointError on any error answer."""

    def close(self) -> None:
        pass


# -- bulk prediction -------------------------------------------------------------------------
@dataclass
class BatchSpec:
    """Score every image under `source` with `model_data`; results as JSON Lines in `out`
    (one {"image", "predictions"} or {"image", "error"} object per image, like `predict --json`)."""

    model_data: str
    source: str  # local folder, or s3://bucket/prefix/ on SageMaker
    out: str  # local .jsonl file; must not exist yet
    top_k: int = 5
    batch_size: int | None = None  # local: images per forward pass [default: limits.default_batch_size]
    workers: int | None = None  # local: decoding threads [default: CPU count, at most 4]
    instance_type: str | None = None  # SageMaker: None = the configured inference instance type
    instance_count: int = 1
    job_name: str | None = None  # SageMaker: None = <prefix>-batch-<timestamp>


@dataclass
class BatchResult:
    out: str
    total: int  # images in the source
    scored: int  # answered in this run
    failed: int  # images that could not be scored (an "error" line each)
    resumed: int = 0  # already in the output from an interrupted earlier run
    seconds: float = 0.0
    location: str | None = None  # SageMaker: the transform job and its S3 output

    @property
    def images_per_s(self) -> float:
        return (self.scored + self.failed) / self.seconds if self.seconds else 0.0


BatchProgress = Callable[[int, int], None]  # (images done, total)


# Optional capabilities: method name -> what it does. A backend has one if it defines the method.
OPTIONAL = {
    "resume_training_job": "run a Failed/Stopped job again from its last checkpoint",
    "resume_tuning": "continue an interrupted tuning job without redoing finished trials",
    "stage_dataset": "copy a local dataset to where this backend's jobs read data",
    "find_leftovers": "list billable resources the project left behind",
    "delete_leftovers": "delete resources found by find_leftovers",
    "batch_predict": "score a folder (or an S3 prefix) of images in bulk without an endpoint",
    "autoscale_endpoint": "scale an endpoint's instance count with its traffic",
    "estimate_plan": "estimate the time and cost of tuning, training and serving at a given scale",
    "check_training": "check, before a training job is created, that it can start (data, weights)",
    "stop_job": "stop a running training job",
    "stop_tuning": "stop a running tuning job and its running trials",
    "job_logs": "read a training job's log",
    "list_tuning_jobs": "list tuning jobs",
    "job_size": "measure the disk space a job's files take",
    "remove_job": "delete a finished job and its files",
}


class Backend(abc.ABC):
    """Implemented by LocalBackend and SageMakerBackend.

    Constructed as `Backend(workspace, settings)`: `settings` is the resolved
    `dogbreed.settings.Settings` (or None for defaults); each backend reads what it needs.
    """

    ws: Workspace

    name: str
    # optional capability -> why this backend lacks it and what to do instead
    instead: dict[str, str] = {}

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """Where this backend's jobs live, for messages: a workspace folder, an AWS region."""

    @classmethod
    def supports(cls, capability: str) -> bool:
        if capability not in OPTIONAL:
            raise KeyError(f"unknown capability {capability!r}")
        return callable(getattr(cls, capability, None))

    def require(self, capability: str, name: str | None = None) -> Callable:
        """The bound method for `capability`, or a ConfigError saying why it is not there
        (`instead`, with `{name}` filled in by the job or endpoint the caller meant)."""
        from dogbreed.errors import ConfigError

        if not self.supports(capability):
            why = self.instead.get(capability, "").replace("{name}", name or "NAME")
            raise ConfigError(f"the {self.name} backend cannot {OPTIONAL[capability]}" + (f": {why}" if why else ""))
        return getattr(self, capability)

    # -- data ------------------------------------------------------------------------------
    # The workspace key of the dataset this backend's jobs read when no --data is given, and the
    # message when none is recorded.
    dataset_key: str
    no_dataset: str

    def default_data(self) -> str:
        """The recorded dataset (by `dogbreed data ...`); StateError if none."""
        from dogbreed.errors import StateError

        found = self.ws.get(self.dataset_key)
        if not found:
            raise StateError(f"no --data given and {self.no_dataset}")
        return found

    # -- training jobs ---------------------------------------------------------------------
    @abc.abstractmethod
    def run_training_job(self, spec: TrainingJobSpec, *, wait: bool = True,
                         log: LogSink | None = None) -> JobDescription:
        """Start a job running `spec`; with `wait`, stream its log to `log` and return when it ends."""

    @abc.abstractmethod
    def describe_job(self, name: str) -> JobDescription:
        """Current description of a job, rule statuses in `extra["rules"]`; raises JobNotFoundError."""

    @abc.abstractmethod
    def list_jobs(self, limit: int = 50) -> list[JobDescription]:
        """Recent jobs, newest first."""

    @abc.abstractmethod
    def job_outputs(self, name: str, dest: Path) -> Path:
        """A local folder laid out like a local job's (output/, rule-output/, ...) holding the job's
        debugger, rule, profiler and metric outputs; remote backends download them into `dest`."""

    # -- tuning ----------------------------------------------------------------------------
    @abc.abstractmethod
    def check_tuning(self, spec: TuningSpec) -> list[str]:
        """Raise a DogbreedError for anything that would make the tuning job fail (data,
        credentials); called before any job starts. Returns notes to show (e.g. a cost estimate)."""

    @abc.abstractmethod
    def start_tuning(self, spec: TuningSpec, *, wait: bool = True,
                     progress: TuningProgress | None = None) -> TuningResult:
        """Start a tuning job; with `wait`, call `progress` as trials finish and return at the end."""

    @abc.abstractmethod
    def attach_tuning(self, name: str, *, wait: bool = True,
                      progress: TuningProgress | None = None) -> TuningResult:
        """Follow an existing tuning job (until it ends, with `wait`); raises JobNotFoundError."""

    # -- endpoints -------------------------------------------------------------------------
    @abc.abstractmethod
    def deploy_endpoint(self, spec: EndpointSpec, log: LogSink | None = None) -> EndpointDescription:
        """Create an endpoint serving `spec.model_data` with scripts/inference.py; return when it is healthy."""

    @abc.abstractmethod
    def list_endpoints(self) -> list[EndpointDescription]:
        """Endpoints of this backend, newest first, with their current status."""

    @abc.abstractmethod
    def delete_endpoint(self, name: str) -> None:
        """Stop and remove an endpoint (SageMaker: endpoint, config and model); EndpointError if unknown."""

    # -- optional capabilities, documented here once (a backend defines the ones it can) --------
    # check_training(spec) -> None: raise a DogbreedError before anything is created.
    # stop_job(name) -> JobDescription: the job, Stopping/Stopped; ConfigError if it has ended already.
    # stop_tuning(name) -> TuningResult: likewise for a tuning job.
    # job_logs(name, follow=False) -> Iterator[str]: the log's lines; with `follow`, until the job ends.
    #     StateError when the job has no log yet.
    # list_tuning_jobs(limit=20) -> list[TuningResult]: newest first.
    # job_size(name) -> int: bytes its files take.
    # remove_job(name) -> int: delete a finished job's files; bytes freed.

    @abc.abstractmethod
    def connect_endpoint(self, name: str, url: str | None = None) -> EndpointConnection:
        """A connection for invoking `name` (`url`, when known, spares a lookup)."""
