import json
import multiprocessing as mp

import pytest

from dogbreed.errors import StateError
from dogbreed.workspace import Workspace


def test_update_merges_and_deletes(tmp_path):
    ws = Workspace.resolve(tmp_path / "w")
    ws.update(a=1, b={"x": 2})
    ws.update(a=None, c="z")
    assert ws.state() == {"b": {"x": 2}, "c": "z"}
    assert json.loads(ws.state_path.read_text()) == ws.state()


def test_require_names_the_fix(tmp_path):
    with pytest.raises(StateError, match="no best job recorded.*run `dogbreed tune`"):
        Workspace.resolve(tmp_path).require("best_job", "run `dogbreed tune` first")


def test_corrupt_state_is_reported_not_lost(tmp_path):
    ws = Workspace.resolve(tmp_path)
    ws.root.mkdir(parents=True, exist_ok=True)
    ws.state_path.write_text("{torn")
    with pytest.raises(StateError, match="not valid JSON"):
        ws.state()
    assert ws.state_path.read_text() == "{torn"


def _bump(root, n):
    ws = Workspace.resolve(root)
    for i in range(n):
        ws.update(**{f"k{mp.current_process().pid}_{i}": i})


def test_concurrent_updates_lose_nothing(tmp_path):
    procs = [mp.Process(target=_bump, args=(tmp_path, 20)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert len(Workspace.resolve(tmp_path).state()) == 60
    assert not list(tmp_path.glob(".state.json.*"))  # no temp files left behind


def test_state_survives_a_kill_mid_write(tmp_path):
    """SIGKILL a process that rewrites the state in a tight loop: the file always parses."""
    import signal
    import subprocess
    import sys
    import time

    code = ("import sys\nfrom dogbreed.workspace import Workspace\nws = Workspace.resolve(sys.argv[1])\n"
            "i = 0\nwhile True:\n    i += 1\n    ws.update(counter=i, blob='x' * 100000)\n")
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = Workspace.resolve(tmp_path).state()
        assert state["counter"] >= 1 and len(state["blob"]) == 100000
