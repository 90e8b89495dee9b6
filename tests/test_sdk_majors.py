"""Both SageMaker SDK majors send the same requests for the same commands.

tests/sdk_requests.py runs train (debugger, rules, profiler, spot), train --processes 2, tune (random and
hyperband) and deploy (real-time and serverless) against moto and prints the CreateTrainingJob,
CreateHyperParameterTuningJob, CreateModel and CreateEndpointConfig requests. This test runs it with this
venv's SDK and with the other major's venv (`make test` builds it: .venv-sdk2 or .venv-sdk3, or
DOGBREED_OTHER_SDK_PYTHON), and compares: every member is equal, or its difference is one of
EXPLAINED below (docs/notes/issue-19.md lists them for users).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (command regex, member path regex, why the two majors differ there)
EXPLAINED = [
    (".*", r"(Static)?HyperParameters(\.sagemaker_\w+)?$",
     "v2's framework estimator passes its settings as sagemaker_* hyperparameters (program, submit directory, "
     "region, log level, torch_distributed); v3 writes them into its sm_drivers channel instead"),
    ("train.*", r"InputDataConfig\[[12]\]\.",
     "v3 uploads the source dir and its driver scripts as two input channels (code, sm_drivers)"),
    ("tune.*", r"InputDataConfig\[1\]\.",
     "v3's tuner adds its sm_drivers channel (the source dir goes as sourcedir.tar.gz, like v2)"),
    ("train.*", r"InputDataConfig\[0\]\.InputMode$", "v3 states the channel's input mode (File, the default)"),
    ("train.*", r"AlgorithmSpecification\.Container(Entrypoint|Arguments)\[\d\]$",
     "v3 starts its own driver (sm_train.sh) instead of the image's training toolkit"),
    (".*", r"OutputDataConfig\.CompressionType$", "v3 states the default compression (GZIP)"),
    ("tune.*", r"ParameterRanges\.(Integer|Continuous|Categorical)ParameterRanges$",
     "v3 sends an empty list for a kind of range the search space does not use; v2 leaves it out"),
    ("train(-isolated)?", r"ProfilerConfig\.DisableProfiler$", "v2 states the default (false) when the profiler is on"),
    ("tune.*", r"TrainingJobDefinition\.(HyperParameterTuningResourceConfig|ResourceConfig)\.",
     "the same instance type, count and volume: v2 sends HyperParameterTuningResourceConfig, v3 ResourceConfig"),
    ("train", r"DebugHookConfig\.",
     "with --spot (checkpoints) v2 drops the hook config even on one instance (its PyTorch estimator sets "
     "distribution={}, so its 'distributed job with checkpoints' check always fires); v3 drops it only for "
     "a multi-process checkpointed job, the check's stated intent"),
]
# the SDK's name_from_base suffix, and the job names dogbreed chooses (DATE-TIME-HEX)
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{3}|\d{8}-\d{6}-[0-9a-f]{4}")


def _installed_major(python: str) -> int:
    code = "from dogbreed.backends.sagemaker import sdk; print(sdk.major())"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    return int(out.stdout.strip()) if out.returncode == 0 else 0


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))


def _other_python() -> str | None:
    from dogbreed.backends.sagemaker import sdk

    candidates = [os.environ.get("DOGBREED_OTHER_SDK_PYTHON", "")]
    # the project's .venv (SDK v2) is the other major when this runs in .venv-sdk3, as `make test` does
    candidates += [str(ROOT / venv / "bin" / "python") for venv in (".venv-sdk2", ".venv-sdk3", ".venv")]
    return next((p for p in candidates if p and Path(p).is_file() and _installed_major(p) not in (0, sdk.major())),
                None)


def _requests(python: str) -> dict:
    proc = subprocess.run([python, "-m", "tests.sdk_requests"], capture_output=True, text=True, env=_env(),
                          cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _flat(value, path=""):
    """(path, leaf) pairs; an empty list or dict is a leaf too, so `[]` differs from absent."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _flat(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _flat(v, f"{path}[{i}]")
    else:
        yield path, TIMESTAMP.sub("<time>", str(value))


def _sorted_collections(requests: dict) -> dict:
    """The hook's collections come from a set in both majors: compare them by name."""
    for command in requests["commands"].values():
        for req in command.get("CreateTrainingJob", []):
            hook = req.get("DebugHookConfig")
            if hook:
                hook["CollectionConfigurations"].sort(key=lambda c: c["CollectionName"])
    return requests


def differences(v2: dict, v3: dict) -> list[tuple[str, str, object, object]]:
    out = []
    for command in sorted(set(v2["commands"]) | set(v3["commands"])):
        a = dict(_flat(v2["commands"].get(command, {})))
        b = dict(_flat(v3["commands"].get(command, {})))
        out += [(command, p, a.get(p), b.get(p)) for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)]
    return out


def explanation(command: str, path: str) -> str | None:
    return next((why for cmd, pattern, why in EXPLAINED
                 if re.fullmatch(cmd, command) and re.search(pattern, path)), None)


@pytest.fixture(scope="module")
def both_majors():
    """The requests of both majors (2, 3): each capture runs the commands in a subprocess (~40 s)."""
    other = _other_python()
    if other is None:
        pytest.skip("no venv with the other SageMaker SDK major: `make sdk-venv` builds it "
                    "(or set DOGBREED_OTHER_SDK_PYTHON)")
    mine, theirs = _requests(sys.executable), _requests(other)
    by_major = {r["major"]: _sorted_collections(r) for r in (mine, theirs)}
    assert set(by_major) == {2, 3}
    return by_major[2], by_major[3]


