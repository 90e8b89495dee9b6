"""Reliability: the local endpoint under a bounded load-and-soak with bad requests mixed in,
a crashed server reported clearly, and a catalogue of bad CLI input answered with one line."""

from __future__ import annotations

import http.client
import io
import json
import os
import random
import signal
import socket
import statistics
import threading
import time

import pytest
from PIL import Image

from tests.conftest import run_dogbreed

SOAK_SECONDS = 12
CLIENTS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jpeg(seed: int) -> bytes:
    rng = random.Random(seed)
    im = Image.new("RGB", (96, 80), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(6):
        x, y = rng.randrange(96), rng.randrange(80)
        im.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + 20, y + 20))
    buf = io.BytesIO()
    im.save(buf, "JPEG")
    return buf.getvalue()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


@pytest.fixture
def served(tiny_model_tar, tmp_path):
    env = {"DOGBREED_WORKSPACE": str(tmp_path / "ws")}
    port = free_port()
    proc = run_dogbreed("deploy", "--model-data", tiny_model_tar, "--name", "soak", "--port", port, env=env,
                        timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = json.loads((tmp_path / "ws" / "state.json").read_text())["endpoint"]
    yield {"port": port, "pid": state["pid"], "env": env, "ws": tmp_path / "ws"}
    run_dogbreed("undeploy", "soak", env=env)


def call(conn, body: bytes, ctype: str):
    conn.request("POST", "/invocations", body=body, headers={"Content-Type": ctype})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


BAD = [  # (body, content type, expected status)
    (b"", "image/jpeg", 400),
    (b"\x00\x01garbage" * 50, "image/jpeg", 400),
    (b"hello", "text/plain", 415),
    (b'{"instances": "nope"}', "application/json", 400),
]


@pytest.mark.slow
def test_load_and_soak_mixed_traffic(served):
    images = [jpeg(i) for i in range(6)]
    conn = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=60)
    reference = {i: call(conn, img, "image/jpeg")[1]["predictions"][0][0]["breed"] for i, img in enumerate(images)}
    conn.close()

    results, lock = [], threading.Lock()
    stop_at = time.monotonic() + SOAK_SECONDS
    warm_rss: list[float] = []

    def client(seed: int):
        rng = random.Random(seed)
        c = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=60)
        for _ in range(2000):  # bounded in count as well as time
            if time.monotonic() > stop_at:
                break
            if rng.random() < 0.25:
                body, ctype, expected = rng.choice(BAD)
                kind = ("bad", expected)
            else:
                i = rng.randrange(len(images))
                body, ctype, kind = images[i], "image/jpeg", ("ok", i)
            t = time.perf_counter()
            try:
                status, doc = call(c, body, ctype)
            except (http.client.HTTPException, OSError) as exc:
                status, doc = -1, {"error": repr(exc)}
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=60)
            with lock:
                results.append((kind, status, doc, time.perf_counter() - t))
        c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(3)
    warm_rss.append(rss_mb(served["pid"]))
    for t in threads:
        t.join(SOAK_SECONDS + 120)
    end_rss = rss_mb(served["pid"])

    assert len(results) > 50
    server_errors = [r for r in results if r[1] >= 500 or r[1] < 0]
    assert server_errors == [], server_errors[:3]
    for (kind, arg), status, doc, _ in results:
        if kind == "ok":
            assert status == 200 and doc["predictions"][0][0]["breed"] == reference[arg]
        else:
            assert status == arg and "error" in doc
    lat = sorted(r[3] for r in results if r[0][0] == "ok")
    p50, p99 = statistics.median(lat), lat[int(0.99 * (len(lat) - 1))]
    print(f"\nsoak: {len(results)} requests in {SOAK_SECONDS} s by {CLIENTS} clients, "
          f"valid p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms, RSS {warm_rss[0]:.0f} -> {end_rss:.0f} MB")
    assert end_rss - warm_rss[0] < 100, "server memory kept growing after warm-up"
    assert run_dogbreed("endpoints", env=served["env"]).stdout.count("InService") == 1


