"""Pure-torch training core. Runs inside SageMaker containers: never import the sagemaker
SDK, boto3 or the CLI from here. Submodules import torch lazily where they can."""
