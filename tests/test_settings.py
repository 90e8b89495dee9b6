"""Settings resolution (flags > environment > dogbreed.toml > defaults) and `dogbreed config show`."""

from __future__ import annotations

import json

import pytest

from dogbreed.errors import ConfigError
from dogbreed.settings import Settings, parse_duration

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.fixture
def clean_env(monkeypatch, workspace):
    for var in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "DOGBREED_CONFIG", "DOGBREED_BACKEND",
                "DOGBREED_REGION", "DOGBREED_ROLE", "DOGBREED_BUCKET", "DOGBREED_SPOT", "DOGBREED_MAX_RUN"):
        monkeypatch.delenv(var, raising=False)
    return workspace.parent  # the test's cwd


def write_config(folder, text, name="dogbreed.toml"):
    path = folder / name
    path.write_text(text)
    return path


def test_precedence_flag_over_env_over_file_over_default(clean_env, monkeypatch):
    write_config(clean_env, 'region = "eu-west-1"\nprefix = "dogs"\nspot = true\nmax_run = "90m"\n')
    s = Settings.resolve()
    assert (s.region, s.source("region")) == ("eu-west-1", "dogbreed.toml")
    assert (s.prefix, s.spot, s.max_run) == ("dogs", True, 5400)
    assert (s.instance_type, s.source("instance_type")) == ("ml.m5.xlarge", "default")

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    s = Settings.resolve()
    assert (s.region, s.source("region")) == ("us-west-2", "env AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")  # AWS_REGION wins over AWS_DEFAULT_REGION, as in the SDKs
    assert Settings.resolve().source("region") == "env AWS_REGION"

    s = Settings.resolve({"region": "sa-east-1"})
    assert (s.region, s.source("region")) == ("sa-east-1", "flag --region")


def test_aws_profile_and_dogbreed_variables(clean_env, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "research")
    monkeypatch.setenv("DOGBREED_SPOT", "yes")
    monkeypatch.setenv("DOGBREED_MAX_RUN", "2h")
    s = Settings.resolve()
    assert (s.profile, s.source("profile")) == ("research", "env AWS_PROFILE")
    assert (s.spot, s.max_run, s.effective_max_wait()) == (True, 7200, 14400)
    from dogbreed.backends.sagemaker.session import AwsSettings

    aws = AwsSettings.from_settings(s)
    assert (aws.profile, aws.spot, aws.max_run_s, aws.max_wait_s) == ("research", True, 7200, 14400)


@pytest.mark.parametrize("text, message", [
    ('spot = "yes"\n', "spot (in dogbreed.toml): expected true or false, got str 'yes'"),
    ("region = 5\n", "region (in dogbreed.toml): expected a string, got int 5"),
    ('backend = "cloud"\n', "backend (in dogbreed.toml): expected one of local, sagemaker, got 'cloud'"),
    ('max_run = "soon"\n', "max_run (in dogbreed.toml): expected a duration like 3600, '90m' or '2h', got 'soon'"),
    ('regoin = "us-east-1"\n', "unknown key 'regoin' in dogbreed.toml; known keys: backend, profile, region"),
    ("region = \n", "dogbreed.toml is not valid TOML"),
    ('role = "SageMakerRole"\n', "must be an IAM role ARN like arn:aws:iam::123456789012:role/NAME"),
    ('spot = true\nmax_run = "2h"\nmax_wait = "1h"\n', "max_wait (1h, dogbreed.toml) must be at least max_run (2h"),
])
def test_bad_config_file_is_one_clear_line(clean_env, cli, text, message):
    write_config(clean_env, text)
    r = cli("config", "show")
    assert r.exit_code == 1
    assert message in r.output
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1


def test_config_flag_and_env_pick_the_file(clean_env, cli, monkeypatch, tmp_path):
    other = write_config(tmp_path, 'bucket = "from-env-file"\n', name="env.toml")
    explicit = write_config(tmp_path, 'bucket = "from-flag-file"\n', name="flag.toml")
    write_config(clean_env, 'bucket = "from-cwd"\n')
    monkeypatch.setenv("DOGBREED_CONFIG", str(other))
    assert Settings.resolve().bucket == "from-env-file"
    assert Settings.resolve({"config": str(explicit)}).bucket == "from-flag-file"
    r = cli("--config", tmp_path / "nope.toml", "config", "show")
    assert r.exit_code == 1 and "nope.toml (flag --config) does not exist" in r.output


def test_config_show_prints_values_and_sources(clean_env, cli, monkeypatch):
    write_config(clean_env, f'backend = "sagemaker"\nrole = "{ROLE}"\nmax_run = 7200\n')
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    r = cli("--bucket", "my-bucket", "config", "show")
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line.split() for line in r.output.splitlines()[1:]}
    assert r.output.splitlines()[0] == "config file: dogbreed.toml (found in the current directory)"
    assert lines["backend"][1:] == ["sagemaker", "dogbreed.toml"]
    assert lines["role"][1:] == [ROLE, "dogbreed.toml"]
    assert lines["region"][1:] == ["eu-central-1", "env", "AWS_DEFAULT_REGION"]
    assert lines["bucket"][1:] == ["my-bucket", "flag", "--bucket"]
    assert lines["max_run"][1:] == ["2h", "dogbreed.toml"]
    assert lines["spot"][1:] == ["false", "default"]

    r = cli("--backend", "local", "config", "show", "--json")
    data = json.loads(r.output)
    assert data["settings"]["backend"] == {"value": "local", "source": "flag --backend"}
    assert data["settings"]["max_run"] == {"value": 7200, "source": "dogbreed.toml"}


def test_durations():
    assert [parse_duration(x) for x in ("90", "90s", "15m", "2h", "1d", 3600, "1.5h")] == \
        [90, 90, 900, 7200, 86400, 3600, 5400]
    for bad in ("", "2 hours", "-1h", "0", True):
        with pytest.raises(ConfigError):
            parse_duration(bad)
