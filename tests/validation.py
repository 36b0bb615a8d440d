"""What a run recorded about its validation photos, recomputed from its checkpoint alone.

Used by tests/training/test_distributed.py and tests/test_archs.py (`from validation import val_loss_of`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def val_loss_of(ckpt_path: Path, size: int | None = None) -> float:
    """Cross-entropy of a checkpoint's raw logits on its recorded validation photos, as `validate`
    computes it, with the photos read at `size` px (default: the size the model records)."""
    import torch

    from skinfood_cli.checkpoint import load_checkpoint
    from skinfood_cli.data.dataset import ImageDataset, eval_transform
    from skinfood_cli.engine import load_model, softmax
    from skinfood_cli.metrics import cross_entropy

    loaded = load_model(ckpt_path)
    ckpt = load_checkpoint(ckpt_path)
    size = size or loaded.image_size
    root = Path(ckpt["data"]["root"])
    files = [(str(root / f), loaded.classes.index(Path(f).parent.name)) for f in ckpt["data"]["val_files"]]
    photos = ImageDataset(files, eval_transform(size, loaded.mean, loaded.std), size)
    with torch.inference_mode():
        logits = loaded.module(torch.stack([photos[i][0] for i in range(len(photos))])).numpy()
    return cross_entropy(np.array([label for _, label in files]), softmax(logits))
