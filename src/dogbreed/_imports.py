"""Deferred imports of heavy optional dependencies with an actionable error."""

import importlib

from dogbreed.errors import MissingDependencyError


def require(module: str, feature: str, install: str | None = None):
    """Import `module` or raise MissingDependencyError naming what to install for `feature`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = install or module.split(".")[0]
        raise MissingDependencyError(
            f"{feature} needs the '{pkg}' package, which is not importable ({exc}); "
            f"install it with: pip install {pkg}"
        ) from exc
