"""The SageMaker training-toolkit environment as data.

Every `SM_*` name the scripts read is a constant here; `TrainingEnv.from_env()` is a
read-only snapshot. The local backend exports the same names
(`dogbreed.backends.local.layout.JobLayout.environment`).
Importing this module has no side effects.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

SAGEMAKER_BASE_DIR = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"

SM_MODEL_DIR = "SM_MODEL_DIR"
SM_INPUT_DIR = "SM_INPUT_DIR"
SM_INPUT_CONFIG_DIR = "SM_INPUT_CONFIG_DIR"
SM_OUTPUT_DIR = "SM_OUTPUT_DIR"
SM_OUTPUT_DATA_DIR = "SM_OUTPUT_DATA_DIR"
SM_OUTPUT_INTERMEDIATE_DIR = "SM_OUTPUT_INTERMEDIATE_DIR"
SM_CHANNELS = "SM_CHANNELS"
SM_CHANNEL_PREFIX = "SM_CHANNEL_"
SM_HPS = "SM_HPS"
SM_HP_PREFIX = "SM_HP_"
SM_HOSTS = "SM_HOSTS"
SM_CURRENT_HOST = "SM_CURRENT_HOST"
SM_NUM_GPUS = "SM_NUM_GPUS"
SM_NUM_CPUS = "SM_NUM_CPUS"
SM_LOG_LEVEL = "SM_LOG_LEVEL"
SM_RESOURCE_CONFIG = "SM_RESOURCE_CONFIG"
SM_INPUT_DATA_CONFIG = "SM_INPUT_DATA_CONFIG"
SM_USER_ENTRY_POINT = "SM_USER_ENTRY_POINT"
SM_USER_ARGS = "SM_USER_ARGS"
SM_FRAMEWORK_PARAMS = "SM_FRAMEWORK_PARAMS"
SM_TRAINING_ENV = "SM_TRAINING_ENV"
TRAINING_JOB_NAME = "TRAINING_JOB_NAME"
SMDEBUG_CONFIG_FILE_PATH = "SMDEBUG_CONFIG_FILE_PATH"
SMPROFILER_CONFIG_PATH = "SMPROFILER_CONFIG_PATH"
# Not a toolkit variable: where the local backend's profiler sampler writes step timings.
DOGBREED_PROFILE_DIR = "DOGBREED_PROFILE_DIR"

TRAINING_CHANNEL = "training"
CHECKPOINT_DIR = "checkpoints"  # /opt/ml/checkpoints, synced to checkpoint_s3_uri


@dataclass(frozen=True)
class TrainingEnv:
    """Paths a training script needs; defaults follow /opt/ml (or SAGEMAKER_BASE_DIR)."""

    base_dir: Path
    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    channels: Mapping[str, Path] = field(default_factory=dict)
    job_name: str | None = None
    num_gpus: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "TrainingEnv":
        env = os.environ if environ is None else environ
        base = Path(env.get(SAGEMAKER_BASE_DIR, DEFAULT_BASE_DIR))
        names = json.loads(env.get(SM_CHANNELS, "[]"))
        channels = {
            n: Path(env.get(SM_CHANNEL_PREFIX + n.upper(), base / "input" / "data" / n)) for n in names
        }
        for key, value in env.items():  # channels exported without SM_CHANNELS
            if key.startswith(SM_CHANNEL_PREFIX):
                channels.setdefault(key[len(SM_CHANNEL_PREFIX):].lower(), Path(value))
        return cls(
            base_dir=base,
            model_dir=Path(env.get(SM_MODEL_DIR, base / "model")),
            output_data_dir=Path(env.get(SM_OUTPUT_DATA_DIR, base / "output" / "data")),
            checkpoint_dir=Path(env.get("DOGBREED_CHECKPOINT_DIR", base / CHECKPOINT_DIR)),
            channels=channels,
            job_name=env.get(TRAINING_JOB_NAME),
            num_gpus=int(env.get(SM_NUM_GPUS, "0") or 0),
        )

    def channel(self, name: str = TRAINING_CHANNEL) -> Path | None:
        return self.channels.get(name)