def test_crashed_server_is_reported_clearly(served, tmp_path):
    os.kill(served["pid"], signal.SIGKILL)
    time.sleep(0.5)
    img = tmp_path / "dog.jpg"
    img.write_bytes(jpeg(1))
    proc = run_dogbreed("predict", img, env=served["env"])
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert err.startswith("Error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "soak" in err and ("not running" in err or "cannot reach" in err or "Failed" in err), err
    listing = run_dogbreed("endpoints", env=served["env"]).stdout
    assert "InService" not in listing and "soak" in listing


def bad_cli_cases(tmp: "os.PathLike"):
    from pathlib import Path

    tmp = Path(tmp)
    (tmp / "notes.txt").write_text("not an image")
    (tmp / "empty").mkdir()
    (tmp / "corrupt.tar.gz").write_bytes(b"\x1f\x8b\x08 not really gzip")
    (tmp / "conf").mkdir()
    (tmp / "conf" / "dogbreed.toml").write_text('spot = "yes"\n')
    return [
        (["data", "check", tmp / "notes.txt"], 1, "does not exist"),
        (["data", "check", tmp / "empty"], 1, "has no train/ folder"),
        (["data", "synth", "--out", tmp / "notes.txt"], 1, ""),
        (["data", "synth", "--classes", "nope"], 2, "'nope' is not a valid integer"),
        (["train", "--data", tmp / "empty", "--epochs", "1"], 1, ""),
        (["train", "--epochs", "0"], 2, "0 is not in the range"),
        (["train", "--data", tmp, "-H", "learning_rate=0.1"], 1, "unknown hyperparameter"),
        (["train", "--data", tmp, "-H", "oops"], 1, "is not key=value"),
        (["train", "--resume", "no-such-job"], 1, "no local job named 'no-such-job'"),
        (["train", "--from-best"], 1, "no best job recorded"),
        (["tune", "--max-jobs", "2", "--max-parallel-jobs", "5", "--data", tmp], 1, "max-parallel-jobs"),
        (["tune", "--range", "lr=0.1:0.001:log", "--data", tmp], 1, ""),
        (["jobs", "no-such-job"], 1, "no training or tuning job named 'no-such-job'"),
        (["report", "no-such-job"], 1, ""),
        (["deploy", "--model-data", tmp / "missing.tar.gz"], 1, ""),
        (["deploy", "--model-data", tmp / "corrupt.tar.gz"], 1, ""),
        (["predict", tmp / "notes.txt"], 1, ""),
        (["undeploy", "no-such-endpoint"], 1, ""),
        (["--config", tmp / "conf" / "dogbreed.toml", "config", "show"], 1, "spot"),
        (["--config", tmp / "missing.toml", "config", "show"], 1, "missing.toml"),
        (["--backend", "cloud", "jobs"], 2, "'cloud' is not one of"),
    ]


def test_bad_cli_input_catalogue(tmp_path, monkeypatch):
    """Every entry: the right exit code, one clear line, no traceback, nothing written to the data."""
    from click.testing import CliRunner

    from dogbreed.cli import cli

    monkeypatch.setenv("DOGBREED_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    failures = []
    for args, code, text in bad_cli_cases(tmp_path):
        result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=True)
        out = result.output.strip()
        line = out.splitlines()[-1] if out else ""
        ok = (result.exit_code == code and result.exception is None or isinstance(result.exception, SystemExit)) \
            and text in out and "Traceback" not in out and line.startswith("Error:")
        if code == 1:
            ok = ok and len([ln for ln in out.splitlines() if ln.startswith("Error:")]) == 1
        if not ok:
            failures.append((args, result.exit_code, out[-300:], repr(result.exception)))
    assert failures == [], "\n".join(map(repr, failures))
    assert (tmp_path / "notes.txt").read_text() == "not an image"
