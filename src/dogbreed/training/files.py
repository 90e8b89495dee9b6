"""Writing torch files that another process may read at the same moment."""

from __future__ import annotations

import os
from pathlib import Path


def torch_save_atomic(obj, path: Path) -> None:
    """`torch.save` under a temporary name private to this process, then rename: a reader (a
    parallel trial, a resumed job, the job runner packing the model) sees the old file or the
    new one, never a half-written one."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
