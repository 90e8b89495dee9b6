"""The one model definition shared by training, tuning and serving.

`DogBreedNet` = torchvision ResNet backbone (its `fc` removed) + a classifier head.
`ModelConfig` holds every build argument as primitives; artifacts store it next to the
state dict so serving rebuilds exactly the trained network (nanoGPT's `model_args`).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dogbreed.errors import ConfigError, WeightsUnavailableError
from dogbreed.training.choices import (ARCHS, DEFAULT_ARCH, DEFAULT_DROPOUT, DEFAULT_FREEZE, DEFAULT_HEAD,
                                       DEFAULT_HIDDEN_UNITS, DEFAULT_IMAGE_SIZE, FREEZE_CHOICES, HEAD_CHOICES,
                                       MIN_IMAGE_SIZE)
from dogbreed.training.files import torch_save_atomic
from dogbreed.training.presets import (DEFAULT_INTERPOLATION, IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS,
                                       Preprocessing, default_preprocessing)

MODEL_FILE = "model.pth"
CONFIG_FILE = "model_config.json"
LABELS_FILE = "labels.json"


@dataclass(frozen=True)
class ModelConfig:
    num_classes: int
    arch: str = DEFAULT_ARCH
    head: str = DEFAULT_HEAD
    hidden_units: int = DEFAULT_HIDDEN_UNITS
    dropout: float = DEFAULT_DROPOUT
    freeze: str = DEFAULT_FREEZE
    image_size: int = DEFAULT_IMAGE_SIZE
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    classes: tuple[str, ...] = field(default_factory=tuple)
    # eval resize (short side) and interpolation; None: crop*256/224, what models saved before
    # these fields existed were trained and served with
    resize_size: int | None = None
    interpolation: str = DEFAULT_INTERPOLATION

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.freeze not in FREEZE_CHOICES:
            raise ConfigError(f"unknown freeze policy {self.freeze!r}; choose one of {', '.join(FREEZE_CHOICES)}")
        if self.head not in HEAD_CHOICES:
            raise ConfigError(f"unknown head {self.head!r}; choose one of {', '.join(HEAD_CHOICES)}")
        if self.num_classes < 2:
            raise ConfigError(f"need at least 2 classes, got {self.num_classes}")
        if self.image_size < MIN_IMAGE_SIZE:
            raise ConfigError(f"image size {self.image_size} is too small; use {MIN_IMAGE_SIZE} or more")
        if self.resize_size is not None and self.resize_size < self.image_size:
            raise ConfigError(f"resize size {self.resize_size} is smaller than the crop ({self.image_size})")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"unknown interpolation {self.interpolation!r}; "
                              f"choose one of {', '.join(INTERPOLATIONS)}")

    @property
    def preprocessing(self) -> Preprocessing:
        """What training fed the network and serving must feed it."""
        legacy = default_preprocessing(self.image_size)
        return Preprocessing(self.image_size, self.resize_size or legacy.resize_size, self.mean, self.std,
                             self.interpolation)

    @property
    def feature_dim(self) -> int:
        return ARCHS[self.arch][2]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"], d["classes"] = list(self.mean), list(self.std), list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        for key in ("mean", "std", "classes"):
            if key in d:
                d[key] = tuple(d[key])
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


def breed_name(class_folder: str) -> str:
    """'001.Affenpinscher' -> 'Affenpinscher'; 'German_shepherd_dog' -> 'German shepherd dog'."""
    number, dot, rest = class_folder.partition(".")
    name = rest if dot and number.isdigit() else class_folder
    return name.replace("_", " ")


def build_head(config: ModelConfig):
    """A freshly initialised classifier head, drawn from the caller's random state."""
    from torch import nn

    if config.head == "linear":
        return nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))
    return nn.Sequential(
        nn.Linear(config.feature_dim, config.hidden_units),
        nn.ReLU(inplace=True),
        nn.Dropout(config.dropout),
        nn.Linear(config.hidden_units, config.num_classes),
    )


def _net_class():
    from torch import nn

    class DogBreedNet(nn.Module):
        def __init__(self, config: ModelConfig):
            super().__init__()
            import torchvision.models as tvm

            self.config = config
            self.backbone = getattr(tvm, ARCHS[config.arch][0])(weights=None)
            self.backbone.fc = nn.Identity()
            self.head = build_head(config)

        def forward(self, x):
            return self.head(self.backbone(x))

        def trainable_backbone(self) -> bool:
            return self.config.freeze in ("layer4", "none")

        def apply_freeze(self) -> None:
            """Freeze per policy; frozen parts keep BatchNorm in eval mode (see `train`)."""
            for p in self.backbone.parameters():
                p.requires_grad = self.config.freeze == "none"
            if self.config.freeze == "layer4":
                for p in self.backbone.layer4.parameters():
                    p.requires_grad = True
            if self.config.freeze == "all":
                for p in self.head.parameters():
                    p.requires_grad = False

        def train(self, mode: bool = True):
            super().train(mode)
            if mode and self.config.freeze != "none":
                # Frozen layers must not update BatchNorm running stats: their output
                # would drift between epochs (and cached features would go stale).
                self.backbone.eval()
                if self.config.freeze == "layer4":
                    self.backbone.layer4.train()
            return self

    return DogBreedNet


_NET = None


def net_class():
    global _NET
    if _NET is None:
        _NET = _net_class()
    return _NET


