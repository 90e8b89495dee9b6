"""AWS and SageMaker sessions, created once per backend and only when first needed.

`import sagemaker` costs ~2.7 s, and it prints `sagemaker.config INFO` lines to stdout:
both happen here, never at CLI start-up.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cached_property

from dogbreed.errors import ConfigError

FRAMEWORK_VERSION = "2.8.0"  # newest PyTorch training image; inference tops out at 2.6.0
INFERENCE_FRAMEWORK_VERSION = "2.6.0"
PY_VERSION = "py312"


def import_sagemaker():
    """Import the SDK quietly (no v2 deprecation banner, no config INFO lines on stdout), after
    checking its major (dogbreed.backends.sagemaker.sdk) without importing it."""
    from dogbreed._imports import require
    from dogbreed.backends.sagemaker import sdk

    sdk.major()
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    return require("sagemaker", "the SageMaker backend", sdk.SUPPORTED_LINE)


def aws_message(exc: Exception) -> str:
    """A botocore error as one short line: `Code: message` for a service error, else its first line."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        err = response["Error"]
        return f"{err.get('Code') or 'error'}: {' '.join(str(err.get('Message') or '').split())}".rstrip(": ")
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@dataclass
class AwsSettings:
    """What the SageMaker backend needs to know; resolved by `dogbreed.settings` (flags, env, file)."""

    region: str | None = None
    profile: str | None = None
    role: str | None = None
    bucket: str | None = None
    prefix: str = "dogbreed"
    instance_type: str = "ml.m5.xlarge"
    tuning_instance_type: str = "ml.m5.xlarge"
    inference_instance_type: str = "ml.m5.large"
    framework_version: str = FRAMEWORK_VERSION
    inference_framework_version: str = INFERENCE_FRAMEWORK_VERSION
    py_version: str = PY_VERSION
    spot: bool = False  # managed spot training, checkpointed to S3
    network_isolation: bool = False  # EnableNetworkIsolation: training containers reach no network
    max_run_s: int = 6 * 3600
    max_wait_s: int | None = None  # spot only; >= max_run_s
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_settings(cls, s) -> "AwsSettings":
        """The SageMaker backend's view of the resolved `dogbreed.settings.Settings`."""
        return cls(region=s.region, profile=s.profile, role=s.role, bucket=s.bucket, prefix=s.prefix,
                   instance_type=s.instance_type, tuning_instance_type=s.tuning_instance_type,
                   inference_instance_type=s.inference_instance_type, framework_version=s.framework_version,
                   inference_framework_version=s.inference_framework_version, py_version=s.py_version,
                   spot=s.spot, network_isolation=s.network_isolation, max_run_s=s.max_run,
                   max_wait_s=s.effective_max_wait())


class AwsContext:
    """Lazily built boto3 + SageMaker sessions for one set of settings."""

    def __init__(self, settings: AwsSettings):
        self.settings = settings

    @cached_property
    def boto_session(self):
        import boto3
        import botocore.exceptions

        try:
            session = boto3.Session(profile_name=self.settings.profile, region_name=self.settings.region)
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigError(f"{exc}; create it with `aws configure --profile {self.settings.profile}`, "
                              "or use --backend local") from None
        if session.region_name is None:
            raise ConfigError("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION, `region` in dogbreed.toml, "
                              "or pass --region")
        if session.get_credentials() is None:
            raise ConfigError("no AWS credentials found: run `aws configure --profile NAME` (and set AWS_PROFILE), "
                              "or use --backend local")
        return session

    @cached_property
    def sagemaker_session(self):
        """The installed SDK major's Session (v2: sagemaker.Session, v3: sagemaker.core's)."""
        from dogbreed.backends.sagemaker import sdk

        import_sagemaker()
        return sdk.builders().session(self.boto_session, self.settings.bucket or None)

    @property
    def region(self) -> str:
        return self.boto_session.region_name

    @cached_property
    def bucket(self) -> str:
        return self.settings.bucket or self.sagemaker_session.default_bucket()

    @cached_property
    def role(self) -> str:
        role = self.settings.role or self.notebook_role()
        if not role:
            raise ConfigError("no SageMaker execution role: pass --role ARN or set `role` in dogbreed.toml "
                              "(or DOGBREED_ROLE)")
        return role

    def notebook_role(self) -> str | None:
        """The execution role of the SageMaker notebook instance or Studio space this runs in, as
        the SDK resolves it (`get_execution_role`); None elsewhere. Only where the SDK's notebook
        metadata file exists: on a laptop, the SDK would return whatever role the user assumed."""
        import botocore.exceptions

        import importlib

        from dogbreed.backends.sagemaker import sdk

        import_sagemaker()
        helper = importlib.import_module(sdk.builders().SESSION_MODULE)  # v2's sagemaker.session or v3's
        if not os.path.isfile(helper.NOTEBOOK_METADATA_FILE):
            return None
        try:
            return helper.get_execution_role(self.sagemaker_session)
        except (ValueError, botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
            return None

    def s3_uri(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, self.settings.prefix.strip("/"), *[p.strip("/") for p in parts]])

    @cached_property
    def sagemaker_client(self):
        return self.sagemaker_session.sagemaker_client
