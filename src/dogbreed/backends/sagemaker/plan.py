"""Time and cost of tuning, training and serving on SageMaker at a given scale, estimated from
per-image seconds our benchmarks measured (dogbreed.planning) and the price table (costs.py).

Every figure is an estimate, and these are its assumptions (printed with the plan):
- CPU work scales with vCPUs: seconds on an instance = measured seconds x measured CPUs / the
  instance's vCPUs. Optimistic for big instances (memory bandwidth, data loading).
- A SageMaker training job runs on its own instance, so every tuning trial and the final
  training compute the frozen-backbone feature cache themselves (locally it is computed once).
- Excluded: instance provisioning and image download (minutes per job, partly billed), S3.
- Serving: the peak hour carries PEAK_FACTOR x the daily average, and an instance is planned at
  TARGET_BUSY of its measured throughput; the suggested --target-invocations keeps it there.
GPU instance types are not estimated: no GPU figure is measured.
"""

from __future__ import annotations

import math

from dogbreed.backends.sagemaker import costs
from dogbreed.planning import Measured, Plan, PlanRow, PlanSpec, Rates

VCPUS = {"ml.t3.medium": 2, "ml.t2.medium": 2, "ml.m5.large": 2, "ml.m5.xlarge": 4, "ml.m5.2xlarge": 8,
         "ml.m5.4xlarge": 16, "ml.c5.large": 2, "ml.c5.xlarge": 4, "ml.c5.2xlarge": 8, "ml.c5.4xlarge": 16,
         "ml.g4dn.xlarge": 4, "ml.g4dn.2xlarge": 8, "ml.g5.xlarge": 4, "ml.g5.2xlarge": 8, "ml.p3.2xlarge": 8}
GPU_FAMILIES = ("ml.g4dn.", "ml.g5.", "ml.p3.")
PEAK_FACTOR = 3.0
TARGET_BUSY = 0.7
DAY_S = 86_400
BATCH_WINDOW_S = 12 * 3600  # a daily transform job should end well within its day


def on(instance_type: str, m: Measured) -> float | None:
    """Measured seconds per item, scaled to `instance_type`'s vCPUs; None where not estimable."""
    if instance_type.startswith(GPU_FAMILIES) or instance_type not in VCPUS:
        return None
    return m.seconds * m.cpus / VCPUS[instance_type]


def _usd(instance_type: str, instances: int, seconds: float | None) -> float | None:
    hourly = costs.hourly_price(instance_type)
    return None if seconds is None or hourly is None else instances * seconds / 3600 * hourly


def estimate(spec: PlanSpec, rates: Rates) -> Plan:
    train, serve = spec.instance_type, spec.inference_instance_type
    plan = Plan(spec, inputs={"cache": rates.cache.source, "trial": rates.trial.source,
                              "startup": rates.trial_startup.source, "endpoint": rates.endpoint.source})
    cache_s, head_s, start_s = (on(train, m) for m in (rates.cache, rates.trial, rates.trial_startup))
    cache = None if cache_s is None else cache_s * spec.images
    trial = None if cache is None else cache + head_s * spec.images + start_s
    waves = math.ceil(spec.trials / spec.parallel)
    plan.rows += [
        PlanRow("feature caching", f"1 x {train}", cache, _usd(train, 1, cache), inputs=("cache",),
                note="one frozen-backbone pass; part of every job below"),
        PlanRow(f"tuning, {spec.trials} trials", f"{spec.trials} x {train}", None if trial is None else waves * trial,
                _usd(train, spec.trials, trial), inputs=("cache", "trial", "startup"),
                note=f"{spec.parallel} in parallel: {waves} rounds of one trial each"),
        PlanRow("final training", f"1 x {train}", trial, _usd(train, 1, trial), inputs=("cache", "trial", "startup"),
                note="best hyperparameters, frozen backbone"),
    ]
    per_prediction = on(serve, rates.endpoint)
    if per_prediction is None:
        plan.rows.append(PlanRow("serving, real-time endpoint", f"? x {serve}", None, None, "day", ("endpoint",),
                                 note="not estimated for this instance type"))
    else:
        per_instance = 1 / per_prediction  # predictions/s one instance answers
        peak = spec.predictions_per_day / DAY_S * PEAK_FACTOR
        n = max(1, math.ceil(peak / (per_instance * TARGET_BUSY)))
        target = per_instance * TARGET_BUSY * 60
        plan.rows.append(PlanRow(
            "serving, real-time endpoint", f"{n} x {serve}", DAY_S, _usd(serve, n, DAY_S), "day", ("endpoint",),
            note=f"{per_instance:.0f} predictions/s per instance; autoscale with --min-instances 1 --max-instances "
                 f"{n} --target-invocations {target:.0f}" if n > 1 else
                 f"{per_instance:.0f} predictions/s per instance, {peak / per_instance:.1%} busy at the peak"))
    # Batch Transform runs the endpoint's container, so the same per-prediction time applies;
    # enough instances (--instance-count) that the day's job ends within BATCH_WINDOW_S.
    busy = None if per_prediction is None else per_prediction * spec.predictions_per_day
    n = 1 if busy is None else max(1, math.ceil(busy / BATCH_WINDOW_S))
    plan.rows.append(PlanRow("serving, one batch transform a day", f"{n} x {serve}",
                             None if busy is None else busy / n, _usd(serve, 1, busy), "day", ("endpoint",),
                             note="the same predictions in one job, billed only while it runs"))
    plan.assumptions = [
        f"list prices: us-east-1 on demand, {costs.PRICES_AS_OF} ({costs.PRICING_URL}); {costs.SPOT_SAVING} "
        "for training and tuning",
        "CPU time scales with vCPUs (measured CPUs / instance vCPUs); GPU instance types are not estimated",
        "every SageMaker job computes its own feature cache; provisioning and image download (minutes per job) "
        "are not included",
        f"serving: the peak hour carries {PEAK_FACTOR:g}x the daily average; instances planned at "
        f"{TARGET_BUSY:.0%} busy",
    ]
    return plan
