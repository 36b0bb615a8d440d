"""`skinfood check`: what is wrong with a photo set before a model learns from it.

Atlas photo sets repeat themselves (the same picture in two sizes, re-saved,
re-cropped, mirrored). A copy in train and another in test inflates every
figure evaluate prints, intervals included; copies inside train make the
validation split, carved from train, optimistic. This module finds them, and the
usual troubles besides: unreadable files, tiny and grey photos, class imbalance,
and photos a retake would improve (too dark, blurred, small, compressed: quality.py).

Near copies are photos whose 256-bit difference hashes (hashing.py) differ in at
most `threshold` bits. DEFAULT_THRESHOLD was chosen on dermnet-dev (1,104 DermNet
NZ photos): every cross-split copy found by eye lies within 11 bits (22 of 24
within 5), a re-cropped copy inside train at 17, and the first pair of
*different* photos (same room, other legs) at 21; most test photos are 30+ bits
from their nearest training photo. 12 keeps every copy seen but the crop, with a
9-bit margin to the first false pair; raise it (--threshold 16) to catch crops on
a set you will inspect by eye.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skinfood_cli.data.hashing import PhotoFacts

DEFAULT_THRESHOLD = 12
MIN_SIDE = 64  # photos with a shorter side than this are listed as tiny
NEAREST_BINS = (0, 1, 5, 9, 13, 17, 21, 25, 33, 49, 65)


@dataclass
class Photo:
    path: str
    split: str
    label: str
    facts: PhotoFacts


@dataclass
class CopyPair:
    """Two photos that are the same picture: byte for byte (`exact`) or nearly."""

    a: str
    b: str
    split_a: str
    split_b: str
    class_a: str
    class_b: str
    distance: int  # differing dHash bits out of 256
    exact: bool
    mirrored: bool

    @property
    def cross_split(self) -> bool:
        return self.split_a != self.split_b


@dataclass
class CheckReport:
    """Everything `check_dataset` found; `to_dict` is the JSON `check --format json` prints."""

    root: str
    layout: str
    threshold: int
    min_side: int
    counts: dict[str, dict[str, int]]  # split -> class -> photos (readable)
    pairs: list[CopyPair]
    unreadable: list[dict]
    tiny: list[dict]
    grayscale: list[str]
    sizes: dict
    skin_tone: dict[str, dict[str, int]]  # split -> group -> photos
    nearest_train: dict[str, int] = field(default_factory=dict)  # distance bin -> non-train photos
    seconds: float = 0.0
    cache: dict = field(default_factory=dict)
    quality: dict[str, list[str]] = field(default_factory=dict)  # hint code -> photos (quality.py)

    @property
    def leaks(self) -> list[CopyPair]:
        """Pairs whose photos are in different splits."""
        return [p for p in self.pairs if p.cross_split]

    @property
    def imbalance_ratio(self) -> float | None:
        """Largest over smallest class in train (None with an empty class)."""
        counts = list(self.counts.get("train", {}).values())
        return round(max(counts) / min(counts), 3) if counts and min(counts) > 0 else None

    def to_dict(self) -> dict:
        from skinfood_cli.data.skin_tone import NOTE

        leaks = self.leaks
        return {
            "data": self.root,
            "layout": self.layout,
            "threshold": self.threshold,
            "clean": not leaks,
            "photos": {s: sum(c.values()) for s, c in self.counts.items()},
            "class_counts": self.counts,
            "imbalance_ratio": self.imbalance_ratio,
            "cross_split_pairs": len(leaks),
            "cross_split_photos": _photos_per_split(leaks),
            "within_split_pairs": len(self.pairs) - len(leaks),
            "pairs": [{**asdict(p), "cross_split": p.cross_split} for p in self.pairs],
            "nearest_train_distance": self.nearest_train,
            "unreadable": self.unreadable,
            "tiny": self.tiny,
            "min_side": self.min_side,
            "grayscale": self.grayscale,
            "quality": self.quality,
            "sizes": self.sizes,
            "skin_tone": self.skin_tone,
            "skin_tone_note": NOTE,
            "seconds": round(self.seconds, 3),
            "cache": self.cache,
        }


def _photos_per_split(pairs: list[CopyPair]) -> dict[str, int]:
    """Distinct photos outside train that have a copy in another split (the ones a score counts twice)."""
    seen: dict[str, set] = {}
    for p in pairs:
        for path, split in ((p.a, p.split_a), (p.b, p.split_b)):
            seen.setdefault(split, set()).add(path)
    return {split: len(paths) for split, paths in sorted(seen.items())}


def list_photos(root: str | os.PathLike) -> tuple[str, list[tuple[str, str, str]]]:
    """(layout, [(path, split, class)]) for every file of a dataset, found as `train` finds them.

    The physical folders decide the split (train/, val/, test/); a layout of class
    folders only is one split, "train". Each split's own class folders are listed,
    so a class missing from test is a count of 0, not an error.
    """
    from skinfood_cli.data.dataset import detect_layout, gather, list_class_folders

    root = Path(root).expanduser()
    folders = detect_layout(root)
    files: list = []
    for split, folder in folders.items():
        names = list_class_folders(folder)
        files.extend((path, split, names[label]) for path, label in gather(folder, names))
    layout = "class-folders" if folders["train"] == root else "+".join(folders)
    return layout, files


def find_copies(photos: list[Photo], threshold: int) -> list[CopyPair]:
    """Every pair of readable photos within `threshold` bits (mirrors included), closest first."""
    from skinfood_cli.data.hashing import close_pairs, pack_hashes

    hashes = pack_hashes([p.facts.dhash for p in photos])
    mirrors = pack_hashes([p.facts.dhash_mirror for p in photos])
    pairs = []
    for i, j, d, mirrored in close_pairs(hashes, None, threshold, a_mirror=mirrors):
        a, b = photos[i], photos[j]
        if _split_rank(b.split) < _split_rank(a.split):  # train first, then val, then test
            a, b = b, a
        exact = a.facts.sha256 == b.facts.sha256
        pairs.append(
            CopyPair(
                a.path, b.path, a.split, b.split, a.label, b.label, 0 if exact else d, exact, mirrored and not exact
            )
        )
    pairs.sort(key=lambda p: (not p.cross_split, p.distance, p.a, p.b))
    return pairs


def _split_rank(split: str) -> int:
    return {"train": 0, "val": 1, "test": 2}.get(split, 3)


def nearest_train_histogram(photos: list[Photo]) -> dict[str, int]:
    """How far each val/test photo is from its nearest training photo, in bins of dHash bits.

    The gap this shows (copies near 0, other photos 30+ bits away) is what a
    threshold should sit in.
    """
    import numpy as np

    from skinfood_cli.data.hashing import nearest, pack_hashes

    train = [p for p in photos if p.split == "train"]
    other = [p for p in photos if p.split != "train"]
    if not train or not other:
        return {}
    d = nearest(
        pack_hashes([p.facts.dhash for p in other]),
        pack_hashes([p.facts.dhash for p in train]),
        a_mirror=pack_hashes([p.facts.dhash_mirror for p in other]),
    )
    edges = list(NEAREST_BINS) + [257]
    counts = np.histogram(d, bins=edges)[0]
    return {
        (f"{lo}" if hi - lo == 1 else f"{lo}-{hi - 1}" if hi <= 256 else f"{lo}+"): int(n)
        for lo, hi, n in zip(edges[:-1], edges[1:], counts)
    }


def check_dataset(
    data_dir: str | os.PathLike,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    min_side: int = MIN_SIDE,
    workers: int | None = None,
    progress=None,
) -> CheckReport:
    """Look at every photo of a dataset once (cached) and report copies and problems.

    Args:
        threshold: most differing dHash bits (of 256) for two photos to count as copies.
        min_side: photos with a shorter side are listed as tiny.
        progress: called as progress(done, total) while photos are read.

    Raises:
        DataError: the folder is missing or has no class folders.
    """
    from skinfood_cli.data.hash_cache import collect_facts
    from skinfood_cli.data.images import is_image_path
    from skinfood_cli.data.quality import CODES
    from skinfood_cli.data.skin_tone import GROUP_NAMES, ita_group

    started = time.perf_counter()
    layout, files = list_photos(data_dir)
    images = [f for f in files if is_image_path(Path(f[0]))]
    unreadable = [
        {"path": p, "split": s, "reason": "not an image file (extension)"}
        for p, s, _ in files
        if not is_image_path(Path(p))
    ]
    facts, cache_stats = collect_facts([p for p, _, _ in images], workers=workers, progress=progress)
    photos = []
    for (path, split, label), f in zip(images, facts):
        if f.error:
            unreadable.append({"path": path, "split": split, "reason": f.error})
        else:
            photos.append(Photo(path, split, label, f))
    counts: dict[str, dict[str, int]] = {}
    for _path, split, label in files:
        counts.setdefault(split, {}).setdefault(label, 0)
    for p in photos:
        counts[p.split][p.label] += 1
    tones: dict[str, dict[str, int]] = {}
    for split in counts:
        c = Counter(ita_group(p.facts.ita) for p in photos if p.split == split)
        tones[split] = {g: c.get(g, 0) for g in GROUP_NAMES}
    return CheckReport(
        root=str(Path(data_dir).expanduser()),
        layout=layout,
        threshold=threshold,
        min_side=min_side,
        counts=counts,
        pairs=find_copies(photos, threshold),
        unreadable=unreadable,
        tiny=[
            {"path": p.path, "width": p.facts.width, "height": p.facts.height}
            for p in photos
            if min(p.facts.width, p.facts.height) < min_side
        ],
        grayscale=[p.path for p in photos if p.facts.grayscale],
        sizes=_sizes(photos),
        skin_tone=tones,
        nearest_train=nearest_train_histogram(photos),
        seconds=time.perf_counter() - started,
        cache=cache_stats,
        quality={code: [p.path for p in photos if code in p.facts.quality] for code in CODES},
    )


def _sizes(photos: list[Photo]) -> dict:
    if not photos:
        return {}
    short = [min(p.facts.width, p.facts.height) for p in photos]
    long = [max(p.facts.width, p.facts.height) for p in photos]
    common = Counter(f"{p.facts.width}x{p.facts.height}" for p in photos).most_common(5)

    def spread(values):
        return {"min": min(values), "median": statistics.median(values), "max": max(values)}

    return {"short_side": spread(short), "long_side": spread(long), "most_common": [[s, n] for s, n in common]}
