"""One settings object for the whole CLI, resolved key by key from

    command-line flags  >  environment  >  project config file (dogbreed.toml)
        >  the SageMaker SDK's config.yaml (role, bucket)  >  defaults

Each resolved value remembers where it came from (`dogbreed config show` prints it). The file
is flat TOML, keys as in `KEYS` below::

    backend = "sagemaker"
    region = "us-east-1"
    role = "arn:aws:iam::123456789012:role/SageMakerRole"
    spot = true
    max_run = "2h"

Only the standard library is imported here: the CLI resolves settings before any command runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from dogbreed.errors import ConfigError

CONFIG_FILE = "dogbreed.toml"
ENV_CONFIG = "DOGBREED_CONFIG"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float, what: str = "duration") -> int:
    """'90' / '90s' / '15m' / '2h' / '1d' -> seconds (a bare number is seconds)."""
    if isinstance(text, bool):
        raise ConfigError(f"{what}: expected a duration like 3600, '90m' or '2h', got {text!r}")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise ConfigError(f"{what}: expected a duration like 3600, '90m' or '2h', got {text!r}")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{what}: must be positive, got {text!r}")
    return int(round(seconds))


def format_duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _parse_bool(text: str, what: str) -> bool:
    low = str(text).strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{what}: expected true/false, got {text!r}")


@dataclass(frozen=True)
class Key:
    """One setting: its TOML name, type, default, environment variables (first set wins)."""

    name: str
    kind: str  # "str" | "bool" | "duration" | "choice"
    default: Any
    env: tuple[str, ...]
    help: str
    choices: tuple[str, ...] = ()
    default_note: str = ""  # shown by `config show` when the default is None
    sdk_path: str = ""  # the same setting's path in the SageMaker SDK's config.yaml, if it has one


KEYS: tuple[Key, ...] = (
    Key("backend", "choice", "local", ("DOGBREED_BACKEND",), "where jobs and endpoints run",
        choices=("local", "sagemaker")),
    Key("profile", "str", None, ("DOGBREED_PROFILE", "AWS_PROFILE"), "AWS profile (~/.aws/config)",
        default_note="boto3's default credential chain"),
    Key("region", "str", None, ("DOGBREED_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"), "AWS region",
        default_note="the profile's region"),
    Key("role", "str", None, ("DOGBREED_ROLE",), "SageMaker execution role ARN",
        default_note="a SageMaker notebook's or Studio's execution role; elsewhere required for SageMaker jobs",
        sdk_path="SageMaker.TrainingJob.RoleArn"),
    Key("bucket", "str", None, ("DOGBREED_BUCKET",), "S3 bucket for data, code and models",
        default_note="the SageMaker default bucket sagemaker-<region>-<account>",
        sdk_path="SageMaker.PythonSDK.Modules.Session.DefaultS3Bucket"),
    Key("prefix", "str", "dogbreed", ("DOGBREED_PREFIX",),
        "S3 key prefix, and the name prefix of the project's SageMaker resources"),
    Key("instance_type", "str", "ml.m5.xlarge", ("DOGBREED_INSTANCE_TYPE",), "training instance type"),
    Key("tuning_instance_type", "str", "ml.m5.xlarge", ("DOGBREED_TUNING_INSTANCE_TYPE",),
        "instance type of each tuning trial"),
    Key("inference_instance_type", "str", "ml.m5.large", ("DOGBREED_INFERENCE_INSTANCE_TYPE",),
        "real-time endpoint instance type"),
    Key("framework_version", "str", "2.8.0", ("DOGBREED_FRAMEWORK_VERSION",), "PyTorch training image version"),
    Key("inference_framework_version", "str", "2.6.0", ("DOGBREED_INFERENCE_FRAMEWORK_VERSION",),
        "PyTorch inference image version (newest: 2.6.0)"),
    Key("py_version", "str", "py312", ("DOGBREED_PY_VERSION",), "Python version of the images"),
    Key("spot", "bool", False, ("DOGBREED_SPOT",), "managed spot training (checkpointed, resumable)"),
    Key("network_isolation", "bool", False, ("DOGBREED_NETWORK_ISOLATION",),
        "SageMaker training without network access (no pip installs: no smdebug hook)"),
    Key("max_run", "duration", 6 * 3600, ("DOGBREED_MAX_RUN",), "stop a training job after this long"),
    Key("max_wait", "duration", None, ("DOGBREED_MAX_WAIT",),
        "spot only: give up after this long, waiting included (>= max_run)", default_note="2 x max_run"),
    Key("tracking_uri", "str", None, ("DOGBREED_TRACKING_URI",),
        "MLflow tracking URI: sqlite:///mlflow.db, a folder, http://host:5000 or a SageMaker MLflow ARN",
        default_note="tracking off"),
)
KEY_NAMES = tuple(k.name for k in KEYS)
_BY_NAME = {k.name: k for k in KEYS}


@dataclass(frozen=True)
class Setting:
    key: str
    value: Any
    source: str  # "flag --region", "env AWS_PROFILE", "dogbreed.toml", "default"


def _coerce(key: Key, raw: Any, where: str, from_text: bool) -> Any:
    """`raw` as the key's type; `from_text` for flags/env (strings), else TOML values must match."""
    expected = {"str": "a string", "bool": "true or false", "choice": "one of " + ", ".join(key.choices),
                "duration": "seconds or a duration string like '2h'"}[key.kind]
    if key.kind == "bool":
        if isinstance(raw, bool):
            return raw
        if from_text:
            return _parse_bool(raw, f"{key.name} ({where})")
    elif key.kind == "duration":
        if isinstance(raw, (int, float, str)) and not isinstance(raw, bool):
            return parse_duration(raw, f"{key.name} ({where})")
    elif isinstance(raw, str):
        if key.kind == "choice" and raw not in key.choices:
            raise ConfigError(f"{key.name} ({where}): expected {expected}, got {raw!r}")
        return raw
    raise ConfigError(f"{key.name} ({where}): expected {expected}, got {type(raw).__name__} {raw!r}")


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError(f"reading {path} on Python < 3.11 needs the 'tomli' package: pip install tomli") from None
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def find_config_file(flag: str | None, environ: Mapping[str, str]) -> tuple[Path | None, str]:
    """The config file to read and why: --config, $DOGBREED_CONFIG, or ./dogbreed.toml if present."""
    for given, why in ((flag, "flag --config"), (environ.get(ENV_CONFIG), f"env {ENV_CONFIG}")):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise ConfigError(f"config file {path} ({why}) does not exist; create it or drop the setting")
            return path, why
    local = Path(CONFIG_FILE)
    return (local, "found in the current directory") if local.is_file() else (None, "none")


