"""Dataset upload to S3: `dogbreed data upload` vs sagemaker.Session.upload_data, on moto's S3
server running in its own process on 127.0.0.1.

    .venv/bin/python benchmarks/bench_upload.py           # 2,000 files of 2-6 KB
    .venv/bin/python benchmarks/bench_upload.py --quick   # 400 files (< 60 s)

Columns: ours = dogbreed.backends.sagemaker.s3.upload_dataset (listing, MD5s, 16 parallel
transfers); baseline = sagemaker.Session.upload_data (one upload_file after another, what the
seed project used); bare = 16 threads doing nothing but put_object (the floor for parallel PUTs
to this server, with none of our listing/checksum work). moto shares one CPU-bound Python
process, so the gain here is bounded; against real S3 each request waits tens of milliseconds
and parallelism gains far more. Figures go to benchmarks/out/upload.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

BUCKET = "dogbreed-bench"
REGION = "us-east-1"
SERVER = """
import sys, time
from moto.server import ThreadedMotoServer
s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
s.start()
print("%s:%s" % s.get_host_and_port(), flush=True)
sys.stdin.read()   # until the parent closes our stdin
s.stop()
"""


def make_dataset(root: Path, n_files: int, seed: int = 0) -> int:
    """dogImages-like tree of random 2-6 KB files; returns total bytes."""
    rng, total = random.Random(seed), 0
    for i in range(n_files):
        split = "train" if i < n_files * 0.8 else "valid" if i < n_files * 0.9 else "test"
        folder = root / split / f"{i % 20 + 1:03d}.Breed_{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(rng.randint(2048, 6144))
        (folder / f"img_{i:05d}.jpg").write_bytes(data)
        total += len(data)
    return total


def start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # request log
    return proc, "http://" + proc.stdout.readline().strip()


class PutCounter:
    def __init__(self):
        self.n = 0

    def __call__(self, **kwargs):
        self.n += 1


def session_with_counter():
    import boto3

    session, counter = boto3.Session(region_name=REGION), PutCounter()
    session.events.register("before-call.s3.PutObject", counter)
    return session, counter


def run_ours(data: Path, prefix: str):
    from dogbreed.backends.sagemaker.s3 import upload_dataset

    session, counter = session_with_counter()
    t0 = time.perf_counter()
    upload_dataset(session, BUCKET, REGION, data, prefix, concurrency=16)
    return time.perf_counter() - t0, counter.n


def run_baseline(data: Path, prefix: str):
    import sagemaker

    session, counter = session_with_counter()
    sm = sagemaker.Session(boto_session=session, default_bucket=BUCKET)
    t0 = time.perf_counter()
    sm.upload_data(str(data), bucket=BUCKET, key_prefix=prefix)
    return time.perf_counter() - t0, counter.n


def run_bare(data: Path, prefix: str):
    from botocore.config import Config

    session, counter = session_with_counter()
    client = session.client("s3", config=Config(max_pool_connections=20))
    files = [p for p in data.rglob("*") if p.is_file()]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda p: client.put_object(Bucket=BUCKET, Key=f"{prefix}/{p.relative_to(data)}",
                                                  Body=p.read_bytes()), files))
    return time.perf_counter() - t0, counter.n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="400 files instead of 2,000")
    ap.add_argument("--files", type=int, default=None, help="number of files [default: 2000, --quick: 400]")
    args = ap.parse_args(argv)
    n = args.files or (400 if args.quick else 2000)

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "sm.yaml"
        empty.write_text("")
        proc, url = start_server()
        os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_DEFAULT_REGION=REGION, SAGEMAKER_SUPPRESS_V2_WARNING="1",
                          SAGEMAKER_ADMIN_CONFIG_OVERRIDE=str(empty), SAGEMAKER_USER_CONFIG_OVERRIDE=str(empty))
        os.environ.pop("AWS_PROFILE", None)
        try:
            import logging

            import boto3

            logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
            import sagemaker  # noqa: F401 - import time is not part of any measurement

            boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
            data = Path(tmp) / "dogImages"
            nbytes = make_dataset(data, n)
            print(f"{n} files, {nbytes / 1e6:.1f} MB, moto server {url}")
            ours, ours_puts = run_ours(data, "ours")
            base, base_puts = run_baseline(data, "baseline")
            bare, bare_puts = run_bare(data, "bare")
            again, again_puts = run_ours(data, "ours")
            base_again, base_again_puts = run_baseline(data, "baseline")
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)

    figures = [
        {"name": f"upload {n} files", "ours": round(ours, 2), "baseline": round(base, 2), "bare": round(bare, 2),
         "unit": "s", "ratio": round(base / ours, 2), "target": ">= 2x faster than upload_data"},
        {"name": "re-run, nothing changed", "ours": round(again, 2), "baseline": round(base_again, 2), "bare": None,
         "unit": "s", "ratio": round(base_again / again, 2), "target": "seconds"},
        {"name": "PUTs on re-run", "ours": again_puts, "baseline": base_again_puts, "bare": None, "unit": "requests",
         "ratio": None, "target": 0},
        {"name": "PUTs on first run", "ours": ours_puts, "baseline": base_puts, "bare": bare_puts, "unit": "requests",
         "ratio": None, "target": n},
    ]
    print(f"{'figure':<26}{'ours':>10}{'baseline':>10}{'bare':>10}  unit      ratio  target")
    for f in figures:
        cells = ["-" if f[k] is None else f[k] for k in ("ours", "baseline", "bare")]
        ratio = "-" if f["ratio"] is None else f"{f['ratio']}x"
        print(f"{f['name']:<26}{cells[0]:>10}{cells[1]:>10}{cells[2]:>10}  {f['unit']:<9}{ratio:>6}  {f['target']}")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "upload.json").write_text(json.dumps({"files": n, "bytes": nbytes, "figures": figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
