"""SageMakerBackend: the Backend interface on Amazon SageMaker (SDK v2 or v3: see sdk.py)."""

from __future__ import annotations

from pathlib import Path

from dogbreed.backends.base import Backend, JobDescription, TrainingJobSpec
from dogbreed.backends.sagemaker import training
from dogbreed.backends.sagemaker.session import AwsContext, AwsSettings
from dogbreed.backends.sagemaker.source import stage_source_dir
from dogbreed.workspace import Workspace


class SageMakerBackend(Backend):
    name = "sagemaker"
    dataset_key = "dataset_s3"
    no_dataset = "no dataset uploaded to S3; run `dogbreed data upload [DIR]` or pass --data s3://bucket/prefix/"
    instead = {
        # A SageMaker job cannot run twice; interruptions are handled inside the job instead:
        # with --spot, SageMaker restarts it and train_model.py resumes from /opt/ml/checkpoints.
        "resume_training_job": "a SageMaker job cannot be restarted; train with --spot to get checkpointed, "
                               "automatically resumed jobs, or start a new job",
        "resume_tuning": "SageMaker tuning jobs keep running in the cloud when this command stops: follow one "
                         "with `dogbreed --backend sagemaker tune --attach NAME`",
    }

    def __init__(self, workspace: Workspace, settings=None):
        from dogbreed.backends.sagemaker import sdk

        sdk.major()  # an unsupported SDK: one line now (package metadata only, no SDK import)
        self.ws = workspace
        self.ctx = AwsContext(AwsSettings.from_settings(settings) if settings is not None else AwsSettings())

    @property
    def where(self) -> str:
        return self.ctx.region

    # -- training jobs ---------------------------------------------------------------------
    def run_training_job(self, spec: TrainingJobSpec, *, wait: bool = True, log=None) -> JobDescription:
        training.check_s3_data(spec.data)
        spec = training.with_job_name(spec)
        if log:
            log(training.cost_estimate(self.ctx, spec).line())
        name = training.start(self.ctx, spec, str(stage_source_dir()), wait=wait, logs=bool(log))
        return self.describe_job(name)

    def describe_job(self, name: str) -> JobDescription:
        return training.describe(self.ctx, name)

    def list_jobs(self, limit: int = 50) -> list[JobDescription]:
        return training.list_jobs(self.ctx, limit)

    def job_outputs(self, name: str, dest: Path) -> Path:
        from dogbreed.backends.sagemaker.debugger import download_outputs

        return download_outputs(self.ctx, name, dest)

    # -- tuning (dogbreed.backends.sagemaker.tuning) -----------------------------------------
    def check_tuning(self, spec):
        from dogbreed.backends.sagemaker import tuning

        training.check_s3_data(spec.data)
        # no credentials, region or role: a one-line ConfigError now, not after the upload
        _ = self.ctx.boto_session, self.ctx.role
        return [tuning.cost_line(self.ctx, spec)]

    def start_tuning(self, spec, *, wait=True, progress=None):
        from dogbreed.backends.sagemaker import tuning

        name = tuning.start(self.ctx, spec, str(stage_source_dir()))
        return self.attach_tuning(name, wait=wait, progress=progress)

    def attach_tuning(self, name, *, wait=True, progress=None):
        from dogbreed.backends.base import follow_tuning
        from dogbreed.backends.sagemaker import tuning

        if not wait:
            return tuning.describe(self.ctx, name)
        return follow_tuning(lambda: tuning.describe(self.ctx, name), progress, poll_s=tuning.POLL_S)

    # -- data ------------------------------------------------------------------------------
    def stage_dataset(self, path: str, *, prefix: str | None = None, concurrency: int = 16, on_plan=None,
                      progress=None):
        """Mirror a local dataset folder to S3 (default prefix: <prefix setting>/data/<folder name>)."""
        from dogbreed.backends.sagemaker.s3 import upload_dataset

        if prefix is None:
            prefix = f"{self.ctx.settings.prefix.strip('/')}/data/{Path(path).absolute().name}"
        return upload_dataset(self.ctx.boto_session, self.ctx.bucket, self.ctx.region, path, prefix,
                              concurrency=concurrency, on_plan=on_plan, progress=progress)

    # -- leftovers (dogbreed.backends.sagemaker.cleanup) ---------------------------------------
    def find_leftovers(self, *, prefix: str | None = None, endpoints: tuple[str, ...] = (),
                       expired_only: bool = False) -> list:
        """The project's endpoints, endpoint configs and models (names starting with `prefix`, plus
        `endpoints`); with `expired_only`, endpoints past their auto-delete time and their parts."""
        import botocore.exceptions

        from dogbreed.backends.sagemaker.cleanup import find_resources
        from dogbreed.backends.sagemaker.s3 import aws_error

        try:
            return find_resources(self._sagemaker_api, prefix or self.ctx.settings.prefix, endpoints,
                                  expired_only=expired_only)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise aws_error(exc, f"listing SageMaker resources in {self.ctx.region}",
                            self.ctx.settings.bucket or "-") from None

    @property
    def _sagemaker_api(self):
        """A plain boto3 client: listing and deleting need no SDK import (~2.7 s)."""
        return self.ctx.boto_session.client("sagemaker")

    def delete_leftovers(self, resources: list):
        """Delete what find_leftovers found: [(resource, error message or None)]."""
        from dogbreed.backends.sagemaker.cleanup import delete_resources

        return delete_resources(self._sagemaker_api, resources)

    # -- endpoints (dogbreed.backends.sagemaker.endpoints) -----------------------------------
    def deploy_endpoint(self, spec, log=None):
        from dogbreed.backends.sagemaker import endpoints

        return endpoints.deploy(self.ctx, spec, str(stage_source_dir()), log)

    def list_endpoints(self):
        from dogbreed.backends.sagemaker import endpoints

        return endpoints.list_endpoints(self.ctx)

    def delete_endpoint(self, name):
        from dogbreed.backends.sagemaker import endpoints

        endpoints.delete(self.ctx, name)

    def connect_endpoint(self, name, url=None):
        from dogbreed.backends.sagemaker import endpoints

        return endpoints.RuntimeConnection(self.ctx, name)
