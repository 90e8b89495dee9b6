"""Scripting and the drift of issue 14, through the real CLI: --json on train/tune/report,
shell completion of job and endpoint names, endpoint listing (header, expired), predict after
undeploy, the SageMaker SDK's config.yaml and the notebook execution role, AWS error texts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.conftest import BIN
from tests.moto_support import BUCKET, ROLE_ARN
from tests.test_server_local import free_port

TINY = ["--arch", "resnet18", "--weights", "none", "--image-size", "48", "-H", "workers=0"]


def test_json_documents_on_stdout_and_human_text_on_stderr(cli, workspace, sample_data):
    r = cli("train", "--data", sample_data, *TINY, "--epochs", "1", "--no-debugger", "--no-profiler", "--json")
    assert r.exit_code == 0, r.output
    job = json.loads(r.stdout)
    assert job["status"] == "Completed" and job["metrics"]["test_acc"] >= 0 and job["backend"] == "local"
    assert "epoch 1/1" in r.stderr and f"job {job['name']} Completed" in r.stderr

    status = cli("train", "--status", "--json")
    assert json.loads(status.stdout)["name"] == job["name"]

    report = json.loads(cli("report", "--json").stdout)
    assert report["job"] == job["name"] and os.path.isfile(report["report"])

    r = cli("tune", "--data", sample_data, *TINY, "-H", "epochs=1", "--max-jobs", "2", "--max-parallel-jobs", "1",
            "--name", "hpo-json", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["name"] == "hpo-json" and len(result["trials"]) == 2
    assert result["best_job"]["name"] == result["best"]["name"]
    assert "trial 2/2" in r.stderr and "next: dogbreed train --from-best" in r.stderr


def complete(words: str, workspace) -> list[str]:
    """What bash completion offers for the command line `words` (the last word being typed)."""
    parts = words.split(" ")
    env = dict(os.environ, _DOGBREED_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(parts) - 1),
               DOGBREED_WORKSPACE=str(workspace))
    proc = subprocess.run([sys.executable, "-X", "importtime", str(BIN / "dogbreed")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert " torch" not in proc.stderr and " sagemaker" not in proc.stderr  # -X importtime lists imports
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line.startswith("plain,")]


def test_shell_completion_offers_job_and_endpoint_names(workspace):
    for folder in ("jobs/dogbreed-train-1", "jobs/dbhpo-a-001", "tuning/dbhpo-a", "endpoints/dogs"):
        (workspace / folder).mkdir(parents=True)
    assert complete("dogbreed logs dog", workspace) == ["dogbreed-train-1"]
    assert complete("dogbreed stop dbhpo", workspace) == ["dbhpo-a", "dbhpo-a-001"]
    assert complete("dogbreed jobs rm d", workspace) == ["dbhpo-a", "dbhpo-a-001", "dogbreed-train-1"]
    assert complete("dogbreed undeploy ", workspace) == ["dogs"]
    assert complete("dogbreed predict --endpoint d", workspace) == ["dogs"]


def test_endpoints_header_expired_endpoint_and_predict_after_undeploy(cli, workspace, tiny_model_tar):
    def deploy(name, *extra):
        r = cli("deploy", "--model-data", tiny_model_tar, "--name", name, "--port", free_port(), *extra)
        assert r.exit_code == 0, r.output

    try:
        deploy("ttl", "--auto-delete-after", "2s")
        deploy("other")
        deploy("dogs")
        deadline = time.time() + 60
        while time.time() < deadline and "Expired" not in cli("endpoints").output:
            time.sleep(0.5)
        listing = cli("endpoints").output.splitlines()
        assert listing[0].split() == ["NAME", "STATUS", "WHERE", "CREATED"]
        ttl = next(line for line in listing if " ttl " in line)
        assert "Expired" in ttl and "auto-deleted after 2 s" in ttl and "Failed" not in ttl
        assert cli("undeploy", "dogs").exit_code == 0
        r = cli("predict", str(tiny_model_tar))
        assert r.exit_code == 1
        assert r.output.strip() == "Error: no endpoint recorded for predict; other is InService: pass --endpoint other"
    finally:
        for name in ("other", "dogs", "ttl"):
            cli("undeploy", name)


def test_sdk_config_yaml_defaults_and_where_they_came_from(cli, workspace, tmp_path, monkeypatch):
    for var in ("DOGBREED_ROLE", "DOGBREED_BUCKET", "DOGBREED_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    sdk = tmp_path / "sdk" / "config.yaml"
    sdk.parent.mkdir()
    sdk.write_text("SchemaVersion: '1.0'\nSageMaker:\n  TrainingJob:\n    RoleArn: " + ROLE_ARN + "\n"
                   "  PythonSDK:\n    Modules:\n      Session:\n        DefaultS3Bucket: sdk-bucket\n")
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(sdk.parent))  # a folder, as the SDK accepts
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(tmp_path / "no-admin.yaml"))
    shown = json.loads(cli("config", "show", "--json").output)["settings"]
    assert shown["role"] == {"value": ROLE_ARN, "source": f"SageMaker SDK config {sdk}"}
    assert shown["bucket"] == {"value": "sdk-bucket", "source": f"SageMaker SDK config {sdk}"}
    flagged = json.loads(cli("--bucket", "mine", "config", "show", "--json").output)["settings"]
    assert flagged["bucket"] == {"value": "mine", "source": "flag --bucket"}  # flags still win
    row = next(line for line in cli("config", "show").output.splitlines() if line.split()[0] == "bucket")
    assert row.split() == ["bucket", "sdk-bucket", "SageMaker", "SDK", "config", str(sdk)]


def test_notebook_execution_role_is_used_without_role(cli, workspace, aws, monkeypatch, tmp_path):
    import importlib

    import boto3

    from dogbreed.backends.sagemaker import sdk
    from tests.test_train_sagemaker import DATA

    monkeypatch.delenv("DOGBREED_ROLE", raising=False)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    notebook_role = "arn:aws:iam::123456789012:role/service-role/NotebookRole"
    boto3.client("sagemaker").create_notebook_instance(NotebookInstanceName="nb", InstanceType="ml.t3.medium",
                                                       RoleArn=notebook_role)
    requests = []
    import botocore.handlers

    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [
        *botocore.handlers.BUILTIN_HANDLERS,
        ("provide-client-params.sagemaker.CreateTrainingJob", lambda params, **kw: requests.append(params))])
    r = cli("--backend", "sagemaker", "--bucket", BUCKET, "train", "--data", DATA, "--weights", "none", "--no-wait")
    assert r.exit_code == 1 and "no SageMaker execution role: pass --role ARN" in r.output  # not in a notebook
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text(json.dumps({"ResourceName": "nb"}))
    monkeypatch.setattr(importlib.import_module(sdk.builders().SESSION_MODULE), "NOTEBOOK_METADATA_FILE", str(metadata))
    r = cli("--backend", "sagemaker", "--bucket", BUCKET, "train", "--data", DATA, "--weights", "none", "--no-wait")
    assert r.exit_code == 0, r.output
    assert requests[-1]["RoleArn"] == notebook_role


def test_aws_error_texts_name_the_profile_and_both_region_variables(cli, workspace, monkeypatch, tmp_path):
    r = cli("--backend", "sagemaker", "--profile", "research", "jobs")
    assert r.exit_code == 1 and "`aws configure --profile research`" in r.output
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "DOGBREED_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    r = cli("--backend", "sagemaker", "jobs")
    assert r.exit_code == 1
    assert r.output.strip() == ("Error: no AWS region: set AWS_REGION or AWS_DEFAULT_REGION, `region` in "
                                "dogbreed.toml, or pass --region")
