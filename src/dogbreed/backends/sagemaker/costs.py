"""Cost estimates printed before SageMaker work starts, and the reminder after a deploy.

The prices below are ESTIMATES: SageMaker on-demand list prices for us-east-1 in USD per
instance-hour, as published on https://aws.amazon.com/sagemaker/pricing/ (checked PRICES_AS_OF).
Other regions cost up to ~30 % more, prices change, and training/hosting differ by a few
cents for some types. They are here to make "this tuning run may cost $40" visible before
it starts, not to replace the bill.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

PRICES_AS_OF = "2025-01"
PRICING_URL = "https://aws.amazon.com/sagemaker/pricing/"
HOURLY_USD = {
    "ml.t3.medium": 0.05,
    "ml.t2.medium": 0.056,
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c5.4xlarge": 0.816,
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.2xlarge": 0.94,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.p3.2xlarge": 3.825,
}
SERVERLESS_USD_PER_GB_SECOND = 0.00002  # compute while serving requests only; idle costs nothing
SPOT_SAVING = "managed spot usually costs 60-90% less"
EXPIRES_TAG = "dogbreed:expires-at"  # ISO-8601 UTC; `dogbreed cleanup --expired` deletes past it


def hourly_price(instance_type: str) -> float | None:
    return HOURLY_USD.get(instance_type)


def _money(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 1 else f"${usd:.3f}"


def _hours(seconds: float) -> str:
    h = seconds / 3600
    return f"{h:g}h" if h >= 1 else f"{seconds / 60:g}min"


@dataclass(frozen=True)
class Estimate:
    """`instances` instance(s) of `instance_type` for at most `seconds` each."""

    what: str
    instance_type: str
    instances: int
    seconds: float
    spot: bool = False

    @property
    def hourly(self) -> float | None:
        return hourly_price(self.instance_type)

    @property
    def usd(self) -> float | None:
        return None if self.hourly is None else self.instances * self.seconds / 3600 * self.hourly

    def line(self) -> str:
        head = f"estimated {self.what} cost: {self.instances} x {self.instance_type} x up to {_hours(self.seconds)}"
        if self.usd is None:
            return f"{head}: no price on file for {self.instance_type}; see {PRICING_URL}"
        note = f"; {SPOT_SAVING}" if self.spot else ""
        return (f"{head} at ~{_money(self.hourly)}/h = at most ~{_money(self.usd)} on demand{note} "
                f"(estimate: us-east-1 list prices of {PRICES_AS_OF})")


def estimate_training(instance_type: str, instance_count: int, max_run_s: int, spot: bool = False) -> Estimate:
    return Estimate("training", instance_type, instance_count, max_run_s, spot)


def estimate_tuning(instance_type: str, max_jobs: int, max_run_s: int, instance_count: int = 1,
                    spot: bool = False) -> Estimate:
    """Parallelism changes the wall time, not the bill: every trial is paid for."""
    return Estimate("tuning", instance_type, max_jobs * instance_count, max_run_s, spot)


def endpoint_cost_line(instance_type: str | None, instance_count: int = 1,
                       serverless_memory_mb: int | None = None) -> str:
    if serverless_memory_mb:
        per_s = serverless_memory_mb / 1024 * SERVERLESS_USD_PER_GB_SECOND
        return (f"serverless endpoint: ~{_money(per_s * 3600)} per hour of busy compute, nothing while idle "
                f"(estimate: us-east-1 list prices of {PRICES_AS_OF})")
    hourly = hourly_price(instance_type or "")
    if hourly is None:
        return f"{instance_count} x {instance_type}: no price on file; see {PRICING_URL}"
    per_h = hourly * instance_count
    return (f"{instance_count} x {instance_type}: ~{_money(per_h)}/h = ~{_money(per_h * 24)}/day = "
            f"~{_money(per_h * 24 * 30)}/month, idle or not (estimate: us-east-1 list prices of {PRICES_AS_OF})")


def expires_at(after_s: int, now: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((time.time() if now is None else now) + after_s))


def expiry_tags(after_s: int, now: float | None = None) -> list[dict]:
    """Tags for `deploy(tags=...)`: `dogbreed cleanup --expired` deletes the endpoint after `after_s`."""
    return [{"Key": EXPIRES_TAG, "Value": expires_at(after_s, now)}]


def is_expired(tags: list[dict], now: float | None = None) -> bool:
    value = next((t["Value"] for t in tags if t.get("Key") == EXPIRES_TAG), None)
    if not value:
        return False
    try:
        deadline = calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return False
    return (time.time() if now is None else now) >= deadline


def endpoint_reminder(name: str, instance_type: str | None = None, instance_count: int = 1,
                      serverless_memory_mb: int | None = None, auto_delete_after_s: int | None = None) -> str:
    """The loud message `deploy` prints on SageMaker: what the endpoint costs and how to stop paying."""
    bar = "!" * 78
    lines = [bar, f"!! endpoint {name} is up and billed until you delete it:",
             f"!!   {endpoint_cost_line(instance_type, instance_count, serverless_memory_mb)}",
             "!! delete it:        dogbreed undeploy",
             "!! delete all of this project's endpoints, configs and models:  dogbreed cleanup"]
    if auto_delete_after_s:
        lines.append(f"!! tagged to expire at {expires_at(auto_delete_after_s)}: `dogbreed cleanup --expired --yes` "
                     "(e.g. hourly from cron) deletes it then")
    return "\n".join([*lines, bar])
