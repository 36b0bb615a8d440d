"""What a run saves and reads back: the checkpoint payload, a resume's restore, metrics.csv.

best.pt holds what rebuilds the model (nanoGPT's model_args, timm's arch + args);
last.pt adds the optimizer, scaler, progress and RNG so a resume continues exactly.
"""

from __future__ import annotations

import csv
import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from skinfood_cli import __version__
from skinfood_cli.checkpoint import DEFAULT_THRESHOLD, FORMAT, FORMAT_VERSION, clean_state_dict, save_checkpoint
from skinfood_cli.data.dataset import relative_key
from skinfood_cli.data.leaks import leak_fields
from skinfood_cli.errors import SkinfoodError

if TYPE_CHECKING:
    from skinfood_cli.training.trainer import Trainer

METRIC_COLUMNS = [
    "epoch",
    "phase",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_macro_f1",
    "images_per_s",
    "image_size",
    "seconds",
]


def build_payload(trainer: Trainer, *, resumable: bool) -> dict:
    """The checkpoint dict of the trainer's current weights (and progress, when `resumable`).

    Uncalibrated: the end of the run fits best.pt's temperature and threshold (loop.py).
    """
    from skinfood_cli.training.trainer import best_row

    st = trainer.state
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": trainer.arch.name,
        "state_dict": clean_state_dict({k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}),
        "classes": list(trainer.ds.classes),
        "image_size": trainer.predict_size,  # what every command reads photos at
        "train_image_size": trainer.image_size,  # the training crops' side (checkpoints before it: image_size)
        "mean": list(trainer.mean),
        "std": list(trainer.std),
        "resize": "squash",
        "temperature": 1.0,
        "threshold": DEFAULT_THRESHOLD,
        "skinfood_version": __version__,
        "torch_version": str(torch.__version__),
        "run_name": trainer.run_dir.name,
        "config": asdict(trainer.cfg),
        "recipe": asdict(trainer.recipe),  # what the config's auto and unset settings came to (settle_recipe)
        "weights_source": trainer.weights_source,
        "data": {
            "root": str(Path(trainer.ds.root).resolve()),
            "layout": trainer.ds.layout,
            "val_source": trainer.ds.val_source,
            "val_files": (
                [relative_key(p, trainer.ds.root) for p, _ in trainer.ds.val]
                if trainer.ds.val_source == "split"
                else None
            ),
            "num_train": len(trainer.ds.train),
            "num_val": len(trainer.ds.val),
            **leak_fields(trainer.ds.leaks),
        },
        "metrics": best_row(st) or {},
        "epoch": st.epoch,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if resumable:
        payload["optimizer"] = trainer.optimizer.state_dict()
        payload["scaler"] = trainer.scaler.state_dict()
        payload["schedule"] = trainer.schedule.state_dict()
        payload["train_state"] = dict(asdict(st))
        payload["rng"] = {
            "torch": torch.get_rng_state(),
            "python": list(random.getstate()[1]),
            "python_version": random.getstate()[0],
            "python_gauss": random.getstate()[2],
        }
    return payload


def restore(trainer: Trainer, ckpt: dict) -> None:
    """Load model, optimizer and progress from a resumable last.pt into `trainer`."""
    from skinfood_cli.training.trainer import TrainState

    trainer.model.load_state_dict(ckpt["state_dict"])
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    for group, peak in zip(trainer.optimizer.param_groups, (trainer.backbone_lr, trainer.cfg.lr)):
        group["peak"] = peak
    if ckpt.get("scaler"):
        trainer.scaler.load_state_dict(ckpt["scaler"])
    trainer.state = TrainState(**ckpt["train_state"])
    schedule = ckpt.get("schedule") or {}
    if trainer.schedule.timed and schedule.get("origin") is not None:
        # The timed phase keeps the start it had; a larger --minutes lays its rest over the new budget.
        trainer.schedule.origin = schedule["origin"]
        if ckpt["config"].get("minutes") == trainer.cfg.minutes and schedule.get("seconds"):
            trainer.schedule.seconds = schedule["seconds"]
    trainer.state.out_of_time = False  # a larger --minutes continues a finished schedule
    rng = ckpt.get("rng") or {}
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "python" in rng:
        random.setstate((rng["python_version"], tuple(rng["python"]), rng["python_gauss"]))
    if trainer.state.world_size != trainer.world:
        trainer.adopt_world_size()


def save_last(trainer: Trainer) -> Path:
    return save_checkpoint(build_payload(trainer, resumable=True), trainer.run_dir / "last.pt")


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """metrics.csv, one row per epoch, replaced atomically."""
    try:
        tmp = run_dir / ".metrics.csv.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)
        os.replace(tmp, run_dir / "metrics.csv")
    except OSError as exc:
        raise SkinfoodError(f"could not write {run_dir / 'metrics.csv'}: {exc.strerror or exc}") from None
