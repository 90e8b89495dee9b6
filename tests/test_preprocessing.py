"""Preprocessing comes from the weights in use, is stored in model_config.json, and the endpoint
applies exactly what the weights document; models saved before keep the old values."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision.models as tvm
from PIL import Image

from dogbreed.serving.handler import model_fn
from dogbreed.training.args import get_args_parser
from dogbreed.training.features import FeatureSource
from dogbreed.training.model import CONFIG_FILE, ModelConfig, build_model, save_artifacts
from dogbreed.training.presets import IMAGENET_MEAN, IMAGENET_STD, preprocessing_for
from dogbreed.training.run import model_config_from_args

CLASSES = ("001.A", "002.B")


def photo(w=300, h=200):
    """A non-square image with detail at every scale, so a different resize gives different pixels."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def served_transform(tmp_path, arch, weights, image_size):
    """Save a model the way training configures it for `weights` (its backbone stays random:
    nothing is downloaded), then load it as the endpoint does."""
    args = get_args_parser().parse_args(["--arch", arch, "--weights", weights, "--image-size", str(image_size)])
    config = model_config_from_args(args, CLASSES)
    save_artifacts(build_model(config, "none"), tmp_path)
    return model_fn(str(tmp_path), device="cpu", mixed_precision="off").transform


@pytest.mark.parametrize("arch, enum", [("resnet50", tvm.ResNet50_Weights.IMAGENET1K_V2),
                                        ("resnet18", tvm.ResNet18_Weights.IMAGENET1K_V1)])
def test_served_preprocessing_is_the_weights_own(tmp_path, arch, enum):
    assert getattr(tvm, type(enum).__name__).DEFAULT is enum  # --weights imagenet means DEFAULT
    img = photo()
    ours = served_transform(tmp_path, arch, "imagenet", 224)(img)
    theirs = enum.transforms()(img)
    assert ours.shape == theirs.shape == (3, 224, 224)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    saved = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert saved["resize_size"] == enum.transforms().resize_size[0]


def test_resnet50_v2_and_resnet18_v1_really_differ():
    img = photo()
    a = tvm.ResNet50_Weights.IMAGENET1K_V2.transforms()(img)
    b = tvm.ResNet18_Weights.IMAGENET1K_V1.transforms()(img)
    assert (a - b).abs().max() > 0.1  # 232 vs 256: the test above could tell them apart


def test_weights_none_keeps_resize_256_over_224_scaled(tmp_path):
    pre = preprocessing_for("resnet50", "none", 112)
    assert (pre.resize_size, pre.crop_size, pre.mean, pre.std) == (128, 112, IMAGENET_MEAN, IMAGENET_STD)
    assert preprocessing_for("resnet50", "none", 224).resize_size == 256
    img = photo()
    ours = served_transform(tmp_path, "resnet18", "none", 112)(img)
    theirs = tvm.ResNet18_Weights.IMAGENET1K_V1.transforms.func(crop_size=112, resize_size=128)(img)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_another_image_size_keeps_the_weights_ratio():
    assert preprocessing_for("resnet50", "imagenet", 112).resize_size == 116  # 112 * 232/224
    assert preprocessing_for("resnet18", "imagenet", 112).resize_size == 128  # 112 * 256/224


def test_model_saved_before_preprocessing_was_stored_serves_with_the_old_values(tmp_path):
    config = ModelConfig(num_classes=2, arch="resnet18", image_size=112, classes=CLASSES)
    save_artifacts(build_model(config, "none"), tmp_path)
    doc = json.loads((tmp_path / CONFIG_FILE).read_text())
    for key in ("resize_size", "interpolation"):
        del doc[key]
    (tmp_path / CONFIG_FILE).write_text(json.dumps(doc))
    transform = model_fn(str(tmp_path), device="cpu", mixed_precision="off").transform
    img = photo()
    old = tvm.ResNet18_Weights.IMAGENET1K_V1.transforms.func(crop_size=112, resize_size=128)(img)
    torch.testing.assert_close(transform(img), old, rtol=0, atol=1e-5)


def test_feature_cache_key_changes_with_the_preprocessing():
    data = SimpleNamespace(root=".", splits={"train": SimpleNamespace(samples=[])})
    precision = SimpleNamespace(describe=lambda: "cpu float32")

    def digest(weights):
        args = get_args_parser().parse_args(["--arch", "resnet50", "--weights", weights, "--image-size", "224"])
        source = FeatureSource(None, data, model_config_from_args(args, CLASSES), "none", None, precision)
        return source.key("train", "eval").digest()

    assert digest("imagenet") != digest("none")  # same weights id given, only resize 232 vs 256 differs
