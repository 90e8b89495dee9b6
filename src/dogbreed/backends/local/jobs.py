"""Local job runner: an entry script in a subprocess, in a job folder laid out like /opt/ml.

    prepare(spec)  -> job folder + job.json (InProgress)
    execute(name)  -> run the script, stream its log to the console and logs.txt, parse
                      metrics with the shared definitions, pack output/model.tar.gz on
                      success, record Completed / Failed (with reason) / Stopped

A Ctrl-C or crash leaves the job marked Stopped/Failed with its log, never a half-written
artifact: model.tar.gz is written to a temp file and renamed. A job whose runner process
died is reported Failed when described.

Plugins (import paths in `PLUGINS`) see every job: `on_start(layout, pid)` after the
process starts and `on_exit(layout, description)` after it ends; each decides from the
job's config files whether it has anything to do (e.g. the debugger rules).
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import signal
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dogbreed import hyperparameters as hp
from dogbreed.backends.base import (COMPLETED, FAILED, IN_PROGRESS, STOPPED, TERMINAL, JobDescription, LogSink,
                                    TrainingJobSpec)
from dogbreed.backends.local.layout import JobLayout, python_command
from dogbreed.backends.local.processes import (TERM_GRACE_S, ctrl_c_stops_group, detached_worker_main, kill_group,
                                               pid_alive, popen_script, start_detached_worker, terminate_group)
from dogbreed.errors import ConfigError, DataError, JobNotFoundError, StateError
from dogbreed.job_folder import scripts_dir
from dogbreed.training import metrics
from dogbreed.training.image_cache import ENV_IMAGE_CACHE
from dogbreed.workspace import Workspace, atomic_write_json

PLUGINS: list[str] = ["dogbreed.backends.local.debugger:DebuggerPlugin"]


def job_name(base: str) -> str:
    """SageMaker-style unique name: base-YYYYmmdd-HHMMSS-xxxx (<= 63 chars)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{base[:40]}-{stamp}-{secrets.token_hex(2)}"


def _load_plugins():
    out = []
    for path in PLUGINS:
        module, _, attr = path.partition(":")
        out.append(getattr(importlib.import_module(module), attr)())
    return out


@dataclass
class RunState:
    """One run's process and why it ended early, shared by the thread running the job,
    `RunningJob.stop()` and the max_run timer."""

    proc: subprocess.Popen | None = None  # None until the script's process has started
    stop_requested: bool = False  # `RunningJob.stop()`
    timed_out: bool = False  # the job's max_run_s passed

    def stop(self) -> None:
        self.stop_requested = True
        self._terminate()

    def attach(self, proc) -> None:
        """The script's process, stopped at once if a stop or the time-out came while it started
        (a trial forked from warm workers may wait for them to finish importing)."""
        self.proc = proc
        if self.stop_requested or self.timed_out:
            self._terminate()

    def time_out(self) -> None:
        self.timed_out = True
        self._terminate()

    def _terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            terminate_group(self.proc)


class RunningJob:
    """A started job: `wait()` for its description, `stop()` to end it early (Stopped)."""

    def __init__(self, runner: "LocalJobRunner", name: str, thread: threading.Thread, state: RunState):
        self.runner, self.name, self._thread, self._state = runner, name, thread, state

    def wait(self, timeout: float | None = None) -> JobDescription:
        self._thread.join(timeout)
        return self.runner.describe(self.name)

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._state.stop()


