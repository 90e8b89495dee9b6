"""Debugger hook, built-in rules and profiler settings for SageMaker training jobs, built from
the same definitions (`dogbreed.rules.config`) the local backend writes as JSON; and the
download of a finished job's debug, rule and profiler outputs for `dogbreed report`."""

from __future__ import annotations

from pathlib import Path

from dogbreed.backends.base import Instrumentation
from dogbreed.rules import config

OUTPUT_PREFIXES = ("debug-output", "rule-output", "profiler-output")


def estimator_kwargs(instrumentation: Instrumentation | None) -> dict:
    """Keyword arguments for the PyTorch estimator: DebuggerHookConfig + CollectionConfigs,
    Rule.sagemaker(...) for each built-in rule (+ ProfilerReport), ProfilerConfig with system
    monitoring only (framework profiling is deprecated for PyTorch >= 2.0). None: all off."""
    from dogbreed.backends.sagemaker.session import import_sagemaker

    i = instrumentation or Instrumentation(debugger=False, profiler=False)

    import importlib

    from dogbreed.backends.sagemaker import sdk

    import_sagemaker()
    dbg = importlib.import_module(sdk.builders().DEBUGGER_MODULE)  # the same classes in v2 and v3
    CollectionConfig, DebuggerHookConfig, ProfilerConfig = (dbg.CollectionConfig, dbg.DebuggerHookConfig,
                                                            dbg.ProfilerConfig)
    ProfilerRule, Rule, rule_configs = dbg.ProfilerRule, dbg.Rule, dbg.rule_configs

    kwargs: dict = {}
    rules = []
    if i.debugger:
        colls = {name: CollectionConfig(name=name, parameters=params)
                 for name, params in config.collections(i.collection_overrides).items()}
        kwargs["debugger_hook_config"] = DebuggerHookConfig(collection_configs=list(colls.values()))
        for name, spec in config.RULES.items():
            # the rule's collections are ours (not rulesconfig's save_interval 500), so the
            # SDK's de-duplicated union keeps one config per collection
            rules.append(Rule.sagemaker(getattr(rule_configs, spec["config"])(),
                                        rule_parameters=dict(i.rule_params.get(name, {})) or None,
                                        collections_to_save=[colls[c] for c in spec["collections"] if c in colls]))
    else:
        kwargs["debugger_hook_config"] = False
    if i.profiler:
        kwargs["profiler_config"] = ProfilerConfig(system_monitor_interval_millis=config.check_interval(i.interval_ms))
        rules.append(ProfilerRule.sagemaker(rule_configs.ProfilerReport()))
    else:
        kwargs["disable_profiler"] = True
    if rules:
        kwargs["rules"] = rules
    return kwargs


def download_outputs(ctx, job_name: str, dest: Path) -> Path:
    """Copy `<output_path>/<job>/{debug-output,rule-output,profiler-output}` and the job's
    `output.tar.gz` metrics from S3 into `dest`, laid out like a local job folder."""
    import tarfile

    import botocore.exceptions

    s3 = ctx.boto_session.client("s3")
    bucket, _, root = ctx.s3_uri("jobs", job_name).removeprefix("s3://").partition("/")
    local = {"debug-output": "output/tensors", "rule-output": "rule-output", "profiler-output": "output/profiler"}
    for prefix in OUTPUT_PREFIXES:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{root}/{prefix}/"):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(root) + len(prefix) + 2:]
                target = (dest / local[prefix] / rel).resolve()
                if not str(target).startswith(str(dest.resolve())):  # a key with ../ must not escape dest
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, obj["Key"], str(target))
    try:
        archive = dest / "output" / "output.tar.gz"
        archive.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, f"{root}/output/output.tar.gz", str(archive))
        with tarfile.open(archive) as tar:
            tar.extractall(dest / "output" / "data", filter="data")
    except (botocore.exceptions.ClientError, tarfile.TarError, OSError):  # no output.tar.gz (job still running or failed): the report shows what exists
        pass
    return dest
