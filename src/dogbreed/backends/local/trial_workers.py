"""Warm trial workers: a fork server that imports torch, torchvision and dogbreed.training once,
then forks one child per tuning trial that runs the entry script as `python hpo.py ARGS` would.

A fresh trial process spends ~2-4 s importing torch before its first line of arithmetic; a
forked child starts with all of that already in memory. Each child is still one process per
trial, in its own session, with the trial's argv, environment, working directory and
stdout/stderr pipe, so stopping, pruning, a crash or a timeout ends only that trial and the
job runner treats it like any other process (`ForkedProcess` has Popen's few methods it uses).

    TrialWorkers(entry_point)      driver side: starts the server, `launch(cmd, cwd, env)`
    ForkedProcess                  one trial: pid, stdout, poll(), wait()
    python -m dogbreed.backends.local.trial_workers ENTRY FD      the server

The server does no torch work before it forks (OpenMP threads and fork do not mix); each child
sets its thread count from the trial's OMP_NUM_THREADS. The server lives as long as its
control socket: when the driver exits, however it exits, the server does too.
"""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from dogbreed.backends.local.processes import popen_script

ENV_SWITCH = "DOGBREED_TRIAL_WORKERS"  # "off": every trial is a fresh python process
# What a trial imports, loaded once in the server (the children share these pages).
PRELOAD = ("numpy", "PIL.Image", "torch", "torch.utils.data", "torchvision", "torchvision.models",
           "torchvision.transforms.v2", "dogbreed.training.args", "dogbreed.training.run",
           "dogbreed.training.head_only", "dogbreed.training.features", "dogbreed.training.loop",
           "dogbreed.training.data", "dogbreed.training.presets", "dogbreed.training.model",
           "dogbreed.training.device", "dogbreed.training.checkpoint", "dogbreed.training.distributed")
_MAX_MESSAGE = 1 << 20
_START_TIMEOUT_S = 300.0  # the first trial waits for the server's imports (slow on a busy machine)


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "on").lower() not in ("0", "off", "false", "no")