class LocalJobRunner:
    def __init__(self, workspace: Workspace, launch=popen_script):
        """`launch(cmd, cwd=, env=)` starts a job's script (`processes.popen_script`; the tuner's
        warm trial workers fork it instead)."""
        self.ws = workspace
        self.launch = launch

    # -- bookkeeping ----------------------------------------------------------------------
    def layout(self, name: str) -> JobLayout:
        return JobLayout(self.ws.job_dir(name))

    def _write(self, desc: JobDescription) -> None:
        atomic_write_json(self.layout(desc.name).description_file, desc.to_dict())

    def describe(self, name: str) -> JobDescription:
        path = self.layout(name).description_file
        try:
            desc = JobDescription.from_dict(json.loads(path.read_bytes()))
            _check_shape(desc)
        except FileNotFoundError:
            raise JobNotFoundError(f"no local job named {name!r} in {self.ws.jobs_dir}; "
                                   "`dogbreed jobs` lists them") from None
        except (OSError, ValueError, TypeError) as exc:  # truncated, not UTF-8, wrong shape, a directory
            raise StateError(f"{path} is unreadable ({type(exc).__name__}): the job's record is lost; its logs and "
                             f"outputs are in {path.parent} (delete that folder to drop the job)") from None
        if desc.status == IN_PROGRESS and desc.extra.get("runner_pid") and not pid_alive(desc.extra["runner_pid"]):
            desc.status, desc.ended = FAILED, desc.ended or time.time()
            desc.failure_reason = "the process running this job died (killed or machine restarted)"
        return desc

    def list(self, limit: int = 50) -> list[JobDescription]:
        if not self.ws.jobs_dir.is_dir():
            return []
        out = []
        for d in self.ws.jobs_dir.iterdir():
            if (d / "job.json").exists():
                try:
                    out.append(self.describe(d.name))
                except StateError as exc:  # listed as broken, never dropped
                    out.append(JobDescription(d.name, "Broken", "local", created=d.stat().st_mtime,
                                              failure_reason=str(exc), location=str(d)))
        out.sort(key=lambda j: j.created, reverse=True)
        return out[:limit]

    # -- running --------------------------------------------------------------------------
    def prepare(self, spec: TrainingJobSpec) -> JobDescription:
        data = Path(spec.data)
        if not data.is_dir():
            raise DataError(f"dataset folder {data} does not exist; run `dogbreed data synth` or pass --data")
        name = spec.job_name or job_name(spec.base_name)
        layout = self.layout(name)
        encoded = hp.encode(spec.hyperparameters)
        layout.create(channels={"training": data}, encoded_hps=encoded, scripts=scripts_dir(),
                      config_files=spec.config_files)
        desc = JobDescription(name=name, status=IN_PROGRESS, backend="local", entry_point=spec.entry_point,
                              hyperparameters=dict(spec.hyperparameters), data=str(data.absolute()),
                              location=str(layout.root),
                              extra={"processes": spec.processes, "env": spec.env, "max_run_s": spec.max_run_s,
                                     "secondary_status": "Starting"})
        self._write(desc)
        return desc

    def start(self, spec: TrainingJobSpec, log: LogSink | None = None) -> RunningJob:
        desc = self.prepare(spec)
        state = RunState()
        t = threading.Thread(target=self._execute_safely, args=(desc.name, log, state), daemon=True,
                             name=f"job-{desc.name}")
        t.start()
        return RunningJob(self, desc.name, t, state)

    def run(self, spec: TrainingJobSpec, log: LogSink | None = None) -> JobDescription:
        """Run in the foreground; Ctrl-C stops the job (recorded Stopped) and re-raises."""
        desc = self.prepare(spec)
        return self.execute(desc.name, log)

    def run_detached(self, spec: TrainingJobSpec) -> JobDescription:
        """Start in a background process that outlives this one (`--no-wait`)."""
        desc = self.prepare(spec)
        start_detached_worker("dogbreed.backends.local.jobs", self.ws, desc.name)
        return desc

    def restart(self, name: str, log: LogSink | None = None) -> JobDescription:
        """Run a Failed/Stopped job again in its own folder: same hyperparameters, same data,
        and the script resumes from the checkpoints it left in `checkpoints/`."""
        desc = self.describe(name)
        if desc.status == COMPLETED:
            raise ConfigError(f"job {name} already Completed; nothing to resume")
        if desc.status == IN_PROGRESS:
            raise ConfigError(f"job {name} is still running (pid {desc.extra.get('runner_pid')}); stop it first")
        if self.script_alive(desc):  # orphaned by a runner that died: two processes must not share a folder
            raise ConfigError(f"a process of job {name} still runs (pid {desc.pid}); "
                              f"`dogbreed stop {name}` ends it, then resume")
        desc.status, desc.ended, desc.failure_reason, desc.model_data = IN_PROGRESS, None, None, None
        desc.extra["restarts"] = desc.extra.get("restarts", 0) + 1
        self._write(desc)
        return self.execute(name, log)

    def _execute_safely(self, name: str, log: LogSink | None, state: RunState) -> None:
        try:
            self.execute(name, log, state)
        except Exception as exc:  # recorded as Failed; never kill the caller's thread pool
            desc = self.describe(name)
            if desc.status not in TERMINAL:
                desc.status, desc.ended, desc.failure_reason = FAILED, time.time(), f"runner error: {exc}"
                self._write(desc)

    def execute(self, name: str, log: LogSink | None = None, state: RunState | None = None) -> JobDescription:
        state = RunState() if state is None else state
        layout = self.layout(name)
        desc = self.describe(name)
        user_hps = dict(desc.hyperparameters)
        channels = {"training": layout.channel_dir("training")}
        env = dict(os.environ)
        # decoded images are kept with the workspace, like the features, not in a tmpfs /tmp
        env.setdefault(ENV_IMAGE_CACHE, str(self.ws.cache_dir / "images"))
        env.update(layout.environment(job_name=name, entry_point=desc.entry_point, user_hps=user_hps,
                                      channels=channels))
        env.update(desc.extra.get("env") or {})
        # Encoded and decoded again so that the script's arguments are what the training toolkit
        # makes of hyperparameters.json: decoding drops SageMaker's reserved keys (`sagemaker_*`,
        # the tuner's objective), which the script's argument parser would reject.
        cmd = python_command(desc.entry_point, hp.to_cmd_args(hp.decode(hp.encode(user_hps))),
                             int(desc.extra.get("processes") or 1), layout.root)
        plugins = _load_plugins()
        series: dict[str, list[float]] = {}
        desc.started, desc.pid = time.time(), None
        desc.extra.update(runner_pid=os.getpid(), command=cmd, secondary_status="Training")
        interrupted = None
        self.stop_marker(name).unlink(missing_ok=True)
        # The stop handlers come first: a signal between the start and the handlers would
        # otherwise end this runner and orphan the job's process group.
        with open(layout.log_file, "a", buffering=1) as logfh, ctrl_c_stops_group() as ctrl_c:
            proc = self.launch(cmd, cwd=layout.code_dir, env=env)
            ctrl_c.attach(proc)
            state.attach(proc)
            desc.pid = proc.pid
            self._write(desc)
            for plugin in plugins:
                plugin.on_start(layout, proc.pid)
            deadline = desc.started + desc.extra["max_run_s"] if desc.extra.get("max_run_s") else None
            timer = None
            if deadline:
                timer = threading.Timer(max(0.0, deadline - time.time()), state.time_out)
                timer.daemon = True
                timer.start()
            try:
                for line in proc.stdout:
                    logfh.write(line)
                    for metric, value in metrics.parse_line(line).items():
                        series.setdefault(metric, []).append(value)
                    if log:
                        log(line.rstrip("\n"))
                rc = proc.wait()
            except KeyboardInterrupt as exc:
                interrupted = exc
                terminate_group(proc)
                rc = proc.returncode
            finally:
                if timer:
                    timer.cancel()
        if ctrl_c.pressed and interrupted is None:
            interrupted = KeyboardInterrupt()
        desc.ended = time.time()
        desc.metric_series = series
        desc.metrics = metrics.final_metrics(series)
        if self.stop_marker(name).exists():
            desc.status, desc.failure_reason = STOPPED, "stopped with `dogbreed stop`"
        elif interrupted is not None or state.stop_requested:
            by_signal = ctrl_c.signal_name not in ("", "SIGINT")
            desc.status = STOPPED
            desc.failure_reason = (f"stopped: its runner got {ctrl_c.signal_name}" if by_signal
                                   else "stopped by the user" if interrupted else "stopped")
        elif state.timed_out:
            desc.status, desc.failure_reason = STOPPED, f"max_run of {desc.extra['max_run_s']} s reached"
        elif rc == 0:
            try:
                desc.model_data = str(pack_model(layout))
                desc.status = COMPLETED
            except OSError as exc:
                desc.status, desc.failure_reason = FAILED, f"could not pack model.tar.gz: {exc}"
        else:
            desc.status, desc.failure_reason = FAILED, failure_reason(layout, rc)
        desc.extra["secondary_status"] = desc.status
        desc.extra["exit_code"] = rc
        for plugin in plugins:
            try:
                plugin.on_exit(layout, desc)
            except Exception as exc:  # a plugin must not lose the job's own result
                desc.extra.setdefault("plugin_errors", []).append(f"{type(plugin).__name__}: {exc}")
        self._write(desc)
        if interrupted is not None:
            raise interrupted
        return desc

    # -- operations: stop, logs, disk use -----------------------------------------------------
    def stop_marker(self, name: str) -> Path:
        """Written by `stop` before it signals the job, so its runner records Stopped, not Failed."""
        return self.layout(name).root / "stop-requested"

    def script_alive(self, desc: JobDescription) -> bool:
        return pid_alive(desc.pid, cmdline_contains=desc.entry_point)

    def stop(self, name: str, grace: float = TERM_GRACE_S) -> JobDescription:
        """Stop a running job's whole process group (SIGTERM, SIGKILL after `grace` s); recorded Stopped."""
        desc = self.describe(name)
        if desc.status in TERMINAL and not self.script_alive(desc):
            raise ConfigError(f"job {name} has already ended ({desc.status}); nothing to stop")
        runner = desc.extra.get("runner_pid")
        deadline = time.time() + 5
        while desc.pid is None and pid_alive(runner) and time.time() < deadline:  # still starting
            time.sleep(0.1)
            desc = self.describe(name)
        self.stop_marker(name).write_text(f"{time.time()}\n")
        if desc.pid and self.script_alive(desc):
            kill_group(desc.pid, signal.SIGTERM)
            if not _wait_for(lambda: not self.script_alive(desc), grace):
                kill_group(desc.pid, signal.SIGKILL)
            # an exiting process loses its command line before it is gone: wait for the end of its exit
            _wait_for(lambda: not pid_alive(desc.pid), 5)
        elif pid_alive(runner):  # no script process yet: the runner itself stops on SIGTERM
            os.kill(runner, signal.SIGTERM)
        if pid_alive(runner) and _wait_for(lambda: self.describe(name).status in TERMINAL, grace + 5):
            return self.describe(name)
        return self.record_stopped(name)  # no runner left to record the end: record it here

    def record_stopped(self, name: str) -> JobDescription:
        """Record as Stopped a job stopped while nothing was left to record its end (unless it completed)."""
        desc = self.describe(name)
        if desc.status not in (STOPPED, COMPLETED):
            desc.status, desc.ended, desc.failure_reason = STOPPED, time.time(), "stopped with `dogbreed stop`"
            desc.extra["secondary_status"] = STOPPED
            self._write(desc)
        return desc

    def log_lines(self, name: str, follow: bool = False, poll_s: float = 0.5):
        """The lines of the job's logs.txt; with `follow`, new ones as they come, until the job ends."""
        desc = self.describe(name)
        path = self.layout(name).log_file
        if not path.exists():
            raise StateError(f"job {name} has no log yet ({desc.status}"
                             f"{', ' + desc.extra['secondary_status'] if desc.extra.get('secondary_status') else ''})"
                             f"; try again once it runs")
        with open(path, errors="replace") as fh:
            pending = ""
            while True:
                chunk = fh.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith("\n"):
                        yield pending.rstrip("\n")
                        pending = ""
                    continue
                if not follow or self.describe(name).status in TERMINAL:
                    if pending:
                        yield pending
                    return
                time.sleep(poll_s)

    def size(self, name: str) -> int:
        self.describe(name)
        return folder_size(self.layout(name).root)

    def remove(self, name: str) -> int:
        """Delete a job's folder (the dataset it links to stays); refused while a process of it runs."""
        import shutil

        desc = self.describe(name)
        if desc.status not in TERMINAL or self.script_alive(desc):
            raise ConfigError(f"job {name} is still running; `dogbreed stop {name}` first")
        freed = folder_size(self.layout(name).root)
        shutil.rmtree(self.layout(name).root)
        return freed

    def drop_model(self, name: str, why: str) -> int:
        """Delete a finished job's model files (model/ and model.tar.gz), keeping its log and metrics."""
        layout, freed = self.layout(name), 0
        for path in [*layout.model_dir.rglob("*"), layout.model_tar]:
            if path.is_file():
                freed += path.stat().st_size
                path.unlink()
        desc = self.describe(name)
        desc.model_data, desc.extra["model_dropped"] = None, why
        self._write(desc)
        return freed


