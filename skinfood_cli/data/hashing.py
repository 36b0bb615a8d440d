"""What `check` and the training pre-scan know about each photo, computed in one decode.

    content hash   sha256 of the file's bytes: exact copies
    dHash          a 256-bit difference hash of the decoded, EXIF-turned photo:
                   near copies (resized, re-compressed, lightly re-cropped)
    mirrored dHash the same of the left-right mirrored photo: mirrored copies
    size, grayscale, ITA (skin tone, skin_tone.py)
    quality        photo-quality hints: dark, blurred, small, compressed (quality.py)

dHash (Krawetz's "difference hash"): shrink the grey image to 17 x 16 and keep
one bit per pair of horizontal neighbours, "is the left one brighter". It
survives rescaling and JPEG re-encoding (both keep the coarse gradients) and
costs a resize; two photos are near copies when few of the 256 bits differ.
Written here in a dozen lines rather than taken from `imagehash`, which would
bring scipy and PyWavelets along for it.

Distances between many photos are computed in numpy blocks, XOR then popcount
on four uint64 words per hash: 20,000 photos (200M pairs) take seconds.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

HASH_SIDE = 16  # 16 x 16 = 256 bits
HASH_BYTES = HASH_SIDE * HASH_SIDE // 8
# A thumbnail this big is enough for the hash (17 x 16) and for the skin-tone
# estimate; JPEGs decode at a DCT-reduced scale that keeps it, several times faster.
THUMB_SIDE = 128
# Bumped whenever what is computed per photo changes: older cache rows are recomputed.
FACTS_VERSION = 2


@dataclass
class PhotoFacts:
    """Everything `check` needs about one file; `error` set when it doesn't decode."""

    sha256: str
    size: int = 0  # bytes
    width: int = 0
    height: int = 0
    dhash: str = ""  # 64 hex digits
    dhash_mirror: str = ""
    grayscale: bool = False
    ita: float | None = None  # None: too few skin pixels to say
    error: str | None = None
    quality: list[str] = field(default_factory=list)  # quality.py's hint codes


def dhash_bits(gray: np.ndarray) -> np.ndarray:
    """(HASH_SIDE * HASH_SIDE,) bools from a (HASH_SIDE, HASH_SIDE + 1) grey array."""
    return (gray[:, :-1] > gray[:, 1:]).ravel()


def dhash(image, mirror: bool = False) -> str:
    """The 256-bit difference hash of a PIL image, as 64 hex digits."""
    from PIL import Image, ImageOps

    grey = image.convert("L")
    if mirror:
        grey = ImageOps.mirror(grey)
    small = np.asarray(grey.resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.BOX), dtype=np.int16)
    return np.packbits(dhash_bits(small)).tobytes().hex()


def is_grayscale(rgb: np.ndarray, tolerance: float = 3.0) -> bool:
    """True when the channels agree everywhere but for JPEG noise: a grey photo saved as RGB too."""
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)  # (H, W)
    return float(spread.mean()) < tolerance


def photo_facts(path: str | os.PathLike) -> PhotoFacts:
    """Read one file once: its content hash, then (through the one image loader) the rest.

    Never raises for a bad file: the reason goes into `error`.
    """
    from skinfood_cli.data.images import load_image_file
    from skinfood_cli.data.quality import photo_quality
    from skinfood_cli.data.skin_tone import estimate_ita
    from skinfood_cli.errors import ImageError

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        return PhotoFacts(sha256="", error=exc.strerror or str(exc))
    facts = PhotoFacts(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    try:
        loaded = load_image_file(data, draft_size=THUMB_SIDE)
    except ImageError as exc:
        facts.error = str(exc)
        return facts
    image = loaded.image
    facts.quality = photo_quality(loaded)  # before the thumbnail: its grey copy is 128 px on the short side
    facts.width, facts.height = _stored_size(data, image)
    facts.dhash = dhash(image)
    facts.dhash_mirror = dhash(image, mirror=True)
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))  # ~12k pixels: plenty for a median colour
    rgb = np.asarray(image)  # (H, W, 3) uint8
    facts.grayscale = is_grayscale(rgb)
    facts.ita = None if facts.grayscale else estimate_ita(rgb)
    return facts


