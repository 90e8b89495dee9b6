"""Where AWS's own toolkits live: `.venv-toolkits`, built by `make toolkits` (sagemaker-training,
sagemaker-inference, sagemaker-pytorch-inference; they pin protobuf>=5, which smdebug in the
main venv cannot share). Tests needing them skip, saying why, where it was not built."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODULES = ("sagemaker_training", "sagemaker_inference", "sagemaker_pytorch_serving_container")


def find_toolkit_python() -> tuple[Path | None, str]:
    """(the toolkit venv's python, "") or (None, why not, naming how to build it)."""
    venv = Path(os.environ.get("DOGBREED_TOOLKITS_VENV", ROOT / ".venv-toolkits"))
    python = venv / "bin" / "python"
    if not python.exists():
        return None, f"AWS's toolkits are not installed ({venv} missing): run `make toolkits`"
    probe = subprocess.run([str(python), "-c", "import " + ", ".join(MODULES)], capture_output=True, text=True)
    if probe.returncode != 0:
        return None, (f"AWS's toolkits do not import in {venv}: {probe.stderr.strip().splitlines()[-1:]}; "
                      "rebuild it with `make toolkits`")
    return python, ""


def toolkit_python() -> Path:
    """The toolkit venv's python, or a pytest skip naming how to build it."""
    python, why = find_toolkit_python()
    if python is None:
        pytest.skip(why)
    return python


def toolkit_env(**extra: str) -> dict:
    """The environment of a toolkit process: ours, minus our source path (the code comes from the
    archive SageMaker would unpack, not from this checkout)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env
