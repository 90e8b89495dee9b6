"""`dogbreed tune` on the local backend: real hpo.py trials in subprocesses, Optuna in SQLite."""

import json
import shutil

import optuna
import pytest

from dogbreed.backends.base import COMPLETED, TuningSpec
from dogbreed.backends.local.tuning import LocalTuner, TuningStudy
from dogbreed.errors import DataError
from dogbreed.search_space import build_space
from dogbreed.workspace import Workspace

TINY = ["--arch", "resnet18", "--weights", "none", "--image-size", "48", "-H", "workers=0"]


def _state(ws):
    return json.loads((ws / "state.json").read_text())


@pytest.mark.slow
def test_tune_end_to_end(cli, workspace, sample_data):
    r = cli("tune", "--data", sample_data, *TINY, "--max-jobs", 3, "--max-parallel-jobs", 2, "--seed", 1,
            "--range", "lr=0.001:0.05:log", "--name", "hpo-e2e")
    assert r.exit_code == 0, r.output
    out = r.output
    assert "tuning hpo-e2e on local: 3 trial(s), 2 at a time, bayesian; minimize valid_loss over " \
           "lr=0.001:0.05:log, batch-size=32,64,128, epochs=1,2" in out
    assert "trial 3/3 Completed" in out and "best so far" in out

    state = _state(workspace)
    assert state["last_tuning_job"] == {"name": "hpo-e2e", "backend": "local"}
    best = state["best_job"]
    trials = [json.loads((workspace / "jobs" / f"hpo-e2e-00{i}" / "job.json").read_text()) for i in (1, 2, 3)]
    assert all(t["status"] == COMPLETED for t in trials)
    by_loss = sorted(trials, key=lambda t: t["metrics"]["valid_loss"])
    assert best["name"] == by_loss[0]["name"] and best["tuning_job"] == "hpo-e2e" and best["backend"] == "local"
    assert best["objective"] == {"metric": "valid_loss", "value": by_loss[0]["metrics"]["valid_loss"]}
    hps = best["hyperparameters"]
    assert {"arch": "resnet18", "weights": "none", "image-size": 48, "workers": 0}.items() <= hps.items()
    assert 0.001 <= hps["lr"] <= 0.05 and hps["batch-size"] in (32, 64, 128) and hps["epochs"] in (1, 2)

    # the table lists every trial, best first, with its hyperparameters
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1 ", "2 ", "3 "))]
    assert [row[1] for row in rows] == [t["name"] for t in by_loss]
    assert out.index("#  trial") < out.index(f"best: {best['name']}")

    # frozen backbone: features computed by the first trials, reused by later ones
    logs = [(workspace / "jobs" / t["name"] / "logs.txt").read_text() for t in trials]
    assert all("training the head on cached backbone features" in log for log in logs)
    assert "0 computed" in logs[2]
    assert list((workspace / "cache" / "features").glob("*.pt"))

    folder = workspace / "tuning" / "hpo-e2e"
    assert (folder / "objective.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (folder / "objective.html").read_text()
    assert "data:image/png;base64," in html and best["name"] in html

    # --attach on a finished job shows the same result without running anything
    r2 = cli("tune", "--attach", "hpo-e2e")
    assert r2.exit_code == 0, r2.output
    assert f"best: {best['name']}" in r2.output
    assert len(list((workspace / "jobs").iterdir())) == 3


def test_failing_trial_is_recorded_and_tuning_goes_on(cli, workspace, sample_data):
    r = cli("tune", "--data", sample_data, *TINY, "--strategy", "grid", "--range", "optimizer=adam,bogus",
            "-H", "lr=0.01", "-H", "batch-size=16", "-H", "epochs=1", "--max-jobs", 5, "--max-parallel-jobs", 1)
    assert r.exit_code == 0, r.output
    assert "2 trial(s), 1 at a time, grid" in r.output  # capped at the grid's size
    # the first trial builds the feature cache; its progress is shown (a pipe: lines, not a bar)
    assert "feature cache valid/eval: 0/20 images" in r.output
    assert "feature cache train/train-aug-0: 80/80 images" in r.output
    failed = [line for line in r.output.splitlines() if "Failed" in line]
    assert failed and "invalid choice: 'bogus'" in failed[0]
    state = _state(workspace)
    assert state["best_job"]["hyperparameters"]["optimizer"] == "adam"


def test_early_stopping_prunes_from_live_epoch_metrics(cli, workspace, sample_data):
    r = cli("tune", "--data", sample_data, *TINY, "--strategy", "grid", "--early-stopping",
            "--range", "lr=0.003,0.01,80", "-H", "batch-size=16", "-H", "epochs=2", "-H", "optimizer=sgd",
            "--max-jobs", 3, "--max-parallel-jobs", 1)
    assert r.exit_code == 0, r.output
    stopped = [line for line in r.output.splitlines() if line.startswith("trial 3/3")]
    assert stopped and "Stopped" in stopped[0] and "pruned (early stopping)" in stopped[0]
    assert _state(workspace)["best_job"]["hyperparameters"]["lr"] in (0.003, 0.01)


def test_no_wait_runs_in_the_background_and_attach_follows(cli, workspace, sample_data):
    Workspace.resolve(workspace).update(dataset=str(sample_data))  # as `data synth` records it: the default --data
    r = cli("tune", *TINY, "--no-wait", "--name", "hpo-bg", "--max-jobs", 1,
            "--max-parallel-jobs", 1, "-H", "epochs=1", "-H", "batch-size=16", "--range", "lr=0.01")
    assert r.exit_code == 0, r.output
    assert "tuning job hpo-bg is running; follow it with `dogbreed tune --attach hpo-bg`" in r.output
    r = cli("tune", "--attach", "hpo-bg")
    assert r.exit_code == 0, r.output
    assert "trial 1/1 Completed: hpo-bg-001" in r.output and "best: hpo-bg-001" in r.output
    assert _state(workspace)["best_job"]["tuning_job"] == "hpo-bg"


def test_resume_after_ctrl_c_and_crash(cli, workspace, sample_data):
    ws = Workspace.resolve(workspace)
    tuner = LocalTuner(ws)
    space = build_space(range_args=["lr=0.001,0.01,0.02,0.03"], static={"epochs": 1, "batch-size": 16})
    name = tuner.create(TuningSpec(data=str(sample_data), space=space, strategy="random", max_jobs=3,
                                   max_parallel_jobs=2, name="hpo-resume", seed=3,
                                   static_hyperparameters={"arch": "resnet18", "weights": "none", "image-size": 48,
                                                           "workers": 0, "epochs": 1, "batch-size": 16}))
    ws.update(last_tuning_job={"name": name, "backend": "local"})

    def ctrl_c(result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tuner.drive(name, progress=ctrl_c)  # Ctrl-C as soon as the first trial finishes
    after_stop = tuner.describe(name)
    assert after_stop.status == "Stopped" and "--resume" in after_stop.failure_reason
    done_first = [t for t in after_stop.trials if t.status == COMPLETED]
    assert len(done_first) == 1 and len(after_stop.trials) == 1  # the cut-short trial is not a record

    # a driver that died mid-trial (kill -9) leaves a trial marked running in the study
    folder = tuner.folder(name)
    lr = optuna.distributions.CategoricalDistribution([0.001, 0.01, 0.02, 0.03])
    orphan = TuningStudy(folder, folder.read()).study.ask({"lr": lr})
    orphan.set_user_attr("job", "hpo-resume-lost")

    r = cli("tune", "--resume")
    assert r.exit_code == 0, r.output
    final = tuner.describe(name)
    assert final.status == COMPLETED
    assert len(final.trials) == 3 and all(t.status == COMPLETED for t in final.trials)
    assert len({t.name for t in final.trials}) == 3
    assert done_first[0].name in {t.name for t in final.trials}  # not redone
    jobs = json.loads((workspace / "jobs" / done_first[0].name / "job.json").read_text())
    assert jobs["status"] == COMPLETED
    assert "trial 3/3 Completed" in r.output

    # resuming a finished job runs nothing more
    r2 = cli("tune", "--resume", name)
    assert r2.exit_code == 0 and len(tuner.describe(name).trials) == 3


@pytest.mark.parametrize("args, message", [
    (["-H", "learning-rate=0.1"], "unknown hyperparameter(s) learning-rate for hpo.py"),
    (["--range", "momentun=0.8:0.99"], "unknown hyperparameter(s) in ranges: momentun"),
    (["--range", "lr="], "range lr is empty"),
    (["--range", "lr=0.1:0.01:log"], "is empty: LOW must be below HIGH"),
    (["--max-jobs", "2", "--max-parallel-jobs", "3"], "--max-parallel-jobs 3 is more than --max-jobs 2"),
    (["--name", "bad_name!"], "use 1-32 letters, digits and dashes"),
])
def test_bad_input_fails_before_any_job(cli, workspace, sample_data, args, message):
    r = cli("tune", "--data", sample_data, *TINY, *args)
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and message in r.output and len(r.output.strip().splitlines()) == 1
    assert not (workspace / "jobs").exists() and not (workspace / "tuning").exists()


def test_dataset_that_fails_data_check(cli, workspace, tmp_path, sample_data):
    bad = tmp_path / "bad"
    for cls in ("001.A", "002.B"):
        (bad / "train" / cls).mkdir(parents=True)
        (bad / "train" / cls / "x.jpg").write_bytes(b"not an image")
        (bad / "valid" / cls).mkdir(parents=True)
    r = cli("tune", "--data", bad, *TINY)
    assert r.exit_code == 1 and "Error: " in r.output and "data check" in r.output
    r = cli("tune", "--data", tmp_path / "nowhere", *TINY)
    assert r.exit_code == 1 and "does not exist" in r.output
    assert not (workspace / "jobs").exists()
    # a dataset that passed is not decoded again, unless it changes
    from dogbreed.data.check import check_local_data

    good = tmp_path / "good"
    shutil.copytree(sample_data, good)
    check_local_data(str(good), workspace / "cache")
    assert len(list((workspace / "cache").glob("data-check-*.ok"))) == 1
    for image in (good / "valid").glob("*/*"):
        image.write_bytes(b"corrupt now")  # same names, new sizes: a new fingerprint
    with pytest.raises(DataError, match="fails `dogbreed data check`"):
        check_local_data(str(good), workspace / "cache")


def test_resume_without_a_recorded_job(cli, workspace):
    r = cli("tune", "--resume")
    assert r.exit_code == 1 and "no tuning job recorded; pass --resume NAME" in r.output
    r = cli("tune", "--attach", "nope")
    assert r.exit_code == 1 and "no local tuning job named 'nope'" in r.output


def test_attach_and_resume_refuse_names_that_are_not_names(cli, workspace):
    for flag in ("--attach", "--resume"):
        r = cli("tune", flag, "../../etc")
        assert r.exit_code == 1 and "tuning job name '../../etc' is not a valid name" in r.output, r.output
        assert not (workspace.parent / "etc").exists()
