"""Dataset upload to S3: `dogbreed data upload` vs `aws s3 sync` vs sagemaker.Session.upload_data vs a
bare pool of put_object threads, on moto's S3 server in its own process on 127.0.0.1.

    .venv/bin/python benchmarks/bench_upload.py            # 1,800 small + 150 large files, 3 rounds
    .venv/bin/python benchmarks/bench_upload.py --quick    # 600 small + 50 large, 1 round

Tools (16 parallel requests each where they have a setting):
  ours    dogbreed.backends.sagemaker.s3.upload_dataset, in this process (its own ETag cache folder): each PUT
          carries the CRC32 of its body and S3's echo of it is checked
  cli     `dogbreed data upload`, a process (compare it with `aws s3 sync`: both pay interpreter start-up;
          its ETag cache lives in the benchmark's workspace, as a user's would)
  sync    `aws s3 sync` (AWS CLI v1 in .venv-awscli, `make bench-deps`; max_concurrent_requests = 16)
  upload  sagemaker.Session.upload_data, in this process (one upload_file after another)
  bare    a client with our settings, then 16 threads doing only read_bytes + put_object: the floor here
          (no listing, no checksum, no check of what S3 holds; the file list is made before the clock starts;
          over plain http, as here, botocore SHA256-signs every body, the bare pool's and ours alike)
Scenarios, tools in forward then reverse order in alternate rounds: first upload (empty prefix), re-run with nothing
changed, re-run after 10 files changed (same size, new bytes); the first upload of ours and of the bare pool,
whose ratio has the tightest target, runs --pairs times per round, side by side (ours, bare, ours, bare...,
the next round bare first; ratios are medians over all pairs); upload_data, which re-sends everything
each time, is timed on re-run once. After each round every tool's copy is checked against what
moto holds (ETag == MD5 of the local file). Then the corruption-repair check: 10 objects of
each tool's copy are overwritten in S3 with same-size wrong bytes and each tool runs once more.
Besides wall time, each run's CPU seconds are recorded: the tool's own (this process for ours, bare and
upload_data; the child process for cli and sync) and the S3 server's. On a shared machine they vary
less than wall time, and show what each tool costs when the CPU, not the network, is the limit.
Figures go to benchmarks/out/upload.json (merged by benchmarks/run_all.py).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import figure, print_table, save  # noqa: E402

BUCKET = "dogbreed-bench"
REGION = "us-east-1"
JOBS = 16
AWS = ROOT / ".venv-awscli" / "bin" / "aws"
DOGBREED = Path(sys.executable).parent / "dogbreed"
TOOLS = ("ours", "bare", "cli", "sync", "upload")  # the pairs compared run next to each other
SERVER = """
import sys
from moto.server import ThreadedMotoServer
s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
s.start()
print("%s:%s" % s.get_host_and_port(), flush=True)
sys.stdin.read()   # until the parent closes our stdin
s.stop()
"""


def make_dataset(root: Path, n_files: int, low: int, high: int, seed: int) -> int:
    """dogImages-like tree of random files of `low`..`high` bytes; returns total bytes."""
    rng, total = random.Random(seed), 0
    for i in range(n_files):
        split = "train" if i < n_files * 0.8 else "valid" if i < n_files * 0.9 else "test"
        folder = root / split / f"{i % 20 + 1:03d}.Breed_{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(rng.randint(low, high))
        (folder / f"img_{i:05d}.jpg").write_bytes(data)
        total += len(data)
    return total


def change_files(root: Path, n: int, seed: int) -> None:
    """n files get new bytes of the same size (and a new mtime, as an edit gives them)."""
    rng = random.Random(seed)
    for path in rng.sample(sorted(p for p in root.rglob("*") if p.is_file()), n):
        path.write_bytes(rng.randbytes(path.stat().st_size))


def start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # request log
    return proc, "http://" + proc.stdout.readline().strip()


class Counter:
    def __init__(self):
        self.n = 0

    def __call__(self, **kwargs):
        self.n += 1


def session():
    import boto3

    s, puts = boto3.Session(region_name=REGION), Counter()
    s.events.register("before-call.s3.PutObject", puts)
    return s, puts


def run_ours(data: Path, prefix: str):
    from dogbreed.backends.sagemaker.s3 import upload_dataset

    s, puts = session()
    t0 = time.perf_counter()
    upload_dataset(s, BUCKET, REGION, data, prefix, concurrency=JOBS,
                   cache_dir=Path(os.environ["DOGBREED_WORKSPACE"] + "-ours") / "cache" / "upload")
    return time.perf_counter() - t0, puts.n


def run_cli(data: Path, prefix: str):
    t0 = time.perf_counter()
    subprocess.run([str(DOGBREED), "--region", REGION, "--bucket", BUCKET, "data", "upload", str(data),
                    "--prefix", prefix, "--jobs", str(JOBS)], check=True, capture_output=True, cwd=data.parent)
    return time.perf_counter() - t0, None


def run_sync(data: Path, prefix: str):
    t0 = time.perf_counter()
    subprocess.run([str(AWS), "s3", "sync", str(data), f"s3://{BUCKET}/{prefix}", "--only-show-errors"],
                   check=True, capture_output=True)
    return time.perf_counter() - t0, None


def run_upload(data: Path, prefix: str):
    import sagemaker

    s, puts = session()
    sm = sagemaker.Session(boto_session=s, default_bucket=BUCKET)
    t0 = time.perf_counter()
    sm.upload_data(str(data), bucket=BUCKET, key_prefix=prefix)
    return time.perf_counter() - t0, puts.n


def run_bare(data: Path, prefix: str):
    from dogbreed.backends.sagemaker.s3 import s3_client

    s, puts = session()
    files = [p for p in data.rglob("*") if p.is_file()]
    t0 = time.perf_counter()
    client = s3_client(s, JOBS)  # ours builds its client inside the timing too
    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(lambda p: client.put_object(Bucket=BUCKET, Key=f"{prefix}/{p.relative_to(data).as_posix()}",
                                                  Body=p.read_bytes()), files))
    return time.perf_counter() - t0, puts.n


RUN = {"ours": run_ours, "cli": run_cli, "sync": run_sync, "upload": run_upload, "bare": run_bare}


def client():
    import boto3
    from botocore.config import Config

    return boto3.client("s3", region_name=REGION, config=Config(max_pool_connections=JOBS + 4))


def remote(prefix: str) -> dict[str, str]:
    pages = client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    return {o["Key"][len(prefix) + 1:]: o["ETag"].strip('"') for p in pages for o in p.get("Contents", [])}


def intact(data: Path, prefix: str) -> int:
    """How many local files S3 holds exactly (ETag == MD5; every object here is single-part)."""
    held = remote(prefix)
    return sum(held.get(p.relative_to(data).as_posix()) == hashlib.md5(p.read_bytes()).hexdigest()
               for p in data.rglob("*") if p.is_file())


def clear(prefix: str) -> None:
    c, keys = client(), list(remote(prefix))
    for i in range(0, len(keys), 1000):
        c.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": f"{prefix}/{k}"} for k in keys[i:i + 1000]]})


def corrupt(data: Path, prefix: str, n: int, seed: int) -> list[str]:
    """Overwrite n objects in S3 with same-size wrong bytes (S3 holds what a bad transfer left)."""
    c, rng = client(), random.Random(seed)
    rels = rng.sample(sorted(remote(prefix)), n)
    for rel in rels:
        body = bytearray((data / rel).read_bytes())
        body[len(body) // 2] ^= 0xFF
        c.put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=bytes(body))
    return rels


def cpu_seconds(server_pid: int) -> tuple[float, float]:
    """(this process + its finished children, the S3 server) CPU seconds so far."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(f"/proc/{server_pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
            (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))


