"""Local endpoints: `python -m dogbreed.serving.server` in the background, one folder each.

    <workspace>/endpoints/<name>/
        endpoint.json   name, status, url, pid, port, model data
        model/          the extracted model.tar.gz (+ code/inference.py, as PyTorchModel repacks it)
        server.log      the server's stdout and stderr

The server runs in its own session (process group), so `undeploy` stops it and nothing it
started, leaving no orphans; the folder goes with it.

Identity: each endpoint gets a random token that its server echoes on every answer; `deploy`
reports InService only when its own server answers, and `predict`/`endpoints` refuse another
process that took the port. A corrupt endpoint.json makes the entry Broken, never invisible:
its server is found by its command line (the endpoint's model folder) so `undeploy` still stops it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dogbreed.backends.base import EndpointConnection, EndpointDescription, EndpointSpec
from dogbreed.backends.local.processes import pid_alive
from dogbreed.errors import EndpointError
from dogbreed.names import check_name
from dogbreed.serving.client import EndpointClient
from dogbreed.serving.model_dir import prepare_model_dir
from dogbreed.serving.server import ENV_TOKEN
from dogbreed.workspace import Workspace, atomic_write_json

EndpointConnection.register(EndpointClient)

SERVER_MODULE = "dogbreed.serving.server"
CREATING, IN_SERVICE, OUT_OF_SERVICE, FAILED = "Creating", "InService", "OutOfService", "Failed"
BROKEN = "Broken"  # endpoint.json unreadable: listed, and undeploy still stops its server
EXPIRED = "Expired"  # not a SageMaker status: a local endpoint whose --auto-delete-after time ended its server
STOP_GRACE_S = 10.0


def process_running(pid: int | None) -> bool:
    """True for a live model server process with this pid (not a recycled pid)."""
    return pid_alive(pid, cmdline_contains=SERVER_MODULE)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def server_pids(model_dir: Path) -> list[int]:
    """Live model servers started on `model_dir` (found by command line, for a lost endpoint.json)."""
    needle = f"{SERVER_MODULE}\0{model_dir}\0".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "cmdline").read_bytes() and process_running(int(proc.name)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _pid(desc: EndpointDescription) -> int | None:
    pid = desc.extra.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


def _reap(pid: int) -> None:
    """Collect the exit status if the server is our own child (deploy ran in this process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


class LocalEndpoints:
    def __init__(self, workspace: Workspace):
        self.root = workspace.root / "endpoints"

    def folder(self, name: str) -> Path:
        return self.root / check_name(name, "endpoint name")

    # -- records ---------------------------------------------------------------------------
    def _write(self, desc: EndpointDescription) -> None:
        atomic_write_json(self.folder(desc.name) / "endpoint.json", desc.to_dict())

    def _read(self, name: str) -> EndpointDescription | None:
        """The record; None when there is no such endpoint; a Broken entry when its file is corrupt."""
        folder = self.folder(name)
        path = folder / "endpoint.json"
        if not folder.is_dir():
            return None
        try:
            doc = json.loads(path.read_bytes())
            desc = EndpointDescription.from_dict(doc)
            if not isinstance(desc.extra, dict) or desc.name != name or not isinstance(desc.status, str):
                raise ValueError("fields of the wrong type")
            return desc
        except FileNotFoundError:
            why = "missing"
        except (OSError, ValueError, TypeError, AttributeError) as exc:  # JSON, UTF-8, shape, a directory
            why = f"unreadable: {type(exc).__name__}"
        pids = server_pids(folder / "model")
        running = f"; its server (pid {pids[0]}) is still running" if pids else ""
        return EndpointDescription(name=name, backend="local", status=BROKEN, extra={"pid": pids[0] if pids else None},
                                   failure_reason=f"{path} is {why}{running}: `dogbreed undeploy {name}` stops "
                                                  "and removes it")

    def describe(self, name: str) -> EndpointDescription:
        desc = self._read(name)
        if desc is None:
            raise EndpointError(f"no local endpoint named {name!r}: `dogbreed endpoints` lists them, "
                                "`dogbreed deploy` creates one")
        return self._refresh(desc)

    def _refresh(self, desc: EndpointDescription) -> EndpointDescription:
        """Status from the process and /ping, not just from what was recorded."""
        if desc.status not in (CREATING, IN_SERVICE, OUT_OF_SERVICE):
            return desc
        lifetime = desc.extra.get("auto_delete_after_s")
        if not process_running(_pid(desc)):
            if lifetime and desc.created and time.time() >= desc.created + lifetime:
                desc.status = EXPIRED
                desc.failure_reason = f"auto-deleted after {lifetime} s (deploy --auto-delete-after)"
                return desc
            desc.status = FAILED
            desc.failure_reason = f"the server process exited; see {self.folder(desc.name) / 'server.log'}"
        elif desc.url:
            client = EndpointClient(desc.url, timeout=2.0, token=desc.extra.get("token"))
            healthy = client.ping()
            client.close()
            desc.status = IN_SERVICE if healthy else (CREATING if desc.status == CREATING else OUT_OF_SERVICE)
        return desc

    def list(self) -> list[EndpointDescription]:
        if not self.root.is_dir():
            return []
        names = [p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        found = [d for d in (self._read(n) for n in names) if d]
        return [self._refresh(d) for d in sorted(found, key=lambda d: d.created or 0, reverse=True)]

    # -- deploy ----------------------------------------------------------------------------
    def deploy(self, spec: EndpointSpec, log=None) -> EndpointDescription:
        from dogbreed.backends.local.jobs import job_name

        log = log or (lambda _m: None)
        name = spec.name or job_name("dogbreed")
        check_name(name, "endpoint name")
        existing = self._read(name)
        if existing and process_running(_pid(existing)):
            raise EndpointError(f"endpoint {name!r} is already running at {existing.url}: "
                                f"`dogbreed undeploy {name}` first, or pass another --name")
        if not port_free(spec.port):
            holder = next((d.name for d in self.list() if d.extra.get("port") == spec.port
                           and d.status != FAILED), None)
            hint = f"`dogbreed undeploy {holder}`" if holder else "stop what uses it"
            raise EndpointError(f"port {spec.port} on 127.0.0.1 is in use: pass --port N or {hint}")
        folder = self.folder(name)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            model_dir = prepare_model_dir(spec.model_data, folder / "model", trust_code=spec.trust_code)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        url = f"http://127.0.0.1:{spec.port}"
        token = secrets.token_hex(16)
        log_file = folder / "server.log"
        cmd = [sys.executable, "-m", SERVER_MODULE, str(model_dir), "--port", str(spec.port),
               "--max-batch-size", str(spec.max_batch_size), "--max-wait-ms", str(spec.max_wait_ms),
               "--log-file", str(log_file)]
        if spec.auto_delete_after_s:
            cmd += ["--lifetime-s", str(spec.auto_delete_after_s)]
        cmd += ["--name", name, *(["--job", spec.job] if spec.job else []),
                *(["--report", str(Path(spec.report).resolve())] if spec.report else [])]
        with open(log_file, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=folder, start_new_session=True,
                                    env=dict(os.environ, PYTHONUNBUFFERED="1", **{ENV_TOKEN: token}))
        desc = EndpointDescription(name=name, backend="local", status=CREATING, url=url, model_data=spec.model_data,
                                   created=time.time(), extra={"pid": proc.pid, "port": spec.port,
                                                               "max_batch_size": spec.max_batch_size,
                                                               "max_wait_ms": spec.max_wait_ms,
                                                               "token": token, "log": str(log_file),
                                                               "auto_delete_after_s": spec.auto_delete_after_s})
        self._write(desc)
        log(f"starting endpoint {name} (pid {proc.pid}) on {url}; log: {folder / 'server.log'}")
        try:
            self._wait_healthy(desc, proc, spec.timeout_s)
        except BaseException:
            _stop(proc.pid)
            proc.wait()
            desc.status = FAILED
            self._write(desc)
            raise
        desc.status = IN_SERVICE
        self._write(desc)
        return desc

    def _wait_healthy(self, desc: EndpointDescription, proc: subprocess.Popen, timeout_s: float) -> None:
        client = EndpointClient(desc.url, timeout=2.0, token=desc.extra["token"])  # our server, no other
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise EndpointError(f"the endpoint server exited ({proc.returncode}) before it was healthy: "
                                        f"{last_error(Path(desc.extra['log']))} (log: {desc.extra['log']})")
                if client.ping():
                    return
                time.sleep(0.1)
        finally:
            client.close()
        raise EndpointError(f"the endpoint did not answer /ping within {timeout_s:.0f} s (log: {desc.extra['log']})")

    # -- delete ----------------------------------------------------------------------------
    def delete(self, name: str) -> None:
        desc = self._read(name)
        if desc is None:
            raise EndpointError(f"no local endpoint named {name!r}: `dogbreed endpoints` lists them")
        for pid in {_pid(desc), *server_pids(self.folder(name) / "model")} - {None}:
            if process_running(pid):
                _stop(pid)
        port = desc.extra.get("port")
        if isinstance(port, int) and not _wait(lambda: port_free(port), 5.0):
            raise EndpointError(f"endpoint {name} stopped but port {port} is still busy; check `ss -ltnp`")
        shutil.rmtree(self.folder(name), ignore_errors=True)

    def connect(self, name: str, url: str | None = None) -> EndpointClient:
        """A client for `name`'s own server (its token checked on every answer)."""
        desc = self._read(name)
        if url is None:
            desc = self.describe(name)
            if desc.status != IN_SERVICE:
                raise EndpointError(f"endpoint {name} is {desc.status}"
                                    f"{': ' + desc.failure_reason if desc.failure_reason else ''}; "
                                    "redeploy with `dogbreed deploy`")
            url = desc.url
        elif desc is None or desc.status == BROKEN:
            return self.connect(name)  # raises, naming what is wrong
        return EndpointClient(url, token=desc.extra.get("token"))


def _wait(cond, timeout_s: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def _stop(pid: int) -> None:
    """SIGTERM the server's process group, SIGKILL it after a grace period."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        if _wait(lambda: (_reap(pid), not process_running(pid))[1], grace):
            break
    _reap(pid)


def last_error(log_path: Path) -> str:
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln]
    return (errors or lines or ["no output"])[-1][:500]

