"""The environment `deploy` sets on the SageMaker model so that the PyTorch inference container
(TorchServe 0.12 + sagemaker-pytorch-inference 2.0.25) serves as fast as dogbreed's local server.

Container defaults on a 2-vCPU instance: TorchServe starts one worker per vCPU, each with torch's
own thread count (the vCPUs), and no batching: the workers' OpenMP teams fight over the cores.
Measured on this project's 2-vCPU dev machine (ml.m5.large / ml.c5.large size), resnet50 224 px,
bf16, 8 closed-loop clients, alternating rounds. Idle machine (issue #22):

    our local server                                   31.1 img/s  0.86x bare   1-client p50 44.7 ms
    container defaults (2 workers x 2 threads)          7.7 img/s  0.21x bare                53.4 ms
    1 worker x 2 threads, no batching                  20.0 img/s  0.56x bare                50.9 ms
    2 workers x 1 thread (OMP_NUM_THREADS=1)           24.1 img/s  0.67x bare                78.3 ms

benchmarks/bench_torchserve.py, three runs on the same machine shared with other work (load
average 25, 5.5, 5.1; median per-round ratios to the bare forward; README has the table):

    container defaults                                 0.16x / 0.20x / 0.05x bare
    our local server                                   0.43x / 0.38x / 0.38x bare
    1 worker x 2 threads, batch 8, max delay 5 ms      0.75x / 0.86x / 0.58x bare

The batch delay: TorchServe holds a lone request for the whole delay (its QueueTime metric reads
5.0 ms at 5 ms), while 8 clients' requests reach it within ~1 ms of each other. Same bench, same
day (load 6-7, 3 rounds each, BatchNorm folded at load): max delay 5 ms -> 56.4 img/s, 1-client
p50 31.2 ms = 1.32x ours; max delay 1 ms -> 57.2 img/s, p50 27.9 ms = 1.06x ours.

Batching costs a lone request TorchServe's whole batch wait (1 ms, the least it takes: see
`check_env`), and TorchServe's own path for a request is ~2 ms longer than our server's (a request
refused at once, no forward: 2.2-2.6 ms vs 0.3 ms; 1.0-1.3 ms of it with batching off). A/B of
TorchServe's batches on the real stack, 2-vCPU EPYC VM, resnet50 224 px, 6 alternating rounds
(2026-12-01), in the two precisions SageMaker's CPU instances serve in (`training.device`: bf16
on the Intel ones with AMX, ml.m7i/c7i/r7i; fp32 on all the others, ml.m5.large among them):

    fp32 (DOGBREED_MIXED_PRECISION=off)   batches of 8: 19.8 img/s, 1-client p50 1.094x ours
                                          batch 1:      22.4 img/s,                1.041x ours
    bf16 (avx512_bf16), two A/Bs          batches of 8: 44.2 / 43.1 img/s,         1.125x / 1.172x ours
                                          batch 1:      38.3 / 36.6 img/s,         1.057x / 1.097x ours

In fp32 a batch is hardly cheaper per image than one image and TorchServe's worker decodes a
batch's images one after the other before its forward, so batching lost on both counts. In bf16
it buys 15-18% more images under full load for a lone request's ~1.5-2 ms; on the AMX Xeon VM the
batched stack made 1.46x the bare eager forward at a p50 of 1.185x ours (its forward 11 ms against
TorchServe's ~2 ms). Batch 1 is the one setting that met both of #22's targets (>= 0.8x the bare
batched forward, p50 <= 1.1x ours) in both precisions, and a real-time endpoint mostly sees lone
requests (batches form only near saturation, where autoscaling adds instances), so CPU instances
serve one request at a time and `--env SAGEMAKER_TS_BATCH_SIZE=8` buys the throughput.

The rule (`container_env`):
- CPU instances: one worker per 4 vCPUs (at least one), the vCPUs split evenly between them as
  torch threads (OMP_NUM_THREADS), one request at a time (SAGEMAKER_TS_BATCH_SIZE=1; the delay is
  set anyway, MAX_BATCH_DELAY_MS, so that a batch size override alone does not get the toolkit's
  default 100 ms). Measured only at 2 vCPUs; above that, workers of 4 threads is an
  extrapolation (a batch-8 resnet50 forward stops scaling at a few threads per process).
- GPU instances: one worker per GPU, the vCPUs split between them (decoding runs on the CPU),
  TorchServe batching of up to BATCH_SIZE requests waiting at most MAX_BATCH_DELAY_MS (a GPU's
  batch of 8 costs about what one image does). Not measured (no GPU here).
- Serverless: the vCPUs are not known ahead; only the config fix below.
TorchServe's handler is dogbreed's own (TS_DEFAULT_SERVICE_HANDLER, read over the
toolkit's `default_service_handler` because its config sets enable_envvars_config=true): the
toolkit's loop runs the handler once per request and answers a mixed batch with one 500;
`dogbreed.serving.torchserve_handler` runs one forward per batch, each request its own answer
(and answers a batch of one the same way).
CPU instances also get the short OpenMP spin of our local server (GOMP_SPINCOUNT, see
dogbreed.training.device): after a forward, the worker's idle OpenMP threads stop spinning sooner
and leave the cores to decoding, TorchServe's frontend and the Python worker's I/O. Two A/B runs on
the real stack here (the bench's bursts, 6 and 8 alternating rounds, both settings side by side):
8 clients 64.1 vs 63.1 and 64.7 vs 60.7 img/s, 1-client p50 26.70 vs 26.90 and 27.30 vs 27.54 ms.
Always: the toolkit writes its TorchServe config without a newline after `enable_model_api=true`,
which swallows the next line (`enable_model_api=truedefault_response_timeout=60`). The config it
writes sets enable_envvars_config=true, so TS_ENABLE_MODEL_API and TS_DEFAULT_RESPONSE_TIMEOUT
put both values back. Anything the user passes (`deploy --env KEY=VALUE`) wins, once `check_env`
has passed it: the toolkit reads the TorchServe settings with int() when the container starts, so
a value that is not a whole number kills the container and the endpoint fails only minutes later,
its reason in CloudWatch; and TorchServe reads a max batch delay of 0 as its default, 100 ms (on
the real stack here, resnet50 224 px: a lone request's p50 126.9 ms at 0 vs 26.3 ms at 1; its own
queue-latency metric 100.3 ms at 0, 1.16 ms at 1).
"""

