"""Debugger hook, built-in rules and profiler settings for SageMaker training jobs, built from
the same definitions (`dogbreed.rules.config`) the local backend writes as JSON; and the
download of a job's debug, rule and profiler outputs for `dogbreed report` / `train --status`.

Two debugger modes (`Instrumentation.debugger_mode`; `auto` picks before the job exists):
- cloud: the request carries DebugHookConfig, DebugRuleConfigurations, ProfilerConfig and
  ProfilerReport; SageMaker's rule jobs judge the tensors.
- client: none of those. The script's hook (configured by `$DOGBREED_HOOK_CONFIG`) and its own
  system monitor write under the checkpoint folder, which SageMaker syncs to
  `<prefix>/checkpoints/<job>/` while the job runs; dogbreed evaluates its rule
  implementations on the synced copy (`dogbreed.workflows.training.assess`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from dogbreed.backends.base import Instrumentation, TrainingJobSpec
from dogbreed.errors import ConfigError
from dogbreed.job_folder import PROFILER_DIR, RULE_OUTPUT_DIR, TENSORS_DIR
from dogbreed.rules import config

OUTPUT_PREFIXES = ("debug-output", "rule-output", "profiler-output")
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"  # synced to checkpoint_s3_uri during the job
CLIENT_DIR = "dogbreed-debug"  # client mode: <checkpoints>/dogbreed-debug/{tensors,profiler}
ENV_VALUE_MAX = 512  # CreateTrainingJob: the longest Environment value


def rule_images_in(region: str) -> bool:
    """Whether the SDK knows a Debugger rule image for `region` (it raises ValueError where not)."""
    from dogbreed.backends.sagemaker.session import import_sagemaker

    import importlib

    from dogbreed.backends.sagemaker import sdk

    import_sagemaker()
    debugger = importlib.import_module(f"{sdk.builders().DEBUGGER_MODULE}.debugger")  # v2's or v3's
    try:
        debugger.get_rule_container_image_uri("LossNotDecreasing", region)
        return True
    except ValueError:  # "Unsupported region"
        return False


def debugger_mode(instrumentation: Instrumentation | None, region: str) -> tuple[str, str]:
    """("cloud" | "client" | "off", the line that says so), decided before the job is created."""
    i = instrumentation
    if i is None or not i.debugger:
        return "off", "debugger: off"
    if i.debugger_mode not in ("auto", "cloud", "client"):
        raise ConfigError(f"unknown debugger mode {i.debugger_mode!r}; use one of {', '.join(config.DEBUGGER_MODES)}")
    if i.debugger_mode == "client":
        return "client", ("debugger: client (asked for): the hook's tensors sync to S3 during the job and dogbreed "
                          "evaluates the rules; no SageMaker rule jobs")
    available = rule_images_in(region)
    if i.debugger_mode == "cloud":
        if not available:
            raise ConfigError(f"--debugger cloud: SageMaker has no Debugger rule images in {region}; "
                              "use --debugger client (or auto)")
        return "cloud", f"debugger: cloud (asked for): SageMaker Debugger rule jobs in {region}"
    if available:
        return "cloud", (f"debugger: cloud (auto): {region} has SageMaker Debugger rule jobs; pass --debugger client "
                         "if your account is not enabled for Debugger")
    return "client", (f"debugger: client (auto): {region} has no SageMaker Debugger rule images, so the hook's "
                      "tensors sync to S3 and dogbreed evaluates the rules")


def instrument(ctx, spec: TrainingJobSpec) -> tuple[TrainingJobSpec, dict, str]:
    """The spec (with the client mode's environment), the estimator's keyword arguments and
    the one line saying where the rules run. `spec.job_name` must be set (the checkpoint path)."""
    mode, line = debugger_mode(spec.instrumentation, ctx.region)
    if mode != "client":
        return spec, estimator_kwargs(spec.instrumentation, mode=mode), line
    env = {**spec.env, **client_environment(spec.instrumentation)}
    kwargs = estimator_kwargs(spec.instrumentation, mode="client")
    kwargs.update(checkpoint_s3_uri=ctx.s3_uri("checkpoints", spec.job_name),
                  checkpoint_local_path=CHECKPOINT_LOCAL_PATH)
    return dataclasses.replace(spec, env=env), kwargs, line


def client_environment(i: Instrumentation) -> dict[str, str]:
    """What the script needs to write tensors (and system samples) under the checkpoint folder."""
    from dogbreed.training import environment as E
    from dogbreed.training.instrumentation import (DOGBREED_HOOK_COLLECTION, DOGBREED_HOOK_CONFIG,
                                                   DOGBREED_SYSTEM_MONITOR)

    root = f"{CHECKPOINT_LOCAL_PATH}/{CLIENT_DIR}"
    hook = config.hook_config(f"{root}/tensors", config.collections(i.collection_overrides))
    env = {DOGBREED_HOOK_CONFIG: json.dumps({"LocalPath": hook["LocalPath"]})}
    for n, coll in enumerate(hook["CollectionConfigurations"]):
        env[f"{DOGBREED_HOOK_COLLECTION}{n}"] = json.dumps(coll, separators=(",", ":"))
    if i.profiler:
        env[DOGBREED_SYSTEM_MONITOR] = json.dumps({"dir": f"{root}/profiler", "interval_ms": i.interval_ms},
                                                  separators=(",", ":"))
        env[E.DOGBREED_PROFILE_DIR] = f"{root}/profiler/dogbreed"
    too_long = [k for k, v in env.items() if len(v) > ENV_VALUE_MAX]
    if too_long:
        raise ConfigError(f"the client-mode hook setting {env[too_long[0]][:60]}... is longer than the "
                          f"{ENV_VALUE_MAX} characters SageMaker allows per environment value: shorten that "
                          "--debug-param")
    return env


def estimator_kwargs(instrumentation: Instrumentation | None, *, mode: str = "cloud") -> dict:
    """Keyword arguments for the PyTorch estimator. cloud: DebuggerHookConfig + CollectionConfigs,
    Rule.sagemaker(...) for each built-in rule (+ ProfilerReport), ProfilerConfig with system
    monitoring only (framework profiling is deprecated for PyTorch >= 2.0). client / off /
    None: no Debugger or profiler settings at all."""
    from dogbreed.backends.sagemaker.session import import_sagemaker

    i = instrumentation or Instrumentation(debugger=False, profiler=False)
    if mode == "client":
        return {"debugger_hook_config": False, "disable_profiler": True}

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
    """Copy the job's outputs from S3 into `dest`, laid out like a local job folder:
    `<output_path>/<job>/{debug-output,rule-output,profiler-output}` (cloud mode),
    `checkpoints/<job>/dogbreed-debug/{tensors,profiler}` (client mode, synced while the job runs)
    and the `output.tar.gz` metrics. Files already there with the same size are not fetched
    again; an index file that is not (yet) whole JSON is left out, so readers see whole steps."""
    import tarfile

    import botocore.exceptions

    s3 = ctx.boto_session.client("s3")
    jobs = ctx.s3_uri("jobs", job_name)
    client = f"{ctx.s3_uri('checkpoints', job_name)}/{CLIENT_DIR}"
    sources = [(f"{jobs}/debug-output", TENSORS_DIR), (f"{jobs}/rule-output", RULE_OUTPUT_DIR),
               (f"{jobs}/profiler-output", PROFILER_DIR), (f"{client}/tensors", TENSORS_DIR),
               (f"{client}/profiler", PROFILER_DIR)]
    for uri, local in sources:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
            for obj in page.get("Contents", []):
                target = (dest / local / obj["Key"][len(prefix) + 1:]).resolve()
                if not str(target).startswith(str(dest.resolve())):  # a key with ../ must not escape dest
                    continue
                if target.is_file() and target.stat().st_size == obj.get("Size"):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.with_name(target.name + ".part")
                s3.download_file(bucket, obj["Key"], str(part))
                if "/index/" in obj["Key"] and not _whole_json(part):
                    part.unlink()
                    continue
                part.replace(target)
    bucket, _, root = jobs.removeprefix("s3://").partition("/")
    try:
        archive = dest / "output" / "output.tar.gz"
        archive.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, f"{root}/output/output.tar.gz", str(archive))
        with tarfile.open(archive) as tar:
            tar.extractall(dest / "output" / "data", filter="data")
    except (botocore.exceptions.ClientError, tarfile.TarError, OSError):  # no output.tar.gz yet: show what exists
        pass
    return dest


def _whole_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False
