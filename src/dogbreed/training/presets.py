"""Image preprocessing, defined once for training, validation, test and serving."""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_size(crop_size: int) -> int:
    """ImageNet convention: resize the short side to crop*256/224, then centre-crop."""
    return int(round(crop_size * 256 / 224))


class ClassificationPresetTrain:
    """Train-time augmentation: random resized crop and horizontal flip."""

    def __init__(self, *, crop_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, hflip_prob: float = 0.5):
        from torchvision import transforms as T

        self.transforms = T.Compose([
            T.RandomResizedCrop(crop_size, scale=(0.5, 1.0), antialias=True),
            T.RandomHorizontalFlip(hflip_prob),
            T.ToTensor(),
            T.Normalize(mean, std),
        ])

    def __call__(self, img):
        return self.transforms(img)


class ClassificationPresetEval:
    """Deterministic preprocessing shared by validation, test and the endpoint's input_fn.

    Resize and centre-crop are torchvision's (PIL); the to-float and normalise steps are
    done in numpy, so preprocessing runs no torch kernels. A server's request threads can then
    preprocess without each starting an OpenMP thread team next to the model's: on a small
    machine a second team makes libgomp stop spin-waiting, which slows every forward pass.
    """

    def __init__(self, *, crop_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        import numpy as np
        from torchvision import transforms as T

        self.resize_crop = T.Compose([T.Resize(resize_size(crop_size), antialias=True), T.CenterCrop(crop_size)])
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def array(self, img):
        """RGB PIL image -> normalised float32 array [3, H, W] (what ToTensor + Normalize give)."""
        import numpy as np

        pixels = np.asarray(self.resize_crop(img), dtype=np.uint8).transpose(2, 0, 1).astype(np.float32, order="C")
        return (pixels / np.float32(255) - self.mean) / self.std

    def __call__(self, img):
        import torch

        return torch.from_numpy(self.array(img))
