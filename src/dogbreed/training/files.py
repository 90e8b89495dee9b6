"""Cache files that several processes (parallel trials, DDP ranks, jobs) read and build at once."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive lock between processes, held for the `with` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_or_build(load: Callable[[], T | None], lock: Path, build: Callable[[], T | None]) -> T | None:
    """`load()`; on a miss, under `lock`: `load()` again (another process may have built it while
    this one waited), else `build()`. Each entry is built once, however many processes want it."""
    found = load()
    if found is not None:
        return found
    with file_lock(lock):
        found = load()
        return found if found is not None else build()


def torch_save_atomic(obj, path: Path) -> None:
    """`torch.save` under a temporary name private to this process, then rename: a reader (a
    parallel trial, a resumed job, the job runner packing the model) sees the old file or the
    new one, never a half-written one. A failed write (disk full) leaves no partial file, and
    the partial file of a writer that was killed is removed by the next write."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    remove_partial_writes(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_partial_writes(path: Path) -> None:
    """Remove what writers of `path` that were killed mid-write left (their process is gone)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
