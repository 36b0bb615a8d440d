"""Training's data: discover the folders, pre-scan train + val, leave unreadable files out."""

from __future__ import annotations

from skinfood_cli.data.dataset import class_counts, discover_dataset, prescan
from skinfood_cli.data.leaks import screen_dataset
from skinfood_cli.errors import DataError
from skinfood_cli.training.config import Reporter, TrainConfig


def prepare_data(cfg: TrainConfig, reporter: Reporter, val_files: list[str] | None = None):
    """Discover the dataset and pre-scan train+val; unreadable files are left out."""
    ds = discover_dataset(
        cfg.data, classes=cfg.classes, val_fraction=cfg.val_fraction, seed=cfg.seed, val_files=val_files
    )
    everything = ds.train + ds.val
    if not everything:
        raise DataError(f"no image files found under {ds.root}")
    good, skipped = prescan(everything, cfg.workers, progress=reporter.scan)
    if skipped:
        reporter.skipped(skipped)
        if cfg.strict:
            raise DataError(
                f"{len(skipped)} unreadable file(s) and --strict: first is {skipped[0][0]} ({skipped[0][1]})"
            )
    bad = {p for p, _ in skipped}
    ds.train = [s for s in ds.train if s[0] not in bad]
    ds.val = [s for s in ds.val if s[0] not in bad]
    ds.skipped = skipped
    # Copies of one photo across the splits inflate every figure: leave the training copy out (--leaks).
    ds.leaks = screen_dataset(ds, cfg.leaks, workers=cfg.workers, progress=reporter.scan)
    if ds.leaks.pairs:  # a clean set says nothing: the run's config.yaml records the screen either way
        (reporter.warning if cfg.leaks == "keep" else reporter.message)(ds.leaks.summary())
    counts = class_counts(ds.train + ds.val, len(ds.classes))
    empty = [c for c, n in zip(ds.classes, counts) if n == 0]
    if empty:
        raise DataError(f"class folder(s) with no usable image: {', '.join(empty)}")
    if not ds.train:
        raise DataError("no training images left after the pre-scan")
    return ds
