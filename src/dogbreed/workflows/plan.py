"""`dogbreed plan`: time and cost at several scales, from our measured benchmarks."""

from __future__ import annotations

from pathlib import Path

from dogbreed.planning import Plan, PlanSpec, read_rates
from dogbreed.workflows import Session


def default_results() -> Path:
    """benchmarks/results.json of the source checkout (written by `make bench`)."""
    from dogbreed.job_folder import SCRIPTS_DIR

    return SCRIPTS_DIR.parent / "benchmarks" / "results.json"


def plan(session: Session, specs: list[PlanSpec], results: str | None = None) -> list[Plan]:
    """One Plan per spec, estimated by the backend that can price SageMaker work."""
    rates = read_rates(Path(results) if results else default_results())
    estimate = session.backend_with("estimate_plan").require("estimate_plan")
    return [estimate(spec, rates) for spec in specs]
