"""Unit tests of the serving handler and the server's building blocks (no sockets)."""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import time
import zlib

import pytest
from PIL import Image

from dogbreed.serving import handler
from dogbreed.serving.errors import NotAcceptable, PayloadTooLarge, RequestError, UnsupportedMediaType


def encode(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header declares width x height pixels (a decompression bomb)."""
    raw = encode(Image.new("L", (1, 1)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return raw[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    import torch

    from dogbreed.training.model import ModelConfig, build_model, save_artifacts

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("model")
    classes = tuple(f"00{i}.Breed_{i}" for i in range(1, 6))
    cfg = ModelConfig(num_classes=5, arch="resnet18", image_size=48, classes=classes)
    save_artifacts(build_model(cfg), d)
    return handler.model_fn(str(d))


# -- decoding ----------------------------------------------------------------------------------
def test_rgba_is_composited_on_white():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    im.putpixel((0, 0), (0, 0, 255, 255))
    out = handler.decode_image(encode(im))
    assert out.mode == "RGB" and out.getpixel((1, 1)) == (255, 255, 255) and out.getpixel((0, 0)) == (0, 0, 255)


@pytest.mark.parametrize("mode", ["LA", "P", "L", "1", "CMYK", "I;16", "I", "F", "YCbCr"])
def test_every_mode_becomes_rgb(mode):
    im = Image.new("RGB", (8, 6), (10, 200, 30)).convert(mode) if mode not in ("I;16", "I") else None
    if mode == "I;16":
        im = Image.new("I;16", (8, 6), 40000)
    elif mode == "I":
        im = Image.new("I", (8, 6), 40000)
    fmt = "TIFF" if mode in ("CMYK", "F", "YCbCr", "I") else "PNG"
    out = handler.decode_image(encode(im, fmt))
    assert out.mode == "RGB" and out.size == (8, 6)


def test_16_bit_is_scaled_not_clipped():
    out = handler.decode_image(encode(Image.new("I;16", (4, 4), 0x8000)))  # mid grey in 16 bits
    assert out.getpixel((0, 0)) == (128, 128, 128)


def test_cmyk_jpeg_keeps_its_colour():
    out = handler.decode_image(encode(Image.new("RGB", (16, 16), (200, 30, 30)).convert("CMYK"), "JPEG", quality=95))
    r, g, b = out.getpixel((8, 8))
    assert r > 150 and g < 80 and b < 80


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = handler.decode_image(encode(im, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)


@pytest.mark.parametrize("data, status, words", [
    (b"", 400, "empty request body"),
    (bytes(range(256)) * 8, 400, "not a supported image"),
    (png_declaring(20000, 20000), 413, "too many pixels"),
    (png_declaring(7000, 7000), 413, "over the 40000000 limit"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", 400, "not a supported image"),
])
def test_bad_bytes_are_request_errors(data, status, words):
    with pytest.raises(RequestError) as err:
        handler.decode_image(data)
    assert err.value.status_code == status and words in str(err.value)


def test_truncated_jpeg_is_a_request_error():
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    with pytest.raises(RequestError, match="corrupt or truncated"):
        handler.decode_image(data[: len(data) // 2])


# -- content types and JSON batches ------------------------------------------------------------
def test_content_type_table():
    png = encode(Image.new("RGB", (8, 8)))
    for ctype in ("image/png", "image/jpeg; charset=binary", "application/x-image", "IMAGE/PNG"):
        assert len(handler.input_fn(png, ctype)) == 1
    with pytest.raises(UnsupportedMediaType, match="image/jpeg, image/png, application/x-image, application/json"):
        handler.input_fn(png, "text/csv")
    with pytest.raises(UnsupportedMediaType):
        handler.input_fn(png, "")


def test_json_instances_and_their_errors():
    b64 = base64.b64encode(encode(Image.new("RGB", (8, 8)))).decode()
    assert len(handler.input_fn(json.dumps({"instances": [b64, {"b64": b64}]}), "application/json")) == 2
    cases = {
        "not json": "not valid JSON",
        json.dumps({"instances": []}): "non-empty",
        json.dumps([b64]): "non-empty",
        json.dumps({"instances": ["http://169.254.169.254/latest/meta-data/"]}): "URLs are not fetched",
        json.dumps({"instances": [{"url": "http://example.com/dog.jpg"}]}): "URLs are not fetched",
        json.dumps({"instances": [b64, base64.b64encode(b"junk").decode()]}): "instances[1]: the body is not",
    }
    for body, words in cases.items():
        with pytest.raises(RequestError) as err:
            handler.input_fn(body, "application/json")
        assert words in str(err.value) and err.value.status_code == 400
    with pytest.raises(PayloadTooLarge):
        handler.input_fn(json.dumps({"instances": [b64] * (handler.MAX_BATCH_IMAGES + 1)}), "application/json")


# -- Accept ------------------------------------------------------------------------------------
def test_accept_parsing():
    P = handler.parse_accept
    assert P(None) == P("") == P("*/*") == P("application/json") == handler.OutputRequest("top_k", 5)
    assert P("application/json; top_k=3") == handler.OutputRequest("top_k", 3)
    assert P("application/json; output=logits").kind == "logits"
    assert P("text/html, application/json;q=0.5") == handler.OutputRequest("top_k", 5)
    for bad in ("text/csv", "image/png", "application/json; top_k=zero", "application/json; output=probs"):
        with pytest.raises(NotAcceptable):
            P(bad)


# -- the model ---------------------------------------------------------------------------------
def test_model_fn_checks_bf16_against_fp32(loaded):
    from dogbreed.training.device import cpu_has_fast_bf16

    if cpu_has_fast_bf16():
        assert loaded.agreement is not None and 0.0 <= loaded.agreement <= 1.0
        assert (loaded.precision.dtype == "bfloat16") == (loaded.agreement >= handler.MIN_BF16_AGREEMENT)
    else:
        assert loaded.agreement is None and loaded.precision.dtype is None
    assert loaded.breeds == [f"Breed {i}" for i in range(1, 6)]
    assert not loaded.model.training
    import torch

    convs = [m.weight.dtype for m in loaded.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and set(convs) == {torch.bfloat16 if loaded.precision.dtype == "bfloat16" else torch.float32}


def test_the_environment_chooses_the_serving_precision(tmp_path, monkeypatch):
    from dogbreed.errors import ConfigError
    from dogbreed.training.model import ModelConfig, build_model, save_artifacts

    cfg = ModelConfig(num_classes=3, arch="resnet18", image_size=32, classes=("001.A", "002.B", "003.C"))
    save_artifacts(build_model(cfg), tmp_path)
    monkeypatch.setenv(handler.ENV_MIXED_PRECISION, "off")
    off = handler.model_fn(str(tmp_path))
    assert off.precision.dtype is None and off.agreement is None
    monkeypatch.setenv(handler.ENV_MIXED_PRECISION, "on")  # bf16 even where the CPU emulates it
    assert handler.model_fn(str(tmp_path)).precision.dtype == "bfloat16"
    assert handler.model_fn(str(tmp_path), mixed_precision="off").precision.dtype is None  # the argument wins
    monkeypatch.setenv(handler.ENV_MIXED_PRECISION, "fp32")
    with pytest.raises(ConfigError, match=r"^\$DOGBREED_MIXED_PRECISION='fp32': set it to auto, on or off$"):
        handler.model_fn(str(tmp_path))


def test_input_fn_preprocesses_exactly_like_validation(loaded):
    import torch

    from dogbreed.training.presets import ClassificationPresetEval

    im = Image.effect_noise((90, 70), 60).convert("RGB")
    batch = handler.input_fn(encode(im), "image/png", transform=loaded.transform)
    expected = ClassificationPresetEval(crop_size=48)(im)
    assert batch.shape == (1, 3, 48, 48) and torch.equal(batch[0], expected)


def test_eval_preset_matches_torchvision_to_tensor_and_normalize_bit_for_bit():
    import torch
    from torchvision import transforms as T

    from dogbreed.training.presets import IMAGENET_MEAN, IMAGENET_STD, ClassificationPresetEval, resize_size

    for size, shape in [(48, (90, 70)), (112, (50, 300)), (64, (64, 64))]:
        reference = T.Compose([T.Resize(resize_size(size), antialias=True), T.CenterCrop(size), T.ToTensor(),
                               T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        im = Image.effect_noise(shape, 60).convert("RGB")
        ours = ClassificationPresetEval(crop_size=size)(im)
        assert ours.dtype == torch.float32 and ours.is_contiguous() and torch.equal(ours, reference(im))


def test_model_fn_predict_fn_and_transform_fn_run_on_one_model_thread(tmp_path):
    from dogbreed.serving.app import ModelServer

    script = tmp_path / "code.py"
    script.write_text(
        "import threading, torch\n"
        "seen = {}\n"
        "def model_fn(d):\n    seen['model_fn'] = threading.get_ident()\n    return seen\n"
        "def input_fn(b, c):\n    seen['input_fn'] = threading.get_ident()\n    return torch.ones(1, 2)\n"
        "def predict_fn(x, m):\n    m['predict_fn'] = threading.get_ident()\n    return x\n"
        "def output_fn(p, a):\n    return 'ok'\n")
    app = ModelServer(tmp_path, entry_point=script)
    try:
        assert app.invoke(b"x", "application/x-image", "application/json")[0] == b"ok"
        seen = app.model
        assert seen["model_fn"] == seen["predict_fn"] == app.batcher._thread.ident
        assert seen["input_fn"] == threading.get_ident() != seen["model_fn"]
    finally:
        app.close()
    script.write_text("import threading\n"
                      "def model_fn(d):\n    return threading.get_ident()\n"
                      "def transform_fn(m, b, c, a):\n    return str(m == threading.get_ident())\n")
    app = ModelServer(tmp_path, entry_point=script)
    try:
        assert app.invoke(b"x", "application/x-image", "application/json")[0] == b"True"
    finally:
        app.close()


def test_predict_and_output(loaded):
    import torch

    ims = [Image.effect_noise((60, 60), s).convert("RGB") for s in (20, 80)]
    # a fused forward rounds bf16 its own way once optimised for a batch size: as a server does, warm it
    handler.warm_up_batches(loaded, [2])
    from_list = handler.predict_fn(ims, loaded)
    from_tensor = handler.predict_fn(handler.preprocess(ims, loaded.transform), loaded)
    assert from_list.shape == (2, 5) and from_list.dtype == torch.float32 and torch.equal(from_list, from_tensor)
    body, ctype = handler.output_fn(from_list, "application/json; top_k=2", loaded.breeds)
    preds = json.loads(body)["predictions"]
    assert ctype == "application/json" and [len(p) for p in preds] == [2, 2]
    assert preds[0][0]["index"] == int(from_list[0].argmax())
    assert abs(sum(p["probability"] for p in handler.top_k(from_list, loaded.breeds, 5)[0]) - 1) < 1e-4
    logits = json.loads(handler.output_fn(from_list, "application/json; output=logits", loaded.breeds)[0])["logits"]
    assert torch.allclose(torch.tensor(logits), from_list)


# -- server building blocks --------------------------------------------------------------------
def test_split_prediction_cuts_along_rows():
    import torch

    from dogbreed.serving.batcher import split_prediction

    pred = {"logits": torch.arange(10).reshape(5, 2), "breeds": ["a", "b"]}
    parts = split_prediction(pred, [2, 3])
    assert parts[0]["logits"].tolist() == [[0, 1], [2, 3]] and parts[1]["breeds"] == ["a", "b"]
    assert split_prediction([1, 2, 3], [1, 2]) == [[1], [2, 3]]


def test_batcher_merges_concurrent_requests_and_survives_errors():
    import torch

    from dogbreed.serving.batcher import Batcher

    calls = []

    def predict(x):
        calls.append(int(x.shape[0]))
        if (x < 0).any():
            raise ValueError("negative input")
        time.sleep(0.05)
        return x * 2

    b = Batcher(predict, max_batch_size=4, max_wait_ms=5000).start()  # fires once nothing is decoding
    try:
        arrivals = [b.arrive() for _ in range(3)]  # three requests on their way: the first batch waits for them
        first = b.submit(torch.ones(1, 1))
        later = []
        for v, arrival in zip((2.0, 3.0, 4.0), arrivals):
            later.append(b.submit(torch.full((1, 1), v), arrival=arrival))
            b.leave(arrival)  # the request ends: a no-op once its rows are queued
        for p in [first, *later]:
            assert p.done.wait(5)
        assert calls[0] == 4 and [float(p.result) for p in [first, *later]] == [2, 4, 6, 8]
        bad = b.submit(torch.full((1, 1), -1.0))
        assert bad.done.wait(5) and isinstance(bad.error, ValueError)
        ok = b.submit(torch.ones(2, 1))
        assert ok.done.wait(5) and ok.result.tolist() == [[2.0], [2.0]] and b.alive()
    finally:
        b.stop()
    assert not b.alive()


def test_a_request_that_brings_no_rows_releases_the_waiting_batch():
    import torch

    from dogbreed.serving.batcher import Batcher

    b = Batcher(lambda x: x, max_batch_size=4, max_wait_ms=60_000).start()
    try:
        bad = b.arrive()  # e.g. a body that fails to decode
        job = b.submit(torch.ones(1, 1), arrival=b.arrive())
        assert not job.done.wait(0.2)  # waits: `bad` may still bring rows
        b.leave(bad)
        b.leave(bad)  # leaving twice counts once
        assert job.done.wait(5) and job.batch_rows == 1
        again = b.submit(torch.ones(1, 1))  # nothing on its way: no wait at all
        assert again.done.wait(5)
    finally:
        b.stop()


def test_inference_module_is_validated_like_the_toolkit(tmp_path):
    from dogbreed.serving.errors import ModelLoadError
    from dogbreed.serving.inference_module import InferenceModule

    cases = {
        "def input_fn(b, c): pass\n": "no model_fn",
        "def model_fn(d): pass\ndef transform_fn(m, b, c, a): pass\ndef input_fn(b, c): pass\n": "one or the other",
        "def model_fn(d): pass\ndef input_fn(b, c): pass\n": "lacks output_fn, predict_fn",
        "raise ImportError('no such package')\n": "importing",
    }
    for i, (src, words) in enumerate(cases.items()):
        path = tmp_path / f"inference_{i}.py"
        path.write_text(src)
        with pytest.raises(ModelLoadError, match=words):
            InferenceModule(path)
    (tmp_path / "ok.py").write_text("def model_fn(d): pass\ndef transform_fn(m, b, c, a): pass\n")
    assert InferenceModule(tmp_path / "ok.py").transform_fn is not None


def test_the_served_forward_is_fused_on_cpu_and_says_so(loaded):
    # training.fused: eager only where the fused graph cannot be traced or disagrees with eager
    assert loaded.fused and "oneDNN-fused" in loaded.describe()
