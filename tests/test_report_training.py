"""The training report at dogImages' scale (133 breeds): most confused pairs and per-breed
accuracy worst first instead of an unreadable matrix, one breed label style, and a reason on
every profiler line. Built from a job folder written without training (tests/fake_jobs.py)."""

from __future__ import annotations

import re

import pytest

from dogbreed.report.build import training_report
from dogbreed.report.classes import confused_pairs, per_breed
from dogbreed.report.findings import why
from tests.fake_jobs import confusion, fake_training_job, synth_classes


@pytest.fixture(scope="module")
def classes_133(tmp_path_factory) -> list[str]:
    return synth_classes(tmp_path_factory.mktemp("data133"), 133)


def test_most_confused_pairs_and_worst_breeds_first(classes_133):
    pairs = confused_pairs(confusion(133), classes_133)
    assert (pairs[0].true, pairs[0].predicted, pairs[0].count) == ("American staffordshire terrier", "Affenpinscher", 4)
    assert pairs[0].share == 1.0 and len(pairs) == 20
    assert all(a.count >= b.count for a, b in zip(pairs, pairs[1:]))
    breeds = per_breed(confusion(133), classes_133)
    assert len(breeds) == 133 and breeds[0].breed == "American staffordshire terrier" and breeds[-1].accuracy == 1.0
    assert [b.accuracy for b in breeds] == sorted(b.accuracy for b in breeds)
    assert (breeds[0].correct, breeds[0].images) == (0, 4) and (breeds[1].correct, breeds[1].images) == (1, 4)


def test_report_at_133_breeds(classes_133, tmp_path):
    job = fake_training_job(tmp_path / "job", classes_133)
    path = training_report(job, tmp_path / "out", name="job-133", status="Completed",
                           hyperparameters={"lr": 0.01, "workers": 0})
    page = path.read_text()
    assert not (tmp_path / "out" / "confusion.png").exists()
    assert "133 breeds: the full 133 x 133 matrix is drawn only up to 30 breeds" in page
    pairs = page[page.index("<h2>Most confused pairs"):page.index("<h2>Per-breed test accuracy")]
    assert "<td>American staffordshire terrier</td><td>Affenpinscher</td><td>4</td><td>100%</td>" in pairs
    worst = page[page.index("<h2>Per-breed test accuracy, worst first"):page.index("<h2>Test confusion matrix")]
    first = worst.index("<td>American staffordshire terrier</td><td>0.000</td><td>0 / 4</td>")
    assert worst.count("<tr") == 134 and first < worst.index("<td>1 / 4</td>")
    # one label style: no "001.Affenpinscher" folder names or underscores anywhere on the page
    assert not re.search(r"\d{3}\.[A-Z]", page) and "Afghan_hound" not in page
    assert (tmp_path / "out" / "system.png").is_file()


def test_every_profiler_line_says_why(classes_133, tmp_path):
    job = fake_training_job(tmp_path / "job", classes_133[:5])
    page = training_report(job, tmp_path / "out", name="job-5", hyperparameters={"workers": 0}).read_text()
    prof = page[page.index("<h2>Profiler summary"):page.index("<h2>System usage")]
    rows = re.findall(r"<tr[^>]*><td>(\w+)</td><td>(yes|no)</td><td>([^<]*)</td>", prof)
    assert len(rows) >= 5 and all(reason for _, _, reason in rows)
    cpu = next(r for r in rows if r[0] == "CPUBottleneck")
    assert cpu[1] == "no" and cpu[2].startswith("not enough data: 40 datapoints, it decides only after more than "
                                                "1000 (ProfilerReport&#x27;s patience); it would fire if more than 50% "
                                                "of snapshots show CPU above 90%")
    # five breeds: the full matrix is drawn, with the tables
    assert (tmp_path / "out" / "confusion.png").is_file() and "<h2>Most confused pairs" in page


def test_why_for_fired_and_quiet_checks():
    params = {"stddev": 3, "n_outliers": 10}
    assert why({"rule": "StepOutlier", "triggered": True, "datapoints": 500, "parameters": params}) == \
        "fired: more than 10 steps are slower than the mean + 3 standard deviations"
    assert why({"rule": "StepOutlier", "triggered": False, "datapoints": 500, "parameters": params}) == \
        "did not fire: it fires only if more than 10 steps are slower than the mean + 3 standard deviations"
    assert why({"rule": "DataWait", "triggered": False, "datapoints": 3,
                "parameters": {"threshold": 50, "patience": 10}}).startswith("not enough data: 3 steps")
