"""Shared fixtures: a tiny generated dataset, an isolated workspace, the real CLI, and a
hermetic AWS environment for moto (fake credentials, no SDK config files, no telemetry)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Before anything imports boto3/sagemaker: fake credentials, a region, no v2 banner.
os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_SECURITY_TOKEN="testing", AWS_SESSION_TOKEN="testing", SAGEMAKER_SUPPRESS_V2_WARNING="1")
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("DOGBREED_BACKEND", None)
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# What the quick tests train: small, fast, architecture-agnostic.
TINY_HPS = {"arch": "resnet18", "weights": "none", "image-size": 48, "freeze": "none", "batch-size": 16,
            "workers": 0, "mixed-precision": "off"}


@pytest.fixture(scope="session", autouse=True)
def _caches_of_this_run(tmp_path_factory):
    """Scripts run outside a workspace cache decoded images and backbone features in this run's
    temp folder, not in the shared defaults under /tmp that would outlive the run."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("DOGBREED_IMAGE_CACHE", "DOGBREED_FEATURE_CACHE"):
            mp.setenv(var, str(tmp_path_factory.mktemp(var.lower())))
        yield


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """5 breeds x (16 train, 4 valid, 4 test) images of 48 px, generated once per session."""
    from dogbreed.data.synth import SynthSpec, synthesize

    out = tmp_path_factory.mktemp("data") / "sample"
    synthesize(out, SynthSpec(classes=5, per_class=16, image_size=48, seed=0))
    return out


TINY_CLASSES = tuple(f"00{i}.Breed_{i}" for i in range(1, 6))


@pytest.fixture(scope="session")
def tiny_model_tar(tmp_path_factory) -> Path:
    """A model.tar.gz laid out like training writes it: resnet18, 48 px, 5 breeds, random weights."""
    import tarfile

    import torch

    from dogbreed.training.model import ModelConfig, build_model, save_artifacts

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("artifact")
    save_artifacts(build_model(ModelConfig(num_classes=5, arch="resnet18", image_size=48, classes=TINY_CLASSES)),
                   root / "model")
    tar_path = root / "model.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for f in sorted((root / "model").iterdir()):
            tar.add(f, arcname=f.name)
    return tar_path


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """An empty workspace for this test; every CLI call and backend in the test uses it."""
    ws = tmp_path / "ws"
    monkeypatch.setenv("DOGBREED_WORKSPACE", str(ws))
    monkeypatch.chdir(tmp_path)
    return ws


@pytest.fixture
def cli():
    """Invoke the real click CLI in-process; returns click's Result."""
    from click.testing import CliRunner

    from dogbreed.cli import cli as root

    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(root, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


def run_dogbreed(*args, env=None, timeout=300, check=False, cwd=None):
    """Run the installed `dogbreed` executable as a user would (a real process)."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([str(BIN / "dogbreed"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"dogbreed {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def dogbreed_cmd():
    return run_dogbreed


# -- AWS under moto ------------------------------------------------------------------------------
@pytest.fixture
def hermetic_sdk(monkeypatch, tmp_path):
    """No SDK config files, no telemetry requests, no 5-30 s sleeps in SDK wait loops."""
    make_sdk_hermetic(monkeypatch, tmp_path)


def make_sdk_hermetic(monkeypatch, tmp_path) -> None:
    empty = tmp_path / "sm.yaml"
    empty.write_text("")
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(empty))
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(empty))
    # SDK v3 checks the role client-side with iam:SimulatePrincipalPolicy, which moto lacks
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
    import importlib

    from tests.moto_support import SDK, no_sdk_sleep

    tl = importlib.import_module(SDK.telemetry)
    monkeypatch.setattr(tl, "_send_telemetry_request", lambda *a, **k: None)
    no_sdk_sleep(monkeypatch)


@pytest.fixture
def aws(hermetic_sdk, monkeypatch):
    """moto's in-process mock of every AWS service for the duration of the test."""
    from moto import mock_aws

    from tests.moto_support import fill_moto_gaps

    fill_moto_gaps(monkeypatch)  # after moto's import has added its own botocore handler
    with mock_aws():
        yield
