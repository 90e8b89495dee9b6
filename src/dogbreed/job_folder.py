"""Where things lie in a job folder: a local job's, or a SageMaker job's outputs downloaded by
`Backend.job_outputs`. Written once here for the local backend, the SageMaker download and the report.
Also where the entry scripts are, which every backend stages into a job."""

from __future__ import annotations

from pathlib import Path

TENSORS_DIR = "output/tensors"  # smdebug's trial (debug-output on SageMaker)
PROFILER_DIR = "output/profiler"  # system monitor and step times (profiler-output on SageMaker)
RULE_OUTPUT_DIR = "rule-output"  # one folder per rule with its result
METRICS_FILE = "output/data/metrics.json"  # what train_model.py reports (inside output.tar.gz on SageMaker)

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts"


def scripts_dir() -> Path:
    """The entry scripts: `scripts/` of a source checkout, or the copy installed in the package."""
    packaged = Path(__file__).resolve().parent / "scripts"
    return SCRIPTS_DIR if SCRIPTS_DIR.is_dir() else packaged
