"""`dogbreed train --backend sagemaker` against moto: the CreateTrainingJob request carries the
debugger hook, rules and profiler as intended; the status view shows rule statuses; the
report downloads debug/rule outputs from S3."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from tests.moto_support import BUCKET, ROLE_ARN
from tests.test_rules import TRAIN, EVAL, losses, write_trial

DATA = f"s3://{BUCKET}/dogbreed/data"
AWS = ["--backend", "sagemaker", "--role", ROLE_ARN, "--bucket", BUCKET]
TINY = ["--data", DATA, "--arch", "resnet18", "--weights", "none", "--epochs", 2]
RULE_STATUSES = [{"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluationStatus": "IssuesFound",
                  "StatusDetails": "RuleEvaluationConditionMet: loss flat", "LastModifiedTime": 0},
                 {"RuleConfigurationName": "Overfit", "RuleEvaluationStatus": "NoIssuesFound", "LastModifiedTime": 0}]


def _on_every_session(monkeypatch, event, handler):
    import botocore.handlers

    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS, (event, handler)])


@pytest.fixture
def sagemaker_training(aws, monkeypatch):
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    requests = []

    def with_rule_statuses(parsed, **kw):  # moto reports no rule statuses
        if isinstance(parsed, dict) and "TrainingJobName" in parsed:
            parsed["DebugRuleEvaluationStatuses"] = RULE_STATUSES

    _on_every_session(monkeypatch, "provide-client-params.sagemaker.CreateTrainingJob",
                      lambda params, **kw: requests.append(json.loads(json.dumps(params, default=str))))
    _on_every_session(monkeypatch, "after-call.sagemaker.DescribeTrainingJob", with_rule_statuses)
    return requests


def test_request_carries_hook_rules_and_profiler(cli, workspace, sagemaker_training):
    r = cli(*AWS, "train", *TINY, "--debug-param", "weights.train.save_interval=50",
            "--rule-param", "LossNotDecreasing.num_steps=20")
    assert r.exit_code == 0, r.output
    (req,) = sagemaker_training
    hook = req["DebugHookConfig"]
    colls = {c["CollectionName"]: c.get("CollectionParameters", {}) for c in hook["CollectionConfigurations"]}
    periodic = {"train.save_interval": "5", "eval.save_interval": "1",
                "reductions": "mean,std,min,max,abs_mean,l2_norm"}  # reductions, not full tensors
    assert colls["weights"] == {**periodic, "train.save_interval": "50"}
    assert colls["gradients"] == colls["biases"] == periodic
    assert colls["losses"] == {"save_interval": "1"}
    assert colls["CrossEntropyLoss_output_0"]["include_regex"] == "CrossEntropyLoss_output_0"
    assert len(hook["CollectionConfigurations"]) == len(colls)  # the rules' collections did not add duplicates
    rules = {r["RuleConfigurationName"]: r for r in req["DebugRuleConfigurations"]}
    assert set(rules) == {"LossNotDecreasing", "Overfit", "VanishingGradient"}
    assert rules["LossNotDecreasing"]["RuleParameters"]["num_steps"] == "20"
    assert rules["VanishingGradient"]["RuleParameters"]["rule_to_invoke"] == "VanishingGradient"
    assert req["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == 500
    assert "ProfilingParameters" not in req["ProfilerConfig"]  # no (deprecated) framework profiling
    assert [p["RuleConfigurationName"].split("-")[0] for p in req["ProfilerRuleConfigurations"]] == ["ProfilerReport"]
    # the job's rule statuses, as DescribeTrainingJob reports them
    assert "LossNotDecreasing    IssuesFound  RuleEvaluationConditionMet: loss flat" in r.output
    state = json.loads((workspace / "state.json").read_text())
    assert state["model_data"]["backend"] == "sagemaker" and state["last_training_job"]["name"]

    r = cli(*AWS, "train", "--status")
    assert r.exit_code == 0, r.output
    assert "Overfit              NoIssuesFound" in r.output


def test_debugger_and_profiler_can_be_turned_off(cli, workspace, sagemaker_training):
    r = cli(*AWS, "train", *TINY, "--no-debugger", "--no-profiler", "--no-wait")
    assert r.exit_code == 0, r.output
    (req,) = sagemaker_training
    assert "DebugHookConfig" not in req and not req.get("DebugRuleConfigurations")
    assert req["ProfilerConfig"]["DisableProfiler"] is True and not req.get("ProfilerRuleConfigurations")


def test_the_staged_source_dir_is_gone_once_uploaded(cli, workspace, sagemaker_training, tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    r = cli(*AWS, "train", *TINY, "--no-wait")
    assert r.exit_code == 0, r.output
    assert len(sagemaker_training) == 1
    assert list(scratch.iterdir()) == []  # not a dogbreed-src-* folder per job left in /tmp


def test_report_downloads_outputs_from_s3(cli, workspace, sagemaker_training, tmp_path):
    import boto3

    r = cli(*AWS, "train", *TINY)
    assert r.exit_code == 0, r.output
    job = sagemaker_training[0]["TrainingJobName"]
    s3 = boto3.client("s3")
    trial = write_trial(tmp_path / "trial", losses(TRAIN, [1.5, 1.2, 0.9]) + losses(EVAL, [1.0, 1.1]))
    root = f"dogbreed/jobs/{job}"
    for f in trial.rglob("*"):
        if f.is_file():
            s3.upload_file(str(f), BUCKET, f"{root}/debug-output/{f.relative_to(trial)}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = json.dumps({"best_epoch": 2, "test": {"loss": 0.7, "top1": 0.8, "top5": 1.0,
                                                     "classes": ["001.A", "002.B"],
                                                     "confusion_matrix": [[3, 1], [0, 4]],
                                                     "per_breed_accuracy": {"001.A": 0.75, "002.B": 1.0}}}).encode()
        info = tarfile.TarInfo("metrics.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=BUCKET, Key=f"{root}/output/output.tar.gz", Body=buf.getvalue())

    r = cli(*AWS, "report")
    assert r.exit_code == 0, r.output
    html = (workspace / "reports" / job / "report.html").read_text()
    assert r.output.strip().endswith("report.html")
    assert "Loss curves" in html and html.count("data:image/png;base64") >= 2  # losses + confusion
    assert "LossNotDecreasing" in html and "IssuesFound" in html and "0.8000" in html
