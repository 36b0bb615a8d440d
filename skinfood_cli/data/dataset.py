"""Datasets: finding the photos, splitting them, checking them, transforming them.

Layouts understood (class names are the folder names):

    DIR/train/<class>/*.jpg  + DIR/test/<class>/*.jpg     DermNet (Kaggle)
    DIR/train/... + DIR/val/... (+ DIR/test/...)          explicit validation
    DIR/<class>/*.jpg                                      class folders only
    DIR/test/<class>/*.jpg (and/or DIR/val/...)            held-out photos only (evaluate)

Without a val folder a stratified `val_fraction` of train is held out, chosen
by `seed`, and recorded in the checkpoint so `evaluate --split val` sees the
same photos. Checkpoints are picked on val, never on test.
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from skinfood_cli.data import DEFAULT_VAL_FRACTION
from skinfood_cli.data.images import is_image_path, load_image
from skinfood_cli.errors import DataError, ImageError

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """What `discover_dataset` found: class names and (path, label) lists."""

    root: Path
    layout: str
    classes: list[str]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    test: list[tuple[str, int]]
    val_source: str  # "folder" or "split"
    skipped: list[tuple[str, str]] = field(default_factory=list)
    leaks: object = None  # the training pre-scan's `data.leaks.LeakScreen`

    def split(self, name: str) -> list[tuple[str, int]]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def list_class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_files(folder: Path) -> list[Path]:
    """Every non-hidden file under a class folder, recursively, sorted."""
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return files


def detect_layout(root: Path) -> dict[str, Path]:
    """Map split names to folders, or raise DataError with what's wrong."""
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"--data must be a folder of class folders, not a file: {root}")
    if (root / "train").is_dir():
        return {s: root / s for s in SPLITS if (root / s).is_dir()}
    held_out = _held_out_only(root)
    if held_out:
        return held_out
    if not list_class_folders(root):
        raise DataError(
            f"{root} has no class folders: expected DIR/train/<class>/*.jpg (and DIR/test/...) or DIR/<class>/*.jpg"
        )
    return {"train": root}


def _held_out_only(root: Path) -> dict[str, Path]:
    """{split: folder} when DIR's only folders are test/ and/or val/, each of class folders.

    A folder of "my test photos" laid out as DIR/test/<class>/ is that split, not
    one class named "test"; a DIR/<class>/ tree that merely has a class called
    "test" beside others stays a class-folder layout.
    """
    names = list_class_folders(root)
    if not names or any(name not in ("val", "test") for name in names):
        return {}
    if not all(list_class_folders(root / name) for name in names):
        return {}
    return {name: root / name for name in names}


def choose_classes(available: list[str], wanted: list[str] | None, where: Path) -> list[str]:
    """The class list to train on: all folders, or the `--classes` subset."""
    if not wanted:
        return available
    by_lower = {c.lower(): c for c in available}
    chosen: list[str] = []
    unknown: list[str] = []
    for name in wanted:
        match = name if name in available else by_lower.get(name.lower())
        (chosen if match else unknown).append(match or name)
    if unknown:
        raise DataError(
            f"--classes names unknown folders in {where}: {', '.join(unknown)} (available: {', '.join(available)})"
        )
    return sorted(set(chosen), key=chosen.index)


def check_class_agreement(train_classes: list[str], folder: Path, split: str) -> None:
    """Train and test (or val) must have the same classes: list any difference."""
    other = set(list_class_folders(folder))
    missing = sorted(set(train_classes) - other)
    extra = sorted(other - set(train_classes))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing from {split}/: {', '.join(missing)}")
        if extra:
            parts.append(f"only in {split}/: {', '.join(extra)}")
        raise DataError(
            f"class folders of train/ and {split}/ disagree ({'; '.join(parts)}): "
            "rename them to match, or pick common ones with --classes"
        )


def gather(folder: Path, classes: list[str]) -> list[tuple[str, int]]:
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        samples.extend((str(p), label) for p in list_files(folder / name))
    return samples


def relative_key(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """A photo's path relative to the dataset root, '/'-separated.

    The validation split is recorded in this form, so it still matches when the
    dataset is given as a relative path, from another directory, or moved.
    """
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve())).as_posix()