def _wait_for(condition, timeout: float, poll_s: float = 0.1) -> bool:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            return False
        time.sleep(poll_s)
    return True


def folder_size(root: Path) -> int:
    """Disk space of `root` (what deleting it frees, as `du` counts it), symlinks not followed:
    a job links to its dataset."""
    total = 0
    for folder, dirs, files in os.walk(root):
        for f in [*files, *dirs]:
            try:
                total += os.lstat(os.path.join(folder, f)).st_blocks * 512
            except OSError:
                continue
    return total


def _check_shape(desc: JobDescription) -> None:
    """TypeError when job.json parsed but its fields have the wrong types."""
    fields = {"name": str, "status": str, "created": (int, float), "metrics": dict, "hyperparameters": dict,
              "extra": dict}
    bad = [k for k, kind in fields.items() if not isinstance(getattr(desc, k), kind)]
    if bad:
        raise TypeError(f"fields of the wrong type: {', '.join(bad)}")


def failure_reason(layout: JobLayout, rc: int) -> str:
    if layout.failure_file.is_file():
        text = layout.failure_file.read_text().strip()
        if text:
            return text[:1024]
    try:
        lines = [ln.strip() for ln in layout.log_file.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    errs = [ln for ln in lines if "Error" in ln or ln.startswith("error:")]
    tail = errs[-1] if errs else (lines[-1] if lines else "")
    sig = f" (killed by signal {-rc})" if rc < 0 else ""
    return f"exit code {rc}{sig}: {tail}"[:1024]


def pack_model(layout: JobLayout) -> Path:
    """model/ -> output/model.tar.gz with files at the archive root, as SageMaker does.

    gzip level 0 (stored): float weights barely compress, and compressing 100 MB of ResNet50
    cost ~2 s per tuning trial."""
    out = layout.model_tar
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=0) as tar:
        for path in sorted(layout.model_dir.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(layout.model_dir)))
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> None:  # the worker that `LocalJobRunner.run_detached` starts
    detached_worker_main(lambda workspace, name: LocalJobRunner(workspace).execute(name), argv)


if __name__ == "__main__":
    main()
