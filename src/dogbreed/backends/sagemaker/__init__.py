"""The Amazon SageMaker backend (SDK v2 or v3, sdk.py). The only package that imports `sagemaker`."""

from dogbreed.backends.sagemaker.backend import SageMakerBackend

__all__ = ["SageMakerBackend"]
