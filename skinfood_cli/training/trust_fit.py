"""The end-of-training step that fits the scope check and the conformal sets (trust/).

Runs on rank 0 after the temperature, on best.pt's weights: the scope inputs
(pooled features beside an earlier stage's statistics, `trust.scope_inputs`) and
logits of the training photos (eval transform, no augmentation) and of the
validation photos go to `trust.fit_trust`, whose plain dict is stored as
`ckpt["trust"]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from skinfood_cli.model import scope_stage
from skinfood_cli.trust import fit_trust, scope_inputs, staged_features

if TYPE_CHECKING:
    from skinfood_cli.training.trainer import Trainer


def fit_run_trust(trainer: Trainer, temperature: float) -> dict:
    """`ckpt["trust"]` for the trainer's current weights (see trust/scope.py)."""

    stage = scope_stage(trainer.model)

    def extract(dataset):
        feats, logits, labels = [], [], []
        trainer.model.eval()
        with torch.inference_mode(), trainer.precision.autocast(trainer.device):
            for x, y in trainer.eval_loader(dataset):
                x = x.to(trainer.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                f, z, kept = staged_features(trainer.model, x, stage)
                feats.append(scope_inputs(f, kept).cpu())
                logits.append(z.float().cpu())
                labels.append(y)
        if not feats:
            dim = trainer.model.num_features + 2 * trainer.model.feature_info[stage]["num_chs"]
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
        stage=stage,
    )
