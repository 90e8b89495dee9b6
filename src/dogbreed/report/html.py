"""The report page: plain HTML and CSS, PNGs inlined as data URIs (opens offline)."""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dogbreed.backends.base import TuningResult

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}
th{background:#f3f3f3}.IssuesFound,.bad{color:#b00;font-weight:600}.NoIssuesFound,.ok{color:#070}.Error,.caution{color:#a60}
img{max-width:100%}.note{color:#666;font-size:.9em}"""


def esc(value) -> str:
    return html.escape(str(value))


def image(path: Path | None) -> str:
    if path is None:
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{esc(path.stem)}" src="data:image/png;base64,{data}">'


def table(header: list[str], rows: list[list], classes: list[str] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for i, r in enumerate(rows):
        cls = f' class="{esc(classes[i])}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>")
    return "".join(out) + "</table>"


def fmt(v, digits=4) -> str:
    return f"{v:.{digits}f}" if isinstance(v, float) else ("-" if v is None else str(v))


def page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{esc(h)}</h2>{content}" for h, content in sections if content)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<link rel='icon' href='data:,'><style>{STYLE}</style>"
            f"</head><body><h1>{esc(title)}</h1><p class='note'>generated {time.strftime('%Y-%m-%d %H:%M:%S')} "
            f"by dogbreed report</p>{body}</body></html>")


def verdict_block(verdict: dict | None) -> str:
    """The headline a person acts on, above the SageMaker-parity rule statuses."""
    if not verdict:
        return ""
    cls = {"problem": "bad", "ok": "ok", "caution": "caution"}.get(verdict.get("level"), "")
    items = "".join(f"<li>{esc(c)}</li>" for c in verdict.get("context") or [])
    head = f"<p class='{cls}'><b>Verdict:</b> {esc(verdict.get('headline'))}</p>"
    return head + (f"<ul>{items}</ul>" if items else "")


def training_page(d, figs: dict[str, Path | None], verdict: dict | None = None) -> str:
    m = d.metrics
    test = m.get("test") or {}
    summary = table(["status", "best epoch", "best valid loss", "test loss", "test top-1", "test top-5", "seconds"],
                    [[d.status, m.get("best_epoch"), fmt(m.get("best_valid_loss")), fmt(test.get("loss")),
                      fmt(test.get("top1")), fmt(test.get("top5")), fmt(m.get("seconds"), 1)]])
    hps = table(["hyperparameter", "value"], [[k, json.dumps(v)] for k, v in sorted(d.hyperparameters.items())])
    history = table(["epoch", "train loss", "train acc", "valid loss", "valid acc"],
                    [[r.get("epoch"), fmt(r.get("train_loss")), fmt(r.get("train_acc")), fmt(r.get("valid_loss")),
                      fmt(r.get("valid_acc"))] for r in m.get("history", [])]) if m.get("history") else ""
    rules = table(["rule", "status", "details"],
                  [[r.get("RuleConfigurationName"), r.get("RuleEvaluationStatus"), r.get("StatusDetails") or ""]
                   for r in d.rules], [r.get("RuleEvaluationStatus", "") for r in d.rules]) if d.rules else \
        "<p class='note'>no rules were evaluated</p>"
    prof = ""
    if d.profiler:
        f = d.profiler["findings"]
        from dogbreed.report.findings import why

        prof = table(["check (ProfilerReport)", "triggered", "why", "datapoints", "measured"],
                     [[x["rule"], "yes" if x["triggered"] else "no", why(x), x["datapoints"], x["details"]] for x in f],
                     ["bad" if x["triggered"] else "" for x in f])
        s = d.profiler["steps"]
        if s["count"]:
            prof += (f"<p>{s['count']} training steps, median {fmt(s['median_s'], 3)} s, p95 {fmt(s['p95_s'], 3)} s; "
                     f"{fmt(s['data_wait_share'], 1)}% of step time spent waiting for data.</p>")
    notes = "".join(f"<p class='note'>{esc(n)}</p>" for n in d.notes)
    marked = ("<p class='note'>Dashed red lines: where a rule fired (SageMaker parity, per-batch values).</p>"
              if any(r.get("FiredAt") and r.get("RuleEvaluationStatus") == "IssuesFound" for r in d.rules) else "")
    return page(f"Training job {d.name}", [
        ("Summary", verdict_block(verdict) + summary + notes), ("Hyperparameters", hps), ("Epochs", history),
        ("Loss curves (debugger tensors)", image(figs.get("losses")) + marked if figs.get("losses") else ""),
        ("Debugger rules (SageMaker parity)", rules), ("Profiler summary", prof),
        ("System usage", image(figs.get("system"))), ("Step times", image(figs.get("steps"))),
        *breed_sections(test, figs.get("confusion"))])


def breed_sections(test: dict, confusion: Path | None) -> list[tuple[str, str]]:
    """Most confused pairs, per-breed accuracy worst first, and the full matrix where readable."""
    from dogbreed.report.classes import READABLE_CLASSES, TOP_PAIRS, confused_pairs, per_breed

    matrix, classes = test.get("confusion_matrix"), test.get("classes") or []
    if not matrix:
        return []
    pairs = confused_pairs(matrix, classes)
    pairs_html = (table(["true breed", "predicted as", "test images", "share of the true breed"],
                        [[p.true, p.predicted, p.count, f"{100 * p.share:.0f}%"] for p in pairs])
                  if pairs else "<p class='ok'>no test image was confused with another breed</p>")
    breeds = per_breed(matrix, classes)
    breeds_html = table(["breed", "test accuracy", "correct / images"],
                        [[b.breed, fmt(b.accuracy, 3), f"{b.correct} / {b.images}"] for b in breeds],
                        ["bad" if b.accuracy < 0.5 else "" for b in breeds])
    matrix_html = image(confusion) if confusion else (
        f"<p class='note'>{len(matrix)} breeds: the full {len(matrix)} x {len(matrix)} matrix is drawn only up to "
        f"{READABLE_CLASSES} breeds, where its labels stay readable; the two tables above carry it.</p>")
    return [(f"Most confused pairs (top {TOP_PAIRS})", pairs_html),
            ("Per-breed test accuracy, worst first", breeds_html), ("Test confusion matrix", matrix_html)]


def tuning_page(result: TuningResult, views: list, dashboard: str | None = None) -> str:
    """The page of a tuning job (a `TuningResult`): summary, trials best first, Optuna's views
    (`report.optuna_views.View`), and the command that opens the study in optuna-dashboard."""
    from dogbreed.report.trials import trial_rows

    best = result.best
    summary = table(["backend", "strategy", "status", "objective", "trials", "best trial", "best value"],
                    [[result.backend, result.strategy, result.status,
                      f"{result.objective_goal} {result.objective_metric}", len(result.trials),
                      best.name if best else "-", fmt(best.objective if best else None)]])
    if result.failure_reason and result.status != "Completed":
        summary += f"<p class='note'>{esc(result.failure_reason)}</p>"
    if dashboard:
        summary += (f"<p>Explore this study interactively with Optuna's dashboard: "
                    f"<code>{esc(dashboard)}</code></p>")
    header, *rows = trial_rows(result)
    drawn = [(v.title, image(v.path) if v.path else f"<p class='note'>not drawn: {esc(v.note)}</p>") for v in views]
    return page(f"Tuning job {result.name}", [("Summary", summary), ("Trials, best first", table(header, rows)),
                                              *drawn])
