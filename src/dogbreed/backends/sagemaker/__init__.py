"""The Amazon SageMaker backend (SDK v2). The only package that imports `sagemaker`."""

from dogbreed.backends.sagemaker.backend import SageMakerBackend

__all__ = ["SageMakerBackend"]
