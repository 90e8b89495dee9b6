"""LocalBackend: the Backend interface on this machine (subprocess jobs, job folders, a local server)."""

from __future__ import annotations

from pathlib import Path

from dogbreed.backends.base import Backend, JobDescription, TrainingJobSpec
from dogbreed.backends.local.jobs import LocalJobRunner
from dogbreed.workspace import Workspace


class LocalBackend(Backend):
    name = "local"
    dataset_key = "dataset"
    no_dataset = ("no dataset recorded; run `dogbreed data synth --out data/sample` or `dogbreed data download`, "
                  "or pass --data DIR")
    instead = {
        "stage_dataset": "local jobs read the dataset folder itself (`dogbreed data upload` copies one to S3 for "
                         "--backend sagemaker)",
        "find_leftovers": "local endpoints cost nothing; `dogbreed undeploy NAME` stops one",
        "delete_leftovers": "local endpoints cost nothing; `dogbreed undeploy NAME` stops one",
    }

    def __init__(self, workspace: Workspace, settings=None):
        self.ws = workspace
        self.settings = settings
        self.runner = LocalJobRunner(workspace)

    @property
    def where(self) -> str:
        return str(self.ws.root)

    # -- training jobs ---------------------------------------------------------------------
    def run_training_job(self, spec: TrainingJobSpec, *, wait: bool = True, log=None) -> JobDescription:
        if spec.instrumentation is not None:
            self._instrument(spec)
            if log and spec.instrumentation.debugger:
                log("debugger: local jobs are always judged here, by dogbreed's implementations of the rules")
        if not wait:
            return self.runner.run_detached(spec)
        return self.runner.run(spec, log)

    def _instrument(self, spec: TrainingJobSpec) -> None:
        """What SageMaker's platform gives an instrumented job: hook/profiler config files and rule settings."""
        from dogbreed.backends.local.debugger import configure_job
        from dogbreed.rules.runner import rules_with_params

        i = spec.instrumentation
        configure_job(spec, self.ws, debugger=i.debugger, profiler=i.profiler,
                      collection_overrides=i.collection_overrides, rules=rules_with_params(overrides=i.rule_params),
                      interval_ms=i.interval_ms)

    def describe_job(self, name: str) -> JobDescription:
        desc = self.runner.describe(name)
        if not desc.extra.get("rules") and desc.location:  # still running: the rule threads' latest statuses
            from dogbreed.backends.local.debugger import RULE_OUTPUT_DIR
            from dogbreed.rules.runner import read_results

            desc.extra["rules"] = read_results(Path(desc.location) / RULE_OUTPUT_DIR)
        return desc

    def list_jobs(self, limit: int = 50) -> list[JobDescription]:
        return self.runner.list(limit)

    def job_outputs(self, name: str, dest: Path) -> Path:
        return Path(self.runner.describe(name).location)

    def resume_training_job(self, name: str, *, log=None) -> JobDescription:
        return self.runner.restart(name, log)

    # -- tuning (dogbreed.backends.local.tuning) --------------------------------------------
    @property
    def tuner(self):
        from dogbreed.backends.local.tuning import LocalTuner

        return LocalTuner(self.ws, self.runner)

    def check_tuning(self, spec):
        from dogbreed.backends.local.tuning import check_local_data

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
    @property
    def endpoints(self):
        from dogbreed.backends.local.endpoints import LocalEndpoints

        return LocalEndpoints(self.ws)

    def deploy_endpoint(self, spec, log=None):
        return self.endpoints.deploy(spec, log)

    def list_endpoints(self):
        return self.endpoints.list()

    def delete_endpoint(self, name):
        self.endpoints.delete(name)

    def connect_endpoint(self, name, url=None):
        return self.endpoints.connect(name, url)
