"""End to end on a generated set: a local job learns, its artifact serves, resume and DDP work."""

import json
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import ROOT, TINY_HPS


def script(name, data, tmp_path, *extra):
    args = [sys.executable, str(ROOT / "scripts" / name), "--data-dir", str(data),
            "--model-dir", str(tmp_path / "model"), "--output-data-dir", str(tmp_path / "out"),
            "--checkpoint-dir", str(tmp_path / "ckpt")]
    for k, v in TINY_HPS.items():
        args += [f"--{k}", str(v)]
    return subprocess.run(args + list(extra), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_local_training_learns_and_the_artifact_serves(cli, workspace, sample_data, tmp_path):
    result = cli("train", "--data", sample_data, "--arch", "resnet18", "--weights", "none", "--image-size", "48",
                 "--freeze", "none", "--epochs", "8", "--lr", "0.003", "--batch-size", "16", "-H", "seed=1",
                 "-H", "workers=0")
    assert result.exit_code == 0, result.output
    from dogbreed.workspace import Workspace

    state = Workspace.resolve(workspace).state()
    job = Workspace.resolve(workspace).job_dir(state["model_data"]["job"])
    metrics = json.loads((job / "output" / "data" / "metrics.json").read_text())
    assert metrics["best_valid_loss"] < 1.2  # chance for 5 classes is ln(5) = 1.61
    assert max(h["valid_acc"] for h in metrics["history"]) >= 0.6  # chance is 0.2
    assert len(metrics["test"]["confusion_matrix"]) == 5 and metrics["test"]["n"] == 20
    listing = cli("jobs").output
    assert state["model_data"]["job"] in listing and "Completed" in listing and "test_acc=" in listing
    described = json.loads(cli("jobs", state["model_data"]["job"], "--json").output)
    assert described["status"] == "Completed" and described["hyperparameters"]["epochs"] == 8
    assert "not found" not in cli("jobs", "nope").output and cli("jobs", "nope").exit_code == 1

    # the artifact loads back through inference.py's handlers and predicts
    model_dir = tmp_path / "served"
    with tarfile.open(state["model_data"]["uri"]) as tar:
        tar.extractall(model_dir, filter="data")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import inference
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    model = inference.model_fn(str(model_dir))
    correct = 0
    images = sorted((sample_data / "test").glob("*/*.jpg"))
    for path in images:
        prediction = inference.predict_fn(inference.input_fn(path.read_bytes(), "image/jpeg"), model)
        body, ctype = inference.output_fn(prediction, "application/json")
        top = json.loads(body)["predictions"][0][0]
        correct += top["breed"] == path.parent.name.split(".", 1)[1].replace("_", " ")
    assert correct / len(images) >= 0.6


@pytest.mark.slow
def test_resume_from_checkpoint(sample_data, tmp_path):
    first = script("hpo.py", sample_data, tmp_path, "--epochs", "2", "--patience", "0")
    assert first.returncode == 0, first.stderr
    second = script("hpo.py", sample_data, tmp_path, "--epochs", "3", "--patience", "0")
    assert second.returncode == 0, second.stderr
    assert "resumed from" in second.stdout and "after epoch 2" in second.stdout
    assert second.stdout.count("#metric epoch=") == 1  # only epoch 3 ran
    history = json.loads((tmp_path / "out" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    fresh = script("hpo.py", sample_data, tmp_path, "--epochs", "1", "--resume", "false")
    assert "resumed" not in fresh.stdout


def test_bad_input_gives_one_line_error_and_exit_2(tmp_path):
    proc = script("train_model.py", tmp_path / "missing", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: dataset folder")
    assert "Traceback" not in proc.stderr
