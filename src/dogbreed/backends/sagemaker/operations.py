"""Stopping SageMaker training and tuning jobs, and listing tuning jobs, with a plain boto3 client."""

from __future__ import annotations

from dogbreed.backends.base import STOPPING, TERMINAL
from dogbreed.errors import ConfigError, JobNotFoundError


def _not_found(exc) -> bool:
    text = str(exc)
    return "ValidationException" in text or "ResourceNotFound" in text or "not found" in text.lower()


def stop_training_job(client, name: str, region: str) -> None:
    """StopTrainingJob, after checking the job exists and still runs (SageMaker saves its model
    and ends it Stopped; the console shows Stopping meanwhile)."""
    import botocore.exceptions

    try:
        status = client.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
    except botocore.exceptions.ClientError as exc:
        if _not_found(exc):
            raise JobNotFoundError(f"no SageMaker training job named {name!r} in {region}; "
                                   "`dogbreed --backend sagemaker jobs` lists them") from None
        raise
    if status in TERMINAL or status == STOPPING:
        raise ConfigError(f"training job {name} is {status}; nothing to stop")
    client.stop_training_job(TrainingJobName=name)


def stop_tuning_job(client, name: str, region: str) -> None:
    """StopHyperParameterTuningJob: SageMaker stops its running trials too."""
    import botocore.exceptions

    try:
        d = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    except botocore.exceptions.ClientError as exc:
        if _not_found(exc):
            raise JobNotFoundError(f"no SageMaker tuning job named {name!r} in {region}") from None
        raise
    status = d["HyperParameterTuningJobStatus"]
    if status in TERMINAL or status == STOPPING:
        raise ConfigError(f"tuning job {name} is {status}; nothing to stop")
    client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)


def tuning_job_names(client, limit: int) -> list[str]:
    """The newest tuning jobs' names, newest first."""
    resp = client.list_hyper_parameter_tuning_jobs(MaxResults=max(1, min(limit, 100)), SortBy="CreationTime",
                                                   SortOrder="Descending")
    return [s["HyperParameterTuningJobName"] for s in resp.get("HyperParameterTuningJobSummaries", [])][:limit]
