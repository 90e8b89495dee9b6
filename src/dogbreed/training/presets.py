"""Image preprocessing, defined once for training, validation, test and serving.

`Preprocessing` holds what the eval transform needs (resize, crop, mean, std, interpolation).
With torchvision's ImageNet weights it comes from the weights enum's own `transforms`
(ResNet50's IMAGENET1K_V2 was evaluated at resize 232, ResNet18's IMAGENET1K_V1 at 256);
without them (`--weights none`, a state-dict file) it is the classic resize 256 / crop 224.
Training stores it in model_config.json, so serving preprocesses exactly as training did.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INTERPOLATION = "bilinear"
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def resize_size(crop_size: int, ratio: float = 256 / 224) -> int:
    """Short side to resize to before centre-cropping `crop_size`: the crop keeps the same share
    of the resized image at every crop size (ImageNet convention: crop*256/224)."""
    return int(round(crop_size * ratio))


@dataclass(frozen=True)
class Preprocessing:
    crop_size: int
    resize_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = DEFAULT_INTERPOLATION

    def describe(self) -> str:
        return (f"resize {self.resize_size} crop {self.crop_size} {self.interpolation} "
                f"mean {list(self.mean)} std {list(self.std)}")

    def interpolation_mode(self):
        from torchvision.transforms import InterpolationMode

        return InterpolationMode(self.interpolation)


def default_preprocessing(crop_size: int) -> Preprocessing:
    """No pretrained weights: resize crop*256/224, ImageNet mean/std, bilinear (the values every
    model saved before preprocessing was stored was trained and served with)."""
    return Preprocessing(crop_size, resize_size(crop_size))


def weights_enum(arch: str, weights: str | None):
    """torchvision's weights enum for `--weights imagenet` (the arch's DEFAULT), else None."""
    from dogbreed.training.choices import ARCHS

    if weights != "imagenet" or arch not in ARCHS:  # an unknown arch is ModelConfig's error to report
        return None
    import torchvision.models as tvm

    return getattr(tvm, ARCHS[arch][1]).DEFAULT


def preprocessing_for(arch: str, weights: str | None, crop_size: int) -> Preprocessing:
    """The weights' own eval transform (read from the enum's `transforms`: nothing is downloaded).

    At the weights' crop size (224) it is exactly theirs. At another `--image-size` the
    resize keeps the weights' resize/crop ratio (232/224 for ResNet50 V2): the crop sees the same
    share of the image, the scale the backbone was trained to expect relative to the crop.
    """
    enum = weights_enum(arch, weights)
    if enum is None:
        return default_preprocessing(crop_size)
    t = enum.transforms()
    ratio = t.resize_size[0] / t.crop_size[0]
    return Preprocessing(crop_size, resize_size(crop_size, ratio), tuple(t.mean), tuple(t.std),
                         t.interpolation.value)


@dataclass(frozen=True)
class Augmentation:
    """One training image's random draw: the crop box (top, left, height, width) and the flip."""

    box: tuple[int, int, int, int]
    flip: bool


class ClassificationPresetTrain:
    """Train-time augmentation: random resized crop (scale 0.5-1) and horizontal flip, then the
    same normalisation as evaluation. `draw` takes the random numbers from torch's global RNG in
    the order torchvision's RandomResizedCrop + RandomHorizontalFlip would, and `array` applies
    them; drawing apart from decoding lets threads decode while the draws stay reproducible."""

    SCALE = (0.5, 1.0)
    RATIO = (3 / 4, 4 / 3)

    def __init__(self, *, crop_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, hflip_prob: float = 0.5,
                 interpolation: str = DEFAULT_INTERPOLATION):
        import numpy as np
        from torchvision.transforms import InterpolationMode

        self.crop_size, self.hflip_prob = crop_size, hflip_prob
        self.interpolation = InterpolationMode(interpolation)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def from_preprocessing(cls, p: Preprocessing) -> "ClassificationPresetTrain":
        return cls(crop_size=p.crop_size, mean=p.mean, std=p.std, interpolation=p.interpolation)

    def draw(self, width: int, height: int) -> Augmentation:
        import torch
        from torchvision import transforms as T

        shape_only = torch.empty(1, 1, 1).expand(1, height, width)  # get_params reads only the size
        box = T.RandomResizedCrop.get_params(shape_only, list(self.SCALE), list(self.RATIO))
        return Augmentation(tuple(box), bool(torch.rand(1) < self.hflip_prob))

    def array(self, img, augmentation: Augmentation | None = None):
        """RGB PIL image -> augmented, normalised float32 array [H, W, 3] (`draw` if not given)."""
        import numpy as np
        from torchvision.transforms import functional as F

        aug = augmentation or self.draw(*img.size)
        img = F.resized_crop(img, *aug.box, [self.crop_size, self.crop_size], self.interpolation, antialias=True)
        if aug.flip:
            img = F.hflip(img)
        return normalize(np.asarray(img, dtype=np.uint8), self.mean, self.std)

    def __call__(self, img):
        """RGB PIL image -> float tensor [3, H, W] (what ToTensor + Normalize give)."""
        import torch

        return torch.from_numpy(self.array(img)).permute(2, 0, 1).contiguous()


def normalize(pixels, mean, std):
    """uint8 array [..., 3] -> normalised float32 array: the float32 operations of ToTensor +
    Normalize in their order, so the values are theirs bit for bit (the image cache's
    NormalizingCollate does the same in torch)."""
    import numpy as np

    x = pixels.astype(np.float32)
    x /= np.float32(255)
    x -= mean
    x /= std
    return x


class ClassificationPresetEval:
    """Deterministic preprocessing shared by validation, test and the endpoint's input_fn:
    resize the short side to `resize_size` (default crop*256/224), centre-crop, normalise.

    Resize and centre-crop are torchvision's (PIL); the to-float and normalise steps are
    done in numpy, so preprocessing runs no torch kernels. A server's request threads can then
    preprocess without each starting an OpenMP thread team next to the model's: on a small
    machine a second team makes libgomp stop spin-waiting, which slows every forward pass.
    """

    def __init__(self, *, crop_size: int, resize_size: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 interpolation: str = DEFAULT_INTERPOLATION):
        import numpy as np
        from torchvision import transforms as T

        resize = resize_size or default_preprocessing(crop_size).resize_size
        self.resize_crop = T.Compose([T.Resize(resize, interpolation=T.InterpolationMode(interpolation),
                                               antialias=True), T.CenterCrop(crop_size)])
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def from_preprocessing(cls, p: Preprocessing) -> "ClassificationPresetEval":
        return cls(crop_size=p.crop_size, resize_size=p.resize_size, mean=p.mean, std=p.std,
                   interpolation=p.interpolation)

    def array(self, img):
        """RGB PIL image -> normalised float32 array [H, W, 3]: channels last, the layout the
        model runs in, so a batch of them needs no transposing copy (`batch`)."""
        import numpy as np

        return normalize(np.asarray(self.resize_crop(img), dtype=np.uint8), self.mean, self.std)

    @staticmethod
    def batch(arrays):
        """`array` results -> float batch [N, 3, H, W] in channels_last memory (one copy)."""
        import numpy as np
        import torch

        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def __call__(self, img):
        """RGB PIL image -> float tensor [3, H, W] (what ToTensor + Normalize give)."""
        import torch

        return torch.from_numpy(self.array(img)).permute(2, 0, 1).contiguous()
