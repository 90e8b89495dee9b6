"""SageMakerBackend: the Backend interface on Amazon SageMaker (SDK v2 or v3: see sdk.py)."""

from __future__ import annotations

import dataclasses

from pathlib import Path

from dogbreed.backends.base import Backend, JobDescription, TrainingJobSpec
from dogbreed.backends.sagemaker import training
from dogbreed.backends.sagemaker.session import AwsContext, AwsSettings
from dogbreed.backends.sagemaker.source import staged_source
from dogbreed.workspace import Workspace


class SageMakerBackend(Backend):
    name = "sagemaker"
    dataset_key = "dataset_s3"
    no_dataset = "no dataset uploaded to S3; run `dogbreed data upload [DIR]` or pass --data s3://bucket/prefix/"
    instead = {
        # A SageMaker job cannot run twice; interruptions are handled inside the job instead:
        # with --spot, SageMaker restarts it and train_model.py resumes from /opt/ml/checkpoints.
        "resume_training_job": "a SageMaker job cannot be restarted ({name}); train with --spot to get checkpointed, "
                               "automatically resumed jobs, or start a new job",
        "resume_tuning": "SageMaker tuning jobs keep running in the cloud when this command stops: follow it "
                         "with `dogbreed --backend sagemaker tune --attach {name}`",
        "job_size": "SageMaker jobs keep their outputs in S3, not on this machine",
        "remove_job": "SageMaker keeps job records itself (they cannot be deleted); delete a job's S3 outputs "
                      "with `aws s3 rm --recursive`",
        "check_training": "SageMaker jobs are checked by SageMaker when they are created",
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
        from dogbreed.backends.sagemaker.debugger import instrument

        spec = training.check_job(self.ctx, spec)  # refused in one line before anything is uploaded
        if log:
            log(training.cost_estimate(self.ctx, spec).line())
        spec = dataclasses.replace(spec, instrumentation=training.instrumentation(self.ctx, spec, log))
        spec, instrumentation, debugger_line = instrument(self.ctx, spec)
        if log:
            log(debugger_line)
        with staged_source(requirements=not self.ctx.settings.network_isolation) as source:
            name, wait_for = training.start(self.ctx, spec, source, instrumentation)
        if wait:
            with training.interrupted_wait("training job", name, f"dogbreed --backend sagemaker jobs {name}"):
                wait_for(bool(log))
        return self.describe_job(name)

    def describe_job(self, name: str) -> JobDescription:
        return training.describe(self.ctx, name)

    def list_jobs(self, limit: int = 50) -> list[JobDescription]:
        return training.list_jobs(self.ctx, limit)

    def job_outputs(self, name: str, dest: Path) -> Path:
        from dogbreed.backends.sagemaker.debugger import download_outputs

        return download_outputs(self.ctx, name, dest)

    def stop_job(self, name: str) -> JobDescription:
        from dogbreed.backends.sagemaker.operations import stop_training_job

        stop_training_job(self._sagemaker_api, name, self.ctx.region)
        return self.describe_job(name)

    def job_logs(self, name: str, follow: bool = False):
        from dogbreed.backends.base import TERMINAL
        from dogbreed.backends.sagemaker.logs import log_lines

        self.describe_job(name)  # JobNotFoundError for a name SageMaker does not know
        return log_lines(self.ctx.boto_session.client("logs"), name, follow=follow,
                         finished=lambda: self.describe_job(name).status in TERMINAL)

    # -- tuning (dogbreed.backends.sagemaker.tuning) -----------------------------------------
    def stop_tuning(self, name):
        from dogbreed.backends.sagemaker import tuning
        from dogbreed.backends.sagemaker.operations import stop_tuning_job

        stop_tuning_job(self._sagemaker_api, name, self.ctx.region)
        return tuning.describe(self.ctx, name)

    def list_tuning_jobs(self, limit: int = 20):
        from dogbreed.backends.sagemaker import tuning
        from dogbreed.backends.sagemaker.operations import tuning_job_names

        return [tuning.describe(self.ctx, n) for n in tuning_job_names(self._sagemaker_api, limit)]

    def check_tuning(self, spec):
        from dogbreed.backends.sagemaker import tuning

        tuning.check(self.ctx, spec)  # SageMaker's rules for the request, before any upload
        # no credentials, region or role: a one-line ConfigError now, not after the upload
        _ = self.ctx.boto_session, self.ctx.role
        return [tuning.cost_line(self.ctx, spec)]

    def start_tuning(self, spec, *, wait=True, progress=None):
        from dogbreed.backends.sagemaker import tuning

        # trials run without the hook (a tuning job has no Debugger config): nothing to pip-install
        with staged_source(requirements=False) as source:
            name = tuning.start(self.ctx, spec, source)
        return self.attach_tuning(name, wait=wait, progress=progress)

    def attach_tuning(self, name, *, wait=True, progress=None):
        from dogbreed.backends.base import follow_tuning
        from dogbreed.backends.sagemaker import tuning

        if not wait:
            return tuning.describe(self.ctx, name)
        with training.interrupted_wait("tuning job", name, f"dogbreed --backend sagemaker tune --attach {name}"):
            return follow_tuning(lambda: tuning.describe(self.ctx, name), progress, poll_s=tuning.POLL_S)

    # -- data ------------------------------------------------------------------------------
    def stage_dataset(self, path: str, *, prefix: str | None = None, concurrency: int = 16, on_plan=None,
                      progress=None):
        """Mirror a local dataset folder to S3 (default prefix: <prefix setting>/data/<folder name>)."""
        from dogbreed.backends.sagemaker.s3 import upload_dataset

        if prefix is None:
            prefix = f"{self.ctx.settings.prefix.strip('/')}/data/{Path(path).absolute().name}"
        return upload_dataset(self.ctx.boto_session, self.ctx.bucket, self.ctx.region, path, prefix,
                              concurrency=concurrency, cache_dir=self.ws.cache_dir / "upload", on_plan=on_plan,
                              progress=progress)

    # -- leftovers (dogbreed.backends.sagemaker.cleanup) ---------------------------------------
    def find_leftovers(self, *, prefix: str | None = None, endpoints: tuple[str, ...] = (),
                       expired_only: bool = False) -> list:
        """The project's endpoints, endpoint configs and models (names starting with `prefix`, plus
        `endpoints`); with `expired_only`, endpoints past their auto-delete time and their parts."""
        import botocore.exceptions

        from dogbreed.backends.sagemaker.cleanup import find_resources
        from dogbreed.backends.sagemaker.s3 import aws_error

        from dogbreed.backends.sagemaker import autoscaling

        prefix = prefix or self.ctx.settings.prefix
        try:
            found = find_resources(self._sagemaker_api, prefix, endpoints, expired_only=expired_only)
            return autoscaling.leftovers(self._autoscaling_api, prefix, [r.name for r in found if r.kind == "endpoint"],
                                         expired_only) + found
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise aws_error(exc, f"listing SageMaker resources in {self.ctx.region}",
                            self.ctx.settings.bucket or "-") from None

    @property
    def _sagemaker_api(self):
        """A plain boto3 client: listing and deleting need no SDK import (~2.7 s)."""
        return self.ctx.boto_session.client("sagemaker")

    @property
    def _autoscaling_api(self):
        return self.ctx.boto_session.client("application-autoscaling")

    def delete_leftovers(self, resources: list):
        """Delete what find_leftovers found: [(resource, error message or None)]; scalable targets first."""
        import botocore.exceptions

        from dogbreed.backends.sagemaker import autoscaling
        from dogbreed.backends.sagemaker.cleanup import delete_resources

        results = []
        for r in (r for r in resources if r.kind == "scalable-target"):
            try:
                autoscaling.deregister(self._autoscaling_api, r.name)
                results.append((r, None))
            except botocore.exceptions.ClientError as exc:
                results.append((r, exc.response.get("Error", {}).get("Message", str(exc))))
        return results + delete_resources(self._sagemaker_api, [r for r in resources if r.kind != "scalable-target"])

    # -- bulk prediction and autoscaling -----------------------------------------------------
    def batch_predict(self, spec, progress=None, log=None):
        """A Batch Transform job over spec.source (an S3 prefix); its answers land in spec.out."""
        from dogbreed.backends.sagemaker import transform

        with staged_source() as source:
            return transform.run(self.ctx, spec, source, log)

    def estimate_plan(self, spec, rates):
        """A dogbreed.planning.Plan for `spec` from measured `rates` and the price table."""
        from dogbreed.backends.sagemaker.plan import estimate

        return estimate(spec, rates)

    def autoscale_endpoint(self, name: str, scaling):
        """Register `scaling` (an Autoscaling) for an existing real-time endpoint, or remove it (None)."""
        from dogbreed.backends.sagemaker import autoscaling

        if scaling is None:
            autoscaling.deregister(self._autoscaling_api, name)
            return
        autoscaling.check(scaling)
        autoscaling.register(self._autoscaling_api, name, scaling)

    # -- endpoints (dogbreed.backends.sagemaker.endpoints) -----------------------------------
    def deploy_endpoint(self, spec, log=None):
        from dogbreed.backends.sagemaker import endpoints

        # no requirements.txt: the container would pip-install it at every cold start
        with staged_source(requirements=False) as source:
            return endpoints.deploy(self.ctx, spec, source, log)

    def list_endpoints(self):
        from dogbreed.backends.sagemaker import endpoints

        return endpoints.list_endpoints(self.ctx)

    def delete_endpoint(self, name):
        from dogbreed.backends.sagemaker import endpoints

        endpoints.delete(self.ctx, name)

    def connect_endpoint(self, name, url=None):
        from dogbreed.backends.sagemaker import endpoints

        return endpoints.RuntimeConnection(self.ctx, name)
