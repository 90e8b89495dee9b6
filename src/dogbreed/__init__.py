"""dogbreed: fine-tune, tune, debug, deploy and query a dog-breed classifier.

Importing the package is free: torch, sagemaker and smdebug load only where used.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
