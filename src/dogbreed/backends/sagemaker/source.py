"""The source dir SageMaker runs: the entry scripts plus the torch-only part of dogbreed.

Only modules that never import the SDK or the CLI go in, so the container needs nothing of
ours beyond this folder. `requirements.txt` (the smdebug hook) goes only into a training job's
copy: the containers pip-install that file from the internet before starting (training jobs,
and endpoints at every cold start), which fails with network isolation or without egress. An
endpoint needs nothing the PyTorch inference image lacks, so its copy has none; a network-isolated
training job has none either and trains without the hook.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dogbreed.job_folder import scripts_dir

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # src/dogbreed
# what the scripts import: the training and serving cores and their few pure-Python deps
PACKAGE_PARTS = ("__init__.py", "errors.py", "_imports.py", "training", "serving")
# numpy is not pinned: dogbreed.training.smdebug_compat makes smdebug write tensors on numpy >= 2.3
REQUIREMENTS = ["smdebug>=1.0.34"]


@contextmanager
def staged_source(*, requirements: bool = True) -> Iterator[str]:
    """The source dir in a temp folder, removed once the SDK has uploaded it (the SDK reads it
    only while it starts the job or creates the model)."""
    with tempfile.TemporaryDirectory(prefix="dogbreed-src-") as tmp:
        yield str(stage_source_dir(tmp, requirements=requirements))


def stage_source_dir(dest: str | Path, *, requirements: bool = True) -> Path:
    """Copy scripts/*.py and the torch-only package parts into `dest` (with `requirements.txt`
    when `requirements`); return it."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for script in scripts_dir().glob("*.py"):
        shutil.copy2(script, dest / script.name)
    pkg = dest / "dogbreed"
    pkg.mkdir(exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in PACKAGE_PARTS:
        src = PACKAGE_ROOT / part
        if src.is_dir():
            shutil.copytree(src, pkg / part, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(src, pkg / part)
    if requirements:
        (dest / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    return dest
