"""One contract suite over both backends (optuna's `parametrize_sampler` habit): what a workflow may
rely on from any `Backend`. The local backend runs for real (subprocess jobs, a real server on
127.0.0.1); the SageMaker backend runs the real SDK against moto."""

from __future__ import annotations

import io
import json
import socket
import time

import pytest
from PIL import Image

from dogbreed.backends.base import (OPTIONAL, TERMINAL, Backend, EndpointSpec, Instrumentation, TrainingJobSpec,
                                    TuningSpec)
from dogbreed.errors import ConfigError, EndpointError, JobNotFoundError, StateError
from tests.conftest import TINY_HPS
from tests.moto_support import BUCKET, ROLE_ARN, allow_binary_invoke_endpoint
from tests.test_tune_sagemaker import sagemaker_tuning  # noqa: F401 - fixture: seeds trials moto does not run

BACKENDS = ["local", "sagemaker"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), (120, 80, 40)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(params=BACKENDS)
def env(request, workspace, sample_data, tiny_model_tar):
    """(backend, dataset, model artifact) on each backend; SageMaker's inside moto with both uploaded."""
    from dogbreed.backends import get_backend
    from dogbreed.settings import Settings
    from dogbreed.workspace import Workspace

    ws = Workspace(workspace)
    if request.param == "local":
        yield get_backend("local", ws, Settings.resolve({})), str(sample_data), str(tiny_model_tar)
        return
    request.getfixturevalue("sagemaker_tuning")
    import boto3

    boto3.client("s3").upload_file(str(tiny_model_tar), BUCKET, "models/model.tar.gz")
    backend = get_backend("sagemaker", ws, Settings.resolve({"role": ROLE_ARN, "bucket": BUCKET}))
    yield backend, f"s3://{BUCKET}/dogbreed/data", f"s3://{BUCKET}/models/model.tar.gz"


def wait_until_done(backend: Backend, name: str, timeout: float = 240):
    deadline = time.time() + timeout
    while True:
        desc = backend.describe_job(name)
        if desc.status in TERMINAL or time.time() > deadline:
            return desc
        time.sleep(0.5)


def test_training_job_start_describe_list_wait(env, tmp_path):
    backend, data, _ = env
    spec = TrainingJobSpec(entry_point="train_model.py", data=data, base_name="contract",
                           hyperparameters={**TINY_HPS, "epochs": 1},
                           instrumentation=Instrumentation(debugger=False, profiler=True))
    started = backend.run_training_job(spec, wait=False)
    assert started.name.startswith("contract-") and started.backend == backend.name
    assert started.name in [j.name for j in backend.list_jobs()]
    done = wait_until_done(backend, started.name)
    assert done.status == "Completed", done.failure_reason
    assert done.model_data and done.model_data.endswith("model.tar.gz")
    assert done.hyperparameters["arch"] == "resnet18"
    assert backend.job_outputs(started.name, tmp_path / "outputs").is_dir()
    with pytest.raises(JobNotFoundError):
        backend.describe_job("contract-no-such-job")


def test_tuning_job_start_attach_and_best(env):
    from dogbreed.search_space import build_space

    backend, data, _ = env
    static = {k: v for k, v in TINY_HPS.items() if k != "batch-size"} | {"freeze": "head", "epochs": 1}
    space = build_space(range_args=["lr=0.001:0.1:log", "batch-size=16,32"], static=static)
    spec = TuningSpec(data=data, static_hyperparameters=static, space=space, strategy="random", max_jobs=2,
                      max_parallel_jobs=1, name=f"contract-{backend.name[:5]}", seed=0)
    assert isinstance(backend.check_tuning(spec), list)
    backend.start_tuning(spec, wait=False)
    result = backend.attach_tuning(spec.name, wait=True)
    assert result.name == spec.name and result.status == "Completed"
    assert result.best is not None and result.best.objective == min(t.objective for t in result.finished
                                                                    if t.objective is not None)
    assert backend.describe_job(result.best.name).hyperparameters
    with pytest.raises(JobNotFoundError):
        backend.attach_tuning("contract-missing", wait=False)


def test_endpoint_deploy_list_invoke_delete(env, monkeypatch):
    backend, _, model = env
    if backend.name == "sagemaker":  # moto runs no model: it answers what we queue
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sagemakerruntime.models import sagemakerruntime_backends

        allow_binary_invoke_endpoint(monkeypatch)
        answer = {"predictions": [[{"breed": "Breed 1", "index": 0, "probability": 0.9}]]}
        sagemakerruntime_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].results_queue.append(
            (json.dumps(answer), "application/json", "AllTraffic", ""))
    desc = backend.deploy_endpoint(EndpointSpec(model_data=model, name="contract-ep", port=free_port(),
                                                timeout_s=120))
    try:
        assert desc.status == "InService"
        assert "contract-ep" in [e.name for e in backend.list_endpoints()]
        conn = backend.connect_endpoint("contract-ep", desc.url)
        try:
            body, content_type = conn.invoke(jpeg(), "image/jpeg", "application/json; top_k=1")
            assert content_type.startswith("application/json")
            (top,) = json.loads(body)["predictions"][0]
            assert top["breed"].startswith("Breed ") and 0 <= top["probability"] <= 1
        finally:
            conn.close()
    finally:
        backend.delete_endpoint("contract-ep")
    assert "contract-ep" not in [e.name for e in backend.list_endpoints() if e.status == "InService"]
    with pytest.raises(EndpointError):
        backend.delete_endpoint("contract-ep-never")


@pytest.mark.parametrize("name", BACKENDS)
def test_capabilities_are_methods_or_absent_never_stubs(name, workspace):
    from dogbreed.backends import backend_class, get_backend
    from dogbreed.workspace import Workspace

    cls = backend_class(name)
    backend = get_backend(name, Workspace(workspace))
    for capability in OPTIONAL:
        if cls.supports(capability):
            assert callable(backend.require(capability))
        else:
            assert not hasattr(cls, capability)
            with pytest.raises(ConfigError, match=f"the {name} backend cannot .*: {cls.instead[capability][:20]}"):
                backend.require(capability)


@pytest.mark.parametrize("name", BACKENDS)
def test_no_recorded_dataset_is_one_line(name, workspace):
    from dogbreed.backends import get_backend
    from dogbreed.workspace import Workspace

    with pytest.raises(StateError, match="^no --data given and no dataset"):
        get_backend(name, Workspace(workspace)).default_data()
