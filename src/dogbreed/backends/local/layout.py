"""A job folder laid out like SageMaker's /opt/ml, and the training toolkit's environment for it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dogbreed import hyperparameters as hp
from dogbreed.training import environment as E

CURRENT_HOST = "algo-1"


@dataclass(frozen=True)
class JobLayout:
    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    def channel_dir(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def model_tar(self) -> Path:
        return self.output_dir / "model.tar.gz"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    @property
    def log_file(self) -> Path:
        return self.root / "logs.txt"

    @property
    def description_file(self) -> Path:
        return self.root / "job.json"

    def create(self, *, channels: Mapping[str, Path], encoded_hps: Mapping[str, str], scripts: Path,
               config_files: Mapping[str, Any]) -> None:
        for d in (self.config_dir, self.model_dir, self.output_data_dir, self.checkpoint_dir,
                  self.root / "output" / "intermediate"):
            d.mkdir(parents=True, exist_ok=True)
        for name, src in channels.items():
            link = self.channel_dir(name)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(Path(src).absolute(), target_is_directory=True)
        (self.config_dir / "hyperparameters.json").write_text(json.dumps(dict(encoded_hps), indent=2))
        (self.config_dir / "resourceconfig.json").write_text(json.dumps(
            {"current_host": CURRENT_HOST, "hosts": [CURRENT_HOST], "network_interface_name": "lo"}))
        (self.config_dir / "inputdataconfig.json").write_text(json.dumps({
            name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
            for name in channels}))
        for name, doc in config_files.items():
            (self.config_dir / name).write_text(json.dumps(doc, indent=2))
        if not self.code_dir.exists():
            shutil.copytree(scripts, self.code_dir, ignore=shutil.ignore_patterns("__pycache__"))

    def environment(self, *, job_name: str, entry_point: str, user_hps: Mapping[str, Any],
                    channels: Mapping[str, Path]) -> dict[str, str]:
        """The SM_* variables the training toolkit would export (see reference/sagemaker-contracts.md)."""

        def enc(v):  # toolkit rule: str unchanged, anything else compact sorted JSON
            return v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))

        num_cpus = os.cpu_count() or 1
        num_gpus = _num_gpus()
        env = {
            E.SAGEMAKER_BASE_DIR: str(self.root),
            E.TRAINING_JOB_NAME: job_name,
            "TRAINING_JOB_ARN": f"arn:aws:sagemaker:local:000000000000:training-job/{job_name}",
            E.SM_MODEL_DIR: str(self.model_dir),
            E.SM_INPUT_DIR: str(self.root / "input"),
            E.SM_INPUT_CONFIG_DIR: str(self.config_dir),
            E.SM_OUTPUT_DIR: str(self.output_dir),
            E.SM_OUTPUT_DATA_DIR: str(self.output_data_dir),
            E.SM_OUTPUT_INTERMEDIATE_DIR: str(self.root / "output" / "intermediate"),
            E.SM_CHANNELS: enc(sorted(channels)),
            E.SM_HPS: enc(dict(user_hps)),
            E.SM_HOSTS: enc([CURRENT_HOST]),
            E.SM_CURRENT_HOST: CURRENT_HOST,
            E.SM_NUM_GPUS: str(num_gpus),
            E.SM_NUM_CPUS: str(num_cpus),
            E.SM_LOG_LEVEL: "20",
            E.SM_USER_ENTRY_POINT: entry_point,
            E.SM_USER_ARGS: enc(hp.to_cmd_args(user_hps)),
            E.SM_FRAMEWORK_PARAMS: "{}",
            E.SM_RESOURCE_CONFIG: enc({"current_host": CURRENT_HOST, "hosts": [CURRENT_HOST]}),
            E.SM_INPUT_DATA_CONFIG: (self.config_dir / "inputdataconfig.json").read_text(),
            "DOGBREED_CHECKPOINT_DIR": str(self.checkpoint_dir),
            "PYTHONUNBUFFERED": "1",
        }
        for name in channels:
            env[E.SM_CHANNEL_PREFIX + name.upper()] = str(self.channel_dir(name))
        for key, value in user_hps.items():
            env[E.SM_HP_PREFIX + key.upper()] = enc(value)
        env[E.SM_TRAINING_ENV] = json.dumps({k: v for k, v in env.items() if k.startswith("SM_")}, sort_keys=True)
        return env


def _num_gpus() -> int:
    if not os.path.isdir("/dev"):
        return 0
    return len([d for d in os.listdir("/dev") if d.startswith("nvidia") and d[6:].isdigit()])


def python_command(entry_point: str, args: list[str], processes: int, job_root: Path) -> list[str]:
    if processes > 1:  # torchrun's own files go with the job, not into a new folder under /tmp per run
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                f"--log-dir={job_root / 'torchrun'}", entry_point, *args]
    return [sys.executable, entry_point, *args]
