"""LocalBackend: the Backend interface on this machine (subprocess jobs, job folders)."""

from __future__ import annotations

from dogbreed.backends.base import Backend, JobDescription, TrainingJobSpec
from dogbreed.backends.local.jobs import LocalJobRunner
from dogbreed.workspace import Workspace


class LocalBackend(Backend):
    name = "local"

    def __init__(self, workspace: Workspace, **options):
        self.ws = workspace
        self.options = options
        self.runner = LocalJobRunner(workspace)

    # -- training jobs ---------------------------------------------------------------------
    def run_training_job(self, spec: TrainingJobSpec, *, wait: bool = True, log=None) -> JobDescription:
        if not wait:
            return self.runner.run_detached(spec)
        return self.runner.run(spec, log)

    def describe_job(self, name: str) -> JobDescription:
        return self.runner.describe(name)

    def list_jobs(self, limit: int = 50) -> list[JobDescription]:
        return self.runner.list(limit)

    def resume_training_job(self, name: str, *, log=None) -> JobDescription:
        return self.runner.restart(name, log)

    # -- tuning (dogbreed.backends.local.tuning) --------------------------------------------
    @property
    def tuner(self):
        from dogbreed.backends.local.tuning import LocalTuner

        return LocalTuner(self.ws, self.runner)

    def check_tuning(self, spec):
        from dogbreed.data.check import check_local_data

        check_local_data(spec.data, self.ws.cache_dir)
        return []

    def start_tuning(self, spec, *, wait=True, progress=None):
        name = self.tuner.create(spec)
        return self.resume_tuning(name, wait=wait, progress=progress)

    def attach_tuning(self, name, *, wait=True, progress=None):
        from dogbreed.backends.base import follow_tuning

        return follow_tuning(lambda: self.tuner.describe(name), progress) if wait else self.tuner.describe(name)

    def resume_tuning(self, name, *, wait=True, progress=None):
        from dogbreed.backends.base import IN_PROGRESS

        if self.tuner.describe(name).status == IN_PROGRESS:  # its driver is alive: follow it
            return self.attach_tuning(name, wait=wait, progress=progress)
        if not wait:
            self.tuner.start_detached(name)
            return self.tuner.describe(name)
        return self.tuner.drive(name, progress)

    # -- endpoints (dogbreed.backends.local.endpoints) ---------------------------------------
    def deploy_endpoint(self, spec, log=None):
        from dogbreed.backends.local.endpoints import LocalEndpoints

        return LocalEndpoints(self.ws).deploy(spec, log)

    def list_endpoints(self):
        from dogbreed.backends.local.endpoints import LocalEndpoints

        return LocalEndpoints(self.ws).list()

    def delete_endpoint(self, name):
        from dogbreed.backends.local.endpoints import LocalEndpoints

        LocalEndpoints(self.ws).delete(name)

    def connect_endpoint(self, name, url=None):
        from dogbreed.backends.local.endpoints import LocalEndpoints

        return LocalEndpoints(self.ws).connect(name, url)
