"""SageMakerBackend: the Backend interface on Amazon SageMaker (SDK v2)."""

from __future__ import annotations

from dogbreed.backends.base import Backend, JobDescription, TrainingJobSpec
from dogbreed.backends.sagemaker import training
from dogbreed.backends.sagemaker.session import AwsContext, AwsSettings
from dogbreed.backends.sagemaker.source import stage_source_dir
from dogbreed.workspace import Workspace


class SageMakerBackend(Backend):
    name = "sagemaker"

    def __init__(self, workspace: Workspace, settings: AwsSettings | None = None, **options):
        self.ws = workspace
        self.ctx = AwsContext(settings or AwsSettings(**options))

    # -- training jobs ---------------------------------------------------------------------
    def run_training_job(self, spec: TrainingJobSpec, *, wait: bool = True, log=None, **estimator_extra) -> JobDescription:
        training.check_s3_data(spec.data)
        spec = training.with_job_name(spec)
        if log:
            log(training.cost_estimate(self.ctx, spec).line())
        est = training.make_estimator(self.ctx, spec, str(stage_source_dir()), **estimator_extra)
        est.fit({"training": spec.data}, wait=False, job_name=spec.job_name)
        name = est.latest_training_job.name
        if wait:
            est.latest_training_job.wait(logs="All" if log else "None")
        return self.describe_job(name)

    def describe_job(self, name: str) -> JobDescription:
        return training.describe(self.ctx, name)

    def list_jobs(self, limit: int = 50) -> list[JobDescription]:
        return training.list_jobs(self.ctx, limit)

    def resume_training_job(self, name: str, *, log=None) -> JobDescription:
        from dogbreed.errors import ConfigError

        # A SageMaker job cannot run twice; interruptions are handled inside the job instead:
        # with --spot, SageMaker restarts it and train_model.py resumes from /opt/ml/checkpoints.
        raise ConfigError(f"SageMaker jobs cannot be restarted ({name}); train with --spot to get checkpointed, "
                          "automatically resumed jobs, or start a new job")

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

    def resume_tuning(self, name, *, wait=True, progress=None):
        from dogbreed.errors import ConfigError

        raise ConfigError("SageMaker tuning jobs keep running in the cloud when this command stops: "
                          f"follow one with `dogbreed tune --backend sagemaker --attach {name or 'NAME'}`")

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
