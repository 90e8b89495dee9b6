"""The local endpoint for real: `dogbreed deploy` starts the server on 127.0.0.1, every bad
input of the issue gets a 4xx JSON error (never a 5xx, never a dead worker) and the next
valid request still answers correctly; `predict` through the real CLI; `undeploy` leaves no
process behind and frees the port."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_dogbreed
from tests.test_handler import encode, png_declaring


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dog(seed: int = 1, size=(120, 90)) -> Image.Image:
    """A deterministic stand-in photo (smooth colour blobs)."""
    import numpy as np

    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.BILINEAR)


@pytest.fixture(scope="module")
def artifact(tiny_model_tar) -> Path:
    return tiny_model_tar


@pytest.fixture(scope="module")
def endpoint(artifact, tmp_path_factory):
    """Deployed with the real `dogbreed` executable; undeployed by the last test (or here)."""
    ws = tmp_path_factory.mktemp("ws")
    env = {"DOGBREED_WORKSPACE": str(ws)}
    port = free_port()
    proc = run_dogbreed("deploy", "--model-data", artifact, "--name", "test-ep", "--port", port,
                        "--max-wait-ms", 100, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = json.loads((ws / "state.json").read_text())["endpoint"]
    info = {"ws": ws, "env": env, "port": port, "url": state["url"], "pid": state["pid"], "state": state}
    yield info
    if (ws / "endpoints" / "test-ep").exists():
        run_dogbreed("undeploy", "test-ep", env=env)


def post(port: int, body: bytes, ctype: str = "image/png", accept: str | None = None, path="/invocations"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": ctype}
    if accept is not None:
        headers["Accept"] = accept
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), json.loads(resp.read()), resp.getheader("X-Batch-Size")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def reference(endpoint):
    """What the endpoint answers for a valid image: every check after a bad request compares to it."""
    status, ctype, doc, _ = post(endpoint["port"], encode(dog()), accept="application/json; output=logits")
    assert status == 200 and ctype == "application/json"
    return doc["logits"][0]


def assert_still_serves(endpoint, reference):
    status, _, doc, _ = post(endpoint["port"], encode(dog()), accept="application/json; output=logits")
    assert status == 200
    assert max(abs(a - b) for a, b in zip(doc["logits"][0], reference)) < 1e-5
    conn = http.client.HTTPConnection("127.0.0.1", endpoint["port"], timeout=10)
    conn.request("GET", "/ping")
    assert conn.getresponse().status == 200
    conn.close()


def test_deploy_records_the_endpoint(endpoint):
    assert endpoint["state"]["backend"] == "local" and endpoint["url"] == f"http://127.0.0.1:{endpoint['port']}"
    folder = endpoint["ws"] / "endpoints" / "test-ep"
    assert (folder / "model" / "model.pth").is_file() and (folder / "model" / "code" / "inference.py").is_file()
    listing = run_dogbreed("endpoints", env=endpoint["env"])
    assert listing.returncode == 0 and "test-ep" in listing.stdout and "InService" in listing.stdout


def test_default_answer_is_top_5_breeds(endpoint, reference):
    status, _, doc, _ = post(endpoint["port"], encode(dog(), "JPEG"), ctype="image/jpeg")
    assert status == 200
    (preds,) = doc["predictions"]
    assert len(preds) == 5 and {p["breed"] for p in preds} == {f"Breed {i}" for i in range(1, 6)}
    assert preds[0]["probability"] >= preds[-1]["probability"]


def truncated_jpeg() -> bytes:
    data = encode(dog(size=(200, 200)), "JPEG")
    return data[: len(data) // 2]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD_REQUESTS = [  # (id, body, content type, accept, status, words in the error)
    ("empty", b"", "image/jpeg", None, 400, "empty request body"),
    ("random-bytes", bytes(range(256)) * 40, "image/jpeg", None, 400, "not a supported image"),
    ("truncated-jpeg", truncated_jpeg(), "image/jpeg", None, 400, "truncated"),
    ("bomb", png_declaring(30000, 30000), "image/png", None, 413, "too many pixels"),
    ("big-declared", png_declaring(8000, 8000), "image/png", None, 413, "pixels"),
    ("over-6MB", b"\xff" * (6 * 1024 * 1024 + 1), "image/jpeg", None, 413, "byte limit"),
    ("content-type", b"a,b,c\n", "text/csv", None, 415, "unsupported content type"),
    ("no-content-type", encode(dog()), "", None, 415, "unsupported content type"),
    ("accept", encode(dog()), "image/png", "text/csv", 406, "cannot answer"),
    ("top-k", encode(dog()), "image/png", "application/json; top_k=-1", 406, "top_k"),
    ("bad-json", b"{not json", "application/json", None, 400, "not valid JSON"),
    ("url", json.dumps({"instances": ["http://169.254.169.254/latest/"]}).encode(), "application/json", None, 400,
     "URLs are not fetched"),
    ("json-not-utf8", b"\xff\xfe{}", "application/json", None, 400, "not UTF-8"),
]


@pytest.mark.parametrize("body, ctype, accept, status, words", [b[1:] for b in BAD_REQUESTS],
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_is_a_4xx_json_error_and_the_server_keeps_serving(endpoint, reference, body, ctype, accept,
                                                                      status, words):
    got, gtype, doc, _ = post(endpoint["port"], body, ctype, accept)
    assert (got, gtype) == (status, "application/json") and words in doc["error"], doc
    assert_still_serves(endpoint, reference)


@pytest.mark.parametrize("name, make", [
    ("png-alpha", lambda: encode(dog().convert("RGBA"))),
    ("16-bit", lambda: encode(Image.new("I;16", (60, 60), 30000))),
    ("cmyk-jpeg", lambda: encode(dog().convert("CMYK"), "JPEG")),
])
def test_unusual_images_are_converted_and_answered(endpoint, reference, name, make):
    status, _, doc, _ = post(endpoint["port"], make(), "application/x-image")
    assert status == 200 and len(doc["predictions"][0]) == 5
    assert_still_serves(endpoint, reference)


def test_alpha_png_answers_like_the_same_opaque_image(endpoint, reference):
    status, _, doc, _ = post(endpoint["port"], encode(dog().convert("RGBA")), accept="application/json; output=logits")
    assert status == 200 and max(abs(a - b) for a, b in zip(doc["logits"][0], reference)) < 1e-5


def test_json_batch_and_concurrent_requests_are_batched_correctly(endpoint, reference):
    images = [encode(dog(s)) for s in range(1, 5)]
    status, _, doc, _ = post(endpoint["port"], json.dumps({"instances": [b64(i) for i in images]}).encode(),
                             "application/json", "application/json; output=logits")
    assert status == 200 and len(doc["logits"]) == 4
    singles = [post(endpoint["port"], i, accept="application/json; output=logits")[2]["logits"][0] for i in images]
    for got, want in zip(doc["logits"], singles):
        assert max(abs(a - b) for a, b in zip(got, want)) < 0.05  # bf16 batch vs single: tiny drift allowed
    results = [None] * 8

    def client(i):
        results[i] = post(endpoint["port"], images[i % 4], accept="application/json; output=logits")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r[0] == 200 for r in results)
    for i, (_, _, d, _) in enumerate(results):
        assert max(abs(a - b) for a, b in zip(d["logits"][0], singles[i % 4])) < 0.05
    assert max(int(r[3]) for r in results) > 1, "concurrent requests should share model calls"


def test_predict_cli_imports_no_heavy_module(endpoint, tmp_path):
    img = tmp_path / "dog.jpg"
    img.write_bytes(encode(dog(), "JPEG"))
    code = ("import sys\nfrom dogbreed.cli import cli\n"
            "try:\n    cli(['predict', sys.argv[1], '--top-k', '3'], prog_name='dogbreed')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('HEAVY', sorted(m for m in ('torch', 'torchvision', 'sagemaker', 'boto3', 'botocore', 'numpy',"
            " 'requests') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(img)], capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, **endpoint["env"]})
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout and "1. Breed" in proc.stdout and "3. Breed" in proc.stdout


def test_predict_cli_folder_json_raw_and_errors(endpoint, tmp_path):
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        (tmp_path / "imgs" / f"d{i}.png").write_bytes(encode(dog(i)))
    proc = run_dogbreed("predict", tmp_path / "imgs", "--json", "--top-k", 2, env=endpoint["env"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [Path(d["image"]).name for d in doc] == ["d0.png", "d1.png", "d2.png"]
    assert all(len(d["predictions"]) == 2 for d in doc)
    raw = run_dogbreed("predict", tmp_path / "imgs" / "d0.png", "--raw", env=endpoint["env"])
    assert raw.returncode == 0 and len(json.loads(raw.stdout)["logits"]) == 5
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"not an image")
    bad = run_dogbreed("predict", tmp_path / "imgs", env=endpoint["env"])
    assert bad.returncode == 1 and "broken.jpg: error: the endpoint answered 400" in bad.stderr
    assert "1 of 4 images failed" in bad.stderr and "d2.png" in bad.stdout
    missing = run_dogbreed("predict", tmp_path / "nope.jpg", env=endpoint["env"])
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_second_deploy_on_a_busy_port_is_a_clear_error(endpoint, artifact):
    proc = run_dogbreed("deploy", "--model-data", artifact, "--name", "other", "--port", endpoint["port"],
                        env=endpoint["env"])
    assert proc.returncode == 1 and f"port {endpoint['port']} on 127.0.0.1 is in use" in proc.stderr
    assert "dogbreed undeploy test-ep" in proc.stderr


def test_undeploy_stops_the_server_and_frees_the_port(endpoint):
    from dogbreed.backends.local.endpoints import port_free, process_running

    pid, port = endpoint["pid"], endpoint["port"]
    assert process_running(pid)
    proc = run_dogbreed("undeploy", env=endpoint["env"])
    assert proc.returncode == 0 and "endpoint test-ep deleted" in proc.stdout
    assert not process_running(pid) and port_free(port)
    assert not (endpoint["ws"] / "endpoints" / "test-ep").exists()
    assert "endpoint" not in json.loads((endpoint["ws"] / "state.json").read_text())
    after = run_dogbreed("predict", __file__, env=endpoint["env"])
    assert after.returncode == 1 and "no endpoint deployed" in after.stderr


def test_auto_delete_after_stops_a_local_endpoint_by_itself(artifact, tmp_path):
    import time

    env = {"DOGBREED_WORKSPACE": str(tmp_path / "ws")}
    port = free_port()
    proc = run_dogbreed("deploy", "--model-data", artifact, "--name", "ttl", "--port", port,
                        "--auto-delete-after", "4s", env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert post(port, encode(dog(), "PNG"))[0] == 200  # serving until its lifetime ends
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.3)
    else:
        raise AssertionError("the endpoint outlived --auto-delete-after")
    assert "lifetime of 4 s reached" in (tmp_path / "ws" / "endpoints" / "ttl" / "server.log").read_text()
    listing = run_dogbreed("endpoints", env=env).stdout
    assert "InService" not in listing


def test_deploy_errors_are_one_line(tmp_path, workspace, cli):
    bad_tar = tmp_path / "model.tar.gz"
    with tarfile.open(bad_tar, "w:gz") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    r = cli("deploy", "--model-data", bad_tar, "--port", free_port())
    assert r.exit_code == 1 and "cannot extract" in r.output and not (tmp_path / "evil.txt").exists()
    r = cli("deploy", "--model-data", "s3://bucket/model.tar.gz")
    assert r.exit_code == 1 and "serves a model on this machine" in r.output
    r = cli("deploy")
    assert r.exit_code == 1 and "no model data recorded" in r.output
    r = cli("undeploy", "ghost")
    assert r.exit_code == 1 and "no local endpoint named 'ghost'" in r.output


def test_serve_runs_the_server_in_the_foreground_until_ctrl_c(artifact, tmp_path):
    import os
    import signal
    import time

    from tests.conftest import BIN

    port = free_port()
    env = {**os.environ, "DOGBREED_WORKSPACE": str(tmp_path / "ws")}
    proc = subprocess.Popen([str(BIN / "dogbreed"), "serve", str(artifact), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        assert post(port, encode(dog(), "PNG"))[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "(max batch 16, max wait 15 ms)" in out and "server stopped" in out


def test_serve_errors_are_one_line(tmp_path, workspace, cli):
    r = cli("serve", "s3://bucket/model.tar.gz")
    assert r.exit_code == 1 and "serves a model on this machine" in r.output
    r = cli("serve", str(tmp_path / "missing.tar.gz"))
    assert r.exit_code == 1 and "does not exist" in r.output


def test_the_server_process_spins_openmp_threads_briefly_unless_the_user_said_otherwise():
    code = ("import contextlib, os, sys\nfrom dogbreed.serving import server\n"
            "with contextlib.redirect_stdout(open(os.devnull, 'w')), contextlib.suppress(SystemExit):\n"
            "    server.main(['--help'])\n"
            "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    for env, expected in (({}, "30000 False"), ({"GOMP_SPINCOUNT": "1000"}, "1000 False")):
        environ = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"} | env
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=environ)
        assert proc.stdout.strip() == expected, proc.stderr