from __future__ import annotations

import re

from dogbreed.errors import ConfigError
from dogbreed.serving.handler import ENV_MIXED_PRECISION, PRECISION_CHOICES
from dogbreed.training.device import SERVING_SPINCOUNT

BATCH_SIZE = 8
MAX_BATCH_DELAY_MS = 1
RESPONSE_TIMEOUT_S = 60  # the toolkit's default for both timeouts
HANDLER = "dogbreed.serving.torchserve_handler:handle"  # importable from /opt/ml/model/code
THREADS_PER_WORKER = 4  # CPU: above this many vCPUs, another worker
# Instance types with more than one GPU; other ml.g* / ml.p* types have one.
GPUS = {"ml.g4dn.12xlarge": 4, "ml.g5.12xlarge": 4, "ml.g5.24xlarge": 4, "ml.g5.48xlarge": 8,
        "ml.g6.12xlarge": 4, "ml.g6.24xlarge": 4, "ml.g6.48xlarge": 8, "ml.g6e.12xlarge": 4,
        "ml.g6e.24xlarge": 4, "ml.g6e.48xlarge": 8, "ml.p3.8xlarge": 4, "ml.p3.16xlarge": 8,
        "ml.p3dn.24xlarge": 8, "ml.p4d.24xlarge": 8, "ml.p4de.24xlarge": 8, "ml.p5.48xlarge": 8,
        "ml.p5e.48xlarge": 8, "ml.p5en.48xlarge": 8, "ml.p6-b200.48xlarge": 8}
# Read with int() by the toolkit when the container starts; TorchServe needs each >= 1.
WHOLE_NUMBERS = ("SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_TS_MIN_WORKERS", "SAGEMAKER_TS_MAX_WORKERS",
                 "SAGEMAKER_TS_BATCH_SIZE", "SAGEMAKER_TS_MAX_BATCH_DELAY", "SAGEMAKER_TS_RESPONSE_TIMEOUT",
                 "SAGEMAKER_MODEL_SERVER_TIMEOUT")
_SIZE = re.compile(r"^ml\.([a-z0-9-]+)\.(\d*)(x?large|medium)$")


