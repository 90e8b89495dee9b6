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
