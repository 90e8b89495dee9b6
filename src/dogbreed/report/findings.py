"""Why each ProfilerReport check did or did not fire, in words: its firing condition is written
from the thresholds the finding carries (`rules.profiler.THRESHOLDS`, no second copy), and a
check that had too few datapoints says so instead of a bare "no"."""

from __future__ import annotations

# rule -> when it fires, formatted with the finding's "parameters"
CONDITIONS = {
    "CPUBottleneck": "more than {threshold}% of snapshots show CPU above {cpu_threshold}% while GPU is below "
                     "{gpu_threshold}%",
    "IOBottleneck": "more than {threshold}% of snapshots show I/O wait above {io_threshold}% while GPU is below "
                    "{gpu_threshold}%",
    "DataWait": "more than {threshold}% of training-step time goes to waiting for data",
    "StepOutlier": "more than {n_outliers} steps are slower than the mean + {stddev} standard deviations",
    "LowGPUUtilization": "GPU utilisation p95 is below {threshold_p95}% or p5 below {threshold_p5}%",
    "BatchSize": "p95 of CPU, GPU and GPU memory are all below {cpu_threshold_p95}% (the batch could be larger)",
    "Dataloader": "the data-loader workers are outside {min_threshold}-{max_threshold}% of the cores",
    "MaxInitializationTime": "more than {threshold_minutes} minutes pass before the first training step",
}


def why(finding: dict) -> str:
    """One sentence: fired because..., did not fire because..., or not enough data to decide."""
    params = finding.get("parameters") or {}
    condition = CONDITIONS.get(finding["rule"], "").format(**params) if finding["rule"] in CONDITIONS else ""
    if finding["triggered"]:
        return f"fired: {condition}" if condition else "fired"
    patience, n = params.get("patience"), finding.get("datapoints") or 0
    if patience is not None and n <= patience and finding["rule"] != "DataWait":
        return (f"not enough data: {n} datapoints, it decides only after more than {patience} "
                f"(ProfilerReport's patience); it would fire if {condition}")
    if finding["rule"] == "DataWait" and patience is not None and n < patience:
        return f"not enough data: {n} steps, it decides after {patience}; it would fire if {condition}"
    return f"did not fire: it fires only if {condition}" if condition else "did not fire"