def _stored_size(data: bytes, decoded) -> tuple[int, int]:
    """The photo's full size: the loader may have decoded a JPEG at 1/2 to 1/8 scale.

    The header was already read (and checked) by the loader; reading it again from
    the bytes in memory costs microseconds. Sides are reported as decoded (EXIF-turned).
    """
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
    if (w >= h) != (decoded.width >= decoded.height) and w != h:
        w, h = h, w
    return w, h


# --- distances ---------------------------------------------------------------------


def pack_hashes(hexes: list[str]) -> np.ndarray:
    """(N, 4) uint64 from N 64-digit hex hashes (an empty hash packs as zeros)."""
    words = HASH_BYTES // 8
    out = np.zeros((len(hexes), words), dtype=np.uint64)
    for i, h in enumerate(hexes):
        if h:
            out[i] = np.frombuffer(bytes.fromhex(h), dtype=">u8")
    return out


if hasattr(np, "bitwise_count"):

    def _popcount(x: np.ndarray) -> np.ndarray:
        return np.bitwise_count(x)
else:  # numpy < 2.0: a byte lookup table
    _TABLE = np.array([i.bit_count() for i in range(256)], dtype=np.uint8)

    def _popcount(x: np.ndarray) -> np.ndarray:
        b = x.view(np.uint8).reshape(*x.shape, 8)
        return _TABLE[b].sum(axis=-1, dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances (len(a), len(b)) between two packed hash arrays (N, 4) and (M, 4)."""
    x = a[:, None, :] ^ b[None, :, :]  # (N, M, 4)
    return _popcount(x).sum(axis=2, dtype=np.int32)


def close_pairs(
    a: np.ndarray, b: np.ndarray | None, threshold: int, *, a_mirror: np.ndarray | None = None, block: int = 64
):
    """Pairs (i, j, distance, mirrored) with distance <= threshold, block by block.

    With `b` None, pairs within `a` (i < j, each pair once: only the upper
    triangle is computed). With `a_mirror` (the mirrored hashes of `a`), a pair
    also counts when a's mirror is close to b: the distance is the smaller.
    Memory stays at block x len(b) x 32 bytes (20,000 photos: 41 MB).

    Yields:
        (i, j, distance, mirrored) with i indexing a and j indexing b (or a).
    """
    same = b is None
    other: np.ndarray = a if b is None else b
    for start in range(0, len(a), block):
        rows = slice(start, start + block)
        first = start if same else 0  # within one set, columns before the block are done
        d = hamming(a[rows], other[first:])  # (block, M - first)
        mirrored = np.zeros(d.shape, dtype=bool)
        if a_mirror is not None:
            dm = hamming(a_mirror[rows], other[first:])
            mirrored = dm < d
            d = np.minimum(d, dm)
        if same:  # no photo paired with itself, nor with one before it in the block
            d = np.where(np.triu(np.ones(d.shape, dtype=bool), k=1), d, threshold + 1)
        for i, j in zip(*np.nonzero(d <= threshold)):
            yield start + int(i), first + int(j), int(d[i, j]), bool(mirrored[i, j])


def nearest(a: np.ndarray, b: np.ndarray, *, a_mirror: np.ndarray | None = None, block: int = 64) -> np.ndarray:
    """For each row of a, the distance to its nearest row of b (mirrors counted): (N,) int."""
    out = np.full(len(a), HASH_BYTES * 8 + 1, dtype=np.int32)
    if not len(b):
        return out
    for start in range(0, len(a), block):
        rows = slice(start, start + block)
        d = hamming(a[rows], b)
        if a_mirror is not None:
            d = np.minimum(d, hamming(a_mirror[rows], b))
        out[rows] = d.min(axis=1)
    return out
