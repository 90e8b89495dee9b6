"""The real SageMaker serving stack (TorchServe 0.12 + sagemaker-pytorch-inference 2.0.25, started
through the toolkit's own serving entry, tests/toolkit/stack.py) on the model.tar.gz the SDK
repacked for `dogbreed --backend sagemaker deploy` (moto), with the environment deploy set on
CreateModel: the contract's answers and 4xx match the local server's, requests batched together by
TorchServe are answered each on its own, and no line of TorchServe's config is lost.
Plus, without TorchServe: the batched handler's one forward per batch, and deploy's serving rule."""

from __future__ import annotations

import re
import threading

import pytest

from tests.test_server_local import dog
from tests.test_handler import encode
from tests.test_toolkit_serving import local_server_answers, requests_of_the_contract, same_answer
from tests.toolkit.repacked import deploy_and_unpack
from tests.toolkit.stack import TorchServeStack, missing

BATCH_DELAY_MS = 2000  # long enough for every concurrent request of a test to join one TorchServe batch


def cli_runner():
    from click.testing import CliRunner

    from dogbreed.cli import cli as root

    runner = CliRunner()
    return lambda *args: runner.invoke(root, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def deployed(tiny_model_tar, tmp_path_factory):
    """(model dir, CreateModel's container env) of a real deploy under moto, instance ml.m5.large, with
    TorchServe batching turned on (deploy's setting on GPU instances; on CPU ones the throughput-first
    override) and the batch delay overridden through `--env`."""
    from moto import mock_aws

    from tests.conftest import make_sdk_hermetic
    from tests.moto_support import fill_moto_gaps

    tmp = tmp_path_factory.mktemp("deployed")
    with pytest.MonkeyPatch.context() as mp:
        make_sdk_hermetic(mp, tmp)
        mp.setenv("DOGBREED_WORKSPACE", str(tmp / "ws"))
        mp.chdir(tmp)
        fill_moto_gaps(mp)
        with mock_aws():
            return deploy_and_unpack(cli_runner(), tiny_model_tar, tmp, "dog-ts", "--instance-type", "ml.m5.large",
                                     "--env", "SAGEMAKER_TS_BATCH_SIZE=8",
                                     "--env", f"SAGEMAKER_TS_MAX_BATCH_DELAY={BATCH_DELAY_MS}")


@pytest.fixture(scope="module")
def stack(deployed, tmp_path_factory):
    why = missing()
    if why:
        pytest.skip(why)
    model_dir, env = deployed
    s = TorchServeStack(model_dir, env, tmp_path_factory.mktemp("stack")).start()
    try:
        s.wait_until_predicting(encode(dog()), {"Content-Type": "image/png"})
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def local_answers(deployed, tmp_path_factory):
    return local_server_answers(deployed[0], requests_of_the_contract(), tmp_path_factory.mktemp("local"))


def concurrently(stack, reqs) -> list[dict]:
    """All requests at once (so TorchServe batches them); the answers in request order."""
    answers = [None] * len(reqs)

    def send(i):
        answers[i] = stack.invoke(reqs[i][1], reqs[i][2])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def handler_calls(stack) -> int:
    """How many batches TorchServe's worker handled: one PredictionTime metric per handler call."""
    return stack.log_text().count("[METRICS]PredictionTime")


def test_deploy_sets_the_serving_environment_on_the_model(deployed):
    _, env = deployed
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    assert {k: env[k] for k in ("SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_TS_MIN_WORKERS",
                                "SAGEMAKER_TS_MAX_WORKERS", "OMP_NUM_THREADS", "SAGEMAKER_TS_BATCH_SIZE",
                                "SAGEMAKER_TS_MAX_BATCH_DELAY", "TS_ENABLE_MODEL_API",
                                "TS_DEFAULT_RESPONSE_TIMEOUT", "TS_DEFAULT_SERVICE_HANDLER")} == {
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1", "SAGEMAKER_TS_MIN_WORKERS": "1", "SAGEMAKER_TS_MAX_WORKERS": "1",
        "OMP_NUM_THREADS": "2", "SAGEMAKER_TS_BATCH_SIZE": "8", "SAGEMAKER_TS_MAX_BATCH_DELAY": str(BATCH_DELAY_MS),
        "TS_ENABLE_MODEL_API": "true", "TS_DEFAULT_RESPONSE_TIMEOUT": "60",
        "TS_DEFAULT_SERVICE_HANDLER": "dogbreed.serving.torchserve_handler:handle"}


@pytest.mark.slow  # starts TorchServe (a JVM and a torch worker) once for the module
def test_the_real_stack_answers_the_contract_like_the_local_server_in_mixed_batches(stack, local_answers):
    # deploy's TS_DEFAULT_SERVICE_HANDLER replaced the toolkit's handler: TorchServe runs dogbreed's
    assert "dogbreed TorchServe handler: one forward per batch of up to 8 requests" in stack.log_text()
    reqs = requests_of_the_contract()
    before = handler_calls(stack)
    answers = concurrently(stack, reqs)
    for (what, _, _), a, b in zip(reqs, answers, local_answers):
        assert same_answer(a, b), f"{what}: the real stack answered {a}, the local server {b}"
        assert "Traceback" not in a["body"], what
    assert sorted({a["status"] for a in answers}) == [200, 400, 406, 413, 415]
    # 18 requests at once, batches of up to 8: TorchServe called the handler with several at a time
    assert handler_calls(stack) - before < len(reqs)


@pytest.mark.slow
def test_the_default_instance_types_settings_answer_one_request_at_a_time(deployed, local_answers, tmp_path):
    # ml.m5.large without the test's batching override: what a plain deploy there runs
    from dogbreed.backends.sagemaker.serving_config import container_env

    why = missing()
    if why:
        pytest.skip(why)
    model_dir, env = deployed
    env = {**env, **container_env("ml.m5.large")}
    assert env["SAGEMAKER_TS_BATCH_SIZE"] == "1"
    with TorchServeStack(model_dir, env, tmp_path / "stack") as stack:
        stack.wait_until_predicting(encode(dog()), {"Content-Type": "image/png"})
        assert '"batchSize": 1' in stack.config_text()
        assert "dogbreed TorchServe handler: one request per forward (TorchServe batching off)" in stack.log_text()
        reqs = requests_of_the_contract()
        before = handler_calls(stack)
        answers = concurrently(stack, reqs)
        for (what, _, _), a, b in zip(reqs, answers, local_answers):
            assert same_answer(a, b), f"{what}: the real stack answered {a}, the local server {b}"
        assert handler_calls(stack) - before == len(reqs)  # each request its own handler call


@pytest.mark.slow
def test_no_torchserve_config_line_is_lost(stack):
    config = stack.config_text()
    # the toolkit's own bug, still there: its default config has no final newline
    assert "enable_model_api=truedefault_response_timeout=60" in config
    # ... but the environment deploy set put both values back: TorchServe reports what it read
    assert "Model API enabled: true" in stack.log_text()
    assert '"batchSize": 8' in config and f'"maxBatchDelay": {BATCH_DELAY_MS}' in config


# -- without TorchServe ---------------------------------------------------------------------------
def test_a_batch_is_one_forward_and_each_request_keeps_its_own_answer(tiny_model_tar, tmp_path):
    import tarfile

    from dogbreed.serving import batched, handler

    with tarfile.open(tiny_model_tar) as tar:
        tar.extractall(tmp_path, filter="data")
    loaded = handler.model_fn(str(tmp_path))
    forwards = []
    forward = loaded.forward
    loaded.forward = lambda x: forwards.append(x.shape[0]) or forward(x)
    reqs = requests_of_the_contract()
    answers = batched.answer_batch(loaded, [b for _, b, _ in reqs], [h for _, _, h in reqs])
    # one forward over the images of every decodable request: 7 single images (3 of them refused
    # afterwards for their Accept, as the local server does) and the two instances of the JSON one
    assert forwards == [7 + 2]
    for (what, body, headers), a in zip(reqs, answers):
        try:
            images = handler.input_fn(body, headers["Content-Type"], transform=loaded.transform)
            want = handler.output_fn(handler.predict_fn(images, loaded), headers.get("Accept"), loaded.breeds)
            assert a.status == 200 and same_answer(
                {"status": 200, "content_type": a.content_type, "body": a.body},
                {"status": 200, "content_type": want[1], "body": want[0]}), what
        except handler.RequestError as exc:
            assert (a.status, a.body) == (exc.status_code, exc.document()), what


def test_serving_rule_follows_the_instance_type():
    from dogbreed.backends.sagemaker.serving_config import container_env, describe, instance_shape

    assert instance_shape("ml.m5.large") == (2, 0) and instance_shape("ml.c5.9xlarge") == (36, 0)
    assert instance_shape("ml.g5.xlarge") == (4, 1) and instance_shape("ml.g5.12xlarge") == (48, 4)
    big = container_env("ml.c5.4xlarge")
    assert (big["SAGEMAKER_TS_MAX_WORKERS"], big["OMP_NUM_THREADS"], big["GOMP_SPINCOUNT"]) == ("4", "4", "30000")
    # CPU instances serve one request at a time, whatever their precision; GPUs batch
    batch = {t: container_env(t)["SAGEMAKER_TS_BATCH_SIZE"] for t in
             ("ml.m5.large", "ml.c6i.xlarge", "ml.c7g.large", "ml.c7i.large", "ml.m7i.4xlarge", "ml.g5.xlarge")}
    assert batch == {"ml.m5.large": "1", "ml.c6i.xlarge": "1", "ml.c7g.large": "1", "ml.c7i.large": "1",
                     "ml.m7i.4xlarge": "1", "ml.g5.xlarge": "8"}
    assert container_env("ml.m5.large")["SAGEMAKER_TS_MAX_BATCH_DELAY"] == "1"  # for a batch size override
    assert describe(container_env("ml.m5.large")).startswith("1 TorchServe worker(s) x 2 threads, one request at a")
    assert "batches of up to 8 requests waiting at most 1 ms" in describe(container_env("ml.g5.xlarge"))
    assert "batches of up to 8" in describe(container_env("ml.c7i.large", {"SAGEMAKER_TS_BATCH_SIZE": "8"}))
    assert container_env("ml.m5.large", {"GOMP_SPINCOUNT": "300000"})["GOMP_SPINCOUNT"] == "300000"
    gpu = container_env("ml.g5.12xlarge", {"SAGEMAKER_TS_BATCH_SIZE": "32"})
    assert [gpu[k] for k in ("SAGEMAKER_TS_MAX_WORKERS", "OMP_NUM_THREADS", "SAGEMAKER_TS_BATCH_SIZE")] == \
        ["4", "12", "32"]
    assert "GOMP_SPINCOUNT" not in gpu  # decoding there runs beside the GPU, not between CPU forwards
    serverless = container_env(None)
    assert "SAGEMAKER_TS_BATCH_SIZE" not in serverless and serverless["TS_ENABLE_MODEL_API"] == "true"
    with pytest.raises(ValueError, match="not a SageMaker instance type"):
        instance_shape("m5.large")


@pytest.mark.parametrize("overrides, message", [
    ({"SAGEMAKER_TS_BATCH_SIZE": "eight"}, "--env SAGEMAKER_TS_BATCH_SIZE='eight' is not a whole number"),
    ({"SAGEMAKER_TS_MAX_BATCH_DELAY": "0"}, "TorchServe reads 0 as its default, 100 ms"),
    ({"SAGEMAKER_TS_MAX_BATCH_DELAY": "-3"}, "SAGEMAKER_TS_MAX_BATCH_DELAY=-3: it must be at least 1"),
    ({"SAGEMAKER_TS_MIN_WORKERS": "2"}, "SAGEMAKER_TS_MIN_WORKERS=2 is above SAGEMAKER_TS_MAX_WORKERS=1"),
    ({"DOGBREED_MIXED_PRECISION": "fp32"}, "--env DOGBREED_MIXED_PRECISION='fp32': set it to auto, on or off"),
])
def test_settings_the_container_would_die_on_or_misread_are_refused(overrides, message):
    from dogbreed.backends.sagemaker.serving_config import container_env
    from dogbreed.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        container_env("ml.m5.large", overrides)
    ok = container_env("ml.m5.large", {"SAGEMAKER_TS_MAX_BATCH_DELAY": "3", "SAGEMAKER_TS_MIN_WORKERS": "1"})
    assert ok["SAGEMAKER_TS_MAX_BATCH_DELAY"] == "3"


def test_the_real_container_dies_at_start_on_a_setting_that_is_not_a_number(tmp_path):
    """Why deploy checks them: the toolkit's int() kills the serving entry before TorchServe starts."""
    why = missing()
    if why:
        pytest.skip(why)
    with pytest.raises(RuntimeError, match=r"(?s)the serving stack exited.*ValueError: invalid literal for int"):
        TorchServeStack(tmp_path, {"SAGEMAKER_TS_BATCH_SIZE": "eight"}, tmp_path / "run").start(timeout=60)


def test_env_flag_refuses_bad_pairs_and_the_local_backend(cli, workspace, tiny_model_tar):
    r = cli("deploy", "--model-data", tiny_model_tar, "--env", "NOEQUALS")
    assert r.exit_code == 2 and "'NOEQUALS' is not KEY=VALUE" in r.output
    r = cli("deploy", "--model-data", tiny_model_tar, "--env", "OMP_NUM_THREADS=1")
    assert r.exit_code != 0 and "--env sets the SageMaker container's environment" in r.output


def test_a_model_that_cannot_serve_fails_at_load_in_one_line(tiny_model_tar, tmp_path):
    """TorchServe answers /ping healthy while its workers load (and keeps restarting a worker whose
    load fails): the only early signal is model_fn's error in the endpoint's log, so it must be clear."""
    import tarfile

    from dogbreed.serving.errors import ModelLoadError
    from dogbreed.serving.inference_module import InferenceModule
    from tests.conftest import ROOT

    with tarfile.open(tiny_model_tar) as tar:
        tar.extractall(tmp_path, filter="data")
    weights = tmp_path / "model.pth"
    weights.write_bytes(weights.read_bytes()[:5000])
    module = InferenceModule(ROOT / "scripts" / "inference.py")
    with pytest.raises(ModelLoadError, match=r"the model in .* cannot serve \(.+\): deploy a model.tar.gz written by"):
        module.model_fn(str(tmp_path))
