"""The one search space: range syntax, defaults, overrides, objective, grid, bad input."""

import json
import re

import pytest

from dogbreed.errors import ConfigError
from dogbreed.hyperparameters import known_script_hyperparameters
from dogbreed.search_space import (DEFAULT_RANGES, Categorical, Continuous, Integer, SearchSpace, build_space,
                                   check_strategy, hyperband_max_epochs, make_objective, parse_range)
from dogbreed.training.args import get_args_parser
from dogbreed.training.metrics import format_metric

KNOWN = known_script_hyperparameters("hpo.py")


@pytest.mark.parametrize("text, expected", [
    ("lr=0.0001:0.1:log", ("lr", Continuous(0.0001, 0.1, "log"))),
    ("dropout=0.1:0.5", ("dropout", Continuous(0.1, 0.5, "linear"))),
    ("hidden-units=64:512", ("hidden-units", Integer(64, 512, "linear"))),
    ("hidden-units=64:512:log", ("hidden-units", Integer(64, 512, "log"))),
    ("batch-size=32,64,128", ("batch-size", Categorical((32, 64, 128)))),
    ("optimizer=adam, sgd,adam", ("optimizer", Categorical(("adam", "sgd")))),
    ("epochs=3", ("epochs", Categorical((3,)))),
])
def test_parse_range(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize("text, message", [
    ("lr=", "range lr is empty"),
    ("batch-size=,,", "range batch-size is empty"),
    ("lr=0.1:0.1:log", "is empty: LOW must be below HIGH"),
    ("lr=0.5:0.1", "is empty: LOW must be below HIGH"),
    ("lr=0:0.1:log", "needs LOW > 0"),
    ("lr=0.001:0.1:cubic", "scale 'cubic' is not one of linear, log"),
    ("lr=a:0.1", "'a' is not a number"),
    ("lr=1:2:3:4", "is not LOW:HIGH"),
    ("0.001:0.1", "is not NAME=SPEC"),
])
def test_parse_range_rejects(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_range(text)


def test_defaults_are_the_seed_ranges_and_objective_is_validation_loss():
    space = build_space(known=KNOWN)
    assert dict(space.ranges) == DEFAULT_RANGES
    assert DEFAULT_RANGES["lr"] == Continuous(0.001, 0.1, "log")
    assert DEFAULT_RANGES["batch-size"] == Categorical((32, 64, 128))
    assert DEFAULT_RANGES["epochs"] == Categorical((1, 2))
    assert (space.objective.metric, space.objective.goal, space.objective.sagemaker_type) == \
        ("valid_loss", "minimize", "Minimize")


def test_metric_regex_extracts_the_objective_from_a_real_log_line():
    space = build_space(known=KNOWN)
    regex = next(d["Regex"] for d in space.metric_definitions if d["Name"] == space.objective.metric)
    line = f"epoch 2/2: noise {format_metric('valid_loss', 0.4321)} more"
    assert float(re.search(regex, line).group(1)) == pytest.approx(0.4321)


def test_overrides_static_values_and_conflicts():
    space = build_space(range_args=["lr=0.0001:0.1:log", "dropout=0.1:0.5"], static={"epochs": 3}, known=KNOWN)
    assert set(space.ranges) == {"lr", "batch-size", "dropout"}  # -H epochs=3 drops the default epochs range
    assert space.ranges["lr"].low == 0.0001
    with pytest.raises(ConfigError, match="lr given both a range and a fixed value"):
        build_space(range_args=["lr=0.001:0.1"], static={"lr": 0.01}, known=KNOWN)
    with pytest.raises(ConfigError, match=r"unknown hyperparameter\(s\) in ranges: learning-rate"):
        build_space(range_args=["learning-rate=0.001:0.1"], known=KNOWN)
    with pytest.raises(ConfigError, match="nothing to tune"):
        build_space(static={"lr": 0.1, "batch-size": 32, "epochs": 1}, known=KNOWN)


def test_space_file_json_and_toml(tmp_path):
    j = tmp_path / "space.json"
    j.write_text(json.dumps({"ranges": {"weight-decay": "0.00001:0.01:log", "batch-size": [16, 32]},
                             "objective": {"metric": "valid_acc"}}))
    space = build_space(space_file=str(j), range_args=["batch-size=64"], known=KNOWN)
    assert space.ranges["weight-decay"] == Continuous(0.00001, 0.01, "log")
    assert space.ranges["batch-size"] == Categorical((64,))  # --range beats the file
    assert (space.objective.metric, space.objective.goal) == ("valid_acc", "maximize")
    t = tmp_path / "space.toml"
    t.write_text('[ranges]\nfreeze = ["head", "layer4"]\n[objective]\nmetric = "valid_loss"\n')
    assert build_space(space_file=str(t), known=KNOWN).ranges["freeze"] == Categorical(("head", "layer4"))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match="does not parse"):
        build_space(space_file=str(tmp_path / "bad.json"))
    with pytest.raises(ConfigError, match="cannot read search-space file"):
        build_space(space_file=str(tmp_path / "missing.json"))


def test_objective_never_selects_on_test_split():
    with pytest.raises(ConfigError, match="would select on the test split"):
        make_objective("test_loss")
    with pytest.raises(ConfigError, match="unknown objective metric 'accuracy'"):
        make_objective("accuracy")


def test_grid_makes_every_range_categorical():
    space = build_space(range_args=["hidden-units=64:256"], known=KNOWN).for_grid()
    assert space.ranges["lr"] == Categorical((0.001, 0.01, 0.1))
    assert space.ranges["hidden-units"] == Categorical((64, 160, 256))
    assert space.grid_size() == 3 * 3 * 2 * 3


@pytest.mark.parametrize("strategy, asked, capped", [
    ("grid", (50, 4), (18, 4)),  # no more trials than the 3 x 3 x 2 grid points
    ("grid", (5, 5), (5, 5)),
    ("random", (50, 4), (50, 4)),
    ("bayesian", (2, 3), (2, 2)),  # never more at once than in all
])
def test_capped_jobs(strategy, asked, capped):
    assert build_space(known=KNOWN).capped_jobs(strategy, *asked) == capped


def test_hyperband_max_epochs_is_the_fixed_epochs_or_the_scripts_default():
    assert hyperband_max_epochs({"epochs": 6}) == 6
    assert hyperband_max_epochs({}) == get_args_parser(add_help=False).get_default("epochs")


def test_strategy_checks():
    space = build_space(known=KNOWN)
    with pytest.raises(ConfigError, match="--max-parallel-jobs 5 is more than --max-jobs 4"):
        check_strategy("bayesian", space, 4, 5)
    with pytest.raises(ConfigError, match="unknown strategy"):
        check_strategy("genetic", space, 4, 1)
    hb = build_space(known=KNOWN, strategy="hyperband")
    assert "epochs" not in hb.ranges  # hyperband allots the epochs itself
    check_strategy("hyperband", hb, 4, 2)
    explicit = build_space(range_args=["epochs=1,2,3"], known=KNOWN, strategy="hyperband")
    with pytest.raises(ConfigError, match="drop the epochs range"):
        check_strategy("hyperband", explicit, 4, 2)


def test_round_trip_as_plain_data():
    space = build_space(range_args=["hidden-units=64:512", "dropout=0.1:0.5"], known=KNOWN)
    doc = json.loads(json.dumps(space.to_dict()))
    assert SearchSpace.from_dict(doc) == space