def first_upload_runs(order: list[str], pairs: int) -> list[str]:
    """`order` with its adjacent ours/bare block repeated `pairs` times: the figure with the tightest target
    gets more side-by-side pairs than a round's one."""
    i = min(order.index("ours"), order.index("bare"))
    return order[:i] + order[i:i + 2] * pairs + order[i + 2:]


def bench_dataset(name: str, data: Path, n_files: int, rounds: int, changed: int, tools, server_pid: int,
                  pairs: int = 1) -> dict:
    """{scenario: {tool: [seconds per run]}} (wall, tool CPU, server CPU), PUT counts and correctness checks."""
    times = {s: {t: [] for t in tools} for s in ("first", "rerun", "changed")}
    cpu = {s: {t: [] for t in tools} for s in times}  # (tool, server) CPU seconds per round
    puts: dict[tuple[str, str], int | None] = {}
    for r in range(rounds):
        order = list(tools if r % 2 == 0 else reversed(tools))  # alternate who goes first
        for tool in order:
            clear(f"{name}-{tool}")
        for scenario in ("first", "rerun", "changed"):
            if scenario == "changed":
                change_files(data, changed, seed=100 + r)
            ran = set()
            for tool in first_upload_runs(order, pairs) if scenario == "first" else order:
                if tool in ran:
                    clear(f"{name}-{tool}")  # another first upload of this pair
                ran.add(tool)
                if tool == "bare" and scenario != "first":
                    continue  # the bare pool has no notion of what is there already
                if tool == "upload" and (scenario == "changed" or scenario == "rerun" and r > 0):
                    continue  # it re-sends everything every time: shown once (round 1), not timed again
                gc.collect()  # the previous tool's garbage is not this one's CPU time
                before = cpu_seconds(server_pid)
                took, puts[scenario, tool] = RUN[tool](data, f"{name}-{tool}")
                after = cpu_seconds(server_pid)
                times[scenario][tool].append(took)
                cpu[scenario][tool].append((round(after[0] - before[0], 3), round(after[1] - before[1], 3)))
        for tool in [t for t in order if times["changed"][t]]:  # what the tools that ran every scenario left
            held = intact(data, f"{name}-{tool}")
            if held != n_files:
                print(f"  ! {tool}: only {held} of {n_files} objects match the local files")
        print(f"  {name} round {r + 1} (load {os.getloadavg()[0]:.1f}): " + "; ".join(
            f"{scenario} " + ", ".join(f"{t} {times[scenario][t][-1]:.2f}s" for t in order
                                       if len(times[scenario][t]) > r)
            for scenario in times), flush=True)
    repaired = {}
    for tool in tools:
        if tool == "bare":
            continue
        prefix = f"{name}-{tool}"
        corrupt(data, prefix, 10, seed=7)
        RUN[tool](data, prefix)
        repaired[tool] = intact(data, prefix) - (n_files - 10)
    return {"times": times, "cpu": cpu, "puts": puts, "repaired": repaired}


