"""The SageMaker `client` debugger mode against moto: no Debugger settings in the request; the
script's real smdebug hook writes tensors where SageMaker syncs the checkpoint folder; `train
--status` evaluates dogbreed's rules on them from S3; `auto` picks client where the region has
no rule images; missing or half-written tensors give one line, never a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.moto_support import BUCKET, ROLE_ARN
from tests.test_train_sagemaker import _on_every_session

DATA = f"s3://{BUCKET}/dogbreed/data"
AWS = ["--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET]
TINY = ["--data", DATA, "--arch", "resnet18", "--weights", "none", "--epochs", 2]

# What train_model.py does with the hook, at toy scale: 3 epochs of 5 train steps and 4 eval
# steps (12 eval steps in all: enough for LossNotDecreasing's num_steps 10), through dogbreed's
# own instrumentation configured the way the client mode configures it.
HOOK_RUN = """
import sys, torch
from torch import nn
from dogbreed.training.instrumentation import make_instrumentation
class A: debugger = True; profiler = False
lr = float(sys.argv[1])
torch.manual_seed(0)
instr = make_instrumentation(A())
model, loss_fn = nn.Linear(4, 3), nn.CrossEntropyLoss()
instr.attach(model, loss_fn)
opt = torch.optim.SGD(model.parameters(), lr=lr)
x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
for epoch in range(3):
    instr.set_mode("train")
    for _ in range(5):
        loss = loss_fn(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    instr.set_mode("eval")
    with torch.no_grad():
        for _ in range(4):
            loss_fn(model(x), y)
instr.close()
"""


@pytest.fixture
def requests(aws, monkeypatch):
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    sent = []
    _on_every_session(monkeypatch, "provide-client-params.sagemaker.CreateTrainingJob",
                      lambda params, **kw: sent.append(json.loads(json.dumps(params, default=str))))
    return sent


def hook_tensors(tmp_path, job_env: dict, lr: float):
    """Run the real smdebug hook in a subprocess with the job's DOGBREED_HOOK_* environment, its
    LocalPath moved into tmp_path; return the tensors folder."""
    hook_env = {k: v for k, v in job_env.items() if k.startswith("DOGBREED_HOOK_")}
    hook_env["DOGBREED_HOOK_CONFIG"] = json.dumps({"LocalPath": str(tmp_path / "tensors")})
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, **hook_env, "SAGEMAKER_BASE_DIR": str(tmp_path / "no-base"), "TMPDIR": str(scratch),
           "TRAINING_JOB_NAME": "as-on-sagemaker",  # smdebug then writes no end marker: our hook must
           "PYTHONPATH": os.path.abspath(src)}
    proc = subprocess.run([sys.executable, "-c", HOOK_RUN, str(lr)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not list(scratch.glob("dogbreed-*"))  # the hook config copy was removed once smdebug read it
    return tmp_path / "tensors"


def upload(folder, prefix):
    import boto3

    s3 = boto3.client("s3")
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            s3.upload_file(str(f), BUCKET, f"{prefix}/{f.relative_to(folder)}")


def test_client_mode_request_has_no_debugger_settings_and_status_judges_synced_tensors(
        cli, workspace, requests, tmp_path):
    r = cli(*AWS, "train", *TINY, "--debugger", "client", "--no-wait")
    assert r.exit_code == 0, r.output
    assert "debugger: client (asked for)" in r.output
    (req,) = requests
    assert "DebugHookConfig" not in req and not req.get("DebugRuleConfigurations")
    assert not req.get("ProfilerRuleConfigurations")
    assert req["ProfilerConfig"]["DisableProfiler"] is True
    job = req["TrainingJobName"]
    assert req["CheckpointConfig"] == {"S3Uri": f"s3://{BUCKET}/dogbreed/checkpoints/{job}",
                                       "LocalPath": "/opt/ml/checkpoints"}
    env = req["Environment"]
    assert json.loads(env["DOGBREED_HOOK_CONFIG"]) == {"LocalPath": "/opt/ml/checkpoints/dogbreed-debug/tensors"}
    colls = [json.loads(v)["CollectionName"] for k, v in env.items() if k.startswith("DOGBREED_HOOK_COLLECTION_")]
    assert set(colls) >= {"losses", "gradients", "weights"} and all(len(v) <= 512 for v in env.values())
    assert json.loads(req["Environment"]["DOGBREED_SYSTEM_MONITOR"])["dir"].startswith("/opt/ml/checkpoints/")

    # nothing synced yet: one line per rule, no crash
    r = cli(*AWS, "train", "--status")
    assert r.exit_code == 0, r.output
    assert "LossNotDecreasing    Error  no debugger tensors were synced to S3" in r.output

    # learning rate 0: the loss never moves; the hook's tensors land where SageMaker syncs them
    tensors = hook_tensors(tmp_path, env, lr=0.0)
    assert (tensors / "training_job_end.ts").is_file()
    upload(tensors, f"dogbreed/checkpoints/{job}/dogbreed-debug/tensors")
    # a step being synced right now: its index file is not whole JSON yet
    import boto3

    boto3.client("s3").put_object(Bucket=BUCKET, Body=b'{"meta": {"mode": "TRAIN", "mode_st',
                                  Key=f"dogbreed/checkpoints/{job}/dogbreed-debug/tensors/index/000000000/"
                                      "000000000099_worker_0.json")
    r = cli(*AWS, "train", "--status")
    assert r.exit_code == 0, r.output
    assert "rules (SageMaker parity, evaluated by dogbreed, client-side):" in r.output
    assert "LossNotDecreasing    IssuesFound" in r.output and "EVAL steps" in r.output
    assert "verdict: NOT LEARNING" in r.output and "LossNotDecreasing" in r.output.split("verdict:")[1]


def test_client_mode_healthy_run_reads_healthy(cli, workspace, requests, tmp_path):
    r = cli(*AWS, "train", *TINY, "--debugger", "client", "--no-wait", "--no-profiler")
    assert r.exit_code == 0, r.output
    (req,) = requests
    assert "DOGBREED_SYSTEM_MONITOR" not in req["Environment"]
    tensors = hook_tensors(tmp_path, req["Environment"], lr=0.5)
    upload(tensors, f"dogbreed/checkpoints/{req['TrainingJobName']}/dogbreed-debug/tensors")
    r = cli(*AWS, "train", "--status")
    assert r.exit_code == 0, r.output
    assert "verdict: HEALTHY" in r.output, r.output


def test_auto_picks_client_where_the_region_has_no_rule_images(cli, workspace, requests):
    r = cli(*AWS, "--region", "eu-central-2", "train", *TINY, "--no-wait")  # the SDK: "Unsupported region"
    assert r.exit_code == 0, r.output
    assert "debugger: client (auto): eu-central-2 has no SageMaker Debugger rule images" in r.output
    (req,) = requests
    assert "DebugHookConfig" not in req and not req.get("DebugRuleConfigurations")
    r = cli(*AWS, "--region", "eu-central-2", "train", *TINY, "--debugger", "cloud", "--no-wait")
    assert r.exit_code == 1 and "no Debugger rule images in eu-central-2" in r.output
    assert "Traceback" not in r.output and len(requests) == 1


def test_auto_picks_cloud_where_rule_images_exist(cli, workspace, requests):
    r = cli(*AWS, "train", *TINY, "--no-wait")
    assert r.exit_code == 0, r.output
    assert "debugger: cloud (auto): us-east-1 has SageMaker Debugger rule jobs" in r.output
    assert requests[0]["DebugRuleConfigurations"]


def test_bad_debugger_input_is_one_line(cli, workspace, requests):
    r = cli(*AWS, "train", *TINY, "--debugger", "sometimes")
    assert r.exit_code == 2 and "Invalid value for '--debugger'" in r.output and "client" in r.output
    r = cli(*AWS, "train", *TINY, "--rule-param", "LossNotDecreasing.num_steps=ten")
    assert r.exit_code == 1 and "num_steps must be an integer" in r.output
    r = cli(*AWS, "train", *TINY, "--rule-param", "Overfit.ratio_threshold=high")
    assert r.exit_code == 1 and "ratio_threshold must be a number" in r.output
    assert not requests
