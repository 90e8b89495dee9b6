"""The workspace: state shared between commands, plus the folders local jobs write into.

Layout (default `./.dogbreed`, moved by `--workspace` or `DOGBREED_WORKSPACE`)::

    state.json      last dataset, tuning job, best job, model artifact, endpoint
    jobs/<name>/    one folder per local job, laid out like SageMaker's /opt/ml
    cache/          backbone feature caches, downloads
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dogbreed.errors import StateError
from dogbreed.names import check_name

ENV_WORKSPACE = "DOGBREED_WORKSPACE"
DEFAULT_WORKSPACE = ".dogbreed"
# The shape of what state.json remembers (key: string fields its object needs, or str for a string);
# anything else there is a corrupt file, named as such.
STATE_SHAPE: dict[str, tuple | type] = {
    "endpoint": ("name", "backend"), "model_data": ("uri", "backend"), "best_job": ("name", "backend"),
    "last_training_job": ("name", "backend"), "last_tuning_job": ("name", "backend"),
    "dataset": str, "dataset_s3": str,
}


def shape_error(key: str, value: Any) -> str | None:
    """What is wrong with state[key], or None."""
    shape = STATE_SHAPE.get(key)
    if shape is str:
        return None if isinstance(value, str) else f"should be a string, found {type(value).__name__}"
    if shape is None or value is None:
        return None
    if not isinstance(value, dict):
        return f"should be a JSON object, found {type(value).__name__}"
    bad = [f for f in shape if not isinstance(value.get(f), str)]
    return f"needs string fields {', '.join(bad)}" if bad else None


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader (or a kill) never sees a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike | None = None) -> "Workspace":
        return cls(Path(root or os.environ.get(ENV_WORKSPACE) or DEFAULT_WORKSPACE).absolute())

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def job_dir(self, name: str) -> Path:
        return self.jobs_dir / check_name(name, "job name")

    # -- state -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """state.json as a dict; a StateError naming the file and the repair when it is not one."""
        repair = (f"delete it (`rm {self.state_path}`): it only remembers the last dataset, jobs, model and "
                  "endpoint; jobs and endpoints themselves stay listed")
        try:
            state = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # not JSON, not UTF-8, a directory, unreadable
            why = exc.strerror if isinstance(exc, OSError) else f"not valid JSON: {exc}"
            raise StateError(f"workspace state {self.state_path} is unreadable ({why}): {repair}") from None
        if not isinstance(state, dict):
            raise StateError(f"workspace state {self.state_path} holds a JSON {type(state).__name__}, not an "
                             f"object: {repair}")
        for key, value in state.items():
            problem = shape_error(key, value)
            if problem:
                raise StateError(f"workspace state {self.state_path}: {key!r} {problem}: {repair}")
        return state

    def get(self, key: str, default: Any = None) -> Any:
        return self.state().get(key, default)

    def require(self, key: str, hint: str) -> Any:
        value = self.get(key)
        if value in (None, "", {}):
            raise StateError(f"no {key.replace('_', ' ')} recorded in {self.root}: {hint}")
        return value

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, **values: Any) -> dict[str, Any]:
        """Merge `values` into the state (None deletes a key); atomic and safe across processes."""
        with self._locked():
            state = self.state()
            for key, value in values.items():
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
            atomic_write_json(self.state_path, state)
            return state