def med(values):
    return round(statistics.median(values), 3) if values else None


def paired(times: dict, a: str, b: str) -> float:
    """Median over rounds of b/a, each ratio from runs next to each other (load here drifts between rounds)."""
    return round(statistics.median(y / x for x, y in zip(times[a], times[b])), 3)


def report(name: str, n: int, nbytes: int, res: dict, changed: int) -> list[dict]:
    t, puts = res["times"], res["puts"]
    m = {s: {tool: med(v) for tool, v in t[s].items()} for s in t}
    of_bare = paired(t["first"], "ours", "bare")
    vs_sync = {s: paired(t[s], "cli", "sync") for s in t}
    own = {s: {tool: [c[0] for c in v] for tool, v in res["cpu"][s].items()} for s in t}
    total = {s: {tool: [c[0] + c[1] for c in v] for tool, v in res["cpu"][s].items()} for s in t}
    print(f"\n{name}: {n} files, {nbytes / 1e6:.0f} MB; medians of {len(t['rerun']['ours'])} round(s) "
          f"({len(t['first']['ours'])} first uploads of ours and bare); ratios: medians of per-round (per-pair) ratios")
    print(f"{'scenario':<22}" + "".join(f"{tool:>9}" for tool in TOOLS)
          + "   ours/bare  cli vs sync  ours vs upload_data")
    for s in ("first", "rerun", "changed"):
        row = m[s]
        cells = "".join(f"{'-' if row.get(tool) is None else row[tool]:>9}" for tool in TOOLS)
        bare = f"{of_bare:.2f}" if s == "first" else "-"
        upload = f"{row['upload'] / row['ours']:.2f}x" if row.get("upload") else "-"
        print(f"{s:<22}{cells}   {bare:>9}  {vs_sync[s]:>9.2f}x  {upload:>18}")
    print("CPU seconds, tool + S3 server (medians): " + "; ".join(
        f"{s}: " + ", ".join(f"{tool} {med(own[s][tool])}+{med([c[1] for c in res['cpu'][s][tool]])}"
                             for tool in TOOLS if own[s][tool]) for s in t))
    print(f"CPU ratios (median of per-round ratios): first upload, tool+server, bare/ours "
          f"{paired(total['first'], 'ours', 'bare'):.2f}; cli vs sync: "
          + ", ".join(f"{s} {paired(total[s], 'cli', 'sync'):.2f}x" for s in t))
    print("PUTs: " + "; ".join(f"{s}: ours {puts[s, 'ours']}, upload_data {puts.get((s, 'upload'), '-')}"
                              for s in ("first", "rerun", "changed")))
    print("corruption repair (10 objects overwritten with wrong bytes, then one run): "
          + ", ".join(f"{tool} {k}/10" for tool, k in res["repaired"].items()))
    def vs(row, **paired_ratios):  # the figure's ratios: the paired medians, not a ratio of medians
        return {**row, **paired_ratios}

    label = {"first": "first upload", "rerun": "re-run, nothing changed", "changed": f"re-run, {changed} changed"}
    return [
        vs(figure(f"upload {name}: first upload, ours vs bare put_object pool", m["first"]["ours"], None,
                  m["first"]["bare"], "s", ">= 0.95 of bare", higher_is_better=False), of_bare=of_bare),
        vs(figure(f"upload {name}: first upload, CPU s (tool + S3 server), ours vs bare", med(total["first"]["ours"]),
                  None, med(total["first"]["bare"]), "CPU s", "", higher_is_better=False),
           of_bare=paired(total["first"], "ours", "bare")),
        *(vs(figure(f"upload {name}: {label[s]}, dogbreed CLI vs aws s3 sync", m[s]["cli"], m[s]["sync"], None, "s",
                    "> 1x (ahead of sync)", higher_is_better=False), ratio=vs_sync[s]) for s in label),
        figure(f"upload {name}: first upload, ours vs upload_data", m["first"]["ours"], m["first"]["upload"], None,
               "s", "faster", higher_is_better=False),
        figure(f"upload {name}: PUTs on re-run, ours vs upload_data", puts["rerun", "ours"], puts["rerun", "upload"],
               None, "requests", "0"),
        figure(f"upload {name}: corrupt objects repaired by one re-run (of 10), ours vs aws s3 sync",
               res["repaired"]["ours"], res["repaired"].get("sync"), None, "objects", "10"),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="600 small + 50 large files, 1 round")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds [default: 3, --quick: 1]")
    ap.add_argument("--small", type=int, default=None, help="small files (8-48 KB) [default: 1800]")
    ap.add_argument("--pairs", type=int, default=None,
                    help="first uploads of ours and bare side by side per round [default: 3, --quick: 1]")
    ap.add_argument("--large", type=int, default=None, help="large files (0.5-1.5 MB) [default: 150]")
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    pairs = args.pairs or (1 if args.quick else 3)
    sets = {"small": (args.small or (600 if args.quick else 1800), 8 << 10, 48 << 10),
            "large": (args.large or (50 if args.quick else 150), 512 << 10, 1536 << 10)}
    if not AWS.exists():
        print(f"{AWS} is missing: run `make bench-deps` (installs the AWS CLI for this benchmark only)")
        return 1

    with tempfile.TemporaryDirectory() as tmp:
        empty, aws_config = Path(tmp) / "sm.yaml", Path(tmp) / "aws.cfg"
        empty.write_text("")
        aws_config.write_text(f"[default]\nregion = {REGION}\ns3 =\n  max_concurrent_requests = {JOBS}\n")
        proc, url = start_server()
        os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=str(aws_config),
                          AWS_SHARED_CREDENTIALS_FILE=str(Path(tmp) / "none"), SAGEMAKER_SUPPRESS_V2_WARNING="1",
                          SAGEMAKER_ADMIN_CONFIG_OVERRIDE=str(empty), SAGEMAKER_USER_CONFIG_OVERRIDE=str(empty),
                          DOGBREED_WORKSPACE=str(Path(tmp) / "ws"))
        for var in ("AWS_PROFILE", "DOGBREED_CONFIG", "DOGBREED_BACKEND"):
            os.environ.pop(var, None)
        figures, summary = [], {}
        try:
            import logging

            logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
            import sagemaker  # noqa: F401 - import time is not part of any measurement

            import dogbreed.backends.sagemaker.s3  # noqa: F401 - nor for ours, which may run first

            client().create_bucket(Bucket=BUCKET)
            print(f"moto server {url}; {rounds} round(s), {pairs} ours/bare pair(s) per round; "
                  f"tools in alternating order: {', '.join(TOOLS)}")
            for seed, (name, (n, low, high)) in enumerate(sets.items()):
                data = Path(tmp) / name / "dogImages"
                nbytes = make_dataset(data, n, low, high, seed)
                res = bench_dataset(name, data, n, rounds, 10, TOOLS, proc.pid, pairs)
                figures += report(name, n, nbytes, res, 10)
                summary[name] = {"files": n, "bytes": nbytes, "seconds": res["times"], "cpu_seconds": res["cpu"],
                                 "repaired": res["repaired"]}
                for tool in TOOLS:
                    clear(f"{name}-{tool}")
                shutil.rmtree(data.parent)
        finally:
            proc.stdin.close()
            proc.wait(timeout=60)
    print_table(figures, "upload: ours vs baseline vs bare (seconds: lower is better; ratios > 1 favour ours)")
    save("upload", figures, rounds=rounds, pairs=pairs, jobs=JOBS, datasets=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
