"""Warm trial workers: a trial forked from the server behaves like `python hpo.py ARGS` in its own
process: argv, environment, folder, output, exit status, its own session (stop/kill reach it alone)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from dogbreed.backends.local.trial_workers import ForkedProcess, TrialWorkers

SCRIPT = textwrap.dedent("""\
    import os, sys, time
    import torch
    print("argv", sys.argv[1:], flush=True)
    print("cwd", os.getcwd(), flush=True)
    print("env", os.environ.get("TRIAL_VAR"), "threads", torch.get_num_threads(), flush=True)
    print("session", os.getsid(0) == os.getpid(), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    if "--sleep" in sys.argv:
        time.sleep(60)
    if "--crash" in sys.argv:
        raise RuntimeError("boom")
    sys.exit(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 0)
""")


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    with TrialWorkers("hpo.py") as w:
        yield w


@pytest.fixture
def script(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "hpo.py").write_text(SCRIPT)
    return code


def _run(workers, script, *args, env=None):
    proc = workers.launch([sys.executable, "hpo.py", *args], cwd=script,
                          env={**os.environ, "TRIAL_VAR": "x1", "OMP_NUM_THREADS": "1", **(env or {})})
    return proc


def test_a_forked_trial_runs_the_script_as_python_would(workers, script):
    proc = _run(workers, script, "--lr", "0.1", "3")
    assert isinstance(proc, ForkedProcess)
    lines = proc.stdout.read().splitlines()
    assert proc.wait(30) == 3
    assert lines[:5] == ["argv ['--lr', '0.1', '3']", f"cwd {script}", "env x1 threads 1", "session True",
                         "to stderr"]
    proc = _run(workers, script, "--crash")
    out = proc.stdout.read()
    assert proc.wait(30) == 1 and "RuntimeError: boom" in out


def test_killing_a_trial_kills_only_that_trial(workers, script):
    sleeper, other = _run(workers, script, "--sleep"), _run(workers, script, "0")
    assert sleeper.stdout.readline().startswith("argv")
    with pytest.raises(subprocess.TimeoutExpired):
        sleeper.wait(0.1)
    assert sleeper.poll() is None
    os.killpg(sleeper.pid, signal.SIGKILL)  # as the OOM killer or `dogbreed stop` would
    assert sleeper.wait(30) == -signal.SIGKILL
    assert other.wait(30) == 0
    assert _run(workers, script, "5").wait(30) == 5  # the server goes on


def test_other_commands_and_a_closed_server_get_a_fresh_process(script):
    with TrialWorkers("hpo.py") as w:
        proc = w.launch([sys.executable, "-c", "print('plain')"], cwd=script, env=dict(os.environ))
        assert isinstance(proc, subprocess.Popen) and proc.stdout.read() == "plain\n" and proc.wait() == 0
    proc = w.launch([sys.executable, "hpo.py", "4"], cwd=script, env={**os.environ, "TRIAL_VAR": "y"})
    assert isinstance(proc, subprocess.Popen)
    assert "env y" in proc.stdout.read() and proc.wait() == 4
