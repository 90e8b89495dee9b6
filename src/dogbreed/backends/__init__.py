"""Backends: one small interface (`base.Backend`), two implementations.

`get_backend("local")` -> LocalBackend (default); `get_backend("sagemaker")` -> SageMakerBackend.
The two never import each other; only the SageMaker one imports the sagemaker SDK.
"""

from __future__ import annotations

BACKENDS = {
    "local": "dogbreed.backends.local:LocalBackend",
    "sagemaker": "dogbreed.backends.sagemaker:SageMakerBackend",
}


def get_backend(name: str, workspace=None, **options):
    import importlib

    from dogbreed.errors import ConfigError
    from dogbreed.workspace import Workspace

    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(workspace or Workspace.resolve(), **options)
