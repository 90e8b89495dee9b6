"""model_fn / input_fn / predict_fn / output_fn, as the SageMaker inference toolkit calls them.

Content types go through a decoder table; an unsupported type gets an error listing the
accepted ones. Images are decoded with EXIF orientation, converted to RGB and preprocessed
with exactly the eval preset used for validation.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass

from dogbreed.serving.errors import NotAcceptable, RequestError, UnsupportedMediaType

MAX_IMAGE_PIXELS = 40_000_000  # ~ 6300x6300; bigger declared sizes are decompression bombs
IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
JSON_TYPE = "application/json"
DEFAULT_TOP_K = 5


@dataclass
class LoadedModel:
    model: object
    config: object
    breeds: list
    precision: object
    transform: object


def model_fn(model_dir: str, device: str = "auto", mixed_precision: str = "auto") -> LoadedModel:
    """Load the artifact once: eval mode, inference precision, preprocessing preset."""
    import torch

    from dogbreed.training.device import select_precision
    from dogbreed.training.model import breed_name, load_model
    from dogbreed.training.presets import ClassificationPresetEval

    precision = select_precision(device, mixed_precision)
    model = precision.prepare_model(load_model(model_dir, map_location="cpu")).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = model.config
    torch.set_grad_enabled(False)
    return LoadedModel(model, cfg, [breed_name(c) for c in cfg.classes], precision,
                       ClassificationPresetEval(crop_size=cfg.image_size, mean=cfg.mean, std=cfg.std))


def decode_image(data: bytes):
    from PIL import Image, ImageOps

    if not data:
        raise RequestError("empty request body: send the bytes of a JPEG or PNG image")
    try:
        im = Image.open(io.BytesIO(data))
    except Exception:
        raise RequestError("the body is not an image Pillow can read: send a JPEG or PNG file") from None
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        raise RequestError(f"image is {w}x{h} = {w * h} pixels, over the {MAX_IMAGE_PIXELS} limit: resize it first",
                           status_code=413)
    try:
        im = ImageOps.exif_transpose(im)
        if im.mode not in ("RGB",):
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGB", rgba.size, (255, 255, 255))
                bg.paste(rgba, mask=rgba.getchannel("A"))
                im = bg
            elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
                im = im.point(lambda v: v / 256).convert("L").convert("RGB")
            else:
                im = im.convert("RGB")
        im.load()
    except Exception as exc:
        raise RequestError(f"the image is corrupt or truncated ({type(exc).__name__}): send a complete file") from None
    return im


def _decode_json(body) -> list:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError('body is not valid JSON: send {"instances": ["<base64 image>", ...]}') from None
    if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list) or not doc["instances"]:
        raise RequestError('JSON body needs a non-empty "instances" list of base64-encoded images')
    images = []
    for i, item in enumerate(doc["instances"]):
        if isinstance(item, dict):
            item = item.get("b64") or item.get("image_bytes", {}).get("b64") if isinstance(item.get("image_bytes", {}), dict) else item.get("b64")
        if not isinstance(item, str):
            raise RequestError(f"instances[{i}] must be a base64 string (URLs are not fetched)")
        try:
            data = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"instances[{i}] is not valid base64") from None
        images.append(decode_image(data))
    return images


def input_fn(body, content_type: str):
    """Decode a request into a list of RGB PIL images."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in IMAGE_TYPES:
        if isinstance(body, str):
            body = body.encode("latin-1")
        return [decode_image(bytes(body))]
    if ctype == JSON_TYPE:
        return _decode_json(body)
    raise UnsupportedMediaType(
        f"unsupported content type {content_type!r}: send one of {', '.join(IMAGE_TYPES + (JSON_TYPE,))}")


def preprocess(images, loaded: LoadedModel):
    import torch

    return torch.stack([loaded.transform(im) for im in images])


def predict_fn(images, loaded: LoadedModel):
    """Logits (float32, CPU) for a list of images or an already preprocessed batch tensor."""
    import torch

    batch = images if isinstance(images, torch.Tensor) else preprocess(images, loaded)
    with torch.inference_mode(), loaded.precision.autocast():
        logits = loaded.model(loaded.precision.prepare_input(batch))
    return logits.float().cpu()


def top_k(logits, breeds, k: int = DEFAULT_TOP_K) -> list[list[dict]]:
    probs = logits.softmax(dim=1)
    k = min(k, probs.shape[1])
    values, idx = probs.topk(k, dim=1)
    return [[{"breed": breeds[j], "index": int(j), "probability": round(float(p), 6)} for p, j in zip(vs, ids)]
            for vs, ids in zip(values.tolist(), idx.tolist())]


def output_fn(logits, accept: str | None, breeds: list | None = None, k: int = DEFAULT_TOP_K):
    """Encode predictions. `application/json` (default): top-k breeds per image;
    `application/json; verbose=logits` or `application/x-logits+json`: raw logits."""
    accept = (accept or JSON_TYPE).strip().lower()
    base = accept.split(";")[0].strip()
    if base in ("*/*", ""):
        base = JSON_TYPE
    if base == "application/x-logits+json" or "logits" in accept:
        return json.dumps({"logits": logits.tolist()}), JSON_TYPE
    if base != JSON_TYPE:
        raise NotAcceptable(f"cannot answer with {accept!r}: accept application/json or application/x-logits+json")
    if breeds is None:
        raise RequestError("breed names unavailable")
    return json.dumps({"predictions": top_k(logits, breeds, k)}), JSON_TYPE
