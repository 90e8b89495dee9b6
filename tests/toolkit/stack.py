"""The real SageMaker PyTorch serving stack on this machine: TorchServe started by AWS's
sagemaker-pytorch-inference through its own serving entry (torchserve_launcher.py, in the toolkit
venv), on loopback, on a model folder laid out as the container unpacks model.tar.gz.

    with TorchServeStack(model_dir, env) as stack:   # env: the model's container environment
        stack.url, stack.config_text(), stack.log_text(), stack.rss_mb()

Used by tests/test_torchserve_stack.py and benchmarks/bench_torchserve.py. `missing()` says why it
cannot run here (no toolkit venv, no TorchServe, no Java), or None.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.toolkit.venv import HERE, find_toolkit_python, toolkit_env

LAUNCHER = HERE / "torchserve_launcher.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str | None:
    """Why the real stack cannot start here (one line naming the fix), or None."""
    python, why = find_toolkit_python()
    if python is None:
        return why
    if shutil.which("java") is None:
        return "Java is not installed (TorchServe's frontend needs it): `make toolkits` installs Debian's " \
               "openjdk-17-jre-headless where apt-get can run as root"
    probe = subprocess.run([str(python), "-c", "import ts, pkg_resources"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"TorchServe does not import in the toolkit venv ({probe.stderr.strip().splitlines()[-1:]}): " \
               "rebuild it with `make toolkits`"
    return None


class TorchServeStack:
    """One stack: started by `start()` (returns once /ping answers 200), stopped by `stop()`."""

    def __init__(self, model_dir: str | Path, env: dict | None = None, run_dir: str | Path | None = None):
        self.model_dir = Path(model_dir).resolve()
        self.env = dict(env or {})
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="torchserve-stack-"))
        self._own_run_dir = run_dir is None  # removed on leaving the `with` block
        self.port, self.metrics_port, self.grpc_ports = free_port(), free_port(), (free_port(), free_port())
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.ping_healthy_s: float | None = None  # from start to the first /ping 200

    def start(self, timeout: float = 180) -> TorchServeStack:
        if self.proc is not None:  # started already (`with stack.start():`): a second launch orphans the first
            return self
        python, why = find_toolkit_python()
        if python is None:
            raise RuntimeError(why)
        base = self.run_dir / "opt-ml"  # SAGEMAKER_BASE_DIR: its model/ is the container's /opt/ml/model
        base.mkdir(parents=True, exist_ok=True)
        if not (base / "model").exists():
            (base / "model").symlink_to(self.model_dir, target_is_directory=True)
        (self.run_dir / "tmp").mkdir(exist_ok=True)
        loopback = f"http://127.0.0.1:{self.port}"
        env = toolkit_env(**{
            "SAGEMAKER_PROGRAM": "inference.py",  # CreateModel's, overridden by self.env
            **self.env,
            "SAGEMAKER_BASE_DIR": str(base), "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "TS_INFERENCE_ADDRESS": loopback, "TS_MANAGEMENT_ADDRESS": loopback,
            "TS_METRICS_ADDRESS": f"http://127.0.0.1:{self.metrics_port}",
            "TS_GRPC_INFERENCE_PORT": str(self.grpc_ports[0]), "TS_GRPC_MANAGEMENT_PORT": str(self.grpc_ports[1]),
            "TMPDIR": str(self.run_dir / "tmp"), "TEMP": str(self.run_dir / "tmp"),
            "LOG_LOCATION": str(self.run_dir / "logs"), "METRICS_LOCATION": str(self.run_dir / "logs")})
        t0 = time.monotonic()
        self.proc = subprocess.Popen([str(python), str(LAUNCHER), str(self.run_dir)], env=env,
                                     stdout=open(self.run_dir / "stack.log", "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the serving stack exited ({self.proc.returncode}):\n{self.log_text()[-3000:]}")
            if self.ping() == 200:
                self.ping_healthy_s = time.monotonic() - t0
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"/ping did not answer 200 within {timeout:g} s:\n{self.log_text()[-3000:]}")

    def ping(self) -> int | None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/ping")
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return None

    def invoke(self, body: bytes, headers: dict, timeout: float = 120) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", "/invocations", body=body, headers=headers)
            resp = conn.getresponse()
            return {"status": resp.status, "content_type": resp.getheader("Content-Type"),
                    "body": resp.read().decode("utf-8", "replace")}
        finally:
            conn.close()

    def wait_until_predicting(self, body: bytes, headers: dict, timeout: float = 180) -> float:
        """Seconds from /ping healthy until `body` is answered 200 (TorchServe queues requests that
        arrive while its workers are still loading the model)."""
        t0 = time.monotonic()
        while True:
            try:
                answer = self.invoke(body, headers, timeout=timeout)
                break
            except OSError:  # seen under load: the frontend resets a connection while workers start
                if time.monotonic() - t0 > timeout or self.proc.poll() is not None:
                    raise RuntimeError(f"no prediction from the serving stack:\n{self.log_text()[-3000:]}") from None
                time.sleep(0.1)
        if answer["status"] != 200:
            raise RuntimeError(f"the first prediction was answered {answer}:\n{self.log_text()[-3000:]}")
        return time.monotonic() - t0

    def config_text(self) -> str:
        """The TorchServe config the toolkit wrote (the container's /etc/sagemaker-ts.properties)."""
        return (self.run_dir / "sagemaker-ts.properties").read_text()

    def log_text(self) -> str:
        return (self.run_dir / "stack.log").read_text(errors="replace")

    def metric_logs(self) -> dict[str, int]:
        """TorchServe's metric logs and their sizes now (pass to `metric` to read only what follows)."""
        return {p.name: p.stat().st_size for p in (self.run_dir / "logs").glob("*metrics.log")}

    def metric(self, name: str, since: dict[str, int] | None = None) -> list[float]:
        """Every value TorchServe logged for metric `name` (PredictionTime, ts_queue_latency_microseconds,
        ...), in its own unit, after the sizes in `since`."""
        pattern = re.compile(rf"\b{re.escape(name)}\.\w+:([0-9.]+)\|")
        values = []
        for log, size in self.metric_logs().items():
            with open(self.run_dir / "logs" / log, "rb") as f:
                f.seek((since or {}).get(log, 0))
                values += [float(v) for v in pattern.findall(f.read(size).decode(errors="replace"))]
        return values

    def processes(self):
        import psutil

        if self.proc is None:
            return []
        out = []
        self.proc.poll()  # reaps the launcher once it exits: a zombie keeps its process group id
        for p in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(p.pid) == self.proc.pid and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except (OSError, psutil.Error):
                continue
        return out

    def rss_mb(self) -> float:
        """Resident memory of the whole stack (launcher, TorchServe's JVM, its Python workers), MB."""
        total = 0
        for p in self.processes():
            try:
                total += p.memory_info().rss
            except Exception:
                continue
        return total / 2**20

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to the stack's process group (the container's stop), SIGKILL after `timeout`."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self.processes():
                time.sleep(0.2)
            if not self.processes():
                break
        self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
