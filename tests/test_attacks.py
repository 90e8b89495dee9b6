"""Issue 16's attacks, performed against the real server (deployed by the real CLI) and the real CLI.

After every attack the next valid request is answered and the workspace still lists its endpoint.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_dogbreed
from tests.test_handler import encode

MAX_CONNECTIONS = 6
HEADER_DEADLINE_S = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_dog() -> bytes:
    return encode(Image.new("RGB", (64, 48), (120, 80, 40)))


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send `data` as is and read the whole answer until the server closes (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
            if b"\r\n\r\n" in out and b"Connection: close" not in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length")), 0)
                if len(rest) >= length:
                    break
        return out


@pytest.fixture(scope="module")
def ep(tiny_model_tar, tmp_path_factory):
    ws = tmp_path_factory.mktemp("attack-ws")
    env = {"DOGBREED_WORKSPACE": str(ws), "DOGBREED_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
           "DOGBREED_HEADER_DEADLINE_S": str(HEADER_DEADLINE_S)}
    port = free_port()
    proc = run_dogbreed("deploy", "--model-data", tiny_model_tar, "--name", "target", "--port", port, env=env,
                        timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((ws / "endpoints" / "target" / "endpoint.json").read_text())
    yield {"ws": ws, "env": env, "port": port, "pid": record["extra"]["pid"], "token": record["extra"]["token"]}
    run_dogbreed("undeploy", "target", env=env)


def assert_still_serves(ep):
    status, headers, body = request(ep["port"], "POST", "/invocations", small_dog(), {"Content-Type": "image/png"})
    assert status == 200 and len(json.loads(body)["predictions"][0]) == 5, body
    assert headers["X-Dogbreed-Endpoint"] == ep["token"]
    listing = run_dogbreed("endpoints", env=ep["env"])
    assert listing.returncode == 0 and "target" in listing.stdout and "InService" in listing.stdout, listing.stdout


# -- memory ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_bit_bomb() -> bytes:
    """5 kB on the wire, 6300x6300 pixels (~400 MB) once decoded and converted to RGB."""
    return encode(Image.new("1", (6300, 6300)))


def test_json_body_of_png_bombs_is_refused_before_decoding(ep, one_bit_bomb):
    body = json.dumps({"instances": [base64.b64encode(one_bit_bomb).decode()] * 8}).encode()
    assert len(body) < 100_000
    before = int(Path(f"/proc/{ep['pid']}/status").read_text().split("VmHWM:")[1].split()[0])
    status, _, doc = request(ep["port"], "POST", "/invocations", body, {"Content-Type": "application/json"})
    assert status == 413 and "decode budget" in json.loads(doc)["error"]
    after = int(Path(f"/proc/{ep['pid']}/status").read_text().split("VmHWM:")[1].split()[0])
    assert after - before < 200_000, "the images must not have been decoded (peak RSS grew by > 200 MB)"
    assert_still_serves(ep)


def test_budget_answers_503_with_retry_after_while_others_hold_it():
    from dogbreed.serving.budget import DecodeBudget, OverBudget

    budget = DecodeBudget(100, wait_s=0.2)
    held, release = threading.Event(), threading.Event()

    def holder():
        with budget.admit(80):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    with pytest.raises(OverBudget) as exc:
        with budget.admit(30):
            pass
    assert exc.value.status == 503 and exc.value.retry_after
    release.set()
    t.join()
    with budget.admit(100):  # freed again
        assert budget.used == 100
    assert budget.used == 0


# -- protocol -------------------------------------------------------------------------------------
def test_deeply_nested_json_is_a_400(ep):
    body = b"[" * 100_000 + b"]" * 100_000
    status, _, doc = request(ep["port"], "POST", "/invocations", body, {"Content-Type": "application/json"})
    assert status == 400 and "nested too deeply" in json.loads(doc)["error"]
    assert_still_serves(ep)


@pytest.mark.parametrize("path, status", [("/invocations", 411), ("/nowhere", 404)])
def test_non_ascii_content_length_is_answered_not_dropped(ep, path, status):
    answer = raw_exchange(ep["port"], f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \u00b2\r\n"
                                      "Content-Type: image/png\r\n\r\n".encode())
    assert answer.startswith(f"HTTP/1.1 {status}".encode()), answer[:200]
    assert_still_serves(ep)


@pytest.mark.parametrize("host, status", [("evil.example:80", 403), ("rebind.attacker.test", 403),
                                          ("localhost", 200), ("127.0.0.1:1", 200), ("[::1]:8080", 200)])
def test_host_header_must_name_the_loopback_address(ep, host, status):
    got, headers, body = request(ep["port"], "GET", "/ping", headers={"Host": host})
    assert got == status, body
    if status == 403:
        assert "--allow-host" in json.loads(body)["error"]
        assert "X-Dogbreed-Endpoint" not in headers  # a rebinding page does not learn the token
    assert_still_serves(ep)


def test_headers_trickling_in_are_cut_off_at_the_deadline(ep):
    with socket.create_connection(("127.0.0.1", ep["port"]), timeout=30) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\n")
        answer = b""
        for _ in range(40):  # one header byte every 0.5 s: each read is quick, the whole is not
            try:
                s.sendall(b"X")
            except OSError:
                break
            time.sleep(0.5)
            s.settimeout(0.01)
            try:
                answer += s.recv(4096)
            except (TimeoutError, BlockingIOError):
                pass
            except OSError:
                break
            finally:
                s.settimeout(30)
            if answer:
                break
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert_still_serves(ep)


def test_connections_beyond_the_cap_get_503_and_the_server_recovers(ep):
    idle = []
    try:
        for _ in range(MAX_CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", ep["port"]), timeout=10)
            s.sendall(b"GET /ping HTTP/1.1\r\n")  # a request begun, never finished
            idle.append(s)
        time.sleep(0.3)  # let the server hand each one to a thread
        answer = raw_exchange(ep["port"], b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After" in answer, answer
    finally:
        for s in idle:
            s.close()
    time.sleep(0.3)
    assert_still_serves(ep)


# -- identity -------------------------------------------------------------------------------------
class Impostor(BaseHTTPRequestHandler):
    def do_GET(self):
        self._ok()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._ok()

    def _ok(self):
        body = json.dumps({"predictions": [[{"breed": "Impostor", "index": 0, "probability": 1.0}]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_predict_refuses_an_impostor_on_a_dead_endpoints_port(tiny_model_tar, tmp_path):
    env = {"DOGBREED_WORKSPACE": str(tmp_path / "ws")}
    port = free_port()
    assert run_dogbreed("deploy", "--model-data", tiny_model_tar, "--name", "victim", "--port", port, env=env,
                        timeout=180).returncode == 0
    record = json.loads((tmp_path / "ws" / "endpoints" / "victim" / "endpoint.json").read_text())
    os.killpg(record["extra"]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        try:
            impostor = HTTPServer(("127.0.0.1", port), Impostor)
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    try:
        img = tmp_path / "dog.png"
        img.write_bytes(small_dog())
        proc = run_dogbreed("predict", img, env=env)
        assert proc.returncode == 1 and "Impostor" not in proc.stdout
        assert "not this endpoint" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        listing = run_dogbreed("endpoints", env=env)
        assert "victim" in listing.stdout and "Failed" in listing.stdout
    finally:
        impostor.shutdown()
        impostor.server_close()
        run_dogbreed("undeploy", "victim", env=env)


def test_two_deploys_on_one_port_yield_one_endpoint(tiny_model_tar, tmp_path):
    env = dict(os.environ, DOGBREED_WORKSPACE=str(tmp_path / "ws"))
    port = free_port()
    from tests.conftest import BIN

    procs = [subprocess.Popen([str(BIN / "dogbreed"), "deploy", "--model-data", str(tiny_model_tar), "--name", n,
                               "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for n in ("twin-a", "twin-b")]
    outs = [p.communicate(timeout=240) for p in procs]
    try:
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 1], outs
        loser = outs[[p.returncode for p in procs].index(1)]
        assert "Traceback" not in loser[1] and ("in use" in loser[1] or "exited" in loser[1]), loser
        listing = run_dogbreed("endpoints", env={"DOGBREED_WORKSPACE": str(tmp_path / "ws")}).stdout
        assert listing.count("InService") == 1, listing
    finally:
        for n in ("twin-a", "twin-b"):
            run_dogbreed("undeploy", n, env={"DOGBREED_WORKSPACE": str(tmp_path / "ws")})


# -- model archives -------------------------------------------------------------------------------
def archive_with(tiny_model_tar: Path, out: Path, extra: dict[str, bytes]) -> Path:
    import io

    with tarfile.open(tiny_model_tar) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
        for name, data in extra.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


def test_archive_with_its_own_code_is_refused_unless_trusted(tiny_model_tar, tmp_path):
    from dogbreed.job_folder import scripts_dir
    from dogbreed.serving.model_dir import prepare_model_dir

    marker = tmp_path / "pwned"
    evil = archive_with(tiny_model_tar, tmp_path / "evil.tar.gz", {
        "code/inference.py": f"open({str(marker)!r}, 'w').write('ran')\n".encode()
        + (scripts_dir() / "inference.py").read_bytes()})
    env = {"DOGBREED_WORKSPACE": str(tmp_path / "ws")}
    proc = run_dogbreed("deploy", "--model-data", evil, "--name", "evil", "--port", free_port(), env=env)
    assert proc.returncode == 1 and "--trust-code" in proc.stderr and "code/inference.py" in proc.stderr, proc.stderr
    assert not marker.exists() and not (tmp_path / "ws" / "endpoints" / "evil").exists()
    assert prepare_model_dir(str(evil), tmp_path / "trusted", trust_code=True).joinpath("code/inference.py").is_file()
    ours = archive_with(tiny_model_tar, tmp_path / "ours.tar.gz",
                        {"code/inference.py": (scripts_dir() / "inference.py").read_bytes()})
    assert prepare_model_dir(str(ours), tmp_path / "ours").is_dir()  # the project's own handler is not foreign


def test_archive_expanding_past_the_cap_is_refused(tiny_model_tar, tmp_path):
    bomb = archive_with(tiny_model_tar, tmp_path / "zeros.tar.gz", {"padding.bin": bytes(3 * 2**20)})
    env = {"DOGBREED_WORKSPACE": str(tmp_path / "ws"), "DOGBREED_MAX_MODEL_MB": "2"}
    proc = run_dogbreed("deploy", "--model-data", bomb, "--name", "zeros", "--port", free_port(), env=env)
    assert proc.returncode == 1 and "expands to more than 2 MB" in proc.stderr, proc.stderr
    assert not (tmp_path / "ws" / "endpoints" / "zeros").exists()


# -- names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [("undeploy", "../../../victim"), ("jobs", "../../victim"),
                                  ("report", "../../victim"), ("predict", "x.png", "--endpoint", "../victim")])
def test_a_name_never_becomes_a_path_outside_the_workspace(tmp_path, args):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "endpoint.json").write_text(json.dumps({"name": "victim", "backend": "local", "status": "InService"}))
    (victim / "job.json").write_text("{}")
    (tmp_path / "x.png").write_bytes(small_dog())
    ws = tmp_path / "a" / "b" / "ws"
    proc = run_dogbreed(*args, env={"DOGBREED_WORKSPACE": str(ws)}, cwd=tmp_path)
    assert proc.returncode != 0 and "not a valid name" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (victim / "endpoint.json").is_file()


# -- corrupt workspace files ----------------------------------------------------------------------
CORRUPT_STATES = {
    "list": b"[1, 2]", "string": b'"hello"', "wrong-types": b'{"endpoint": "x", "model_data": 3}',
    "missing-fields": b'{"endpoint": {"url": 5}}', "random-bytes": bytes(range(256)), "truncated": b'{"endp',
}


@pytest.mark.parametrize("kind", [*CORRUPT_STATES, "directory"])
@pytest.mark.parametrize("command", [("endpoints",), ("predict", "x.png"), ("deploy", "--port", "1"),
                                     ("train", "--from-best", "--epochs", "1"), ("undeploy",)])
def test_corrupt_state_json_is_one_line_naming_the_file(tmp_path, kind, command):
    ws = tmp_path / "ws"
    ws.mkdir()
    if kind == "directory":
        (ws / "state.json").mkdir()
    else:
        (ws / "state.json").write_bytes(CORRUPT_STATES[kind])
    (tmp_path / "x.png").write_bytes(small_dog())
    proc = run_dogbreed(*command, env={"DOGBREED_WORKSPACE": str(ws)}, cwd=tmp_path, timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == (0 if command == ("endpoints",) else 1) and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and str(ws / "state.json") in err and "rm " in err, err


def test_truncated_endpoint_json_still_lists_and_stops_the_server(ep, tiny_model_tar, tmp_path):
    env = {"DOGBREED_WORKSPACE": str(tmp_path / "ws")}
    port = free_port()
    assert run_dogbreed("deploy", "--model-data", tiny_model_tar, "--name", "hidden", "--port", port, env=env,
                        timeout=180).returncode == 0
    record = tmp_path / "ws" / "endpoints" / "hidden" / "endpoint.json"
    pid = json.loads(record.read_text())["extra"]["pid"]
    record.write_text(record.read_text()[:40])
    (tmp_path / "ws" / "state.json").write_text("[]")  # and the state too: the server is still listed
    listing = run_dogbreed("endpoints", env=env)
    assert listing.returncode == 0 and "hidden" in listing.stdout and "Broken" in listing.stdout
    assert f"pid {pid}" in listing.stdout, listing.stdout
    proc = run_dogbreed("undeploy", "hidden", env=env)
    assert proc.returncode == 0, proc.stderr
    from dogbreed.backends.local.endpoints import process_running

    assert not process_running(pid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the port is free again
    assert_still_serves(ep)


def test_truncated_job_json_is_listed_as_broken(workspace, cli):
    good, bad = workspace / "jobs" / "good-job", workspace / "jobs" / "bad-job"
    good.mkdir(parents=True)
    bad.mkdir()
    (good / "job.json").write_text(json.dumps({"name": "good-job", "status": "Completed", "backend": "local",
                                               "created": time.time()}))
    (bad / "job.json").write_text('{"name": "bad-job", "sta')
    proc = run_dogbreed("jobs", env={"DOGBREED_WORKSPACE": str(workspace)})
    assert proc.returncode == 0 and "good-job" in proc.stdout and "bad-job" in proc.stdout and "Broken" in proc.stdout
    assert f"bad-job: {bad / 'job.json'} is unreadable" in proc.stderr
    proc = run_dogbreed("jobs", "bad-job", env={"DOGBREED_WORKSPACE": str(workspace)})
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1 and str(bad / "job.json") in err, err


# -- predict's inputs -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind, words", [("fifo", "FIFO"), ("loop", "symbolic link loop"),
                                         ("dangling", "symbolic link to nothing"), ("huge", "over the 6 MB")])
def test_predict_names_what_the_file_is(ep, tmp_path, kind, words):
    path = tmp_path / f"{kind}.jpg"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        path.symlink_to(tmp_path / "loop2.jpg")
        (tmp_path / "loop2.jpg").symlink_to(path)
    elif kind == "dangling":
        path.symlink_to(tmp_path / "nothing.jpg")
    else:
        with open(path, "wb") as fh:  # sparse: 200 MB that predict must refuse without reading
            fh.truncate(200 * 2**20)
    proc = run_dogbreed("predict", path, env=ep["env"], timeout=60)
    assert proc.returncode == 1 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert_still_serves(ep)


# -- server.log -----------------------------------------------------------------------------------
def test_server_log_is_rotated(tmp_path):
    log = tmp_path / "server.log"
    code = ("import sys\nfrom dogbreed.serving.server import log_rotator\n"
            "tick = log_rotator(sys.argv[1], max_bytes=1000)\n"
            "print('old ' * 400, flush=True)\ntick()\nprint('new', flush=True)\n"
            "print('err', file=sys.stderr, flush=True)\n")
    with open(log, "ab") as out:
        subprocess.run([sys.executable, "-c", code, str(log)], stdout=out, stderr=out, check=True,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert log.read_text() == "new\nerr\n"
    assert (tmp_path / "server.log.1").read_text().startswith("old old")


# -- dataset symlinks -----------------------------------------------------------------------------
def test_data_check_and_the_shared_file_list_follow_symlinks_like_training(sample_data, tmp_path, cli, workspace):
    import shutil

    from dogbreed.data.check import dataset_files
    from dogbreed.training.data import DogImages

    data = tmp_path / "linked"
    shutil.copytree(sample_data, data)
    moved = sorted((data / "train").iterdir())[-1]
    elsewhere = tmp_path / "elsewhere" / moved.name
    elsewhere.parent.mkdir()
    moved.rename(elsewhere)
    moved.symlink_to(elsewhere, target_is_directory=True)  # a symlinked class folder (the case)
    (data / "train" / "loop").symlink_to(data / "train" / "loop")
    (data / "valid" / "gone.jpg").symlink_to(tmp_path / "nothing.jpg")

    files = dataset_files(data)
    classes_listed = {rel.split("/")[1] for rel, _ in files.files if rel.startswith("train/")}
    assert classes_listed == set(DogImages.scan(data).classes)  # what upload sends == what training sees
    assert any(rel.startswith(f"train/{moved.name}/") for rel, _ in files.files)
    assert files.followed == [f"train/{moved.name}"]
    assert dict(files.skipped) == {"train/loop": "symbolic link loop", "valid/gone.jpg": "symbolic link to nothing"}

    result = cli("data", "check", data)
    assert result.exit_code == 0, result.output
    assert f"symlinks: 1 followed (train/{moved.name})" in result.output
    assert "skipped: train/loop (symbolic link loop)" in result.output
