"""The server's memory budget: decoded pixels are admitted before they are decoded.

A 5 kB PNG can declare 6300x6300 1-bit pixels, and decoding it costs ~240 MB; 64 of them fit in one
JSON request. So before `input_fn` runs, `decode_cost` reads only the image headers (dimensions and
mode) of the body's images and prices the decode in bytes (`BYTES_PER_PIXEL`, measured on the
handler's decode path: decode, RGB conversion, eval preset). `DecodeBudget` admits a request when its
cost fits in what concurrent requests left, waits a little otherwise (503 with Retry-After when
the wait runs out), and answers 413 when the request alone is over the whole budget. Bodies of other
content types, and images whose header Pillow cannot read, cost nothing here: `input_fn` refuses them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import io
import json
import threading

from dogbreed.serving.errors import HttpError
from dogbreed.serving.limits import ADMISSION_WAIT_S, RETRY_AFTER_S

# Peak bytes per declared pixel while the handler decodes an image (measured with ru_maxrss):
# 8-bit grey/palette ~6, RGB ~8, with alpha ~17 (RGBA + RGB composite), 16-bit ~28 (int64 scaling).
BYTES_PER_PIXEL = {"alpha": 20, "wide": 32, "other": 10}
HEADER_PREFIX_CHARS = 87_384  # base64 chars of the first 64 kB: enough for a PNG/JPEG header


class OverBudget(HttpError):
    """Raised when a request's decoded images do not fit in the memory budget: 413 when the request
    alone is over it, 503 (with `retry_after`) when concurrent requests hold the rest."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(status, message)
        self.retry_after = retry_after


def pixel_cost(mode: str, width: int, height: int) -> int:
    if mode.startswith(("I", "F")):
        kind = "wide"
    elif "A" in mode or mode.startswith("P"):
        kind = "alpha"
    else:
        kind = "other"
    return width * height * BYTES_PER_PIXEL[kind]


def image_cost(data: bytes) -> int:
    """Decode cost of one encoded image from its header alone; 0 when Pillow cannot read the header."""
    from PIL import Image

    from dogbreed.serving.handler import IMAGE_FORMATS

    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
            return pixel_cost(im.mode, *im.size)
    except Exception:  # Image.open's failures are many; input_fn names them properly
        return 0


def _instance_cost(item) -> int:
    if isinstance(item, dict):
        item = item.get("b64")
    if not isinstance(item, str):
        return 0
    for chars in (item[:HEADER_PREFIX_CHARS], item):  # the header is at the start; rarely, it is not
        try:
            cost = image_cost(base64.b64decode(chars))
        except (binascii.Error, ValueError):
            return 0
        if cost or len(chars) == len(item):
            return cost
    return 0


def decode_cost(body, content_type: str) -> int:
    """Bytes the handler will need to decode this request's images (JSON: all of them)."""
    from dogbreed.serving.handler import IMAGE_TYPES, JSON_TYPE, media_type

    ctype = media_type(content_type)
    if ctype in IMAGE_TYPES:
        return image_cost(body if isinstance(body, (bytes, bytearray)) else body.encode("utf-8", "surrogateescape"))
    if ctype != JSON_TYPE:
        return 0
    try:
        doc = json.loads(body)
    except RecursionError:
        raise HttpError(400, "the JSON body is nested too deeply: send "
                             '{"instances": ["<base64 image>", ...]}') from None
    except (ValueError, UnicodeDecodeError):
        return 0
    instances = doc.get("instances") if isinstance(doc, dict) else None
    return sum(_instance_cost(item) for item in instances) if isinstance(instances, list) else 0


class DecodeBudget:
    """Bytes of decoded images that all requests together may hold; `admit(cost)` reserves a share."""

    def __init__(self, total_bytes: int, wait_s: float = ADMISSION_WAIT_S):
        self.total = total_bytes
        self.wait_s = wait_s
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def admit(self, cost: int):
        if cost == 0:  # nothing to decode (or nothing we can price): no lock taken
            yield
            return
        if cost > self.total:
            raise OverBudget(413, f"decoding this request's images needs ~{cost >> 20} MB, over the server's "
                                  f"{self.total >> 20} MB decode budget: send smaller images (or fewer per "
                                  "request)")
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + cost <= self.total, self.wait_s):
                raise OverBudget(503, f"the server is decoding other large images ({self.used >> 20} of "
                                      f"{self.total >> 20} MB in use): retry in {RETRY_AFTER_S} s",
                                 retry_after=RETRY_AFTER_S)
            self.used += cost
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._cond:
                self.used -= cost
                self._cond.notify_all()


TRIM_AFTER_BYTES = 64 << 20  # a decode at least this large gives its freed memory back afterwards


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to give back this way
        return None


def give_back_freed_memory() -> None:
    """glibc's malloc_trim(0): the free pages of every heap go back to the system. A large decode
    frees its blocks into the request thread's heap, which would otherwise keep that peak, so RSS
    would sum every thread's worst request. (Fixing glibc's mmap threshold low instead, as this
    server once did, also sends every tensor of the forward pass through mmap/munmap: ResNet50
    forwards 2.5x slower, 22 -> 55 ms for one image, measured.)"""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
