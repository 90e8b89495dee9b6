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

ENV_WORKSPACE = "DOGBREED_WORKSPACE"
DEFAULT_WORKSPACE = ".dogbreed"


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
        return self.jobs_dir / name

    # -- state -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise StateError(
                f"workspace state {self.state_path} is not valid JSON ({exc}); "
                "fix or delete it (it only remembers names of past jobs)"
            ) from exc

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
