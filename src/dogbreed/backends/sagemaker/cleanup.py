"""Find and delete the project's billable SageMaker leftovers: endpoints, endpoint configs, models.

The project's resources are those whose names start with the `prefix` setting (every name
dogbreed gives starts with it), plus any endpoint named explicitly. With `expired_only`,
only endpoints whose `dogbreed:expires-at` tag lies in the past, with their config and models.
"""

from __future__ import annotations

from dataclasses import dataclass

from dogbreed.backends.sagemaker import costs

# Deleted in this order: a scalable target points at an endpoint (backends/sagemaker/autoscaling.py
# finds and deregisters those), an endpoint holds its config, a config holds its models.
KINDS = ("scalable-target", "endpoint", "endpoint-config", "model")
_API = {  # kind -> (list call, list key, name field, delete call, delete arg)
    "endpoint": ("list_endpoints", "Endpoints", "EndpointName", "delete_endpoint", "EndpointName"),
    "endpoint-config": ("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", "delete_endpoint_config",
                        "EndpointConfigName"),
    "model": ("list_models", "Models", "ModelName", "delete_model", "ModelName"),
}


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind:<16} {self.name}" + (f"  ({self.detail})" if self.detail else "")


def _list(sm, kind: str, prefix: str) -> list[dict]:
    call, key, name_field, _, _ = _API[kind]
    out = []
    for page in sm.get_paginator(call).paginate(NameContains=prefix):
        out += [item for item in page.get(key, []) if item[name_field].startswith(prefix)]
    return out


def _parts_of_endpoint(sm, endpoint: str) -> list[Resource]:
    """The config and models behind `endpoint` (best effort: they may be gone already)."""
    import botocore.exceptions

    try:
        config = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        variants = sm.describe_endpoint_config(EndpointConfigName=config).get("ProductionVariants", [])
    except botocore.exceptions.ClientError:
        return []
    return [Resource("endpoint-config", config)] + [Resource("model", v["ModelName"]) for v in variants
                                                    if v.get("ModelName")]


def find_resources(sm, prefix: str, endpoints: tuple[str, ...] = (), expired_only: bool = False,
                   now: float | None = None) -> list[Resource]:
    found: list[Resource] = []
    listed = _list(sm, "endpoint", prefix)
    named = [e for e in endpoints if e and e not in {x["EndpointName"] for x in listed}]
    for item in listed + [{"EndpointName": e} for e in named]:
        name = item["EndpointName"]
        if "EndpointArn" not in item:
            try:
                item = sm.describe_endpoint(EndpointName=name)
            except Exception:  # noqa: BLE001 - a remembered endpoint that no longer exists
                continue
        if expired_only:
            tags = sm.list_tags(ResourceArn=item["EndpointArn"]).get("Tags", [])
            if not costs.is_expired(tags, now):
                continue
            found += [Resource("endpoint", name, "expired")] + _parts_of_endpoint(sm, name)
        else:
            found.append(Resource("endpoint", name, item.get("EndpointStatus", "")))
    if not expired_only:
        found += [Resource("endpoint-config", c["EndpointConfigName"]) for c in _list(sm, "endpoint-config", prefix)]
        found += [Resource("model", m["ModelName"]) for m in _list(sm, "model", prefix)]
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda r: KINDS.index(r.kind))


def delete_resources(sm, resources: list[Resource]) -> list[tuple[Resource, str | None]]:
    """Delete each resource; returns (resource, error message or None). Already gone counts as deleted."""
    import botocore.exceptions

    results = []
    for r in resources:
        _, _, _, call, arg = _API[r.kind]
        try:
            getattr(sm, call)(**{arg: r.name})
            results.append((r, None))
        except botocore.exceptions.ClientError as exc:
            message = exc.response.get("Error", {}).get("Message", str(exc))
            gone = "could not find" in message.lower() or "does not exist" in message.lower()
            results.append((r, None if gone else message))
    return results
