"""Training: a run's config, data, schedule, trainer, checkpoints and entry points.

    config.py         TrainConfig (the one source of defaults), settle_recipe -> Recipe, Reporter (no torch)
    result.py         TrainResult, with its BestEpoch and TrustSummary (no torch)
    prepare.py        discover, pre-scan, split
    schedule.py       warmup + cosine per phase over steps or a --minutes budget; progressive sizes
    strategies.py     what an epoch trains on: augmented photos, or the head on cached features
    trainer.py        the Trainer's steps: train_one_epoch, validate, calibrate
    loop.py           the epochs, best.pt/last.pt, the final calibration
    checkpointing.py  the checkpoint payload, restore, metrics.csv
    pictures.py       curves.png and confusion.png in the run folder, drawn at the end
    runs.py           train() and resume()
    sampling.py, stopping.py, distributed.py: batches, Ctrl-C, torchrun

The light names (TrainConfig, Recipe, Reporter, TrainResult and its parts) import
without torch, so the CLI can build its options from them; the rest load on first use
(PEP 562).
"""

from __future__ import annotations

from typing import Any

from skinfood_cli.training.config import Recipe, Reporter, TrainConfig, settle_recipe
from skinfood_cli.training.result import BestEpoch, Conformal, TrainResult, TrustSummary

_LAZY = {"train": "runs", "resume": "runs", "Trainer": "trainer", "fit": "loop"}

__all__ = [
    "BestEpoch",
    "Conformal",
    "Recipe",
    "Reporter",
    "TrainConfig",
    "TrainResult",
    "TrustSummary",
    "settle_recipe",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"skinfood_cli.training.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'skinfood_cli.training' has no attribute {name!r}")
