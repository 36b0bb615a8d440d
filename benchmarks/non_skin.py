"""Write a folder of pictures that are not skin, for the out-of-scope benchmark.

    python benchmarks/non_skin.py trust-far/ [--no-screenshots]

Generated (plain colours, gradients, stripes, checkerboards, noise, shapes,
rendered text pages) plus pictures that ship with the system and its packages
(icons, diagrams, screenshots in /usr/share/doc, package test images) and, when
Chromium is installed, screenshots of HTML pages from /usr/share/doc. Nothing
is downloaded; the folder is for measuring only and stays out of the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
SEARCH = [
    Path("/usr/share/doc"),
    Path("/usr/share/icons/hicolor"),
    Path("/usr/share/info"),
    Path("/usr/share/tcltk"),
    Path(sys.prefix) / "lib",
]
TEXT = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua. The quarterly report shows revenue up 4% against last year. "
    "Meeting moved to Thursday 3 pm, room 204. Please bring the signed forms and your ID card. "
    "def main():\n    return 0\n안녕하세요 skinfood 1234567890 invoice total: $1,299.00"
)


def _font(size: int, rng: random.Random):
    fonts = sorted(FONT_DIR.glob("*.ttf")) if FONT_DIR.is_dir() else []
    if fonts:
        return ImageFont.truetype(str(rng.choice(fonts)), size)
    return ImageFont.load_default()


def generated(rng: random.Random) -> dict[str, Image.Image]:
    """~90 drawn pictures of 9 kinds, sizes like a phone's (resized on load anyway)."""
    out: dict[str, Image.Image] = {}
    nrng = np.random.default_rng(rng.randrange(2**32))
    size = (640, 480)
    colours = [
        (255, 255, 255),
        (0, 0, 0),
        (128, 128, 128),
        (220, 30, 30),
        (30, 160, 60),
        (30, 60, 200),
        (250, 220, 40),
        (120, 70, 30),
        (214, 160, 110),
        (240, 200, 170),
        (90, 20, 120),
        (20, 200, 200),
    ]
    for i, c in enumerate(colours):
        out[f"plain_{i:02d}"] = Image.new("RGB", size, c)
    for i in range(8):
        a, b = np.array(rng.choice(colours), np.float32), np.array(rng.choice(colours), np.float32)
        t = np.linspace(0, 1, size[0] if i % 2 == 0 else size[1], dtype=np.float32)
        row = a + (b - a) * t[:, None]
        arr = (
            np.broadcast_to(row[None], (size[1], size[0], 3))
            if i % 2 == 0
            else np.broadcast_to(row[:, None], (size[1], size[0], 3))
        )
        out[f"gradient_{i:02d}"] = Image.fromarray(arr.astype(np.uint8))
    for i in range(12):
        w = rng.choice([4, 8, 16, 32, 64])
        c1, c2 = rng.sample(colours, 2)
        img = Image.new("RGB", (size[0] * 2, size[1] * 2), c1)
        d = ImageDraw.Draw(img)
        for x in range(0, img.width * 2, 2 * w):
            d.rectangle([x, 0, x + w - 1, img.height], fill=c2)
        out[f"stripes_{i:02d}"] = img.rotate(rng.choice([0, 45, 90, 30, 135]), expand=False).crop(
            (size[0] // 2, size[1] // 2, size[0] // 2 + size[0], size[1] // 2 + size[1])
        )
    for i in range(12):
        w = rng.choice([8, 20, 40, 60, 80])
        c1, c2 = rng.sample(colours, 2) if i % 3 else ((0, 0, 0), (255, 255, 255))
        ys, xs = np.mgrid[0 : size[1], 0 : size[0]]
        mask = ((xs // w + ys // w) % 2).astype(bool)
        arr = np.where(mask[..., None], np.array(c1, np.uint8), np.array(c2, np.uint8))
        out[f"checker_{i:02d}"] = Image.fromarray(arr.astype(np.uint8))
    for i in range(10):
        kind = i % 3
        if kind == 0:
            arr = nrng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        elif kind == 1:
            arr = np.clip(128 + nrng.normal(0, 50, (size[1], size[0], 1)), 0, 255).repeat(3, 2).astype(np.uint8)
        else:
            arr = nrng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        img = Image.fromarray(arr).resize(size, Image.BICUBIC)
        out[f"noise_{i:02d}"] = img.filter(ImageFilter.GaussianBlur(rng.choice([0, 1, 3]))) if kind else img
    for i in range(12):
        img = Image.new("RGB", size, rng.choice(colours))
        d = ImageDraw.Draw(img)
        for _ in range(rng.randint(3, 12)):
            x0, y0 = rng.randrange(size[0]), rng.randrange(size[1])
            box = [x0, y0, x0 + rng.randint(20, 300), y0 + rng.randint(20, 300)]
            (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=rng.choice(colours))
        out[f"shapes_{i:02d}"] = img
    for i in range(16):
        bg, fg = ((255, 255, 255), (0, 0, 0)) if i % 4 else (rng.choice(colours), rng.choice(colours))
        img = Image.new("RGB", (600, 800) if i % 2 else (800, 600), bg)
        d = ImageDraw.Draw(img)
        font = _font(rng.choice([14, 18, 24, 36]), rng)
        y = 20
        words = TEXT.split(" ")
        while y < img.height - 20:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 10)))
            d.text((20, y), line, fill=fg, font=font)
            y += int(font.size * 1.5) if hasattr(font, "size") else 16
        out[f"text_{i:02d}"] = img
    return out


def shipped(limit: int = 60) -> dict[str, Image.Image]:
    """Pictures installed with the system and packages: icons, diagrams, screenshots, a few photos."""
    out: dict[str, Image.Image] = {}
    seen: set[str] = set()
    files = []
    for root in SEARCH:
        if root.is_dir():
            files += [p for p in root.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".gif"}]
    for p in sorted(files):
        try:
            if p.stat().st_size < 4000:
                continue
            digest = hashlib.sha1(p.read_bytes()).hexdigest()
            if digest in seen:
                continue
            with Image.open(p) as im:
                if min(im.size) < 48:
                    continue
                img = im.convert("RGBA")
            flat = Image.new("RGBA", img.size, (255, 255, 255, 255))  # icons: on a white page
            out[f"file_{len(out):02d}_{p.stem[:30]}"] = Image.alpha_composite(flat, img).convert("RGB")
            seen.add(digest)
        except (OSError, ValueError):
            continue
        if len(out) >= limit:
            break
    return out


def screenshots(folder: Path, limit: int = 12) -> int:
    """Screenshots of HTML pages under /usr/share/doc with headless Chromium; 0 without it."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        return 0
    pages = sorted(Path("/usr/share/doc").rglob("*.html"))[::7][:limit]
    done = 0
    for i, page in enumerate(pages):
        target = folder / f"screenshot_{i:02d}.png"
        try:
            subprocess.run(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    f"--screenshot={target}",
                    "--window-size=800,1000",
                    page.as_uri(),
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        done += target.is_file()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-screenshots", action="store_true")
    args = parser.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    pictures = {**generated(random.Random(args.seed)), **shipped()}
    for name, img in pictures.items():
        img.save(folder / f"{name}.png")
    shots = 0 if args.no_screenshots else screenshots(folder)
    print(f"{len(pictures) + shots} pictures in {folder}")


if __name__ == "__main__":
    main()