# -- driver side ---------------------------------------------------------------------------------
class ForkedProcess:
    """A trial forked by the server: what `LocalJobRunner` and `terminate_group` use of Popen."""

    def __init__(self, args: list[str], pid: int, stdout, status: socket.socket):
        self.args, self.pid, self.stdout, self._status = args, pid, stdout, status
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        return self._collect(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._collect(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return code

    def _collect(self, timeout: float | None) -> int | None:
        # No lock while waiting: `poll()` from another thread (a stop) must not wait for `wait()`.
        # The socket stays open once read, so a select on it never sees a closed descriptor.
        if self.returncode is None:
            ready, _, _ = select.select([self._status], [], [], timeout)
            if ready:
                with self._lock:
                    if self.returncode is None:
                        self.returncode = self._read_status()
        return self.returncode

    def _read_status(self) -> int:
        message = self._status.recv(_MAX_MESSAGE)
        if message:
            return os.waitstatus_to_exitcode(json.loads(message)["status"])
        while _alive(self.pid):  # the server died before the trial: its exit status is lost
            time.sleep(0.1)
        return 255


def _alive(pid: int) -> bool:
    from dogbreed.backends.local.processes import pid_alive

    return pid_alive(pid)


class TrialWorkers:
    """The fork server of one tuning drive. `launch` forks a trial from it, or, when the
    command is not a plain `python SCRIPT ARGS` or the server is gone, starts a fresh process."""

    def __init__(self, entry_point: str, env: dict[str, str] | None = None, log_file: Path | None = None):
        self.entry_point, self.env, self.log_file = entry_point, env, log_file
        self._ctrl: socket.socket | None = None
        self._server: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> "TrialWorkers":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Start the server now: it imports while the driver gets its first trial ready."""
        import contextlib

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log = open(self.log_file, "a") if self.log_file else contextlib.nullcontext(subprocess.DEVNULL)
        with theirs, log as out:
            self._server = subprocess.Popen(
                [sys.executable, "-m", __name__, self.entry_point, str(theirs.fileno())], pass_fds=[theirs.fileno()],
                env={**os.environ, **(self.env or {})}, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        self._ctrl = ours

    def close(self) -> None:
        if self._ctrl is not None:
            self._ctrl.close()  # the server sees EOF and exits; running children are not touched
            self._ctrl = None
        if self._server is not None:
            try:
                self._server.wait(10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            self._server = None

    def launch(self, cmd: list[str], *, cwd, env: dict[str, str]):
        forkable = (len(cmd) >= 2 and cmd[0] == sys.executable and not cmd[1].startswith("-")
                    and Path(cmd[1]).name == Path(self.entry_point).name)
        if forkable and self._ctrl is not None and self._server is not None and self._server.poll() is None:
            proc = self._fork(cmd, cwd=str(cwd), env=env)
            if proc is not None:
                return proc
        return popen_script(cmd, cwd=cwd, env=env)

    def _fork(self, cmd: list[str], *, cwd: str, env: dict[str, str]) -> ForkedProcess | None:
        out_r, out_w = os.pipe()
        status_ours, status_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"argv": cmd[1:], "cwd": cwd, "env": env}).encode()
        try:
            with self._lock:
                self._ctrl.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                array.array("i", [out_w, status_theirs.fileno()]))])
        except OSError:
            return None
        finally:
            os.close(out_w)
            status_theirs.close()
        ready, _, _ = select.select([status_ours], [], [], _START_TIMEOUT_S)
        reply = status_ours.recv(_MAX_MESSAGE) if ready else b""
        if not reply:
            status_ours.close()
            os.close(out_r)
            return None
        stdout = open(out_r, "r", buffering=1, errors="replace")
        return ForkedProcess(cmd, json.loads(reply)["pid"], stdout, status_ours)


# -- the server ----------------------------------------------------------------------------------
def serve(ctrl: socket.socket) -> None:
    import importlib

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its own session; it ends with the driver
    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    try:
        warm_up()
    except Exception as exc:  # a colder start, not a failure
        print(f"trial workers: warm-up failed: {type(exc).__name__}: {exc}", flush=True)
    children: dict[int, socket.socket] = {}
    while True:
        ready, _, _ = select.select([ctrl], [], [], 0.05 if children else None)
        if ready:
            try:
                message, ancdata, _, _ = ctrl.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(2 * array.array("i").itemsize))
            except ConnectionResetError:
                message = b""
            if not message:
                break
            fds = array.array("i")
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
            out_fd, status_fd = fds
            status = socket.socket(fileno=status_fd)
            pid = os.fork()
            if pid == 0:
                status.close()
                ctrl.close()
                for other in children.values():
                    other.close()
                _run_trial(json.loads(message), out_fd)  # never returns
            os.close(out_fd)
            status.send(json.dumps({"pid": pid}).encode())
            children[pid] = status
        _reap(children)


def warm_up() -> None:
    """Run what a head-only trial runs, on a tiny head, so that the lazy imports and first-call
    set-ups of these ops (measured ~0.8 s in a trial on this project's CPU) are done once here and
    every child starts warm. On one thread: torch runs single-threaded ops inline, so no OpenMP
    pool exists when the server forks; the torch random state is left as a fresh process has it."""
    import io

    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from dogbreed.training.device import select_precision
    from dogbreed.training.instrumentation import NullInstrumentation
    from dogbreed.training.loop import evaluate, train_one_epoch

    torch.set_num_threads(1)
    precision = select_precision("cpu", "auto")
    with torch.random.fork_rng(devices=[]):
        loader = DataLoader(TensorDataset(torch.randn(16, 64), torch.arange(16) % 4), batch_size=8, shuffle=True)
        for optimizer in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
            head = nn.Sequential(nn.Linear(64, 32), nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Linear(32, 4))
            train_one_epoch(head, loader, nn.CrossEntropyLoss(), optimizer(head.parameters(), lr=1e-3), precision,
                            precision.grad_scaler(), NullInstrumentation())
            evaluate(head, loader, nn.CrossEntropyLoss(), precision, NullInstrumentation())
            buffer = io.BytesIO()
            torch.save(head.state_dict(), buffer)
            buffer.seek(0)
            torch.load(buffer, weights_only=True)


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock = children.pop(pid, None)
        if sock is not None:
            try:
                sock.send(json.dumps({"status": status}).encode())
            except OSError:
                pass
            sock.close()


def _run_trial(request: dict, out_fd: int) -> None:
    """In the forked child: become `python SCRIPT ARGS` in the trial's folder and environment."""
    import atexit
    import io
    import random
    import runpy
    import traceback

    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGINT,):
            signal.signal(sig, signal.default_int_handler)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True,
                                      write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True, write_through=True)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        script = os.path.abspath(request["argv"][0])
        sys.argv = [request["argv"][0], *request["argv"][1:]]
        sys.path[0] = os.path.dirname(script)
        random.seed()
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        if "torch" in sys.modules:  # libgomp read OMP_NUM_THREADS when the server loaded it
            threads = os.environ.get("OMP_NUM_THREADS")
            sys.modules["torch"].set_num_threads(int(threads) if threads and threads.isdigit()
                                                 else max(1, os.cpu_count() or 1))
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def main(argv: list[str] | None = None) -> None:
    entry_point, fd = sys.argv[1:] if argv is None else argv  # the entry point only names the process
    del entry_point
    serve(socket.socket(fileno=int(fd)))


if __name__ == "__main__":
    main()
