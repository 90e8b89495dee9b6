"""The embedded local backend: SageMaker's contracts reproduced on this machine."""

from dogbreed.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
