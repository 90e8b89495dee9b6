"""The pages people look at, in headless Chromium: the HTML report renders its charts and
tables with no console errors, and the endpoint's prediction page answers an uploaded photo.

Needs Debian's `chromium` (`make test` installs it where it can) and the `playwright`
Python package (driving that Chromium; no browser download)."""

from __future__ import annotations

import shutil
import socket

import pytest

from tests.conftest import run_dogbreed

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
    out = tmp_path_factory.mktemp("report")
    proc = run_dogbreed("report", "--out", out, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"env": env, "ws": ws, "report": out / "report.html"}


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
        # a non-image is refused with the server's message, and the page stays usable
        page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
        page.wait_for_function("document.getElementById('status').className === 'error'", timeout=30_000)
        assert "400" in page.inner_text("#status") or "415" in page.inner_text("#status")
        assert [e for e in errors if "the server responded with a status of 4" not in e] == []
    finally:
        run_dogbreed("undeploy", "browser", env=trained["env"])
