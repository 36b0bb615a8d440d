"""What the by-hand paired comparisons share (tta.py, predict_size.py): each model with the
photos `skinfood evaluate --data DIR` would score it on, read in batches as it reads them.

A comparison of two ways to run the same weights on the same photos is paired photo by
photo, so a small difference means something where two separate training runs would not.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BATCH = 32


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", required=True, help="a run name or checkpoint")
    p.add_argument("--data", action="append", required=True, help="its photos, as `skinfood evaluate --data` takes")


def each_model(p: argparse.ArgumentParser, args) -> Iterator[tuple[str, object, np.ndarray, list[str]]]:
    """(label, engine, true labels, photo paths) for each --model / --data pair, in order."""
    from skinfood_cli.backends import load_model
    from skinfood_cli.engine import Engine
    from skinfood_cli.evaluation.sets import resolve_eval_set
    from skinfood_cli.paths import resolve_model

    if len(args.model) != len(args.data):
        p.error("give one --data per --model")
    for model, data in zip(args.model, args.data):
        engine = Engine(load_model(resolve_model(model)), device="cpu", precision="auto", batch_size=BATCH)
        samples = resolve_eval_set(engine.model.meta, engine.classes, data, "test").samples
        label = Path(model).parent.name if model.endswith(".pt") else model
        yield label, engine, np.array([y for _, y in samples]), [path for path, _ in samples]


def photo_batches(engine, files: list[str], size: int | None = None) -> Iterator:
    """(B, 3, S, S) batches of the photos as `skinfood evaluate` reads them: through the model's
    own preprocessing, or (`size`) squashed to another side with the same normalisation."""
    import torch

    from skinfood_cli.data.dataset import eval_transform
    from skinfood_cli.engine import load_image_for_model

    side = size or engine.model.image_size
    transform = engine.transform if size is None else eval_transform(size, engine.model.mean, engine.model.std)
    for i in range(0, len(files), BATCH):
        yield torch.stack([transform(load_image_for_model(p, side)) for p in files[i : i + BATCH]])
