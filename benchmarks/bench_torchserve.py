"""The real SageMaker serving stack vs our local server vs the bare model, one run, alternating rounds.

    .venv/bin/python benchmarks/bench_torchserve.py [--quick] [--env KEY=VALUE ...]

Four rows, same model folder (weights, code/inference.py and the dogbreed package, as the
endpoint's repacked model.tar.gz unpacks), same machine:
- ours: the local server `dogbreed deploy` starts (dynamic batching);
- the real stack with the container's defaults: TorchServe 0.12 + sagemaker-pytorch-inference
  2.0.25 started through the toolkit's own serving entry (tests/toolkit/stack.py), the
  environment CreateModel had before (SAGEMAKER_PROGRAM only);
- the real stack as `deploy` configures it: serving_config.container_env for the instance type
  like this machine (its vCPUs, and an AMX ml.c7i where the model serves bf16 here, else an
  ml.m5), plus --env overrides;
- bare: the model's batched forward in this process (batch 8, the faster of fp32 and bf16), with
  its own layers; "bare as served" is the forward both servers run (BatchNorm folded,
  bf16 weights stored at load, on CPU the oneDNN-fused graph).
Figures: 8-client img/s (median of the per-round values, rounds alternate the four), 1-client
p50 latency, RSS of each server's processes, /ping-healthy-to-first-prediction gap, and whether
the TorchServe config the toolkit wrote lost a line (TorchServe's own startup log says whether
the model API is on: it is off exactly when `enable_model_api=true` was swallowed). Where the
configured stack's 1-client time goes: its lone request split by TorchServe's own metrics, and each
server's own cost per request (a request the handler refuses at once, no forward).
Full: resnet50, 224 px, --weights none (random weights: speed only). --quick: resnet18, 112 px.
Two runs where this machine has native bf16: everything in fp32 first (DOGBREED_MIXED_PRECISION=off),
as on an instance without it (ml.m5, ml.c5, ml.m6i: SageMaker's default inference instance among
them), then in bf16, as on an AMX instance (ml.c7i); each figure's name says which. --precision
runs one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_serving import CLIENTS, Bare, burst, free_port, make_images, make_model, start  # noqa: E402
from common import figure, print_table, save  # noqa: E402

from tests.toolkit.stack import TorchServeStack, missing  # noqa: E402


def instance_like_this_machine(bf16: bool) -> str:
    """The instance type with this machine's vCPUs serving in the same precision: ml.c7i (AMX) for
    bf16, ml.m5 (no native bf16) for fp32; 2 vCPUs -> ml.c7i.large / ml.m5.large."""
    n = os.cpu_count() or 2
    family = "c7i" if bf16 else "m5"
    return f"ml.{family}.large" if n <= 2 else f"ml.{family}.{'' if n == 4 else n // 4}xlarge"


def rss_mb(pid: int) -> float:
    import psutil

    p = psutil.Process(pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2**20


def config_lost_a_line(stack: TorchServeStack) -> bool:
    return "Model API enabled: false" in stack.log_text()


def fixed_cost_ms(port: int, n: int = 200) -> float:
    """A server's own cost per request, without the model: the median time of a request the handler
    refuses at once (400, not an image)."""
    import http.client
    import time

    conn, times = http.client.HTTPConnection("127.0.0.1", port, timeout=60), []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/invocations", b"not an image", {"Content-Type": "image/jpeg"})
        r = conn.getresponse()
        r.read()
        assert r.status == 400, r.status
        times.append(time.perf_counter() - t)
    conn.close()
    return statistics.median(times) * 1000


def lone_request(stack: TorchServeStack, since: dict, client_p50_ms: float) -> dict:
    """Where one client's request spends its time on the stack, from TorchServe's own metrics after
    `since`: the batch wait (its queue latency), our handler (PredictionTime), the rest of its
    inference latency (frontend to the Python worker and back), and HTTP (the client's p50 beyond)."""
    med = statistics.median
    queue = med(stack.metric("ts_queue_latency_microseconds", since)) / 1000
    inference = med(stack.metric("ts_inference_latency_microseconds", since)) / 1000
    handler = med(stack.metric("PredictionTime", since))
    return {"client": round(client_p50_ms, 2), "batch wait": round(queue, 2), "handler": round(handler, 2),
            "frontend and worker socket": round(inference - queue - handler, 2),
            "http": round(client_p50_ms - inference, 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="resnet18 at 112 px, fewer and shorter rounds")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds (default: 5, quick: 3)")
    p.add_argument("--burst", type=float, default=None, help="seconds per burst (default: 4, quick: 1.5)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="override the environment `deploy` sets (try other settings)")
    p.add_argument("--precision", choices=("both", "fp32", "auto"), default="both",
                   help="fp32: every server and the bare model in fp32 (DOGBREED_MIXED_PRECISION=off), what an "
                        "instance without native bf16 serves (ml.m5, ml.c5, ml.m6i); auto: this machine's own "
                        "choice (bf16 where it has it, as ml.c7i); both (default): fp32, then auto if it differs")
    a = p.parse_args(argv)
    why = missing()
    if why:
        raise SystemExit(f"cannot run the real serving stack here: {why}")
    from dogbreed.training.device import cpu_has_fast_bf16

    runs = {"both": [True] + ([False] if cpu_has_fast_bf16() else []), "fp32": [True], "auto": [False]}
    figures, extra = [], {}
    for fp32 in runs[a.precision]:
        f, x = measure(a, fp32)
        figures += f
        extra["fp32" if fp32 else "auto"] = x
    save("torchserve", figures, **extra)


def measure(a, fp32: bool) -> tuple[list, dict]:
    """One side-by-side run in one precision: (figures, the run's details)."""
    from dogbreed.backends.sagemaker.serving_config import container_env
    from dogbreed.backends.sagemaker.source import stage_source_dir
    from dogbreed.serving.handler import ENV_MIXED_PRECISION
    from dogbreed.training.device import cpu_has_fast_bf16

    arch, size = ("resnet18", 112) if a.quick else ("resnet50", 224)
    rounds = a.rounds or (3 if a.quick else 5)
    secs = a.burst or (1.5 if a.quick else 4.0)
    instance = instance_like_this_machine(cpu_has_fast_bf16() and not fp32)
    precision = {ENV_MIXED_PRECISION: "off"} if fp32 else {}
    os.environ.pop(ENV_MIXED_PRECISION, None)
    os.environ.update(precision)  # our server's, the stacks' and this process's model loads
    configured = container_env(instance, {**precision, **dict(kv.split("=", 1) for kv in a.env)})
    tmp = Path(tempfile.mkdtemp(prefix="bench-torchserve-"))
    ours_proc, stacks = None, {}
    try:
        model_dir = make_model(tmp, arch, size)
        stage_source_dir(model_dir / "code", requirements=False)
        images = make_images(16)
        port = free_port()
        ours_proc = start([sys.executable, "-m", "dogbreed.serving.server", str(model_dir), "--port", str(port),
                           "--max-batch-size", str(CLIENTS)], port)
        gaps = {}
        for name, env in (("defaults", precision), ("configured", configured)):
            stack = stacks[name] = TorchServeStack(model_dir, env, tmp / f"stack-{name}").start()
            gaps[name] = stack.wait_until_predicting(images[0], {"Content-Type": "image/jpeg"})
        bare = Bare(str(model_dir), CLIENTS, images, bf16=not fp32)
        bare.pick_fastest()
        servers = {"ours": port, "defaults": stacks["defaults"].port, "configured": stacks["configured"].port}
        for srv in servers.values():
            burst(srv, images, 1.0, CLIENTS)  # warm-up: every worker has run a batch
        rows = []
        for r in range(rounds):
            row = {name: burst(srv, images, secs, CLIENTS)[0] for name, srv in servers.items()}
            row["bare"] = bare.throughput(secs)
            row["bare as served"] = bare.throughput(secs, as_served=True)
            rows.append(row)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()) + " img/s", flush=True)
        lat = {name: [] for name in servers}
        n_lat = 10 if a.quick else 20
        marks = stacks["configured"].metric_logs()
        for _ in range(rounds):
            for name, srv in servers.items():
                lat[name] += burst(srv, images, secs / 2, 1)[1][:n_lat]
        lone = lone_request(stacks["configured"], marks, statistics.median(lat["configured"]) * 1000)
        fixed = {name: [] for name in ("ours", "configured")}
        for _ in range(3):
            for name in fixed:
                fixed[name].append(fixed_cost_ms(servers[name]))
        fixed = {name: statistics.median(v) for name, v in fixed.items()}
        rss = {"ours": rss_mb(ours_proc.pid), **{k: s.rss_mb() for k, s in stacks.items()}}
        med = statistics.median
        tp = {k: med(r[k] for r in rows) for k in rows[0]}
        p50 = {k: med(v) * 1000 for k, v in lat.items()}
        lost = {k: config_lost_a_line(s) for k, s in stacks.items()}
        figures = [
            figure("real stack as deploy configures it, 8 clients vs bare", tp["configured"], None, tp["bare"],
                   "img/s", target=">= 0.8x bare"),
            figure("real stack, container defaults, 8 clients vs bare", tp["defaults"], None, tp["bare"], "img/s"),
            figure("our local server, 8 clients vs bare", tp["ours"], None, tp["bare"], "img/s"),
            figure("real stack as deploy configures it, 8 clients vs bare as served "
                   f"(BatchNorm folded, {bare.best.dtype or 'fp32'} weights, oneDNN-fused)",
                   tp["configured"], None, tp["bare as served"], "img/s",
                   note="per-round ratios " + ", ".join(f"{r['configured'] / r['bare as served']:.3f}" for r in rows)),
            figure("p50 latency 1 client: configured stack vs ours", p50["configured"], p50["ours"], None, "ms",
                   target="<= 1.1x ours", higher_is_better=False),
            figure("p50 latency 1 client: container defaults vs ours", p50["defaults"], p50["ours"], None, "ms",
                   higher_is_better=False),
        ]
        for f, k in zip(figures[:3], ("configured", "defaults", "ours")):
            f["median_round_ratio_of_bare"] = round(med(r[k] / r["bare"] for r in rows), 3)
        figures[4]["p50_over_ours"] = round(p50["configured"] / p50["ours"], 3)
        tag = f"{bare.best.dtype or 'fp32'}, as {instance}"
        for f in figures:
            f["name"] += f" [{tag}]"
        print_table(figures, f"real serving stack ({arch}, {size} px, {rounds} rounds of {secs:g} s, {tag})")
        print("configured stack, one client, p50 {client:.1f} ms = batch wait {batch wait:.2f} + our handler "
              "{handler:.1f} + TorchServe's frontend and worker socket {frontend and worker socket:.2f} + HTTP "
              "{http:.2f} ms (medians of TorchServe's own metrics)".format(**lone))
        print(f"each server's own cost per request (a request refused at once, no forward): ours "
              f"{fixed['ours']:.2f} ms, configured stack {fixed['configured']:.2f} ms")
        for k in ("ours", "defaults", "configured"):
            extra = "" if k == "ours" else (f", /ping healthy {stacks[k].ping_healthy_s:.1f} s after start, first "
                                            f"prediction {gaps[k]:.1f} s later, config line lost: {lost[k]}")
            print(f"{k}: RSS {rss[k]:.0f} MB, 1-client p50 {p50[k]:.1f} ms{extra}")
        return figures, dict(arch=arch, image_size=size, instance_equivalent=instance, configured_env=configured,
                             rounds=rows, p50_ms=p50, configured_lone_request_ms=lone, fixed_cost_ms=fixed,
                             rss_mb=rss, config_line_lost=lost, ping_to_first_prediction_s=gaps,
                             ping_healthy_after_start_s={k: s.ping_healthy_s for k, s in stacks.items()},
                             bare_precisions=bare.best_throughput, load_average=os.getloadavg())
    finally:
        for stack in stacks.values():
            stack.stop()
        if ours_proc:
            ours_proc.terminate()
            ours_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
