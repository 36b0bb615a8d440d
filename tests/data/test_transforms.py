"""Training crops are cut in the geometry evaluation sees: the whole photo squashed to a square."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as F

from skinfood_cli.data.dataset import SquashedResizedCrop, eval_transform, train_transform


def wide_photo(width: int = 400, height: int = 200) -> Image.Image:
    """A 2:1 picture with structure everywhere, so a crop in the wrong place shows."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


def test_a_crop_of_the_whole_photo_is_what_evaluation_sees():
    photo = wide_photo()
    crop = SquashedResizedCrop(64, scale=(1.0, 1.0), ratio=(1.0, 1.0))(photo)
    squashed = F.resize(photo, [64, 64], antialias=True)
    assert crop.size == (64, 64)
    assert np.abs(np.asarray(crop, np.float32) - np.asarray(squashed, np.float32)).mean() < 1.0


def test_crop_shapes_spread_around_the_photos_own_aspect(monkeypatch):
    # A 2:1 photo squashed to a square is seen half as wide as it is: training crops must
    # be too, so their width/height in the photo spreads around 2, not around 1.
    seen, resized_crop = [], F.resized_crop

    def record(image, top, left, h, w, size, **kwargs):
        seen.append(w / h)
        return resized_crop(image, top, left, h, w, size, **kwargs)

    monkeypatch.setattr(F, "resized_crop", record)
    crop, photo = SquashedResizedCrop(32, scale=(0.35, 1.0)), wide_photo()
    torch.manual_seed(0)
    for _ in range(200):
        crop(photo)
    mean_log = sum(math.log(r) for r in seen) / len(seen)
    assert 1.6 < math.exp(mean_log) < 2.5
    assert min(seen) >= 2 * 3 / 4 - 0.05 and max(seen) <= 2 * 4 / 3 + 0.05


def test_strong_augmentation_makes_normalised_squares_from_any_aspect():
    transform = train_transform(48, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), strength="strong")
    torch.manual_seed(1)
    for size in [(400, 200), (200, 400), (97, 301)]:
        x = transform(wide_photo(*size))
        assert x.shape == (3, 48, 48) and x.dtype == torch.float32
        assert float(x.min()) >= -1.0 - 1e-6 and float(x.max()) <= 1.0 + 1e-6
    assert eval_transform(48, (0.5,) * 3, (0.5,) * 3)(wide_photo()).shape == (3, 48, 48)