def instance_shape(instance_type: str) -> tuple[int, int]:
    """(vCPUs, GPUs) of a SageMaker instance type, from its name (large = 2 vCPUs, xlarge = 4,
    Nxlarge = 4N); ValueError for a name that is not an instance type."""
    m = _SIZE.match(instance_type)
    if not m:
        raise ValueError(f"{instance_type!r} is not a SageMaker instance type (e.g. ml.m5.large)")
    family, n, size = m.groups()
    vcpus = 2 if size in ("large", "medium") else 4 * int(n or 1)
    gpus = GPUS.get(instance_type, 1 if family[0] in "gp" else 0)
    return vcpus, gpus


def config_fix() -> dict:
    """The two TorchServe settings the toolkit's config file loses, put back through the environment."""
    return {"TS_ENABLE_MODEL_API": "true", "TS_DEFAULT_RESPONSE_TIMEOUT": str(RESPONSE_TIMEOUT_S)}


def container_env(instance_type: str | None, overrides: dict | None = None) -> dict:
    """The model's container environment for `instance_type` (None: serverless), then `overrides`."""
    env = config_fix()
    if instance_type:
        vcpus, gpus = instance_shape(instance_type)
        workers = gpus or max(1, vcpus // THREADS_PER_WORKER)
        batch = BATCH_SIZE if gpus else 1
        env.update({
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
            "SAGEMAKER_TS_MIN_WORKERS": str(workers), "SAGEMAKER_TS_MAX_WORKERS": str(workers),
            "OMP_NUM_THREADS": str(max(1, vcpus // workers)),
            "SAGEMAKER_TS_BATCH_SIZE": str(batch), "SAGEMAKER_TS_MAX_BATCH_DELAY": str(MAX_BATCH_DELAY_MS),
            "SAGEMAKER_TS_RESPONSE_TIMEOUT": str(RESPONSE_TIMEOUT_S), "TS_DEFAULT_SERVICE_HANDLER": HANDLER})
        if not gpus:  # the worker decodes a batch right after each forward, as our local server does
            env["GOMP_SPINCOUNT"] = SERVING_SPINCOUNT
    env.update(overrides or {})
    return check_env(env)


def check_env(env: dict) -> dict:
    """`env`, or ConfigError in one line for a setting the container would die on or misread."""
    for key in WHOLE_NUMBERS:
        if key not in env:
            continue
        try:
            n = int(env[key])
        except ValueError:
            raise ConfigError(f"--env {key}={env[key]!r} is not a whole number: the container reads it when it "
                              f"starts and the deploy would fail minutes later; pass e.g. --env {key}=2") from None
        if n < 1:
            why = "TorchServe reads 0 as its default, 100 ms for every lone request; the shortest wait is 1 (ms)" \
                if key == "SAGEMAKER_TS_MAX_BATCH_DELAY" and n == 0 else "it must be at least 1"
            raise ConfigError(f"--env {key}={env[key]}: {why}")
    precision = env.get(ENV_MIXED_PRECISION, "auto")
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"--env {ENV_MIXED_PRECISION}={precision!r}: set it to auto, on or off (the model "
                          "would fail to load on the endpoint)")
    low, high = (int(env.get(k, 1)) for k in ("SAGEMAKER_TS_MIN_WORKERS", "SAGEMAKER_TS_MAX_WORKERS"))
    if low > high:
        raise ConfigError(f"--env SAGEMAKER_TS_MIN_WORKERS={low} is above SAGEMAKER_TS_MAX_WORKERS={high}: "
                          "TorchServe cannot keep more workers than its maximum; set both")
    return env


def describe(env: dict) -> str:
    """One line for the deploy log: what TorchServe will run with."""
    if "SAGEMAKER_TS_BATCH_SIZE" not in env and "SAGEMAKER_MODEL_SERVER_WORKERS" not in env:
        return "the container's defaults (plus the TorchServe config fix)"
    workers = env.get("SAGEMAKER_TS_MAX_WORKERS") or env.get("SAGEMAKER_MODEL_SERVER_WORKERS", "default")
    batch = int(env.get("SAGEMAKER_TS_BATCH_SIZE", 1))
    batching = (f"batches of up to {batch} requests waiting at most {env.get('SAGEMAKER_TS_MAX_BATCH_DELAY', 100)} ms"
                if batch > 1 else "one request at a time")
    return (f"{workers} TorchServe worker(s) x {env.get('OMP_NUM_THREADS', 'default')} threads, {batching} "
            "(change with --env KEY=VALUE)")
