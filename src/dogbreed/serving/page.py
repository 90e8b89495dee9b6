"""What the prediction page (`GET /`, page.html) says about the endpoint: which model, from which
training job, a link to that job's report when the server was given one (`GET /report`), and
the confidence under which the page warns that the answer is a guess.

LOW_CONFIDENCE is 0.5: below it the top breed is less likely than all the others together,
so the page says the model is unsure rather than letting a bar chart look like an answer.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

LOW_CONFIDENCE = 0.5
CONFIG_FILE = "model_config.json"  # training.model.CONFIG_FILE (serving reads it without torch)


@dataclass(frozen=True)
class PageInfo:
    endpoint: str | None = None
    job: str | None = None  # the training job the model came from
    report: Path | None = None  # that job's report.html, served at /report


def describe_model(model_dir: Path) -> str | None:
    """'resnet18, 133 breeds, 224 px' from the artifact's model_config.json."""
    try:
        config = json.loads((Path(model_dir) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return f"{config.get('arch', '?')}, {config.get('num_classes', '?')} breeds, {config.get('image_size', '?')} px"


def about(info: PageInfo, model_dir: Path) -> dict:
    """GET /about: what the page shows above the drop zone."""
    return {"endpoint": info.endpoint, "job": info.job, "model": describe_model(model_dir),
            "report": "/report" if info.report and info.report.is_file() else None,
            "low_confidence": LOW_CONFIDENCE}


def report_html(info: PageInfo) -> bytes | None:
    """GET /report: the report file as it is now (a rebuilt report shows without a restart)."""
    try:
        return info.report.read_bytes() if info.report else None
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def prediction_page() -> bytes:
    """GET /: a self-contained page (no external assets) to try the endpoint in a browser."""
    return Path(__file__).with_name("page.html").read_bytes()
