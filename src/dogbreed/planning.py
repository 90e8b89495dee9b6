"""What a plan is computed from: per-image seconds measured by our own benchmarks
(benchmarks/results.json, written by `make bench`), and what a plan holds. Plain data, no
torch or AWS import; `workflows/plan.py` reads the file, a backend with the `estimate_plan`
capability turns the figures into time and cost.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from dogbreed.errors import ConfigError


@dataclass(frozen=True)
class Measured:
    """One measured input: `seconds` per image (or per item) on a machine with `cpus` CPUs."""

    seconds: float
    cpus: int
    source: str  # which benchmark figure, with its raw numbers


@dataclass(frozen=True)
class Rates:
    cache: Measured  # one frozen-backbone pass (decode + forward + save), per training image
    trial: Measured  # one trial's head training on cached features, per training image
    trial_startup: Measured  # per trial process: python + torch start-up, packing the model (per trial)
    # The endpoint's container under concurrent load, per prediction: a real-time endpoint and a
    # Batch Transform job (which runs the same container, requests in parallel) alike.
    endpoint: Measured


@dataclass(frozen=True)
class PlanSpec:
    images: int  # training images
    trials: int = 8
    parallel: int = 2
    instance_type: str = "ml.m5.xlarge"  # training and tuning
    inference_instance_type: str = "ml.m5.large"
    predictions_per_day: int = 10_000


@dataclass
class PlanRow:
    step: str
    instances: str  # "8 x ml.m5.xlarge"
    seconds: float | None  # wall time (None: not estimated)
    usd: float | None
    per: str = ""  # "" (once) or "day"
    inputs: tuple[str, ...] = ()  # keys of the measured inputs used
    note: str = ""


@dataclass
class Plan:
    spec: PlanSpec
    rows: list[PlanRow] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # key -> where the figure came from
    assumptions: list[str] = field(default_factory=list)


def _figure(doc: dict, topic: str, name_start: str) -> dict:
    for f in doc.get("figures", []):
        if f.get("topic") == topic and f.get("name", "").startswith(name_start):
            return f
    raise ConfigError(f"benchmarks/results.json has no {topic} figure {name_start!r}: run "
                      f"`python benchmarks/run_all.py --only {topic}` first")


def _number(pattern: str, text: str, what: str) -> float:
    m = re.search(pattern, text)
    if not m:
        raise ConfigError(f"benchmarks/results.json: cannot read {what} from {text!r}: rerun the benchmark")
    return float(m.group(1))


def read_rates(path: Path) -> Rates:
    """The per-image figures a plan needs, each with a sentence saying where it came from."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"no benchmark results at {path}: run `make bench` (or pass --results FILE)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}): rerun `make bench`") from None
    cpus = int(_number(r"(\d+) cores", doc.get("machine", ""), "the CPU count"))

    def where(fig: dict) -> str:  # a figure measured on another machine than the file's names it
        return f"on {fig.get('machine') or doc.get('machine', '?')}"

    tune = _figure(doc, "tune", "8 trials wall time")
    size = re.search(r"\((\d+) imgs (\d+)px (\w+)", tune["name"])
    if not size:
        raise ConfigError(f"benchmarks/results.json: cannot read the image count from {tune['name']!r}")
    n, px, arch = int(size.group(1)), size.group(2), size.group(3)
    warm = _figure(doc, "tune", "per-trial cost, cache warm")
    cache_s = _number(r"building the cache took ([\d.]+) s", warm["note"], "the cache build time")
    in_script_s = _number(r"in-script ([\d.]+) s", warm["note"], "the in-script trial time")
    # a SageMaker trial is a fresh process (no warm trial workers): its start-up is the fresh one
    process_s = _figure(doc, "tune", "warm trial job: forked from warm workers vs a fresh process")["baseline"]
    serving = _figure(doc, "serving", "throughput, 8 clients vs bare")
    model = f"{arch} {px} px"
    return Rates(
        cache=Measured(cache_s / n, cpus, f"tune benchmark ({tune.get('measured', '?')}): building the feature cache "
                                          f"took {cache_s:g} s for {n} images, {model}, {where(tune)}"),
        trial=Measured(in_script_s / n, cpus, f"tune benchmark: a trial with the cache warm took {in_script_s:g} s "
                                              f"in-script for {n} images (its epochs), {model}, {where(warm)}"),
        trial_startup=Measured(max(process_s - in_script_s, 0.0), cpus,
                               f"tune benchmark: a warm-cache trial as a fresh process took {process_s:g} s, "
                               f"{process_s - in_script_s:.2f} s of it start-up and packing, {where(warm)}"),
        endpoint=Measured(1 / serving["ours"], cpus, f"serving benchmark ({serving.get('measured', '?')}): the "
                                                     f"local endpoint answered {serving['ours']:.1f} images/s "
                                                     f"to 8 concurrent clients, resnet50 224 px, {where(serving)}"))
