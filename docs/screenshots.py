"""Re-make the README's screenshots from a finished `dogbreed demo --keep` run.

    .venv/bin/dogbreed demo --keep --port 8080
    .venv/bin/python docs/screenshots.py --report demo-out/report/report.html --url http://127.0.0.1:8080 \
        --photo demo-out/data/test/002.Afghan_hound/Afghan_hound_00000.jpg
    .venv/bin/dogbreed undeploy

Drives Debian's chromium through Playwright (no browser download).
"""

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report", required=True, type=Path)
    p.add_argument("--url", required=True, help="a running local endpoint")
    p.add_argument("--photo", required=True, type=Path)
    a = p.parse_args()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(a.report.resolve().as_uri())
        page.screenshot(path=str(HERE / "report.png"), full_page=False)
        page = browser.new_page(viewport={"width": 900, "height": 860})
        page.goto(a.url)
        page.set_input_files("#file", str(a.photo))
        page.wait_for_selector("#results .row")
        page.screenshot(path=str(HERE / "prediction-page.png"), full_page=True)
        browser.close()
    print(f"wrote {HERE / 'report.png'} and {HERE / 'prediction-page.png'}")


if __name__ == "__main__":
    main()