# Where the SageMaker SDK reads its defaults (sagemaker.config): the admin file, then the user's
# file overriding it; each location may be moved by an environment variable, to a file or a folder.
SDK_CONFIG_FILES = (("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", "/etc/xdg/sagemaker/config.yaml"),
                    ("SAGEMAKER_USER_CONFIG_OVERRIDE", "~/.config/sagemaker/config.yaml"))


def sdk_config_values(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """{key: (value, file)} for the KEYS whose `sdk_path` the SageMaker SDK's config.yaml files set."""
    found: dict[str, tuple[Any, str]] = {}
    for var, default in SDK_CONFIG_FILES:
        path = Path(environ.get(var) or default).expanduser()
        if path.is_dir():
            path = path / "config.yaml"
        if not path.is_file():
            continue
        try:
            import yaml

            doc = yaml.safe_load(path.read_text()) or {}
        except ImportError:  # PyYAML comes with the sagemaker extra; without it there is no SDK to configure
            return found
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the SageMaker SDK config {path}: {exc}") from None
        for key in KEYS:
            value = doc
            for part in key.sdk_path.split(".") if key.sdk_path else ():
                value = value.get(part) if isinstance(value, dict) else None
            if key.sdk_path and isinstance(value, str) and value:
                found[key.name] = (value, f"SageMaker SDK config {path}")
    return found


class Settings:
    """Resolved settings: `s.region` is the value, `s.source("region")` where it came from."""

    def __init__(self, values: dict[str, Setting], config_path: Path | None = None, config_why: str = "none"):
        self._values = values
        self.config_path = config_path
        self.config_why = config_why

    @classmethod
    def resolve(cls, flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                config: str | os.PathLike | None = None) -> "Settings":
        flags = dict(flags or {})
        environ = os.environ if environ is None else environ
        config = config or flags.pop("config", None)
        unknown = set(flags) - set(KEY_NAMES)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(KEY_NAMES)}")
        path, why = find_config_file(str(config) if config else None, environ)
        file_values = _load_toml(path) if path else {}
        bad = [k for k in file_values if k not in _BY_NAME]
        if bad:
            raise ConfigError(f"unknown key {bad[0]!r} in {path}; known keys: {', '.join(KEY_NAMES)}")

        sdk_values = sdk_config_values(environ)
        values = {}
        for key in KEYS:
            flag_name = "--" + key.name.replace("_", "-")
            if flags.get(key.name) is not None:
                setting = Setting(key.name, _coerce(key, flags[key.name], f"flag {flag_name}", True),
                                  f"flag {flag_name}")
            elif (var := next((v for v in key.env if environ.get(v)), None)) is not None:
                setting = Setting(key.name, _coerce(key, environ[var], f"env {var}", True), f"env {var}")
            elif key.name in file_values:
                setting = Setting(key.name, _coerce(key, file_values[key.name], f"in {path}", False), str(path))
            elif key.name in sdk_values:
                setting = Setting(key.name, sdk_values[key.name][0], sdk_values[key.name][1])
            else:
                setting = Setting(key.name, key.default, "default")
            values[key.name] = setting
        settings = cls(values, path, why)
        settings._check()
        return settings

    def _check(self) -> None:
        max_wait = self.max_wait
        if self.spot and max_wait is not None and max_wait < self.max_run:
            raise ConfigError(f"max_wait ({format_duration(max_wait)}, {self.source('max_wait')}) must be at least "
                              f"max_run ({format_duration(self.max_run)}, {self.source('max_run')}) for spot training")
        role = self.role
        if role and not role.startswith("arn:"):
            raise ConfigError(f"role ({self.source('role')}) must be an IAM role ARN like "
                              f"arn:aws:iam::123456789012:role/NAME, got {role!r}")

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name].value
        except KeyError:
            raise AttributeError(name) from None

    def source(self, name: str) -> str:
        return self._values[name].source

    def items(self) -> list[Setting]:
        return list(self._values.values())

    def effective_max_wait(self) -> int | None:
        """Spot jobs only: the wait limit SageMaker gets (default 2 x max_run)."""
        if not self.spot:
            return None
        return self.max_wait or 2 * self.max_run

    def display(self, name: str) -> str:
        """The value as `config show` prints it; unset values say what happens instead."""
        key, value = _BY_NAME[name], self._values[name].value
        if value is None:
            return f"({key.default_note or 'unset'})"
        if key.kind == "duration":
            return format_duration(value)
        if key.kind == "bool":
            return "true" if value else "false"
        return str(value)


def flag_setter(key: str) -> Callable:
    """A click option callback that records a command's flag as the `key` setting (None = not given)."""

    def callback(ctx, param, value):
        if value is not None:
            app = ctx.find_root().obj
            if app is not None:
                app.set_flag(key, value)
        return value

    return callback
