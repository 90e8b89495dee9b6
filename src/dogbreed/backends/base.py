"""The one interface both backends satisfy. Workflows and the CLI talk only to this.

Each capability section (training jobs, tuning, endpoints) is written once against these
types; `LocalBackend` and `SageMakerBackend` implement them.
"""

from __future__ import annotations

import abc
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from dogbreed.serving.limits import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS

# SageMaker's TrainingJobStatus values, used by both backends.
IN_PROGRESS, COMPLETED, FAILED, STOPPING, STOPPED = "InProgress", "Completed", "Failed", "Stopping", "Stopped"
TERMINAL = (COMPLETED, FAILED, STOPPED)

SCRIPTS_DIR = Path(__file__).resolve().parents[3] / "scripts"


def scripts_dir() -> Path:
    """The entry scripts: `scripts/` of a source checkout, or the copy installed in the package."""
    packaged = Path(__file__).resolve().parents[1] / "scripts"
    return SCRIPTS_DIR if SCRIPTS_DIR.is_dir() else packaged


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
    strategy: str = "bayesian"  # bayesian | random | grid | hyperband
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
LogSink = Callable[[str], None]


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
    # SageMaker
    instance_type: str | None = None  # None: the configured inference instance type
    serverless: bool = False
    memory_mb: int = 4096
    max_concurrency: int = 5
    timeout_s: float = 600.0  # how long deploy waits for the endpoint to turn healthy
    auto_delete_after_s: int | None = None  # local: the server exits; SageMaker: expiry tag for cleanup


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


class Backend(abc.ABC):
    """Implemented by LocalBackend and SageMakerBackend."""

    name: str

    # -- training jobs ---------------------------------------------------------------------
    @abc.abstractmethod
    def run_training_job(self, spec: TrainingJobSpec, *, wait: bool = True, log: LogSink | None = None) -> JobDescription:
        """Start a job running `spec`; with `wait`, stream its log to `log` and return when it ends."""

    @abc.abstractmethod
    def describe_job(self, name: str) -> JobDescription:
        """Current description of a job; raises JobNotFoundError."""

    @abc.abstractmethod
    def list_jobs(self, limit: int = 50) -> list[JobDescription]:
        """Recent jobs, newest first."""

    @abc.abstractmethod
    def resume_training_job(self, name: str, *, log: LogSink | None = None) -> JobDescription:
        """Run a Failed/Stopped job again from its last checkpoint; returns when it ends."""

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

    @abc.abstractmethod
    def resume_tuning(self, name: str, *, wait: bool = True,
                      progress: TuningProgress | None = None) -> TuningResult:
        """Continue an interrupted tuning job without redoing finished trials."""

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

    @abc.abstractmethod
    def connect_endpoint(self, name: str, url: str | None = None) -> EndpointConnection:
        """A connection for invoking `name` (`url`, when known, spares a lookup)."""
