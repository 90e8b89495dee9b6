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
    """Deterministic preprocessing shared by validation, test and the endpoint's input_fn."""

    def __init__(self, *, crop_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        from torchvision import transforms as T

        self.transforms = T.Compose([
            T.Resize(resize_size(crop_size), antialias=True),
            T.CenterCrop(crop_size),
            T.ToTensor(),
            T.Normalize(mean, std),
        ])

    def __call__(self, img):
        return self.transforms(img)
