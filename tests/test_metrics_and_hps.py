"""One source for metric lines and hyperparameter passing, checked against real log lines."""

import re
import subprocess
import sys

import pytest

from dogbreed import hyperparameters as hp
from dogbreed.errors import ConfigError
from dogbreed.training import metrics
from tests.conftest import ROOT


def test_every_definition_matches_its_own_line():
    for d in metrics.METRIC_DEFINITIONS:
        line = metrics.format_metric(d["Name"], 0.125)
        assert float(re.search(d["Regex"], line).group(1)) == 0.125
        assert len(d["Regex"]) <= 500 and len(d["Name"]) <= 255


def test_definitions_do_not_cross_match():
    line = metrics.format_metric("train_loss", 1.5)
    assert metrics.parse_line(line) == {"train_loss": 1.5}
    assert metrics.parse_line("valid_loss is great") == {}


def test_last_value_wins_and_nan_is_dropped():
    lines = [metrics.format_metric("valid_loss", v) for v in (3.0, 2.0, 2.5)] + ["#metric test_acc=nan;"]
    series = metrics.parse_lines(lines)
    assert series["valid_loss"] == [3.0, 2.0, 2.5]
    assert metrics.final_metrics(series) == {"valid_loss": 2.5}


def test_scientific_notation():
    assert metrics.parse_line("#metric valid_loss=1.5e-05;") == {"valid_loss": 1.5e-05}


def test_unknown_metric_name_is_rejected():
    with pytest.raises(ValueError):
        metrics.format_metric("accuracy", 1)


def test_real_script_output_is_parsed(sample_data, tmp_path):
    """The line the training loop prints is the line the definitions parse."""
    out = subprocess.run(
        [sys.executable, "scripts/hpo.py", "--data-dir", str(sample_data), "--model-dir", str(tmp_path / "m"),
         "--output-data-dir", str(tmp_path / "o"), "--checkpoint-dir", str(tmp_path / "c"), "--arch", "resnet18",
         "--weights", "none", "--image-size", "48", "--epochs", "1", "--workers", "0", "--batch-size", "40"],
        capture_output=True, text=True, check=True, cwd=ROOT)
    found = metrics.final_metrics(metrics.parse_lines(out.stdout.splitlines()))
    assert {"train_loss", "valid_loss", "valid_acc", "epoch"} <= set(found)
    assert found["epoch"] == 1.0 and 0 <= found["valid_acc"] <= 1


def test_encode_decode_like_the_toolkit():
    enc = hp.encode({"epochs": 3, "optimizer": "adam", "use-amp": True, "lr": 0.001})
    assert enc == {"epochs": "3", "optimizer": '"adam"', "use-amp": "true", "lr": "0.001"}
    dec = hp.decode({**enc, "sagemaker_program": '"hpo.py"', "_tuning_objective_metric": "valid_loss"})
    assert dec == {"epochs": 3, "optimizer": "adam", "use-amp": True, "lr": 0.001}
    assert hp.to_cmd_args(dec) == ["--epochs", "3", "--lr", "0.001", "--optimizer", "adam", "--use-amp", "True"]


def test_tuner_quoted_categoricals_decode_to_values():
    assert hp.decode({"batch-size": '"32"'}) == {"batch-size": "32"}
    assert hp.to_cmd_args({"batch-size": "32", "x": 1}) == ["--batch-size", "32", "-x", "1"]


def test_scripts_accept_what_the_toolkit_passes():
    from dogbreed.training.args import add_debugger_args, get_args_parser

    args = add_debugger_args(get_args_parser()).parse_args(
        hp.to_cmd_args(hp.decode(hp.encode({"batch-size": 64, "resume": False, "debugger": True, "lr": 0.01}))))
    assert args.batch_size == 64 and args.resume is False and args.debugger is True and args.lr == 0.01


def test_assignments_and_name_check():
    assert hp.parse_assignments(["weight-decay=0.0001", "optimizer=sgd", "patience=2"]) == {
        "weight-decay": 0.0001, "optimizer": "sgd", "patience": 2}
    with pytest.raises(ConfigError, match="not key=value"):
        hp.parse_assignments(["oops"])
    hp.check_names({"lr": 1, "weight-decay": 0})
    with pytest.raises(ConfigError, match="unknown hyperparameter.*learning-rate"):
        hp.check_names({"learning-rate": 1})


def test_tuner_values_come_back_plain():
    assert hp.plain_value('"64"') == 64 and hp.plain_value('"\\"64\\""') == 64
    assert hp.plain_value('"adam"') == "adam" and hp.plain_value("adam") == "adam"
    assert hp.plain_value("0.01") == 0.01 and hp.plain_value(3) == 3
