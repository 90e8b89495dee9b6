"""`dogbreed batch` on the local backend for real: a folder scored by the offline scorer with the
endpoint's own handler functions (same predictions as the endpoint pipeline), JSON Lines out,
an interrupted run resumed without redoing finished images, and every bad input one line with
nothing created."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import TINY_CLASSES


@pytest.fixture
def photos(sample_data, tmp_path) -> Path:
    """The sample test split (20 images in breed folders) plus one corrupt file."""
    folder = tmp_path / "photos"
    shutil.copytree(sample_data / "test", folder)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def endpoint_predictions(model_tar: Path, image: Path, k: int, tmp: Path) -> list[dict]:
    """What the endpoint answers for `image`: scripts/inference.py's functions on the same artifact."""
    from dogbreed.serving import handler
    from dogbreed.serving.model_dir import prepare_model_dir

    loaded = handler.model_fn(str(prepare_model_dir(str(model_tar), tmp / "endpoint-model")))
    x = handler.input_fn(image.read_bytes(), "image/jpeg", transform=loaded.transform)
    body, _ = handler.output_fn(handler.predict_fn(x, loaded), f"application/json; top_k={k}", loaded.breeds)
    return json.loads(body)["predictions"][0]


def test_scores_a_folder_like_the_endpoint(cli, workspace, photos, tiny_model_tar, tmp_path):
    out = tmp_path / "scores.jsonl"
    r = cli("batch", photos, "--out", out, "--model-data", tiny_model_tar, "--top-k", 3, "--batch-size", 4)
    assert r.exit_code == 1  # one corrupt file: reported, the rest scored
    assert "scored 20 of 21 images" in r.output and "1 failed" in r.output
    assert "1 of 21 images failed" in r.output
    rows = lines(out)
    assert [row["image"] for row in rows] == sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg"))
    broken = next(row for row in rows if row["image"] == "broken.jpg")
    assert "not a supported image" in broken["error"]
    scored = [row for row in rows if "predictions" in row]
    assert len(scored) == 20 and all(len(row["predictions"]) == 3 for row in scored)
    breeds = {b.split(".", 1)[1].replace("_", " ") for b in TINY_CLASSES}
    assert all(p["breed"] in breeds for row in scored for p in row["predictions"])
    first = scored[0]
    expected = endpoint_predictions(tiny_model_tar, photos / first["image"], 3, tmp_path)
    assert [p["breed"] for p in first["predictions"]] == [p["breed"] for p in expected]
    assert [p["probability"] for p in first["predictions"]] == pytest.approx([p["probability"] for p in expected],
                                                                             abs=2e-3)
    assert not out.with_name("scores.jsonl.partial").exists()