@pytest.mark.slow
def test_every_request_is_sent_by_both_majors(both_majors):
    v2, v3 = both_majors
    shape = {c: sorted((op, len(reqs)) for op, reqs in ops.items()) for c, ops in v2["commands"].items()}
    assert shape == {c: sorted((op, len(reqs)) for op, reqs in ops.items()) for c, ops in v3["commands"].items()}
    assert shape["deploy"] == [("CreateEndpointConfig", 1), ("CreateModel", 1)]
    assert ("CreateHyperParameterTuningJob", 1) in shape["tune"]


@pytest.mark.slow
def test_requests_are_equal_or_the_difference_is_explained(both_majors):
    v2, v3 = both_majors
    unexplained = [d for d in differences(v2, v3) if explanation(d[0], d[1]) is None]
    assert not unexplained, "\n".join(f"{c} {p}: v2={a!r} v3={b!r}" for c, p, a, b in unexplained)


@pytest.mark.slow
def test_what_matters_is_identical(both_majors):
    """Models, endpoint configs, ranges, objective, strategy, hyperparameters, rules, metrics: no difference."""
    v2, v3 = both_majors
    for command in ("deploy", "deploy-serverless", "deploy-autoscaled"):
        assert v2["commands"][command] == v3["commands"][command]
    for command in ("tune", "tune-hyperband", "tune-isolated"):
        a, b = (v["commands"][command]["CreateHyperParameterTuningJob"][0] for v in (v2, v3))
        no_empty = [{**c, "ParameterRanges": {k: v for k, v in c["ParameterRanges"].items() if v}}
                    for c in (a["HyperParameterTuningJobConfig"], b["HyperParameterTuningJobConfig"])]
        assert no_empty[0] == no_empty[1]
        spec = "AlgorithmSpecification"
        assert a["TrainingJobDefinition"][spec] == b["TrainingJobDefinition"][spec]
    for command in ("train", "train-distributed", "train-client", "train-isolated"):
        a, b = (v["commands"][command]["CreateTrainingJob"][0] for v in (v2, v3))
        for member in ("DebugRuleConfigurations", "ProfilerRuleConfigurations", "ResourceConfig", "StoppingCondition",
                       "RoleArn", "CheckpointConfig", "EnableNetworkIsolation", "Environment"):
            assert json.loads(TIMESTAMP.sub("<t>", json.dumps(a.get(member)))) == \
                json.loads(TIMESTAMP.sub("<t>", json.dumps(b.get(member)))), member
        assert {k: v for k, v in a["HyperParameters"].items() if not k.startswith("sagemaker_")} == b["HyperParameters"]
        assert a["AlgorithmSpecification"]["TrainingImage"] == b["AlgorithmSpecification"]["TrainingImage"]
        assert a["AlgorithmSpecification"]["MetricDefinitions"] == b["AlgorithmSpecification"]["MetricDefinitions"]
    client, isolated = (v3["commands"][c]["CreateTrainingJob"][0] for c in ("train-client", "train-isolated"))
    assert not any(k in client for k in ("DebugHookConfig", "DebugRuleConfigurations", "ProfilerRuleConfigurations"))
    assert client["ProfilerConfig"] == {"DisableProfiler": True} and client["CheckpointConfig"]["S3Uri"]
    assert isolated["EnableNetworkIsolation"] is True and "DebugHookConfig" not in isolated
    variant = v3["commands"]["deploy-autoscaled"]["CreateEndpointConfig"][0]["ProductionVariants"][0]
    assert variant["InitialInstanceCount"] == 2
    tuned = v3["commands"]["tune-isolated"]["CreateHyperParameterTuningJob"][0]["TrainingJobDefinition"]
    assert tuned["EnableNetworkIsolation"] is True


@pytest.mark.slow
def test_differences_listed(both_majors, capsys):
    """Print each explained difference once (pytest -s shows them; the notes list them for users)."""
    seen = {}
    for command, path, _, _ in differences(*both_majors):
        seen.setdefault(explanation(command, path), []).append(f"{command}: {path}")
    with capsys.disabled():
        for why, where in seen.items():
            print(f"\n- {why}\n    e.g. {where[0]} ({len(where)} member(s))")
    assert None not in seen


@pytest.mark.parametrize("version, major", [("2.257.7", 2), ("2.257.0", 2), ("3.0", 3), ("3.27.0", 3)])
def test_supported_versions(version, major):
    from dogbreed.backends.sagemaker import sdk

    assert sdk.parse(version) == major


@pytest.mark.parametrize("version", ["2.256.1", "1.72.1", "4.0.0", "nonsense"])
def test_unsupported_version_is_one_line_naming_the_ranges(version):
    from dogbreed.backends.sagemaker import sdk
    from dogbreed.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        sdk.parse(version)
    assert "\n" not in str(err.value) and "sagemaker>=2.257,<3" in str(err.value) and "<4" in str(err.value)
    assert f"sagemaker {version} is not supported" in str(err.value)


def test_an_unsupported_sdk_stops_the_backend_with_one_line(cli, workspace, monkeypatch):
    from importlib import metadata

    from dogbreed.backends.sagemaker import sdk

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "2.100.0" if name == "sagemaker" else real(name))
    sdk.major.cache_clear()
    try:
        r = cli("--backend", "sagemaker", "endpoints")
    finally:
        sdk.major.cache_clear()
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and r.output.startswith("Error: sagemaker 2.100.0 is not supported")
    assert "sagemaker>=2.257,<3 (SDK v2) or sagemaker>=3,<4 (SDK v3)" in r.output


def test_help_imports_no_sdk():
    code = ("import sys; from click.testing import CliRunner; from dogbreed.cli import cli; "
            "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sagemaker', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
