"""`dogbreed predict img.jpg` against a running local endpoint: the whole CLI process, minus
the model's own time, vs a naive client process (imports torch + boto3 + requests, like the
seed's notebook) vs the bare minimum (a Python process that only POSTs with http.client).

    .venv/bin/python benchmarks/bench_predict_cli.py [--quick]

"The model's own time" = the same POST from an already running process (HTTP + decode +
forward), measured interleaved with the process runs. Target: < 0.5 s of CLI overhead.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import free_port, make_model, start  # noqa: E402
from common import BIN, figure, print_table, save  # noqa: E402

NAIVE = ("import sys, torch, boto3, requests\n"
         "r = requests.post(sys.argv[1] + '/invocations', data=open(sys.argv[2], 'rb').read(),"
         " headers={'Content-Type': 'image/jpeg'})\nprint(r.json())\n")
BARE = ("import http.client, sys\nc = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))\n"
        "c.request('POST', '/invocations', open(sys.argv[2], 'rb').read(), {'Content-Type': 'image/jpeg'})\n"
        "print(c.getresponse().read()[:80])\n")


def timed_run(cmd, env=None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="resnet18 at 112 px, 5 runs each")
    a = p.parse_args(argv)
    arch, size, runs = ("resnet18", 112, 5) if a.quick else ("resnet50", 224, 10)
    tmp = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    server = None
    try:
        from PIL import Image

        model_dir = make_model(tmp, arch, size)
        img = tmp / "dog.jpg"
        Image.new("RGB", (400, 300), (150, 110, 60)).save(img, "JPEG")
        port = free_port()
        server = start([sys.executable, "-m", "dogbreed.serving.server", str(model_dir), "--port", str(port)], port)
        ws = tmp / "ws"
        ws.mkdir()
        (ws / "state.json").write_text(
            '{"endpoint": {"name": "bench", "backend": "local", "url": "http://127.0.0.1:%d"}}' % port)
        env = dict(os.environ, DOGBREED_WORKSPACE=str(ws))
        body = img.read_bytes()
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def model_time() -> float:
            t = time.perf_counter()
            conn.request("POST", "/invocations", body, {"Content-Type": "image/jpeg"})
            conn.getresponse().read()
            return time.perf_counter() - t

        ours_cmd = [str(BIN / "dogbreed"), "predict", str(img)]
        naive_cmd = [sys.executable, "-c", NAIVE, f"http://127.0.0.1:{port}", str(img)]
        bare_cmd = [sys.executable, "-c", BARE, str(port), str(img)]
        for cmd in (ours_cmd, naive_cmd, bare_cmd):  # warm the page cache
            timed_run(cmd, env)
        rows = {"ours": [], "naive": [], "bare": [], "model": []}
        for _ in range(runs):  # interleaved, so drift hits all of them alike
            rows["model"].append(model_time())
            rows["ours"].append(timed_run(ours_cmd, env))
            rows["naive"].append(timed_run(naive_cmd, env))
            rows["bare"].append(timed_run(bare_cmd, env))
        med = {k: statistics.median(v) for k, v in rows.items()}
        over = {k: (med[k] - med["model"]) * 1000 for k in ("ours", "naive", "bare")}
        figures = [figure("predict CLI overhead (process - model time)", round(over["ours"], 1),
                          round(over["naive"], 1), round(over["bare"], 1), "ms", target="< 500 ms",
                          higher_is_better=False, note=f"model time {med['model'] * 1000:.0f} ms")]
        print_table(figures, f"predict CLI ({arch}, {size} px, median of {runs})")
        print(f"whole process: ours {med['ours'] * 1000:.0f} ms, naive {med['naive'] * 1000:.0f} ms, "
              f"bare {med['bare'] * 1000:.0f} ms; model {med['model'] * 1000:.0f} ms")
        save("predict_cli", figures, medians_s=med)
    finally:
        if server:
            server.terminate()
            server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