def test_interrupted_run_resumes_without_redoing_finished_images(cli, workspace, photos, tiny_model_tar, tmp_path):
    from dogbreed.serving.batch import score_folder
    from dogbreed.serving.model_dir import prepare_model_dir

    (photos / "broken.jpg").unlink()
    out = tmp_path / "scores.jsonl"
    model_dir = prepare_model_dir(str(tiny_model_tar), tmp_path / "model")

    def interrupt_after_two_batches(done, total):
        if done >= 8:
            raise KeyboardInterrupt  # what Ctrl-C does mid-run

    with pytest.raises(KeyboardInterrupt):
        score_folder(model_dir, photos, out, batch_size=4, model_name=str(tiny_model_tar),
                     progress=interrupt_after_two_batches)
    partial = out.with_name("scores.jsonl.partial")
    assert not out.exists() and len(lines(partial)) == 8
    finished = [row["image"] for row in lines(partial)]
    with open(partial, "a") as f:  # a line torn by the interruption is dropped and scored again
        f.write('{"image": "001.Aff')

    r = cli("batch", photos, "--out", out, "--model-data", tiny_model_tar, "--batch-size", 4)
    assert r.exit_code == 0, r.output
    assert "scored 12 of 20 images" in r.output and "8 already done by an earlier run" in r.output
    rows = lines(out)
    assert len(rows) == 20 and len({row["image"] for row in rows}) == 20
    assert [row["image"] for row in rows[:8]] == finished
    assert not partial.exists()


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist: pass a folder of images"),
    ("empty", "no images (.jpg"),
    ("a file", "is not a folder"),
    ("out exists", "already exists: pass another --out"),
    ("out folder missing", "does not exist: create it or pass another --out"),
    ("s3 prefix", "the local backend scores a folder on this machine, not s3://bucket/photos/"),
])
def test_bad_input_is_one_line_and_creates_nothing(cli, workspace, photos, tiny_model_tar, tmp_path, case, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "done.jsonl").write_text("{}\n")
    source, out = {
        "missing": (tmp_path / "nope", tmp_path / "o.jsonl"),
        "empty": (tmp_path / "empty", tmp_path / "o.jsonl"),
        "a file": (photos / "broken.jpg", tmp_path / "o.jsonl"),
        "out exists": (photos, tmp_path / "done.jsonl"),
        "out folder missing": (photos, tmp_path / "nowhere" / "o.jsonl"),
        "s3 prefix": ("s3://bucket/photos/", tmp_path / "o.jsonl"),
    }[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli("batch", source, "--out", out, "--model-data", tiny_model_tar)
    assert r.exit_code == 1
    assert r.output.startswith("Error: ") and message in r.output and len(r.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "done.jsonl").read_text() == "{}\n"


def test_resume_with_other_settings_is_refused(cli, workspace, photos, tiny_model_tar, tmp_path):
    out = tmp_path / "scores.jsonl"
    out.with_name("scores.jsonl.partial").write_text("")
    out.with_name("scores.jsonl.resume.json").write_text(json.dumps({"source": str(photos), "model": "other",
                                                                      "top_k": 5}))
    r = cli("batch", photos, "--out", out, "--model-data", tiny_model_tar)
    assert r.exit_code == 1 and "was started with other settings" in r.output and "delete it" in r.output


def test_no_model_recorded(cli, workspace, photos, tmp_path):
    r = cli("batch", photos, "--out", tmp_path / "o.jsonl")
    assert r.exit_code == 1 and "train a model first" in r.output


def test_a_second_run_on_the_same_output_is_refused(cli, workspace, photos, tiny_model_tar, tmp_path):
    from dogbreed.serving.batch import Output

    out = tmp_path / "scores.jsonl"
    with Output(out).locked():  # what a run in another terminal holds while it scores
        r = cli("batch", photos, "--out", out, "--model-data", tiny_model_tar)
    assert r.exit_code == 1 and "another `dogbreed batch` is writing" in r.output
    assert not out.exists() and not out.with_name("scores.jsonl.partial").exists()


@pytest.mark.parametrize("alongside", [True, False])
def test_decoding_next_to_or_between_forward_passes_gives_the_same_lines(photos, tiny_model_tar, tmp_path,
                                                                         monkeypatch, alongside):
    """Both decode schedules (next to the forward on CUDA or spare cores; between forward passes when
    a CPU forward uses every core) score every image, in order, as the endpoint does."""
    from dogbreed.serving import batch, handler
    from dogbreed.serving.model_dir import prepare_model_dir

    loaded = handler.model_fn(str(prepare_model_dir(str(tiny_model_tar), tmp_path / "model")))
    files = sorted(p for p in photos.rglob("*") if p.is_file())
    monkeypatch.setattr(batch, "decode_alongside", lambda device_type: alongside)
    rows = [row for rows in batch.score_batches(loaded, files, photos, k=3, batch_size=3) for row in rows]
    assert [row["image"] for row in rows] == [f.relative_to(photos).as_posix() for f in files]
    assert sum("error" in row for row in rows) == 1  # broken.jpg
    first = next(row for row in rows if "predictions" in row)
    expected = endpoint_predictions(tiny_model_tar, photos / first["image"], 3, tmp_path / str(alongside))
    assert [p["breed"] for p in first["predictions"]] == [p["breed"] for p in expected]
