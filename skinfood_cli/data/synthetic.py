"""Generated photo sets for the demo, the tests and the benchmarks.

Each image is skin-toned noise with one "lesion": an ellipse whose colour and
texture depend on its class, at a random place and size. The lesion is the only
class evidence, so a model that learned it must look at it (the Grad-CAM test
relies on that). These are synthetic pictures, not photos of skin disease.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# class name -> lesion RGB colour (chosen far apart, so a tiny model learns them fast)
LESION_COLOURS = {
    "acne": (200, 30, 40),
    "vitiligo": (250, 250, 245),
    "psoriasis": (150, 60, 170),
    "eczema": (40, 120, 50),
    "melanoma": (30, 20, 15),
    "rosacea": (240, 120, 20),
}
SKIN_TONE = (214, 160, 110)


def make_image(
    cls: str,
    size: tuple[int, int],
    rng: random.Random,
    *,
    lesion_scale: float = 0.3,
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """One synthetic image of class `cls` and the lesion's bounding box (x0, y0, x1, y1)."""
    w, h = size
    # One skin tone, slightly varied: the lesion's colour stays the only strong signal.
    tone = np.array([c + rng.randint(-20, 20) for c in SKIN_TONE], dtype=np.float32)
    nrng = np.random.default_rng(rng.randrange(2**32))
    base = tone + nrng.normal(0, 12, (h, w, 3))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
    draw = ImageDraw.Draw(img)
    r = max(3, int(min(w, h) * lesion_scale * rng.uniform(0.6, 1.0) / 2))
    cx, cy = rng.randint(r, w - r - 1), rng.randint(r, h - r - 1)
    box = (cx - r, cy - r, cx + r, cy + r)
    colour = LESION_COLOURS.get(cls) or _colour_for(cls)
    jitter = tuple(max(0, min(255, c + rng.randint(-15, 15))) for c in colour)
    draw.ellipse(box, fill=jitter)
    return img, box


def _colour_for(name: str) -> tuple[int, int, int]:
    r = random.Random(name)
    return (r.randrange(256), r.randrange(256), r.randrange(256))


def make_dataset(
    root: str | Path,
    classes: tuple[str, ...] = ("acne", "psoriasis", "vitiligo"),
    *,
    train_per_class: int = 24,
    test_per_class: int = 8,
    size: tuple[int, int] = (96, 72),
    seed: int = 0,
    lesion_scale: float = 0.3,
) -> Path:
    """Write a DermNet-style tree: root/train/<class>/*.jpg and root/test/<class>/*.jpg."""
    root = Path(root)
    rng = random.Random(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img, _ = make_image(cls, size, rng, lesion_scale=lesion_scale)
                img.save(folder / f"{cls}_{i:04d}.jpg", quality=92)
    return root


def make_non_skin(folder: str | Path, size: tuple[int, int] = (128, 96)) -> list[Path]:
    """Write 12 pictures that are not skin: plain colours, text, stripes, checkerboards (tests of the scope check)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    pictures: dict[str, Image.Image] = {}
    for name, colour in (
        ("white", (255, 255, 255)),
        ("black", (0, 0, 0)),
        ("blue", (30, 60, 200)),
        ("green", (30, 160, 60)),
    ):
        pictures[f"plain_{name}"] = Image.new("RGB", size, colour)
    for i, (bg, fg) in enumerate((("white", "black"), ("black", "white"), ("yellow", "blue"))):
        img = Image.new("RGB", size, bg)
        draw = ImageDraw.Draw(img)
        for y in range(2, h - 8, 11):
            draw.text((3, y), "Lorem ipsum dolor sit 12345 amet", fill=fg)
        pictures[f"text_{i}"] = img
    for i, step in enumerate((6, 14)):
        img = Image.new("RGB", size, "white")
        draw = ImageDraw.Draw(img)
        for x in range(0, w, step):
            draw.rectangle([x, 0, x + step // 2 - 1, h], fill=(0, 0, 0) if i == 0 else (200, 20, 20))
        pictures[f"stripes_{i}"] = img
    for i, step in enumerate((8, 24, 16)):
        ys, xs = np.mgrid[0:h, 0:w]
        board = (((xs // step + ys // step) % 2) * 255).astype(np.uint8)
        pictures[f"checker_{i}"] = Image.fromarray(np.stack([board] * 3, axis=-1))
    paths = []
    for name, img in pictures.items():
        paths.append(folder / f"{name}.png")
        img.save(paths[-1])
    return paths
