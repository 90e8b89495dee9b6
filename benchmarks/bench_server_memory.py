"""Server memory under hostile requests: peak RSS of dogbreed's server (decode budget on) vs the same
server with the budget off (the pre-issue-16 behaviour) vs the loaded model at rest, one run.

    .venv/bin/python benchmarks/bench_server_memory.py [--quick]

Each attack gets a fresh server of each kind (peak RSS, VmHWM, only grows), alternating kinds;
after the attack a valid request must still be answered. The attacks (issue 16's, and worse):
- json-8-bombs: one JSON body (~50 kB) of 8 x 1-bit PNGs declaring 6300x6300 pixels;
- 4x-16bit-6300: 4 concurrent 16-bit PNGs of 6300x6300 (smooth, ~100 kB each);
- 8x-16bit-3000: 8 concurrent 16-bit PNGs of 3000x3000 (each fits the budget, together they do not);
- 16x-json-2-rgb: 16 concurrent JSON bodies of 2 RGB PNGs of 4000x4000 each.
Also p50 latency of a small JPEG, budget on vs off (the header pass must cost ~nothing).
Full: resnet50 224 px, 133 classes, the default 1024 MB decode budget; --quick: resnet18 112 px, the
attacks' sides halved and the budget quartered (256 MB), so each attack meets the budget as in full.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import free_port, make_images, make_model  # noqa: E402
from bench_serving import start as start_server  # noqa: E402
from common import figure, print_table, save  # noqa: E402

OFF_MB = 10**9  # a budget nothing reaches: the server as it was before issue 16


def png(mode: str, side: int) -> bytes:
    """A smooth gradient (compresses to kilobytes however many pixels it has)."""
    import numpy as np
    from PIL import Image

    if mode == "1":
        im = Image.new("1", (side, side))
    else:
        ramp = np.linspace(0, 1, side, dtype=np.float32)
        grid = np.add.outer(ramp, ramp) / 2
        if mode == "I;16":
            im = Image.fromarray((grid * 65535).astype(np.uint16))
        else:
            g = (grid * 255).astype(np.uint8)
            im = Image.fromarray(np.stack([g, g[::-1], g.T], axis=2))
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def json_body(images: list[bytes]) -> bytes:
    return json.dumps({"instances": [base64.b64encode(i).decode() for i in images]}).encode()


def attacks(scale: float) -> dict[str, list[tuple[bytes, str]]]:
    """name -> the requests sent at once (body, content type)."""
    s = lambda n: int(n * scale)  # noqa: E731
    bomb, wide, wide_small, rgb = png("1", s(6300)), png("I;16", s(6300)), png("I;16", s(3000)), png("RGB", s(4000))
    return {
        "json-8-bombs": [(json_body([bomb] * 8), "application/json")],
        "4x-16bit-6300": [(wide, "image/png")] * 4,
        "8x-16bit-3000": [(wide_small, "image/png")] * 8,
        "16x-json-2-rgb": [(json_body([rgb, rgb]), "application/json")] * 16,
    }


def status_of(proc_pid: int, key: str) -> float:
    with open(f"/proc/{proc_pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key)) / 1024


def post(port: int, body: bytes, ctype: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", "/invocations", body, {"Content-Type": ctype})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def start(model_dir: Path, budget_mb: float) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, "-m", "dogbreed.serving.server", str(model_dir), "--port", str(port),
           "--decode-budget-mb", str(budget_mb)]
    return start_server(cmd, port), port


def run_attack(model_dir: Path, budget_mb: float, requests, probe: bytes) -> dict:
    proc, port = start(model_dir, budget_mb)
    try:
        assert post(port, probe, "image/jpeg") == 200
        rest = status_of(proc.pid, "VmRSS")
        statuses = [None] * len(requests)

        def send(i):
            try:
                statuses[i] = post(port, *requests[i])
            except OSError as exc:
                statuses[i] = type(exc).__name__

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        alive = proc.poll() is None and post(port, probe, "image/jpeg") == 200
        return {"rest_mb": rest, "peak_mb": status_of(proc.pid, "VmHWM") if proc.poll() is None else None,
                "statuses": sorted(statuses, key=str), "serves_after": alive}
    finally:
        proc.terminate()
        proc.wait(30)


def latencies(port: int, image: bytes, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/invocations", image, {"Content-Type": "image/jpeg"})
        r = conn.getresponse()
        r.read()
        times.append(time.perf_counter() - t)
    conn.close()
    return times


def latency_on_off(model_dir: Path, budget_mb: float, image: bytes, rounds: int, n: int) -> tuple[float, float]:
    """p50 ms, budget on vs off: both servers up, short bursts alternating, median of the round medians."""
    servers = [start(model_dir, budget_mb), start(model_dir, OFF_MB)]
    try:
        for _, port in servers:
            latencies(port, image, 5)  # warm up
        per_round = [[statistics.median(latencies(port, image, n)) * 1000 for _, port in servers]
                     for _ in range(rounds)]
        return statistics.median(r[0] for r in per_round), statistics.median(r[1] for r in per_round)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(30)


def header_pass_us(image: bytes, n: int = 200) -> tuple[float, float]:
    """Microseconds of the budget's header pass vs the handler's decode of the same JPEG."""
    from dogbreed.serving import handler
    from dogbreed.serving.budget import decode_cost

    def per_call(fn):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n * 1e6

    return per_call(lambda: decode_cost(image, "image/jpeg")), per_call(lambda: handler.input_fn(image, "image/jpeg"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="resnet18 at 112 px, attack images at half size")
    p.add_argument("--only", default="", help="comma-separated attack names")
    a = p.parse_args(argv)
    arch, size, scale = ("resnet18", 112, 0.5) if a.quick else ("resnet50", 224, 1.0)
    budget = 1024 * scale**2
    figures, details = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model(Path(tmp), arch, size)
        probe = make_images(1)[0]
        for name, requests in attacks(scale).items():
            if a.only and name not in a.only.split(","):
                continue
            ours = run_attack(model_dir, budget, requests, probe)
            base = run_attack(model_dir, OFF_MB, requests, probe)
            details[name] = {"ours": ours, "baseline": base}
            print(f"{name}: ours {ours}\n{' ' * len(name)}  baseline {base}", flush=True)
            figures.append(figure(f"peak RSS, {name}", ours["peak_mb"], base["peak_mb"], ours["rest_mb"], "MB",
                                  target=f"<= model + {budget:g} MB + bodies", higher_is_better=False,
                                  note=f"ours answered {ours['statuses']}, baseline {base['statuses']}; "
                                       f"serving after: ours {ours['serves_after']}, baseline {base['serves_after']}"))
        if not a.only:
            on, off = latency_on_off(model_dir, budget, probe, rounds=6, n=20)
            figures.append(figure("p50 latency, one 400x300 JPEG", on, off, None, "ms", higher_is_better=False,
                                  note="budget on vs off, 6 alternating rounds of 20 requests"))
            extra, decode = header_pass_us(probe)
            figures.append(figure("header pass vs decode, one 400x300 JPEG", extra, None, decode, "us",
                                  higher_is_better=False, note="bare = the handler's own decode+preprocess"))
    print_table(figures, f"server memory ({arch} {size}px; bare = RSS of the loaded model at rest)")
    save("server_memory", figures, details=details)


if __name__ == "__main__":
    main()
