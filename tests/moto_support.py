"""Workarounds that let the real sagemaker SDK run end to end against moto.

See ../shared/reference/moto-sagemaker.md for what moto does and does not implement.
"""

from __future__ import annotations

import base64
import time
import types

ROLE_ARN = "arn:aws:iam::123456789012:role/SageMakerRole"


def _sdk_modules():
    """Where the installed SDK major keeps its telemetry and its wait loops (the moto suite runs on both)."""
    from dogbreed.backends.sagemaker import sdk

    if sdk.major() == 3:
        return types.SimpleNamespace(major=3, telemetry="sagemaker.core.telemetry.telemetry_logging",
                                     sleeping=("sagemaker.core.resources", "sagemaker.core.helper.session_helper"))
    return types.SimpleNamespace(major=2, telemetry="sagemaker.telemetry.telemetry_logging",
                                 sleeping=("sagemaker.session",))


SDK = _sdk_modules()
BUCKET = "dogbreed-test-bucket"


def backend(region: str = "us-east-1"):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[DEFAULT_ACCOUNT_ID][region]


def no_sdk_sleep(mp) -> None:
    """SDK wait loops sleep 5-30 s before polling; make those sleeps instant."""
    import importlib

    t = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("__")})
    t.sleep = lambda _: None
    for module in SDK.sleeping:
        mp.setattr(importlib.import_module(module), "time", t)


def fill_moto_gaps(mp) -> None:
    """moto describes a model without a VPC as `VpcConfig: {}`, which SDK v3's Model shape refuses
    (it requires subnets and security groups): drop the empty member, as AWS never sends it."""
    import botocore.handlers

    def drop_empty_vpc(parsed, **kw):
        if isinstance(parsed, dict) and parsed.get("VpcConfig") == {}:
            del parsed["VpcConfig"]

    mp.setattr(botocore.handlers, "BUILTIN_HANDLERS",
               [*botocore.handlers.BUILTIN_HANDLERS, ("after-call.sagemaker.DescribeModel", drop_empty_vpc)])


def capture_requests(boto_session, operation: str, into: list) -> None:
    """Record the parameters of every `operation` call (register before creating the Session)."""
    boto_session.events.register(f"provide-client-params.sagemaker.{operation}",
                                 lambda params, **kw: into.append(params))


def stub_operation(client, op: str, responder) -> None:
    """Answer one operation locally; every other call still reaches moto."""
    from botocore.awsrequest import AWSResponse

    svc, last = client.meta.service_model.service_id.hyphenize(), {}
    client.meta.events.register(f"before-parameter-build.{svc}.{op}", lambda params, **k: last.update(p=dict(params)))
    client.meta.events.register(f"before-call.{svc}.{op}",
                                lambda **k: (AWSResponse("http://stub", 200, {}, None), responder(last["p"])))


def allow_binary_invoke_endpoint(mp) -> None:
    """moto decodes InvokeEndpoint bodies as UTF-8; let real JPEG bytes through."""
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse as R

    orig = R.invoke_endpoint

    def inv(self):
        if isinstance(self.body, bytes):
            self.body = base64.b64encode(self.body).decode()
        return orig(self)

    mp.setattr(R, "use_raw_body", True)
    mp.setattr(R, "invoke_endpoint", inv)


def seed_tuning_result(sm_client, tuning_job: str, trials, metric: str = "valid_loss", maximize: bool = False):
    """moto creates no training jobs for a tuning job: create them with these (hps, value) results."""
    job = backend().hyper_parameter_tuning_jobs[tuning_job]
    d = job.training_job_definition
    d["StaticHyperParameters"]["_tuning_objective_metric"] = metric
    d["OutputDataConfig"].setdefault("KmsKeyId", "")
    d.setdefault("ResourceConfig", d.get("HyperParameterTuningResourceConfig"))  # v2 sends this, v3 ResourceConfig
    static = {k: v for k, v in d["StaticHyperParameters"].items() if k != "_tuning_objective_metric"}
    out = []
    for i, (hps, val) in enumerate(trials, 1):
        name = f"{tuning_job}-{i:03d}-0a1b2c3d"
        sm_client.create_training_job(
            TrainingJobName=name, HyperParameters={**static, **hps}, RoleArn=d["RoleArn"],
            AlgorithmSpecification=d["AlgorithmSpecification"], InputDataConfig=d.get("InputDataConfig", []),
            OutputDataConfig=d["OutputDataConfig"], ResourceConfig=d["ResourceConfig"],
            StoppingCondition=d["StoppingCondition"])
        arn = sm_client.describe_training_job(TrainingJobName=name)["TrainingJobArn"]
        # TrainingJobArn and CreationTime: AWS always sends them, and SDK v3's shapes require them
        out.append({"TrainingJobName": name, "TrainingJobArn": arn, "CreationTime": time.time(),
                    "TrainingJobStatus": "Completed", "TunedHyperParameters": hps,
                    "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": metric, "Value": val}})
    pick = max if maximize else min
    job.best_training_job = job.OverallBestTrainingJob = pick(
        out, key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    return out