def stratified_split(
    samples: list[tuple[str, int]], fraction: float, seed: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Hold out `fraction` of each class (at least one photo when a class has 2+)."""
    rng = random.Random(seed)
    by_class: dict[int, list[tuple[str, int]]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    train, val = [], []
    for label in sorted(by_class):
        items = sorted(by_class[label])
        rng.shuffle(items)
        n_val = round(len(items) * fraction)
        if fraction > 0 and len(items) >= 2:
            n_val = min(max(n_val, 1), len(items) - 1)
        val.extend(items[:n_val])
        train.extend(items[n_val:])
    return sorted(train), sorted(val)


def discover_dataset(
    root: str | os.PathLike,
    *,
    classes: list[str] | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    val_files: list[str] | None = None,
) -> Dataset:
    """Find classes and files; split val off train when there is no val folder.

    Args:
        val_files: a recorded validation list (from a checkpoint, paths as
            `relative_key` gives them) to reuse
            instead of drawing a new split.
    """
    root = Path(root).expanduser()
    folders = detect_layout(root)
    if "train" not in folders:
        found = " and ".join(f"{name}/" for name in folders)
        raise DataError(
            f"{root} holds only {found}: training needs DIR/train/<class>/ (or DIR/<class>/); "
            f"score a model on it with `skinfood evaluate --data {root}`"
        )
    all_classes = list_class_folders(folders["train"])
    chosen = choose_classes(all_classes, classes, folders["train"])
    if len(chosen) < 2:
        raise DataError(f"{folders['train']} has only one class ({chosen[0]}): a classifier needs two or more")
    for split in ("val", "test"):
        if split in folders:
            if classes:
                missing = [c for c in chosen if not (folders[split] / c).is_dir()]
                if missing:
                    raise DataError(f"{split}/ has no folder for: {', '.join(missing)}")
            else:
                check_class_agreement(chosen, folders[split], split)
    train = gather(folders["train"], chosen)
    test = gather(folders["test"], chosen) if "test" in folders else []
    if "val" in folders:
        val, val_source = gather(folders["val"], chosen), "folder"
    elif val_files is not None:
        held = set(val_files)
        in_val = [relative_key(path, root) in held for path, _ in train]  # one resolve per photo
        val = [s for s, v in zip(train, in_val) if v]
        train = [s for s, v in zip(train, in_val) if not v]
        val_source = "split"
    else:
        train, val = stratified_split(train, val_fraction, seed)
        val_source = "split"
    layout = "class-folders" if folders["train"] == root else "+".join(folders)
    return Dataset(root, layout, chosen, train, val, test, val_source)


def check_image_file(path: str) -> str | None:
    """None if the file decodes as an image, else the reason it doesn't.

    Decoding at 1/8 scale (JPEG draft) still reads every byte of the file, so
    truncation is caught at a fraction of the cost of a full decode.
    """
    if not is_image_path(Path(path)):
        return "not an image file (extension)"
    try:
        load_image(path, draft_size=8)
    except ImageError as exc:
        return str(exc)
    return None


def prescan(samples: list[tuple[str, int]], workers: int | None = None, progress=None):
    """Split samples into the readable ones and (path, reason) for the rest."""
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    good, skipped = [], []
    with ThreadPoolExecutor(workers) as pool:  # Pillow releases the GIL while decoding
        for i, (sample, reason) in enumerate(zip(samples, pool.map(check_image_file, [p for p, _ in samples]))):
            if reason is None:
                good.append(sample)
            else:
                skipped.append((sample[0], reason))
            if progress:
                progress(i + 1, len(samples))
    return good, skipped


def class_counts(samples: list[tuple[str, int]], num_classes: int) -> list[int]:
    counts = [0] * num_classes
    for _, label in samples:
        counts[label] += 1
    return counts


# --- transforms -----------------------------------------------------------------
# Both transforms squash the photo to image_size x image_size, as the study did
# (Resize((224, 224))): DermNet photos are 4:3, and cropping would cut lesions
# at the edges. The exact recipe is stored in every checkpoint.


def eval_transform(image_size: int, mean, std):
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize((image_size, image_size)),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def pixel_transform(image_size: int):
    """Resize only, to uint8 (3, S, S): for exported graphs that normalise inside."""
    from torchvision import transforms as T

    return T.Compose([T.Resize((image_size, image_size)), T.PILToTensor()])


def train_transform(image_size: int, mean, std, strength: str = "light"):
    """Training augmentation (torchvision transforms, PIL in, normalised (3, S, S) tensor out).

    light: the study's: flip, rotate ±15°, translate 10%, crop with 10 px padding.
    strong: what fine-tuning ImageNet weights on a few hundred photos wants (timm's
    and torchvision's reference recipes): a random crop of 35-100% of the photo,
    both flips (skin has no "up"), and TrivialAugment's one random colour or shape
    change per photo. Too much for a network learning its features from scratch.
    """
    from torchvision import transforms as T

    if strength == "strong":
        steps = [
            SquashedResizedCrop(image_size, scale=(0.35, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomVerticalFlip(),
            T.TrivialAugmentWide(),
        ]
    else:
        steps = [
            T.Resize((image_size, image_size)),
            T.RandomHorizontalFlip(),
            T.RandomAffine(degrees=15, translate=(0.1, 0.1)),
            T.RandomCrop(image_size, padding=10),
        ]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


class SquashedResizedCrop:
    """A random resized crop in the geometry evaluation sees: the photo squashed to a square.

    Evaluation resizes the whole photo to image_size x image_size, so a 4:3 photo is
    seen 3/4 as wide as it is. torchvision's RandomResizedCrop draws crops whose
    aspect ratio is spread around 1 *in the photo*, which trains on undistorted
    shapes and tests on squashed ones. Spreading the ratio around the photo's own
    aspect instead gives exactly the crops of "squash to a square, then a random
    resized crop" (the same areas, the same ratios around the squashed shape), but
    cut from the full-resolution photo rather than a small square copy of it.
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.35, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = (size, size)
        self.scale = scale
        self.ratio = ratio

    def __call__(self, image):
        from torchvision.transforms import RandomResizedCrop
        from torchvision.transforms import functional as F

        width, height = F.get_image_size(image)
        aspect = width / height
        ratio = (self.ratio[0] * aspect, self.ratio[1] * aspect)
        top, left, h, w = RandomResizedCrop.get_params(image, list(self.scale), list(ratio))
        return F.resized_crop(image, top, left, h, w, list(self.size), antialias=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class ImageDataset:
    """(image tensor, label) pairs for training, with reproducible augmentation.

    Each sample's random transform is seeded from (seed, epoch, index), so the
    augmentation a photo gets doesn't depend on which worker loads it — which is
    what lets a run resumed mid-epoch end exactly where an uninterrupted one would.
    """

    def __init__(self, samples, transform, image_size: int, seed: int = 0):
        self.samples = samples
        self.transform = transform
        self.image_size = image_size
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        import torch

        path, label = self.samples[index]
        image = load_image(path, draft_size=self.image_size)
        torch.manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index)
        return self.transform(image), label
