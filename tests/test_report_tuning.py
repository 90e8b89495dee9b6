"""The tuning report (`dogbreed report NAME`, and the table and page `dogbreed tune` writes):
trials best first, the best trial named, for a minimised and for a maximised objective."""

import re

from dogbreed.backends.base import TrialResult, TuningResult, TuningSpec
from dogbreed.backends.local.tuning import LocalTuner, TuningStudy
from dogbreed.report.build import tuning_report
from dogbreed.report.trials import table_lines, trial_rows
from dogbreed.search_space import build_space
from dogbreed.workspace import Workspace

ACCURACIES = [0.40, 0.85, 0.60]  # trial 2 is the best: valid_acc is maximised


def _local_valid_acc_job(workspace) -> str:
    """A local tuning job maximising valid_acc whose three trials are recorded without running."""
    tuner = LocalTuner(Workspace.resolve(workspace))
    space = build_space(range_args=["lr=0.001:0.1:log"], static={"epochs": 1, "batch-size": 16},
                        objective="valid_acc")
    name = tuner.create(TuningSpec(data="unused", static_hyperparameters={"epochs": 1, "batch-size": 16},
                                   space=space, strategy="random", max_jobs=3, max_parallel_jobs=1,
                                   name="hpo-acc", seed=0))
    folder = tuner.folder(name)
    study = TuningStudy(folder, folder.read())
    for i, accuracy in enumerate(ACCURACIES, 1):
        trial, _ = study.ask(space)
        trial.set_user_attr("job", f"{name}-{i:03d}")
        study.complete(trial.number, accuracy)
    return name


def test_report_names_the_highest_accuracy_trial_best(cli, workspace):
    name = _local_valid_acc_job(workspace)
    r = cli("report", name)
    assert r.exit_code == 0, r.output
    page = (workspace / "reports" / name / "report.html").read_text()
    summary = page[page.index("<h2>Summary</h2>"):page.index("<h2>Trials, best first</h2>")]
    assert "maximize valid_acc" in summary and "<td>hpo-acc-002</td><td>0.8500</td>" in summary
    trial_names = re.findall(r"<td>(hpo-acc-\d{3})</td>", page[page.index("<h2>Trials, best first</h2>"):])
    assert trial_names == ["hpo-acc-002", "hpo-acc-003", "hpo-acc-001"]
    assert "data:image/png;base64," in page


def test_local_best_and_table_for_a_maximised_objective(workspace):
    name = _local_valid_acc_job(workspace)
    result = LocalTuner(Workspace.resolve(workspace)).describe(name)
    assert result.objective_goal == "maximize" and result.best.name == "hpo-acc-002"
    lines = table_lines(result)
    assert lines[0].split()[:5] == ["#", "trial", "status", "valid_acc", "duration"]
    assert [line.split()[1] for line in lines[1:]] == ["hpo-acc-002", "hpo-acc-003", "hpo-acc-001"]


def _result(goal: str, objectives: list) -> TuningResult:
    trials = [TrialResult(f"t{i}", "Completed" if v is not None else "Failed", {"lr": 0.01 * i, "batch-size": 32},
                          v, 30.0 * i, None if v is not None else "out of memory")
              for i, v in enumerate(objectives, 1)]
    ranked = [t for t in trials if t.objective is not None]
    ranked.sort(key=lambda t: t.objective, reverse=goal == "maximize")
    return TuningResult("hpo-x", "sagemaker", "Completed", "random", "valid_loss" if goal == "minimize"
                        else "valid_acc", goal, len(trials), trials, ranked[0] if ranked else None)


def test_rows_rank_best_first_and_failures_last():
    rows = trial_rows(_result("minimize", [1.25, None, 0.75]))
    assert rows[0] == ["#", "trial", "status", "valid_loss", "duration", "batch-size", "lr"]
    assert [r[1] for r in rows[1:]] == ["t3", "t1", "t2"]
    assert rows[1] == ["1", "t3", "Completed", "0.7500", "90 s", "32", "0.03"]
    assert rows[3][3] == "-"
    assert [r[1] for r in trial_rows(_result("maximize", [0.5, 0.9, 0.7]))[1:]] == ["t2", "t3", "t1"]


