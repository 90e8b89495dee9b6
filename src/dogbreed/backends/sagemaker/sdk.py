"""Which SageMaker Python SDK major is installed, found once from the package metadata.

Reading `importlib.metadata` costs milliseconds and imports no SDK, so the CLI can ask at any
time. Only `backends/sagemaker` asks: the rest of dogbreed never knows the major.

- v2 (2.257+): the framework estimators (`sagemaker.pytorch.PyTorch`, `PyTorchModel`) and
  `sagemaker.tuner` (dogbreed.backends.sagemaker.v2).
- v3 (3.x): `sagemaker.train.ModelTrainer`, `sagemaker.train.tuner`, `sagemaker.core`
  resources and shapes (dogbreed.backends.sagemaker.v3).
"""

from __future__ import annotations

from functools import lru_cache

from dogbreed.errors import ConfigError

SUPPORTED_LINE = "sagemaker>=2.257,<3 (SDK v2) or sagemaker>=3,<4 (SDK v3)"


def parse(version: str) -> int:
    """The major of an installed `sagemaker` version, or ConfigError naming the supported ranges."""
    import re

    m = re.match(r"(\d+)\.(\d+)", version)
    major, minor = (int(m.group(1)), int(m.group(2))) if m else (int(version) if version.isdigit() else -1, 0)
    if major == 3 or (major == 2 and minor >= 257):
        return major
    raise ConfigError(f"sagemaker {version} is not supported by dogbreed's SageMaker backend: install "
                      f"{SUPPORTED_LINE}, e.g. pip install 'sagemaker>=3,<4'")


@lru_cache(maxsize=1)
def major() -> int:
    """2 or 3; ConfigError (one line) when `sagemaker` is missing or outside the supported ranges."""
    from importlib import metadata

    try:
        version = metadata.version("sagemaker")
    except metadata.PackageNotFoundError:
        raise ConfigError(f"the SageMaker backend needs the SageMaker Python SDK: pip install "
                          f"'sagemaker>=3,<4' (or {SUPPORTED_LINE})") from None
    return parse(version)


def builders():
    """The module that builds requests through the installed major: v2 or v3."""
    if major() == 3:
        from dogbreed.backends.sagemaker import v3

        return v3
    from dogbreed.backends.sagemaker import v2

    return v2
