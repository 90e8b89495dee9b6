"""The pages people look at, in headless Chromium: the HTML report renders its charts and
tables with no console errors (also at dogImages' 133 breeds), and the endpoint's prediction
page answers an uploaded photo, names its model and job, links the report, and says when it
is unsure.

Needs Debian's `chromium` (`make test` installs it where it can) and the `playwright`
Python package (driving that Chromium; no browser download)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from tests.conftest import run_dogbreed
from tests.fake_jobs import fake_training_job, synth_classes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: `apt-get install chromium` "
                                                "(make test does it where it can)"),
    pytest.mark.slow,
]
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def trained(sample_data, tmp_path_factory):
    """One small real training job with debugger and profiler, and its report."""
    ws = tmp_path_factory.mktemp("ws")
    env = {"DOGBREED_WORKSPACE": str(ws)}
    proc = run_dogbreed("train", "--data", sample_data, "--arch", "resnet18", "--weights", "none", "--image-size", 48,
                        "--freeze", "none", "--epochs", 2, "--batch-size", 16, "-H", "workers=0", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = run_dogbreed("report", env=env, timeout=300)  # where `deploy` finds it for the page's link
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"env": env, "ws": ws, "report": Path(proc.stdout.strip().splitlines()[-1])}


def open_page(browser, url):
    page = browser.new_page()
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    page.goto(url)
    return page, errors


def test_report_renders_charts_and_tables_without_errors(browser, trained, tmp_path):
    page, errors = open_page(browser, trained["report"].as_uri())
    page.wait_for_load_state("load")
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt || e.src.slice(0, 30), e.naturalWidth])")
    assert len(images) >= 3, images  # loss curves, system usage, step times, confusion matrix...
    assert all(width > 0 for _, width in images), images
    tables = page.eval_on_selector_all("table", "els => els.map(e => e.rows.length)")
    assert tables and max(tables) > 1
    text = page.inner_text("body")
    assert "LossNotDecreasing" in text and "IssuesFound" in text  # rule results (either outcome)
    external = page.eval_on_selector_all("[src],[href]", "els => els.map(e => e.src || e.href)")
    assert not [u for u in external if u.startswith("http")], "the report must open with no network"
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert errors == []


def test_prediction_page_answers_an_uploaded_photo(browser, trained, sample_data):
    port = free_port()
    proc = run_dogbreed("deploy", "--port", port, "--name", "browser", env=trained["env"], timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        page, errors = open_page(browser, f"http://127.0.0.1:{port}/")
        assert "Which dog breed" in page.title() + page.inner_text("h1")
        photo = sorted((sample_data / "test" / "002.Afghan_hound").glob("*.jpg"))[0]
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("#results .row", timeout=30_000)
        rows = page.eval_on_selector_all("#results .row", "rs => rs.map(r => [r.querySelector('.breed').textContent,"
                                                          " r.querySelector('.prob').textContent])")
        classes = {"Affenpinscher", "Afghan hound", "Airedale terrier", "Akita", "Alaskan malamute"}
        assert len(rows) == 5 and {b for b, _ in rows} == classes
        probs = [float(p.rstrip("%")) for _, p in rows]
        assert probs == sorted(probs, reverse=True) and 99 <= sum(probs) <= 101
        assert "ms" in page.inner_text("#status")
        about = page.inner_text("#about")
        assert "Model: resnet18, 5 breeds, 48 px" in about and "trained by job dogbreed-train-" in about
        assert "endpoint browser" in about
        assert page.get_attribute("#report", "href") == "/report"
        report, report_errors = open_page(browser, f"http://127.0.0.1:{port}/report")
        assert report.title().startswith("Training job dogbreed-train-") and report_errors == []
        report.close()
        # a non-image is refused with the server's message, and the page stays usable
        page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
        page.wait_for_function("document.getElementById('status').className === 'error'", timeout=30_000)
        assert "400" in page.inner_text("#status") or "415" in page.inner_text("#status")
        assert [e for e in errors if "the server responded with a status of 4" not in e] == []
    finally:
        run_dogbreed("undeploy", "browser", env=trained["env"])


def test_report_at_133_breeds_reads_in_the_browser(browser, tmp_path):
    from dogbreed.report.build import training_report

    classes = synth_classes(tmp_path / "data", 133)
    job = fake_training_job(tmp_path / "job", classes)
    report = training_report(job, tmp_path / "out", name="job-133", status="Completed", hyperparameters={"workers": 0})
    page, errors = open_page(browser, report.as_uri())
    page.wait_for_load_state("load")
    headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
    assert headings.index("Most confused pairs (top 20)") < headings.index("Per-breed test accuracy, worst first")
    first_pair = page.eval_on_selector("h2:text('Most confused pairs') + table tr:nth-child(2)",
                                       "r => [...r.cells].map(c => c.textContent)")
    assert first_pair == ["American staffordshire terrier", "Affenpinscher", "4", "100%"]
    breeds = page.eval_on_selector("h2:text('Per-breed test accuracy') + table", "t => t.rows.length")
    assert breeds == 134
    # the worst breed is shown in red on white: readable contrast (WCAG AA asks for 4.5:1)
    color = page.eval_on_selector("h2:text('Per-breed test accuracy') + table tr.bad td",
                                  "c => getComputedStyle(c).color")
    assert color == "rgb(187, 0, 0)"  # #b00 on white: 6.6:1
    assert "the full 133 x 133 matrix is drawn only up to 30 breeds" in page.inner_text("body")
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.naturalWidth])")
    assert [alt for alt, _ in images] == ["system", "step_times"] and all(w > 0 for _, w in images)
    whys = page.eval_on_selector_all("h2:text('Profiler summary') + table tr td:nth-child(3)",
                                     "cs => cs.map(c => c.textContent)")
    assert whys and all(w.startswith(("fired", "did not fire", "not enough data")) for w in whys)
    page.screenshot(path=str(tmp_path / "report-133.png"), full_page=True)
    assert errors == []


def test_prediction_page_says_when_the_model_is_unsure(browser, tiny_model_tar, sample_data, tmp_path):
    """An untrained model (random weights, 5 breeds) spreads its probability: under 50% the page
    shows the low-confidence note; no job was recorded, so no job and no report link."""
    env = {"DOGBREED_WORKSPACE": str(tmp_path / "ws")}
    port = free_port()
    proc = run_dogbreed("deploy", "--model-data", tiny_model_tar, "--port", port, "--name", "unsure", env=env,
                        timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        page, errors = open_page(browser, f"http://127.0.0.1:{port}/")
        page.wait_for_function("document.getElementById('about').textContent !== ''")
        assert page.inner_text("#about") == "Model: resnet18, 5 breeds, 48 px \u00b7 endpoint unsure"
        assert page.query_selector("#report") is None
        assert not page.is_visible("#lowconf")
        page.set_input_files("#file", str(sorted((sample_data / "test" / "001.Affenpinscher").glob("*.jpg"))[0]))
        page.wait_for_selector("#results .row", timeout=30_000)
        top = float(page.inner_text("#results .row .prob").rstrip("%"))
        assert top < 50
        assert page.is_visible("#lowconf")
        assert page.inner_text("#lowconf").startswith(f"Low confidence: the top breed has {top:.0f}%, under 50%.")
        assert errors == []
    finally:
        run_dogbreed("undeploy", "unsure", env=env)
