"""A local `dogbreed train --from-best` with the debugger hook, rules and profiler, for real:
tensors smdebug reads, rule statuses, a profiler summary, the HTML report; and the verdict
headline on healthy and broken runs (lr far too high, lr 0, every parameter frozen)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# 80 train images / 16 = 5 steps per epoch: 3 epochs give LossNotDecreasing (num_steps 10) one check.
TINY = ["--arch", "resnet18", "--weights", "none", "--image-size", 48, "--freeze", "none", "--batch-size", 16,
        "-H", "workers=0", "-H", "mixed-precision=off", "-H", "seed=0", "-H", "patience=0",
        # weights every eval step would write ~45 MB per step for resnet18: keep the test's disk use small
        "--debug-param", "weights.eval.save_interval=1000", "--debug-param", "biases.eval.save_interval=1000"]


def job_of(workspace: Path) -> tuple[str, Path, dict]:
    state = json.loads((workspace / "state.json").read_text())
    name = state["last_training_job"]["name"]
    return name, workspace / "jobs" / name, state


def rule_statuses(job_dir: Path) -> dict[str, str]:
    desc = json.loads((job_dir / "job.json").read_text())
    return {r["RuleConfigurationName"]: r["RuleEvaluationStatus"] for r in desc["extra"]["rules"]}


def test_from_best_with_debugger_rules_profiler_and_report(cli, workspace, sample_data):
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    from dogbreed.workspace import Workspace

    Workspace.resolve(workspace).update(best_job={
        "name": "dbhpo-1-003", "backend": "local", "tuning_job": "dbhpo-1",
        "hyperparameters": {"lr": 0.003, "batch-size": 16, "epochs": 9, "feature-cache": "auto"},
        "objective": {"metric": "valid_loss", "value": 0.5}})
    r = cli("train", "--from-best", "--data", sample_data, "--epochs", 3, *TINY)
    assert r.exit_code == 0, r.output
    assert "hyperparameters from best tuning job dbhpo-1-003" in r.output and "lr=0.003" in r.output
    name, job_dir, state = job_of(workspace)
    assert state["model_data"] == {"uri": str(job_dir / "output" / "model.tar.gz"), "job": name, "backend": "local"}
    desc = json.loads((job_dir / "job.json").read_text())
    assert desc["hyperparameters"]["epochs"] == 3 and "feature-cache" not in desc["hyperparameters"]

    trial = create_trial(str(job_dir / "output" / "tensors"))
    loss = trial.tensor("CrossEntropyLoss_output_0")
    assert loss.steps(mode=ModeKeys.TRAIN) == list(range(15))
    assert len(loss.steps(mode=ModeKeys.EVAL)) == 3 * 2 + 2  # 20 valid + 20 test images, 16 per batch
    assert trial.tensor_names(collection="gradients")

    statuses = rule_statuses(job_dir)
    assert statuses["LossNotDecreasing"] == "NoIssuesFound"
    assert set(statuses) == {"LossNotDecreasing", "Overfit", "VanishingGradient", "ProfilerReport"}
    assert all(s in ("NoIssuesFound", "IssuesFound") for s in statuses.values())
    assert (job_dir / "rule-output" / "LossNotDecreasing" / "result.json").is_file()
    assert "LossNotDecreasing    NoIssuesFound" in r.output

    summary = json.loads((job_dir / "rule-output" / "ProfilerReport" / "profiler-output" / "profiler-reports"
                          / "summary.json").read_text())
    assert summary["steps"]["count"] == 15
    assert {f["rule"] for f in summary["findings"]} >= {"CPUBottleneck", "IOBottleneck", "StepOutlier", "BatchSize"}
    rows = [json.loads(x) for f in (job_dir / "output" / "profiler" / "system").rglob("*.algo-1.json")
            for x in f.read_text().splitlines()]
    assert {"cpu0", "MemoryUsedPercent"} <= {row["Name"] for row in rows}
    assert (job_dir / "output" / "profiler" / "system" / "training_job_end.ts").is_file()

    r = cli("train", "--status")
    assert r.exit_code == 0 and "Completed" in r.output and "VanishingGradient" in r.output

    r = cli("report")
    assert r.exit_code == 0, r.output
    report = Path(r.output.strip().splitlines()[-1])
    html = report.read_text()
    for section in ("Loss curves", "Debugger rules", "Profiler summary", "System usage", "Step times",
                    "Test confusion matrix", "Per-breed test accuracy"):
        assert section in html, section
    assert html.count("data:image/png;base64") == 4
    assert "http://" not in html and "https://" not in html  # opens offline
    pngs = {p.name for p in report.parent.glob("*.png")}
    assert pngs == {"losses.png", "system.png", "step_times.png", "confusion.png"}


def test_learning_rate_far_too_high_is_caught(cli, workspace, sample_data):
    # batch 8: 10 steps per epoch
    r = cli("train", "--data", sample_data, "--epochs", 2, "--lr", 50, *TINY, "--batch-size", 8, "--no-profiler",
            "--debug-param", "gradients.train.save_interval=1000", "--debug-param", "weights.train.save_interval=1000")
    assert r.exit_code == 0, r.output
    verdict = next(line for line in r.output.splitlines() if line.startswith("verdict:"))
    assert verdict.startswith("verdict: DIVERGING") and "LossNotDecreasing" in verdict, r.output
    _, job_dir, _ = job_of(workspace)
    assert set(rule_statuses(job_dir)) == {"LossNotDecreasing", "Overfit", "VanishingGradient"}


FAST = ["--arch", "resnet18", "--weights", "none", "--image-size", 32, "--batch-size", 16, "--epochs", 2,
        "-H", "workers=0", "-H", "mixed-precision=off", "-H", "seed=0", "-H", "patience=0", "--no-profiler",
        "--debug-param", "weights.eval.save_interval=1000", "--debug-param", "biases.eval.save_interval=1000"]


@pytest.mark.parametrize("flags, headline", [
    (["--freeze", "head", "--lr", 0], "NOT LEARNING"),
    (["--freeze", "all"], "NOT LEARNING"),
])
def test_a_model_that_cannot_learn_is_named(cli, workspace, sample_data, flags, headline):
    r = cli("train", "--data", sample_data, *FAST, *flags)
    assert r.exit_code == 0, r.output
    verdict = next(line for line in r.output.splitlines() if line.startswith("verdict:"))
    assert verdict.startswith(f"verdict: {headline}") and "LossNotDecreasing" in verdict, r.output
    r = cli("train", "--status")
    assert r.exit_code == 0 and f"verdict: {headline}" in r.output


def test_healthy_frozen_backbone_run_does_not_alarm(cli, workspace, sample_data):
    r = cli("train", "--data", sample_data, *FAST, "--freeze", "head", "--lr", 0.003, "--epochs", 4)
    assert r.exit_code == 0, r.output
    verdict = next(line for line in r.output.splitlines() if line.startswith("verdict:"))
    assert verdict.startswith("verdict: HEALTHY"), r.output
    r = cli("report")
    assert r.exit_code == 0, r.output
    assert "Verdict:</b> HEALTHY" in Path(r.output.strip().splitlines()[-1]).read_text()


def test_bad_input_is_one_line(cli, workspace, sample_data):
    r = cli("train", "--from-best", "--data", sample_data)
    assert r.exit_code == 1 and "no best job recorded" in r.output and "dogbreed tune" in r.output
    r = cli("train", "--data", sample_data, "--rule-param", "Bogus.x=1")
    assert r.exit_code == 1 and "unknown rule 'Bogus'" in r.output
    r = cli("train", "--data", sample_data, "--debug-param", "weights=5")
    assert r.exit_code == 1 and "COLLECTION.KEY=VALUE" in r.output
    r = cli("train", "--data", sample_data, "--debugger", "maybe")
    assert r.exit_code == 2 and "Invalid value for '--debugger'" in r.output
    r = cli("train", "--data", sample_data, "--rule-param", "LossNotDecreasing.num_steps=ten")
    assert r.exit_code == 1 and "num_steps must be an integer" in r.output
    r = cli("report", "no-such-job")
    assert r.exit_code == 1 and "no training or tuning job named 'no-such-job'" in r.output
