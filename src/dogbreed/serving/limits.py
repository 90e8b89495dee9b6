"""Serving limits and batching defaults, defined once for the server, the CLI and the backends.

Imports nothing, so the CLI can read these without loading the server (or torch).
"""

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint payload limit (6 MB)

# Files `predict` and bulk scoring pick up from a folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# Dynamic batching: most rows per model call, and how long a batch waits for requests still decoding.
DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_MAX_WAIT_MS = 5.0
