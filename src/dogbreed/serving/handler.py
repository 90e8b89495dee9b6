"""model_fn / input_fn / predict_fn / output_fn, as the SageMaker inference toolkit calls them.

Content types go through a decoder table; an unsupported type gets an error listing the
accepted ones. Images are decoded with EXIF orientation, converted to RGB (alpha composited
on white, 16-bit scaled, CMYK/palette converted) and preprocessed with exactly the eval
preset used for validation. Bodies are never interpreted as URLs: nothing is fetched.

Wire format:
  request   image/jpeg | image/png | application/x-image: one image;
            application/json: {"instances": ["<base64 image>", ...]} (or [{"b64": ...}, ...])
  response  Accept application/json (also missing or */*):
                {"predictions": [[{"breed", "index", "probability"}, ...top-k], ...one list per image]}
            Accept application/json; top_k=N      N breeds per image (default 5)
            Accept application/json; output=logits  {"logits": [[...num_classes floats], ...]}
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from dataclasses import dataclass
from typing import Callable

from dogbreed.errors import ConfigError
from dogbreed.serving.errors import NotAcceptable, PayloadTooLarge, RequestError, UnsupportedMediaType

MAX_IMAGE_PIXELS = 40_000_000  # ~6300x6300; bigger declared sizes are decompression bombs
MAX_BATCH_IMAGES = 64  # per JSON request; bigger batches belong in several requests
IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
JSON_TYPE = "application/json"
DEFAULT_TOP_K = 5
# Formats Pillow may open. Excludes e.g. EPS, which would run Ghostscript on request bytes.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO")
# Fraction of probe images whose bf16 top-1 must match fp32 before serving in bf16.
MIN_BF16_AGREEMENT = 0.875
PROBE_IMAGES = 8
# auto|on|off, as training's --mixed-precision: a server's environment chooses its precision
# (`deploy --env DOGBREED_MIXED_PRECISION=off` on SageMaker, the shell's for a local deploy).
ENV_MIXED_PRECISION = "DOGBREED_MIXED_PRECISION"
PRECISION_CHOICES = ("auto", "on", "off")


@dataclass
class LoadedModel:
    model: object
    config: object
    breeds: list
    precision: object
    transform: object
    agreement: float | None = None  # bf16 vs fp32 top-1 agreement measured at load (None: fp32)
    forward: Callable | None = None  # the model's forward as served (training.fused); None: eager

    @property
    def fused(self) -> bool:
        return bool(getattr(self.forward, "fused", False))

    def describe(self) -> str:
        check = "" if self.agreement is None else f", top-1 agreement with fp32 {self.agreement:.0%}"
        return (f"{self.config.arch} {self.config.image_size}px {len(self.breeds)} classes "
                f"on {self.precision.describe()}{', oneDNN-fused' if self.fused else ''}{check}")


# -- model -------------------------------------------------------------------------------------
def model_fn(model_dir: str, device: str = "auto", mixed_precision: str | None = None) -> LoadedModel:
    """Load the artifact once: eval mode, no grad, BatchNorm folded into the convolutions, the
    fastest precision that keeps fp32's answers (its weights stored in it: `Precision.prepare_frozen`).
    `mixed_precision` None: $DOGBREED_MIXED_PRECISION, else auto."""
    import torch

    from dogbreed.training.device import Precision, select_precision
    from dogbreed.training.model import breed_name, fold_batchnorm, load_model
    from dogbreed.training.presets import ClassificationPresetEval

    model = load_model(model_dir, map_location="cpu").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = model.config
    model = fold_batchnorm(model)
    if mixed_precision is None:
        mixed_precision = os.environ.get(ENV_MIXED_PRECISION, "auto")
        if mixed_precision not in PRECISION_CHOICES:
            raise ConfigError(f"${ENV_MIXED_PRECISION}={mixed_precision!r}: set it to auto, on or off")
    precision = select_precision(device, mixed_precision)
    agreement = None
    if precision.dtype is not None:
        fp32 = Precision(precision.device, None, False)
        agreement = top1_agreement(model, cfg.image_size, fp32, precision)
        if agreement < MIN_BF16_AGREEMENT and mixed_precision != "on":
            precision = fp32
            model = model.to(memory_format=torch.contiguous_format)  # the check left it channels_last
    model = precision.prepare_frozen(model)
    return LoadedModel(model, cfg, [breed_name(c) for c in cfg.classes], precision,
                       ClassificationPresetEval.from_preprocessing(cfg.preprocessing), agreement,
                       served_forward(model, cfg.image_size, precision))


def served_forward(model, image_size: int, precision):
    """The forward predict_fn runs: on CPU the oneDNN-fused graph (`training.fused`; ResNet50 bf16
    at batch 8 on 2 vCPUs ~2.4x eager) where it agrees with eager on a probe image, else eager.
    Ready for single images; `warm_up_batches` prepares the batch sizes a server will run."""
    import torch

    from dogbreed.training.fused import cpu_forward

    with torch.inference_mode():
        return cpu_forward(model, precision, precision.prepare_input(probe_batch(image_size, 1)))


def warm_up_batches(loaded, sizes) -> None:
    """Run the fused forward at each batch size in `sizes` until it is optimised (two calls: the
    profiling run, then the fusion), so that no request pays for it. Does nothing for eager."""
    import torch

    if not isinstance(loaded, LoadedModel) or not loaded.fused:
        return
    with torch.inference_mode():
        for n in sorted(set(sizes)):
            x = loaded.precision.prepare_input(probe_batch(loaded.config.image_size, n))
            for _ in range(2):
                loaded.forward(x)


def probe_batch(image_size: int, n: int = PROBE_IMAGES):
    """Deterministic, image-like inputs (smooth colour fields, normalised) for the precision check."""
    import torch

    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return (x - 0.45) / 0.225


def top1_agreement(model, image_size: int, reference, candidate) -> float:
    """Share of probe images on which `candidate` precision picks the same class as `reference`."""
    import torch

    x = probe_batch(image_size)

    def top1(precision):
        m = precision.prepare_model(model)
        with torch.inference_mode(), precision.autocast():
            return m(precision.prepare_input(x)).float().argmax(dim=1).cpu()

    return float((top1(reference) == top1(candidate)).float().mean())


# -- input -------------------------------------------------------------------------------------
def decode_image(data: bytes):
    """Bytes -> RGB PIL image, EXIF orientation applied; RequestError says what is wrong."""
    from PIL import Image, ImageOps

    if not data:
        raise RequestError("empty request body: send the bytes of a JPEG or PNG image")
    try:
        im = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"image declares too many pixels ({exc}); resize it below "
                              f"{MAX_IMAGE_PIXELS} pixels") from None
    except Exception:
        raise RequestError("the body is not a supported image (JPEG, PNG, WebP, BMP, GIF or TIFF): "
                           f"send the image file's bytes ({len(data)} bytes received)") from None
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        raise PayloadTooLarge(f"image is {w}x{h} = {w * h} pixels, over the {MAX_IMAGE_PIXELS} limit: resize it first")
    try:
        im = to_rgb(ImageOps.exif_transpose(im))
        im.load()
    except Exception as exc:
        raise RequestError(f"the image is corrupt or truncated ({type(exc).__name__}: {exc}): "
                           "send a complete file") from None
    return im


def to_rgb(im):
    """Any Pillow mode -> RGB: alpha composited on white, 16/32-bit integers scaled to 8 bits."""
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if im.mode.startswith("I"):  # I;16, I;16B, I;16L, I: Pillow's convert() would clip, not scale
        import numpy as np

        a = np.asarray(im).astype(np.int64)
        shift = 8 if a.max(initial=0) <= 0xFFFF else 24
        return Image.fromarray((np.clip(a, 0, None) >> shift).clip(0, 255).astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")


def _decode_json(body) -> list:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError('body is not valid JSON: send {"instances": ["<base64 image>", ...]}') from None
    instances = doc.get("instances") if isinstance(doc, dict) else None
    if not isinstance(instances, list) or not instances:
        raise RequestError('JSON body needs a non-empty "instances" list of base64-encoded images')
    if len(instances) > MAX_BATCH_IMAGES:
        raise PayloadTooLarge(f"{len(instances)} instances in one request, over the {MAX_BATCH_IMAGES} limit: "
                              "split them into several requests")
    images = []
    for i, item in enumerate(instances):
        if isinstance(item, dict):
            item = item.get("b64")
        if not isinstance(item, str):
            raise RequestError(f'instances[{i}] must be a base64 string or {{"b64": "..."}} (URLs are not fetched)')
        try:
            data = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"instances[{i}] is not valid base64 (URLs are not fetched)") from None
        try:
            images.append(decode_image(data))
        except RequestError as exc:
            raise type(exc)(f"instances[{i}]: {exc}", exc.status_code) from None
    return images


def media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def input_fn(body, content_type: str, transform=None):
    """Decode a request into RGB PIL images; with `transform` (the eval preset), into a
    preprocessed float batch [N, 3, H, W] ready for the model."""
    ctype = media_type(content_type)
    if ctype in IMAGE_TYPES:
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogateescape")
        images = [decode_image(bytes(body))]
    elif ctype == JSON_TYPE:
        images = _decode_json(body)
    else:
        raise UnsupportedMediaType(f"unsupported content type {content_type!r}: send one of "
                                   f"{', '.join(IMAGE_TYPES + (JSON_TYPE,))}")
    return images if transform is None else preprocess(images, transform)


def preprocess(images, transform):
    """PIL images -> float batch [N, 3, H, W]; with the eval preset this runs no torch kernel and
    the batch is already in the channels_last layout the model runs in."""
    import torch

    if hasattr(transform, "batch"):
        return transform.batch([transform.array(im) for im in images])
    return torch.stack([transform(im) for im in images])


# -- predict -----------------------------------------------------------------------------------
def predict_fn(data, loaded: LoadedModel):
    """Logits (float32, CPU) for a list of PIL images or an already preprocessed batch."""
    import torch

    batch = data if isinstance(data, torch.Tensor) else preprocess(data, loaded.transform)
    with torch.inference_mode():
        x = loaded.precision.prepare_input(batch)
        if loaded.forward is not None:
            logits = loaded.forward(x)
        else:
            with loaded.precision.autocast():
                logits = loaded.model(x)
    return logits.float().cpu()


# -- output ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputRequest:
    kind: str  # "top_k" | "logits"
    k: int = DEFAULT_TOP_K


ACCEPTED = "application/json (params: top_k=N, output=logits)"


def parse_accept(accept: str | None) -> OutputRequest:
    """Pick the first producible entry of an Accept header (q-values respected)."""
    entries = []
    for pos, raw in enumerate((accept or "").split(",")):
        if not raw.strip():
            continue
        base, *params = [p.strip() for p in raw.split(";")]
        opts = dict(p.split("=", 1) if "=" in p else (p, "") for p in params)
        opts = {k.strip().lower(): v.strip().strip('"') for k, v in opts.items()}
        try:
            q = float(opts.pop("q", "1"))
        except ValueError:
            q = 1.0
        entries.append((-q, pos, base.lower(), opts))
    if not entries:
        return OutputRequest("top_k")
    for _, _, base, opts in sorted(entries):
        if base not in (JSON_TYPE, "application/*", "*/*"):
            continue
        if opts.get("output", "predictions") == "logits":
            return OutputRequest("logits")
        if opts.get("output", "predictions") != "predictions":
            raise NotAcceptable(f"unknown output={opts['output']!r} in Accept: use output=logits or leave it out")
        k = opts.get("top_k", str(DEFAULT_TOP_K))
        if not k.isdigit() or int(k) < 1:
            raise NotAcceptable(f"top_k={k!r} in Accept must be a positive integer")
        return OutputRequest("top_k", int(k))
    raise NotAcceptable(f"cannot answer with {accept!r}: accept {ACCEPTED}")


def top_k(logits, breeds, k: int = DEFAULT_TOP_K) -> list[list[dict]]:
    probs = logits.float().softmax(dim=1)
    k = min(k, probs.shape[1])
    values, idx = probs.topk(k, dim=1)
    return [[{"breed": breeds[j], "index": int(j), "probability": round(float(p), 6)} for p, j in zip(vs, ids)]
            for vs, ids in zip(values.tolist(), idx.tolist())]


def output_fn(logits, accept: str | None, breeds: list):
    """Encode logits [N, C] as JSON per the Accept header; returns (body, content type)."""
    want = parse_accept(accept)
    if want.kind == "logits":
        return json.dumps({"logits": logits.tolist()}), JSON_TYPE
    return json.dumps({"predictions": top_k(logits, breeds, want.k)}), JSON_TYPE


# -- errors under AWS's inference toolkit ---------------------------------------------------------
@dataclass(frozen=True)
class Refused:
    """A request error carried from input_fn through predict_fn to output_fn under AWS's inference
    toolkit. Its Transformer answers any exception raised by a handler with the Python traceback in
    the body (500 unless a BaseInferenceToolkitError, whose body *also* carries the traceback), so
    request errors travel as this value and output_fn answers them as the local server does:
    the error's status set on the toolkit's context and the JSON body `{"error", "status"}`."""

    error: RequestError

    def answer(self, context) -> tuple[str, str]:
        from http import HTTPStatus

        status = self.error.status_code
        context.set_response_status(code=status, phrase=HTTPStatus(status).phrase)
        return self.error.document(), JSON_TYPE
