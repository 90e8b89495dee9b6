"""The model's choices and defaults, defined once for the entry scripts' parser, `ModelConfig` and the CLI.

Plain data and no torch import, so `dogbreed --help` can show them without loading torch.
"""

from __future__ import annotations

ARCHS = {  # arch -> (torchvision builder, weights enum name, feature width)
    "resnet18": ("resnet18", "ResNet18_Weights", 512),
    "resnet34": ("resnet34", "ResNet34_Weights", 512),
    "resnet50": ("resnet50", "ResNet50_Weights", 2048),
    "resnet101": ("resnet101", "ResNet101_Weights", 2048),
}
ARCH_CHOICES = tuple(ARCHS)
# what stays frozen: all but the head, all but layer4, nothing, everything (nothing trains: the
# debugger's verdict table shows what that looks like)
FREEZE_CHOICES = ("head", "layer4", "none", "all")
HEAD_CHOICES = ("linear", "mlp")

DEFAULT_ARCH = "resnet50"
DEFAULT_WEIGHTS = "imagenet"  # or "none" (random init), or a path to a state dict
DEFAULT_IMAGE_SIZE = 224  # crop size in pixels: what torchvision's ImageNet weights were trained at
MIN_IMAGE_SIZE = 32  # a ResNet halves the input five times: a smaller crop has no pixel left
DEFAULT_FREEZE = "head"
DEFAULT_HEAD = "mlp"
DEFAULT_HIDDEN_UNITS = 256
DEFAULT_DROPOUT = 0.2