# The backbone's random initialisation always uses this seed: with `--weights none` every
# tuning trial and the final training see the same (random) backbone, so tuned
# hyperparameters and cached backbone features stay valid for the saved model.
BACKBONE_SEED = 0


def build_model(config: ModelConfig, weights: str | None = "none"):
    """Build the network; `weights` is 'imagenet', 'none' or a path to a state dict.

    The backbone is initialised from `BACKBONE_SEED` (without touching the caller's random
    state), then overwritten by `weights` if given; the head follows the caller's seed.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(BACKBONE_SEED)
        model = net_class()(config)
    model.head = build_head(config)
    if weights and weights != "none":
        state = load_backbone_weights(config.arch, weights)
        missing, unexpected = model.backbone.load_state_dict(state, strict=False)
        unexpected = [k for k in unexpected if not k.startswith("fc.")]
        if unexpected or [k for k in missing if not k.startswith("fc.")]:
            raise ConfigError(
                f"weights {weights!r} do not fit {config.arch}: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
    model.apply_freeze()
    return model


def build_model_with_backbone(config: ModelConfig, backbone_state: dict):
    """The network with the backbone weights `backbone_state` (saved from an earlier `build_model`)
    and a fresh head drawn from the caller's random state, as `build_model` draws it.

    The backbone is built on the meta device and takes the given tensors as they are:
    initialising ResNet50's 25M parameters only to overwrite them costs seconds.
    """
    import torch

    with torch.device("meta"):
        model = net_class()(config)
    model.backbone.load_state_dict(backbone_state, assign=True)
    model.head = build_head(config)
    model.apply_freeze()
    return model


def _hub_checkpoint_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _online(host: str, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_weights_available(arch: str, weights: str):
    """Raise WeightsUnavailableError unless `weights` can be loaded: a file that exists, or
    torchvision's ImageNet weights in the torch hub cache or reachable. Returns the weights enum
    for imagenet (None otherwise). Cheap: no download, at most one connection attempt."""
    if weights == "none":
        return None
    if weights != "imagenet":
        if not Path(weights).is_file():
            raise ConfigError(f"weights file {weights} does not exist; pass --weights imagenet, none or a "
                              "state-dict path")
        return None
    import torchvision.models as tvm

    enum = getattr(tvm, ARCHS[arch][1]).DEFAULT
    filename = os.path.basename(enum.url)
    cached = _hub_checkpoint_dir() / filename
    host = enum.url.split("/")[2]
    if not cached.exists() and not _online(host):
        raise WeightsUnavailableError(
            f"ImageNet weights for {arch} are not cached at {cached} and {host} cannot be reached; "
            f"copy {filename} there, or use --weights none or --weights PATH")
    return enum


def load_backbone_weights(arch: str, weights: str) -> dict:
    """State dict of a backbone: torchvision's ImageNet weights (cached or downloaded) or a file."""
    import torch

    if weights != "imagenet":
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"weights file {path} does not exist; pass --weights imagenet, none or a state-dict path")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        # accept our own artifacts (backbone.* keys) as well as plain torchvision state dicts
        if any(k.startswith("backbone.") for k in state):
            state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        return state

    enum = check_weights_available(arch, weights)
    filename = os.path.basename(enum.url)
    cached = _hub_checkpoint_dir() / filename
    try:
        return enum.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # network errors come in many types
        raise WeightsUnavailableError(
            f"could not download ImageNet weights for {arch} ({exc}); "
            f"copy {filename} to {cached.parent}, or use --weights none or --weights PATH"
        ) from exc


# -- artifacts ---------------------------------------------------------------------------------
def fold_batchnorm(module):
    """A copy of an eval-mode `module` with each BatchNorm folded into the convolution before it:
    the same function in fewer passes over memory (ResNet50 bf16 on the 2-vCPU EPYC: 74 -> 92
    img/s at batch 8, measured). Used for computing features and for serving; the trained model
    keeps its layers. A module torch.fx cannot trace is copied unfused."""
    import copy

    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(module)  # works on a deep copy
    except Exception:
        return copy.deepcopy(module)


def save_artifacts(model, model_dir: str | os.PathLike) -> Path:
    """Write model.pth (state dict), model_config.json and labels.json into `model_dir`."""
    import torch

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    net = getattr(model, "module", model)  # unwrap DDP
    config: ModelConfig = net.config
    state = {k: v.detach().to("cpu", dtype=v.dtype if not v.is_floating_point() else torch.float32).contiguous()
             for k, v in net.state_dict().items()}
    torch_save_atomic(state, model_dir / MODEL_FILE)
    (model_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    labels = [{"index": i, "class": c, "breed": breed_name(c)} for i, c in enumerate(config.classes)]
    (model_dir / LABELS_FILE).write_text(json.dumps(labels, indent=2) + "\n")
    return model_dir / MODEL_FILE


def load_config(model_dir: str | os.PathLike) -> ModelConfig:
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing: not a dogbreed model directory")
    return ModelConfig.from_dict(json.loads(path.read_text()))


def load_model(model_dir: str | os.PathLike, map_location="cpu"):
    """Rebuild the trained network from an artifact directory (weights_only: no pickles run)."""
    import torch

    config = load_config(model_dir)
    model = build_model(config, weights="none")
    state = torch.load(Path(model_dir) / MODEL_FILE, map_location=map_location, weights_only=True)
    model.load_state_dict(state)
    return model.eval()
