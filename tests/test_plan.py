"""`dogbreed plan`: estimates computed from the measured figures in benchmarks/results.json and
the SageMaker price table, every figure labelled, every input cited; bad input one line."""

from __future__ import annotations

import json

import pytest

from dogbreed.backends.sagemaker import costs
from dogbreed.backends.sagemaker.plan import estimate
from dogbreed.planning import PlanSpec, read_rates
from dogbreed.workflows.plan import default_results


@pytest.fixture(scope="module")
def rates():
    return read_rates(default_results())


def rows(plan):
    return {r.step if r.step.startswith("serving") else r.step.split(",")[0]: r for r in plan.rows}


def test_estimates_follow_the_measured_figures_and_prices(rates):
    one, ten = (estimate(PlanSpec(images=n, trials=8, parallel=2), rates) for n in (8351, 83510))
    a, b = rows(one), rows(ten)
    # one backbone pass: measured seconds per image x images x (measured CPUs / the instance's 4 vCPUs)
    assert a["feature caching"].seconds == pytest.approx(rates.cache.seconds * 8351 * rates.cache.cpus / 4)
    assert b["feature caching"].seconds == pytest.approx(10 * a["feature caching"].seconds)
    hourly = costs.hourly_price("ml.m5.xlarge")
    assert a["feature caching"].usd == pytest.approx(a["feature caching"].seconds / 3600 * hourly)
    # every trial is a job like the final training: 8 are paid for, 4 rounds of 2 in wall time
    assert a["tuning"].usd == pytest.approx(8 * a["final training"].usd)
    assert a["tuning"].seconds == pytest.approx(4 * a["final training"].seconds)
    assert a["final training"].seconds > a["feature caching"].seconds
    assert set(one.inputs) >= {"cache", "trial", "startup", "endpoint"}
    assert all(k in one.inputs for r in one.rows for k in r.inputs)


def test_serving_scales_instances_with_traffic_and_suggests_autoscaling(rates):
    quiet = rows(estimate(PlanSpec(images=8351, predictions_per_day=1000), rates))["serving, real-time endpoint"]
    busy = rows(estimate(PlanSpec(images=8351, predictions_per_day=50_000_000), rates))["serving, real-time endpoint"]
    assert quiet.instances == "1 x ml.m5.large" and quiet.per == "day"
    n = int(busy.instances.split(" x ")[0])
    assert n > 1 and busy.usd == pytest.approx(n * quiet.usd)
    assert f"--max-instances {n} --target-invocations" in busy.note
    # a daily Batch Transform runs the same container: busy seconds only, billed per second
    plan = rows(estimate(PlanSpec(images=8351, predictions_per_day=1000), rates))
    nightly = plan["serving, one batch transform a day"]
    assert nightly.seconds == pytest.approx(1000 * rates.endpoint.seconds * rates.endpoint.cpus / 2)
    assert nightly.usd < quiet.usd and nightly.instances == "1 x ml.m5.large"
    heavy = rows(estimate(PlanSpec(images=8351, predictions_per_day=50_000_000), rates))
    job = heavy["serving, one batch transform a day"]
    assert int(job.instances.split(" x ")[0]) > 1 and job.seconds <= 12 * 3600


def test_gpu_instance_types_are_not_estimated(rates):
    plan = estimate(PlanSpec(images=8351, instance_type="ml.g4dn.xlarge"), rates)
    assert rows(plan)["feature caching"].seconds is None and rows(plan)["tuning"].usd is None


def test_plan_command_labels_every_figure(cli, workspace):
    r = cli("plan", "--images", 8351, "--images", 83510)
    assert r.exit_code == 0, r.output
    assert r.output.count("-- ESTIMATES") == 2 and "8,351 images (1x dogImages)" in r.output
    assert "83,510 images (10x dogImages)" in r.output
    assert "measured inputs:" in r.output and "[1] tune benchmark" in r.output
    assert "building the feature cache took" in r.output and "assumptions:" in r.output
    for step in ("feature caching", "tuning, 8 trials", "final training", "serving, real-time endpoint"):
        assert r.output.count(step) == 2


def test_plan_without_benchmark_results_is_one_line(cli, workspace, tmp_path):
    r = cli("plan", "--results", tmp_path / "missing.json")
    assert r.exit_code == 1 and "no benchmark results at" in r.output and "make bench" in r.output
    broken = tmp_path / "results.json"
    broken.write_text(json.dumps({"machine": "Linux, 2 cores", "figures": []}))
    r = cli("plan", "--results", broken)
    assert r.exit_code == 1 and "has no tune figure" in r.output and len(r.output.strip().splitlines()) == 1
