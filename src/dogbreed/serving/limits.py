"""Serving limits and batching defaults, defined once for the server, the CLI and the backends.

Imports nothing, so the CLI can read these without loading the server (or torch).

Memory bound of a model server: peak RSS <= the loaded model + DECODE_BUDGET_BYTES (decoded pixels
of the requests being decoded at once, see serving/budget.py) + MAX_CONNECTIONS x BODY_COPIES x
MAX_BODY_BYTES (request bodies in flight: the bytes, their text, the parsed JSON and the base64-decoded
images). With the defaults: model + 1 GiB + 32 x 3 x 6 MB (~0.6 GB).
"""

import os

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint payload limit (6 MB)

# Files `predict` and bulk scoring pick up from a folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# Dynamic batching: most rows per model call, and how long a batch waits for requests still decoding.
DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_MAX_WAIT_MS = 15.0  # covers 8 photo-sized requests decoding on 2 cores

# Bulk scoring: images per forward pass, by device. On the 2-vCPU EPYC (bf16, channels_last) a
# resnet50 224 px forward runs at 74 / 80 / 79 / 71 / 69 / 56 img/s at batches 4 / 8 / 12 / 16 / 24 /
# 32: past ~12 images the activations outgrow the caches. A GPU wants larger batches.
BATCH_SIZE_BY_DEVICE = {"cpu": 8, "cuda": 32}
BATCH_SIZE_HELP = "8 on CPU, 32 on CUDA"


def default_batch_size(device_type: str) -> int:
    return BATCH_SIZE_BY_DEVICE.get(device_type, BATCH_SIZE_BY_DEVICE["cpu"])

# Memory: bytes of decoded images all concurrent requests may hold at once (see serving/budget.py).
ENV_DECODE_BUDGET_MB = "DOGBREED_DECODE_BUDGET_MB"
DECODE_BUDGET_BYTES = int(float(os.environ.get(ENV_DECODE_BUDGET_MB, "1024")) * 2**20)
ADMISSION_WAIT_S = 5.0  # a request waits this long for budget before a 503 with Retry-After
RETRY_AFTER_S = 1
BODY_COPIES = 3

# Connections: threads serving at once; one more connection is answered 503 and closed.
MAX_CONNECTIONS = int(os.environ.get("DOGBREED_MAX_CONNECTIONS", "32"))
# Request line + headers must arrive within this, however slowly they trickle.
HEADER_DEADLINE_S = float(os.environ.get("DOGBREED_HEADER_DEADLINE_S", "10"))

# Model archives: most bytes a local deploy extracts (a tar.gz of zeros can expand 1000x).
ENV_MAX_MODEL_MB = "DOGBREED_MAX_MODEL_MB"
MAX_MODEL_BYTES = int(float(os.environ.get(ENV_MAX_MODEL_MB, "512")) * 2**20)

# server.log: rotated to server.log.1 past this size (one old file kept).
MAX_LOG_BYTES = 5 * 2**20
