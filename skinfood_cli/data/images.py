"""The one image loader: every photo skinfood reads goes through `load_image`.

It turns anything Pillow can open into an RGB image the way training saw it, or
raises `ImageError` with a one-line reason; it never lets another exception out
(a fuzz test holds it to that).

* EXIF orientation is applied, so a phone photo stands the right way up.
* Transparency is composited on white; 16-bit and float images are scaled to
  8 bits instead of being clipped to white; CMYK, palette, grayscale -> RGB.
* Animated images use their first frame.
* HEIC/HEIF (iPhone photos) open through pi-heif, a decode-only build of
  pillow-heif (a core dependency; pillow-heif itself is used when that is the
  one installed). libheif applies the container's rotation, so they stand up
  the same way.
* Pixel count is checked from the header before decoding (decompression bombs).
* JPEGs at least twice the model input are decoded at a reduced scale
  (libjpeg's DCT scaling), which is several times faster than decoding the full
  photo and then shrinking it. Training and prediction load photos the same way.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from skinfood_cli.errors import ImageError

HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})


def _register_heif() -> bool:
    """Teach Pillow HEIC/HEIF; False when neither plugin is installed."""
    import importlib

    for name in ("pi_heif", "pillow_heif"):
        try:
            plugin = importlib.import_module(name)
            plugin.register_heif_opener()
        except Exception:
            continue
        return True
    return False


HEIF_SUPPORT = _register_heif()

# 100 megapixels: above any phone or DSLR photo, far below what a crafted
# 50 kB PNG can claim to hold (gigapixels).
MAX_PIXELS = 100_000_000

IMAGE_EXTENSIONS = (
    frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
    | {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
    | HEIF_EXTENSIONS
)

# Pillow's own guard warns at MAX_IMAGE_PIXELS and raises at twice that; ours is
# checked explicitly, so lift Pillow's to keep a single, clear limit.
Image.MAX_IMAGE_PIXELS = None


def is_image_path(path: Path) -> bool:
    """Whether a file name looks like an image (case-insensitive extension)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class LoadedImage:
    """A decoded photo and what its file's header said (the decode may be draft-reduced).

    `quality.py` reads the photo-quality hints from these: pixels and JPEG tables
    come from the header, so they need no second decode.
    """

    image: Image.Image  # RGB, EXIF-turned
    width: int  # as stored (before any draft scaling or EXIF turn)
    height: int
    format: str | None = None  # Pillow's name: "JPEG", "PNG", "HEIF", ...
    quantization: dict[int, list[int]] | None = None  # JPEG only: table id -> 64 quantiser steps

    @property
    def pixels(self) -> int:
        return self.width * self.height


def load_image(
    source: str | os.PathLike | bytes,
    *,
    draft_size: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Open an image file (or bytes) and return it as an RGB `PIL.Image`.

    `load_image_file` is the same with the header's facts beside the image.

    Args:
        source: a path, or the file's bytes (uploads).
        draft_size: the model's input size; a JPEG at least twice as large on
            both sides is decoded at a reduced scale that stays >= this size.
        max_pixels: refuse images whose header claims more pixels than this.

    Raises:
        ImageError: the file is missing, not an image, truncated, or too large.
    """
    return load_image_file(source, draft_size=draft_size, max_pixels=max_pixels).image


def load_image_file(
    source: str | os.PathLike | bytes,
    *,
    draft_size: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> LoadedImage:
    """`load_image`, keeping the stored size, format and JPEG tables the header gave.

    Raises:
        ImageError: as `load_image`.
    """
    try:
        return _load(source, draft_size, max_pixels)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except IsADirectoryError:
        raise ImageError("is a directory, not an image") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except UnidentifiedImageError:
        if not HEIF_SUPPORT and _looks_like_heif(source):
            raise ImageError(
                "a HEIC/HEIF photo, but no HEIF decoder is installed: pip install pi-heif", reason="not_image"
            ) from None
        raise ImageError("not an image file (unrecognised format)", reason="not_image") from None
    except Image.DecompressionBombError:
        raise ImageError("image is too large (decompression bomb guard)", reason="too_large") from None
    except OSError as exc:
        # Pillow reports truncation and decoder failures as OSError.
        text = str(exc) or exc.__class__.__name__
        if "truncat" in text.lower():
            raise ImageError("truncated or corrupt image") from None
        raise ImageError(f"could not decode image: {text}") from None
    except MemoryError:
        raise ImageError("image is too large to decode", reason="too_large") from None
    except Exception as exc:
        # struct.error to ValueError deep inside the format plugins.
        raise ImageError(f"corrupt image ({exc.__class__.__name__}: {exc})") from None


def _looks_like_heif(source) -> bool:
    """An ISO-BMFF 'ftyp' box with a HEIF brand (heic, mif1, ...), or a .heic/.heif name."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        head = bytes(source[:12])
    else:
        if Path(source).suffix.lower() in HEIF_EXTENSIONS:
            return True
        try:
            with open(source, "rb") as f:
                head = f.read(12)
        except OSError:
            return False
    return head[4:8] == b"ftyp" and head[8:12] in {b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1"}


def _load(source, draft_size: int | None, max_pixels: int) -> LoadedImage:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not source:
            raise ImageError("empty file", reason="empty")
        fp: io.BytesIO | Path = io.BytesIO(source)
    else:
        path = Path(source)
        if path.is_dir():
            raise ImageError("is a directory, not an image")
        if path.stat().st_size == 0:
            raise ImageError("empty file (0 bytes)", reason="empty")
        fp = path
    with warnings.catch_warnings():
        # Corrupt EXIF blocks and odd palettes warn; they are not our user's problem.
        warnings.simplefilter("ignore")
        with Image.open(fp) as img:
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ImageError("image has no pixels")
            if width * height > max_pixels:
                raise ImageError(
                    f"image is too large ({width}x{height} = {width * height / 1e6:.0f} "
                    f"megapixels, limit {max_pixels / 1e6:.0f})",
                    reason="too_large",
                )
            if draft_size and img.format == "JPEG" and min(width, height) >= 2 * draft_size:
                # draft() picks the strongest DCT scaling (1/2, 1/4, 1/8) that keeps
                # both sides >= draft_size: a 640x480 photo for a 224 px model decodes
                # at 320x240, a third of the work, and libjpeg's scaling averages
                # pixels the way a good downscale does.
                img.draft("RGB", (draft_size, draft_size))
            fmt = img.format
            tables = getattr(img, "quantization", None) if fmt == "JPEG" else None
            img.load()
            img = ImageOps.exif_transpose(img)
            return LoadedImage(
                _to_rgb(img),
                width,
                height,
                fmt,
                {int(k): list(v) for k, v in tables.items()} if tables else None,
            )


def prepare_image(img: Image.Image) -> Image.Image:
    """A PIL image already in memory (the Python API), made what `load_image` returns:
    EXIF-turned and 8-bit RGB, transparency on white."""
    return _to_rgb(ImageOps.exif_transpose(img))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency goes on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            arr = arr / 257.0
        else:
            # 32-bit int / float images have no fixed range: stretch what is there.
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA", "La"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")
