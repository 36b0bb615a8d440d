"""How an epoch trains: the whole network, or the head alone on backbone features computed once.

The Trainer declares one strategy (`create_strategy`) and asks it for each epoch's
training (`train_epoch`) and, where it has them, validation logits (`val_logits`).

`--freeze-backbone` (CachedFeatureHead): the first epoch runs the frozen, eval-mode
backbone once over train and val and keeps the pooled features (N, D; 2048 for ResNet50);
every later epoch trains only the D -> K linear head on them, which takes seconds
instead of minutes. Augmentation is therefore applied once, not per epoch: the price
of the speed. The cache lives in memory; a resumed run computes it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from skinfood_cli.data.dataset import ImageDataset, eval_transform
from skinfood_cli.model import head
from skinfood_cli.training.stopping import StopFlag

if TYPE_CHECKING:
    from skinfood_cli.training.config import TrainConfig
    from skinfood_cli.training.trainer import Trainer

Features = tuple[torch.Tensor, torch.Tensor]  # (N, D) float32 features, (N,) labels


class FullTraining:
    """Every epoch trains the network on freshly augmented photos."""

    def train_epoch(self, trainer: Trainer, stop: StopFlag) -> dict | None:
        return trainer.train_one_epoch(stop)

    def val_logits(self, trainer: Trainer) -> tuple[np.ndarray, np.ndarray] | None:
        return None  # the trainer predicts the validation photos itself


class CachedFeatureHead:
    """`--freeze-backbone`: the head trains on features the frozen backbone computed once."""

    def __init__(self) -> None:
        self.features: tuple[Features, Features] | None = None  # (train, val), computed on first use

    def train_epoch(self, trainer: Trainer, stop: StopFlag) -> dict | None:
        """One epoch of head-only training on the cached features (computed on first use)."""
        if self.features is None:
            trainer.reporter.message("computing backbone features once (later epochs reuse them)")
            plain = ImageDataset(
                trainer.ds.train,
                eval_transform(trainer.image_size, trainer.mean, trainer.std),
                trainer.image_size,
                trainer.cfg.seed,
            )
            feats = compute_features(trainer, plain, stop)
            val_feats = compute_features(trainer, trainer.val_set, stop) if feats is not None else None
            if feats is None or val_feats is None:
                return None
            self.features = (feats, val_feats)
        (x_all, y_all), _ = self.features
        st, cfg = trainer.state, trainer.cfg
        head(trainer.model).train()
        steps = trainer.batches.steps()
        # The same shuffle rule as the image batches: by (seed, epoch), resumable mid-epoch.
        order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(cfg.seed * 7919 + st.epoch))
        size = min(cfg.batch_size, len(y_all))
        batches = (
            (x_all[idx].to(trainer.device), y_all[idx].to(trainer.device))
            for idx in (order[b * size : (b + 1) * size] for b in range(st.batch, steps))
        )
        return trainer.run_steps(batches, head(trainer.model), steps, "head on cached features", stop)

    def val_logits(self, trainer: Trainer) -> tuple[np.ndarray, np.ndarray] | None:
        """(N, K) logits of the head on the cached validation features, and labels (N,)."""
        if self.features is None:
            return None
        _, (x_val, y_val) = self.features
        classifier = head(trainer.model).eval()
        with torch.inference_mode():
            logits = classifier(x_val.to(trainer.device)).float().cpu().numpy()
        return logits, y_val.numpy()


def create_strategy(cfg: TrainConfig) -> FullTraining | CachedFeatureHead:
    return CachedFeatureHead() if cfg.freeze_backbone else FullTraining()


def compute_features(trainer: Trainer, dataset, stop: StopFlag | None) -> Features | None:
    """Pooled (N, D) backbone features and (N,) labels as float32 CPU tensors; None on Ctrl-C."""
    model = trainer.model.eval()
    feats, labels = [], []
    with torch.inference_mode(), trainer.precision.autocast(trainer.device):
        for x, y in trainer.eval_loader(dataset):
            if stop is not None and stop.set:
                return None
            x = x.to(trainer.device).contiguous(memory_format=torch.channels_last)
            feats.append(model.forward_head(model.forward_features(x), pre_logits=True).float().cpu())
            labels.append(y)
    if not feats:
        return torch.zeros(0, model.num_features), torch.zeros(0, dtype=torch.long)
    # clone() outside inference mode: inference tensors can't take part in autograd later.
    return torch.cat(feats).clone(), torch.cat(labels).clone()
