"""Backends: one small interface (`base.Backend`), two implementations.

`get_backend("local")` -> LocalBackend (default); `get_backend("sagemaker")` -> SageMakerBackend.
The two never import each other; only the SageMaker one imports the sagemaker SDK.
"""

from __future__ import annotations

BACKENDS = {
    "local": "dogbreed.backends.local:LocalBackend",
    "sagemaker": "dogbreed.backends.sagemaker:SageMakerBackend",
}


def backend_names() -> list[str]:
    return list(BACKENDS)


def backend_class(name: str):
    """The Backend subclass called `name` (its module imports no SDK: cheap)."""
    import importlib

    from dogbreed.errors import ConfigError

    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_backend(name: str, workspace=None, settings=None):
    """A backend on `workspace` (default: the resolved one) with the resolved `settings` (None: defaults)."""
    from dogbreed.workspace import Workspace

    return backend_class(name)(workspace or Workspace.resolve(), settings)
