"""The local backend's process code, shared by jobs, tuning and endpoints: is a recorded process
still ours and alive, stopping a process group (also on Ctrl-C), and detached workers.

A detached worker is `python -m MODULE WORKSPACE NAME` in its own session, so that it outlives
the command that started it: `start_detached_worker` starts one, and MODULE's `main` is
`detached_worker_main` with what to do for (workspace, name).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from dogbreed.workspace import Workspace

TERM_GRACE_S = 10.0  # after SIGTERM, a process group gets this long to exit before SIGKILL


def pid_alive(pid: int | None, cmdline_contains: str | None = None) -> bool:
    """True for a live, non-zombie process with this pid. With `cmdline_contains`, its command
    line must also contain that text, which guards against a recycled pid."""
    if not pid:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and (cmdline_contains is None or cmdline_contains in cmdline)
    if Path("/proc/self").is_dir():  # procfs present and no entry: gone
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def popen_script(cmd: list[str], *, cwd, env: dict[str, str]) -> subprocess.Popen:
    """A job's script in its own session (a process group to stop as one), its stdout and stderr
    as one text pipe of lines. The job runner's default way to start a script."""
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, bufsize=1, start_new_session=True, errors="replace")


def kill_group(pid: int, sig: int) -> bool:
    """Send `sig` to the process group `pid` leads; False if that group is gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def terminate_group(proc: subprocess.Popen, grace: float = TERM_GRACE_S) -> None:
    """SIGTERM the group `proc` leads and wait for `proc`; SIGKILL the group if `proc` is still
    running after `grace` seconds."""
    if not kill_group(proc.pid, signal.SIGTERM):
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, signal.SIGKILL)
        proc.wait()


# What stops a job's process group when its runner gets it: Ctrl-C, `kill`/`dogbreed stop` (SIGTERM),
# a closed terminal or SSH session (SIGHUP). The job runs in its own session, so without these
# handlers it would be orphaned and run on.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class CtrlC:
    """What `ctrl_c_stops_group` saw, and the group it stops (`attach` it once it has started)."""

    pressed: bool = False  # set by the handler of `ctrl_c_stops_group`
    signal_name: str = ""  # SIGINT, SIGTERM or SIGHUP
    proc: subprocess.Popen | None = None
    grace: float = TERM_GRACE_S

    def attach(self, proc: subprocess.Popen) -> None:
        """The group to stop; stopped at once if a signal came while it was starting."""
        self.proc = proc
        if self.pressed:
            self.stop_group()

    def stop_group(self) -> None:
        """SIGTERM to the group, SIGKILL after `grace` seconds if its leader still runs."""
        proc = self.proc
        if proc is None:
            return
        kill_group(proc.pid, signal.SIGTERM)
        escalate = threading.Timer(self.grace, lambda: proc.poll() is None and kill_group(proc.pid, signal.SIGKILL))
        escalate.daemon = True
        escalate.start()


@contextlib.contextmanager
def ctrl_c_stops_group(proc: subprocess.Popen | None = None, grace: float = TERM_GRACE_S) -> Iterator[CtrlC]:
    """In the main thread, make Ctrl-C (and SIGTERM, SIGHUP: `STOP_SIGNALS`) stop the group `proc`
    leads through a handler instead of a KeyboardInterrupt: Python drops an exception raised
    while a finalizer (`__del__`) runs, so an unlucky Ctrl-C would be lost and the job would run
    on. Ctrl-C sends SIGTERM to the group, then SIGKILL after `grace` seconds or at a second
    Ctrl-C; whoever reads `proc`'s output sees it end. Enter it before starting the process and
    `CtrlC.attach` the process, so that no signal falls between the start and the handler. The
    previous handlers are back on exit; `CtrlC.pressed` says whether one of the signals came
    meanwhile. In other threads this changes nothing."""
    ctrl_c = CtrlC(proc=proc, grace=grace)
    if threading.current_thread() is not threading.main_thread():
        yield ctrl_c
        return

    def handler(signum, frame):
        if ctrl_c.pressed:
            if ctrl_c.proc is not None:
                kill_group(ctrl_c.proc.pid, signal.SIGKILL)
            return
        ctrl_c.pressed, ctrl_c.signal_name = True, signal.Signals(signum).name
        ctrl_c.stop_group()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield ctrl_c
    finally:
        for sig, before in previous.items():
            if before is not None:  # None: the previous handler was not set from Python
                signal.signal(sig, before)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """In the main thread, SIGTERM and SIGHUP raise KeyboardInterrupt as Ctrl-C does, so that a
    driver that stops its children on Ctrl-C (the local tuner) does so on `kill` too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, before in previous.items():
            if before is not None:
                signal.signal(sig, before)


def start_detached_worker(module: str, workspace: Workspace, name: str, log_file: Path | None = None) -> int:
    """Start `python -m MODULE WORKSPACE NAME` in a new session, so that it outlives this process
    and a Ctrl-C here does not reach it. Its output goes to `log_file`, or nowhere. Returns its pid."""
    output = open(log_file, "a") if log_file is not None else contextlib.nullcontext(subprocess.DEVNULL)
    with output as out:
        proc = subprocess.Popen([sys.executable, "-m", module, str(workspace.root), name], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc.pid


def detached_worker_main(work: Callable[[Workspace, str], object], argv: list[str] | None = None) -> None:
    """The `main` of a module that `start_detached_worker` starts: `work(workspace, name)` from
    the arguments WORKSPACE NAME (`sys.argv` by default)."""
    workspace, name = sys.argv[1:] if argv is None else argv
    work(Workspace.resolve(workspace), name)