def test_page_and_chart_written_where_asked(tmp_path):
    html, chart = tuning_report(_result("maximize", [0.5, 0.9, 0.7]), tmp_path, html_name="objective.html",
                                chart_name="objective.png")
    assert html == tmp_path / "objective.html" and chart == tmp_path / "objective.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html.read_text()
    assert "Tuning job hpo-x" in page and "<td>t2</td><td>0.9000</td>" in page


def test_no_objective_yet_gives_a_page_without_a_chart(tmp_path):
    html, chart = tuning_report(_result("minimize", [None]), tmp_path)
    assert chart is None and not list(tmp_path.glob("*.png"))
    assert html.name == "report.html" and "<td>t1</td>" in html.read_text()


def _many(n: int = 8) -> TuningResult:
    """A SageMaker-like result: hyperparameters as SageMaker returns them (numbers and strings)."""
    trials = [TrialResult(f"sm-{i:03d}", "Completed" if i % 4 else "Failed",
                          {"lr": 0.0005 * 2 ** i, "batch-size": str(32 * (1 + i % 3)), "epochs": 1 + i % 2},
                          1.0 / i if i % 4 else None, 60.0) for i in range(1, n + 1)]
    best = min((t for t in trials if t.objective is not None), key=lambda t: t.objective)
    return TuningResult("sm-hpo", "sagemaker", "Completed", "bayesian", "valid_loss", "minimize", n, trials, best)


def test_a_sagemaker_job_gets_optunas_views_from_an_in_memory_study(tmp_path):
    from dogbreed.report.optuna_views import load_study

    result = _many()
    study = load_study(result)
    assert study._storage.__class__.__name__ == "InMemoryStorage"
    assert len(study.trials) == 8 and study.best_trial.user_attrs["job"] == "sm-007"
    assert study.best_trial.params == {"lr": 0.064, "batch-size": 64, "epochs": 2}
    assert sum(t.state.name == "FAIL" for t in study.trials) == 2
    html, history = tuning_report(result, tmp_path)
    assert history == tmp_path / "history.png"
    for name in ("history", "parallel_coordinate", "importances", "slice"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    page = html.read_text()
    for title in ("Objective per trial, and the best so far", "Parallel coordinates", "Hyperparameter importances",
                  "Objective against each hyperparameter"):
        assert f"<h2>{title}" in page
    assert "not drawn: no trial reported per-epoch values" in page  # SageMaker trials carry no epochs here
    assert "optuna-dashboard" not in page  # no study file to open


def test_a_local_job_is_drawn_from_its_study_and_names_the_dashboard_command(cli, workspace):
    name = _local_valid_acc_job(workspace)
    study_db = workspace / "tuning" / name / "study.db"
    r = cli("report", name)
    assert r.exit_code == 0, r.output
    page = (workspace / "reports" / name / "report.html").read_text()
    assert f"<code>optuna-dashboard sqlite:///{study_db}</code>" in page
    assert (workspace / "reports" / name / "history.png").is_file()
    assert page.count("data:image/png;base64,") >= 3  # history, parallel coordinates, importances, slice


def test_per_epoch_values_of_a_local_study_are_drawn(workspace, tmp_path):
    tuner = LocalTuner(Workspace.resolve(workspace))
    space = build_space(range_args=["lr=0.001:0.1:log"], static={"epochs": 2})
    name = tuner.create(TuningSpec(data="unused", static_hyperparameters={"epochs": 2}, space=space,
                                   strategy="random", max_jobs=2, max_parallel_jobs=1, name="hpo-ep", seed=0))
    folder = tuner.folder(name)
    study = TuningStudy(folder, folder.read())
    for i, losses in enumerate(([1.0, 0.8], [0.9, 0.6]), 1):
        trial, _ = study.ask(space)
        trial.set_user_attr("job", f"{name}-{i:03d}")
        for epoch, loss in enumerate(losses, 1):
            trial.report(loss, epoch)
        study.complete(trial.number, losses[-1])
    tuning_report(tuner.describe(name), tmp_path)
    assert (tmp_path / "intermediate.png").is_file()
    assert "not drawn" not in (tmp_path / "report.html").read_text().split("Objective per epoch")[1][:200]
