"""Application Auto Scaling for real-time endpoints: a scalable target on the variant's instance
count and a target-tracking policy on SageMakerVariantInvocationsPerInstance (requests per
instance per minute), as the console's "Configure auto scaling" sets up.

A scalable target outlives the endpoint it points at unless deregistered, so `undeploy` and
`cleanup` deregister it before deleting the endpoint (AWS's order).
"""

from __future__ import annotations

from dogbreed.backends.base import Autoscaling
from dogbreed.errors import ConfigError

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
VARIANT = "AllTraffic"  # the variant name the SDK's deploy gives
MAX_INSTANCES = 100  # a guard against a typo (e.g. 1000) billing a fleet; raise it knowingly
SCALE_OUT_COOLDOWN_S = 60  # add instances quickly when traffic rises
SCALE_IN_COOLDOWN_S = 300  # remove them slowly, so a dip between bursts does not flap


def check(scaling: Autoscaling) -> None:
    """Limits out of range: one ConfigError, before anything is created."""
    lo, hi, target = scaling.min_instances, scaling.max_instances, scaling.target_invocations
    if not 1 <= lo <= MAX_INSTANCES:
        raise ConfigError(f"--min-instances {lo} is out of range: use 1 to {MAX_INSTANCES} (a real-time endpoint "
                          "keeps at least one instance; serverless endpoints scale to zero)")
    if not lo <= hi <= MAX_INSTANCES:
        raise ConfigError(f"--max-instances {hi} is out of range: use --min-instances ({lo}) to {MAX_INSTANCES}")
    if not target > 0:
        raise ConfigError(f"--target-invocations {target:g} is out of range: give the requests per instance "
                          "per minute at which to add an instance (e.g. 100)")


def resource_id(endpoint: str) -> str:
    return f"endpoint/{endpoint}/variant/{VARIANT}"


def policy_name(endpoint: str) -> str:
    return f"{endpoint}-invocations"


def register(client, endpoint: str, scaling: Autoscaling) -> None:
    rid = resource_id(endpoint)
    client.register_scalable_target(ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=DIMENSION,
                                    MinCapacity=scaling.min_instances, MaxCapacity=scaling.max_instances)
    client.put_scaling_policy(
        PolicyName=policy_name(endpoint), ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(scaling.target_invocations),
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleOutCooldown": SCALE_OUT_COOLDOWN_S, "ScaleInCooldown": SCALE_IN_COOLDOWN_S})


def describe_all(client, endpoints: list[str] | None = None) -> dict[str, Autoscaling]:
    """endpoint name -> its scaling, for `endpoints` that have a scalable target (all when None)."""
    ids = [resource_id(e) for e in endpoints] if endpoints is not None else None
    if ids == []:
        return {}
    kw = {"ResourceIds": ids} if ids else {}
    targets = {}
    for page in client.get_paginator("describe_scalable_targets").paginate(ServiceNamespace=NAMESPACE, **kw):
        targets.update({t["ResourceId"]: t for t in page["ScalableTargets"] if t["ScalableDimension"] == DIMENSION})
    if not targets:
        return {}
    policies = {}
    for page in client.get_paginator("describe_scaling_policies").paginate(ServiceNamespace=NAMESPACE):
        for p in page["ScalingPolicies"]:
            cfg = p.get("TargetTrackingScalingPolicyConfiguration") or {}
            if cfg.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType") == METRIC:
                policies[p["ResourceId"]] = cfg["TargetValue"]
    return {rid.split("/")[1]: Autoscaling(t["MinCapacity"], t["MaxCapacity"], policies.get(rid, 0.0))
            for rid, t in targets.items()}


def describe(client, endpoint: str) -> Autoscaling | None:
    return describe_all(client, [endpoint]).get(endpoint)


def deregister(client, endpoint: str) -> bool:
    """Remove the policy and the scalable target; False if the endpoint had none."""
    import botocore.exceptions

    rid = resource_id(endpoint)
    if not client.describe_scalable_targets(ServiceNamespace=NAMESPACE, ResourceIds=[rid],
                                            ScalableDimension=DIMENSION)["ScalableTargets"]:
        return False
    try:
        client.delete_scaling_policy(PolicyName=policy_name(endpoint), ServiceNamespace=NAMESPACE, ResourceId=rid,
                                     ScalableDimension=DIMENSION)
    except botocore.exceptions.ClientError as exc:  # no policy (registered by hand): the target still goes
        if exc.response.get("Error", {}).get("Code") != "ObjectNotFoundException":
            raise
    client.deregister_scalable_target(ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=DIMENSION)
    return True


def summary(scaling: Autoscaling) -> str:
    return (f"{scaling.min_instances}-{scaling.max_instances} instances, "
            f"target {scaling.target_invocations:g} invocations/instance/min")


def leftovers(client, prefix: str, endpoints: list[str], expired_only: bool = False) -> list:
    """Scalable targets to remove with `endpoints`, and (unless `expired_only`) any other whose
    endpoint name starts with `prefix`, e.g. left behind by an endpoint deleted in the console."""
    from dogbreed.backends.sagemaker.cleanup import Resource

    return [Resource("scalable-target", name, summary(scaling)) for name, scaling in describe_all(client).items()
            if name in endpoints or (not expired_only and name.startswith(prefix))]
