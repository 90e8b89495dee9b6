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
        "estimate_plan": "local jobs cost nothing but this machine's time; `dogbreed plan` estimates SageMaker "
                         "runs from the benchmarks measured here",
        "autoscale_endpoint": "a local endpoint is one server process on this machine; it batches concurrent "
                              "requests (--max-batch-size) instead of adding instances. Drop --min-instances/"
                              "--max-instances/--target-invocations, or deploy with --backend sagemaker",
    }

    def __init__(self, workspace: Workspace, settings=None):
        self.ws = workspace
        self.settings = settings
        self.runner = LocalJobRunner(workspace)

    @property
    def where(self) -> str:
        return str(self.ws.root)

    # -- training jobs ---------------------------------------------------------------------
    def check_training(self, spec: TrainingJobSpec) -> None:
        """Fails at once, before a job folder exists, when the job could only fail (e.g. no ImageNet
        weights cached and no network)."""
        from dogbreed.training.choices import DEFAULT_ARCH, DEFAULT_WEIGHTS
        from dogbreed.training.model import check_weights_available

        hps = spec.hyperparameters
        check_weights_available(str(hps.get("arch", DEFAULT_ARCH)), str(hps.get("weights", DEFAULT_WEIGHTS)))

    def run_training_job(self, spec: TrainingJobSpec, *, wait: bool = True, log=None) -> JobDescription:
        self.check_training(spec)
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
            from dogbreed.job_folder import RULE_OUTPUT_DIR
            from dogbreed.rules.runner import read_results

            desc.extra["rules"] = read_results(Path(desc.location) / RULE_OUTPUT_DIR)
        return desc

    def list_jobs(self, limit: int = 50) -> list[JobDescription]:
        return self.runner.list(limit)

    def job_outputs(self, name: str, dest: Path) -> Path:
        return Path(self.runner.describe(name).location)

    def resume_training_job(self, name: str, *, log=None) -> JobDescription:
        return self.runner.restart(name, log)

    def stop_job(self, name: str) -> JobDescription:
        return self.runner.stop(name)

    def job_logs(self, name: str, follow: bool = False):
        return self.runner.log_lines(name, follow)

    def job_size(self, name: str) -> int:
        return self.runner.size(name)

    def remove_job(self, name: str) -> int:
        return self.runner.remove(name)

    # -- tuning (dogbreed.backends.local.tuning) --------------------------------------------
    @property
    def tuner(self):
        from dogbreed.backends.local.tuning import LocalTuner

        return LocalTuner(self.ws, self.runner)

    def check_tuning(self, spec):
        from dogbreed.data.check import check_local_data

        check_local_data(spec.data, self.ws.cache_dir)
        self.check_training(TrainingJobSpec("hpo.py", dict(spec.static_hyperparameters), spec.data))
        return []

    def stop_tuning(self, name):
        return self.tuner.stop(name)

    def list_tuning_jobs(self, limit: int = 20):
        return self.tuner.list(limit)

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

    # -- bulk prediction (dogbreed.serving.batch) ---------------------------------------------
    def batch_predict(self, spec, progress=None, log=None):
        """Score the images of a local folder with the offline scorer (no server)."""
        import tempfile

        from dogbreed.backends.base import BatchResult
        from dogbreed.errors import ConfigError
        from dogbreed.serving.batch import Output, list_images, score_folder
        from dogbreed.serving.model_dir import prepare_model_dir

        if spec.source.startswith("s3://"):
            raise ConfigError(f"the local backend scores a folder on this machine, not {spec.source}: download it "
                              "(`aws s3 sync URI DIR`), or score it where it is with --backend sagemaker")
        list_images(spec.source)
        Output(Path(spec.out).expanduser()).check()
        with tempfile.TemporaryDirectory(prefix="dogbreed-batch-") as tmp:
            model_dir = prepare_model_dir(spec.model_data, Path(tmp) / "model")
            counts = score_folder(model_dir, spec.source, spec.out, top_k=spec.top_k, batch_size=spec.batch_size,
                                  workers=spec.workers, model_name=spec.model_data, progress=progress)
        return BatchResult(out=spec.out, **counts)
