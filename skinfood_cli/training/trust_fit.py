"""The end-of-training step that fits the scope check and the conformal sets (trust/).

Runs on rank 0 after the temperature, on best.pt's weights: pooled features and
logits of the training photos (eval transform, no augmentation) and of the
validation photos go to `trust.fit_trust`, whose plain dict is stored as
`ckpt["trust"]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from skinfood_cli.trust import fit_trust, pooled_features

if TYPE_CHECKING:
    from skinfood_cli.training.trainer import Trainer


def fit_run_trust(trainer: Trainer, temperature: float) -> dict:
    """`ckpt["trust"]` for the trainer's current weights (see trust/scope.py)."""

    def extract(dataset):
        feats, logits, labels = [], [], []
        trainer.model.eval()
        with torch.inference_mode(), trainer.precision.autocast(trainer.device):
            for x, y in trainer.eval_loader(dataset):
                x = x.to(trainer.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                f, z = pooled_features(trainer.model, x)
                feats.append(f.float().cpu())
                logits.append(z.float().cpu())
                labels.append(y)
        if not feats:
            dim = trainer.model.num_features
            return torch.zeros(0, dim), torch.zeros(0, len(trainer.ds.classes)), torch.zeros(0, dtype=torch.long)
        return torch.cat(feats), torch.cat(logits), torch.cat(labels)

    train_f, train_z, train_y = extract(trainer.plain_train_set())
    val_f, val_z, val_y = extract(trainer.val_set)
    return fit_trust(
        train_f,
        train_z,
        train_y,
        val_f,
        val_z,
        np.asarray(val_y),
        temperature=temperature,
        coverage=trainer.cfg.coverage,
    )
