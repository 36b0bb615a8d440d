"""What an epoch trains on: freshly augmented photos, or the head alone on backbone features computed once.

The Trainer builds one strategy with what that strategy works with (the model, its device
and precision, datasets, a loader, a source of image batches) and, each epoch, asks it for
the epoch's work (`plan_epoch`: the batches, the module they go through, the progress
bar's label); the Trainer's step loop runs it. Where a strategy has them it also answers
the validation logits (`val_logits`). Nothing here reaches back into the Trainer.

`--freeze-backbone` (CachedFeatureHead): the first epoch runs the frozen, eval-mode
backbone once over train and val and keeps the pooled features (N, D; 2048 for ResNet50);
every later epoch trains only the D -> K linear head on them, which takes seconds
instead of minutes. Augmentation is therefore applied once, not per epoch: the price
of the speed. The cache lives in memory; a resumed run computes it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from skinfood_cli.model import Precision, head
from skinfood_cli.training.stopping import StopFlag

Batch = tuple[torch.Tensor, torch.Tensor]  # x: images (B, 3, S, S) or features (B, D); y: labels (B,)
Features = tuple[torch.Tensor, torch.Tensor]  # (N, D) float32 features, (N,) labels


@dataclass
class Epoch:
    """One epoch's work for the Trainer's step loop."""

    batches: Iterable[Batch]  # on the device, from the epoch's first untrained batch
    forward: Callable[[torch.Tensor], torch.Tensor]  # x -> logits (B, K)
    phase: str  # the progress bar's label


class FullTraining:
    """Every epoch trains the network on freshly augmented photos.

    Args:
        image_epoch: (epoch, first batch) -> that epoch's image batches and the module to
            train through (the Trainer's: it knows the phase, the image size and the loader).
    """

    def __init__(self, image_epoch: Callable[[int, int], Epoch]) -> None:
        self.image_epoch = image_epoch

    def plan_epoch(self, epoch: int, start: int, stop: StopFlag) -> Epoch | None:
        return self.image_epoch(epoch, start)

    def val_logits(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None  # the trainer predicts the validation photos itself


class CachedFeatureHead:
    """`--freeze-backbone`: the head trains on features the frozen backbone computed once.

    Args:
        model: the network; only its head trains.
        device, precision: where and how the backbone's one pass runs.
        train_set, val_set: the photos to compute features of (train with the eval transform).
        eval_loader: dataset -> its (x, y) batches in order.
        batch_size, seed: as the run's; the head's batches are shuffled by (seed, epoch).
        steps: batches in an epoch, the same count as the image sampler's.
        message: tells the person what is happening.
    """

    def __init__(
        self,
        model: Any,
        device: torch.device,
        precision: Precision,
        *,
        train_set: Any,
        val_set: Any,
        eval_loader: Callable[[Any], Iterable[Batch]],
        batch_size: int,
        seed: int,
        steps: int,
        message: Callable[[str], None],
    ) -> None:
        self.model, self.device, self.precision = model, device, precision
        self.datasets = (train_set, val_set)
        self.eval_loader = eval_loader
        self.batch_size, self.seed, self.steps = batch_size, seed, steps
        self.message = message
        self.features: tuple[Features, Features] | None = None  # (train, val), computed on first use

    def plan_epoch(self, epoch: int, start: int, stop: StopFlag) -> Epoch | None:
        """The head's batches of cached features from batch `start` on; None if Ctrl-C stopped the caching."""
        if self.features is None:
            self.message("computing backbone features once (later epochs reuse them)")
            train_set, val_set = self.datasets
            feats = self._features(train_set, stop)
            val_feats = self._features(val_set, stop) if feats is not None else None
            if feats is None or val_feats is None:
                return None
            self.features = (feats, val_feats)
        (x_all, y_all), _ = self.features
        classifier = head(self.model).train()
        # The same shuffle rule as the image batches: by (seed, epoch), resumable mid-epoch.
        order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
        size = min(self.batch_size, len(y_all))
        batches = (
            (x_all[idx].to(self.device), y_all[idx].to(self.device))
            for idx in (order[b * size : (b + 1) * size] for b in range(start, self.steps))
        )
        return Epoch(batches, classifier, "head on cached features")

    def val_logits(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(N, K) logits of the head on the cached validation features, and labels (N,)."""
        if self.features is None:
            return None
        _, (x_val, y_val) = self.features
        classifier = head(self.model).eval()
        with torch.inference_mode():
            logits = classifier(x_val.to(self.device)).float().cpu().numpy()
        return logits, y_val.numpy()

    def _features(self, dataset, stop: StopFlag) -> Features | None:
        return compute_features(self.model, self.eval_loader(dataset), self.device, self.precision, stop)


def compute_features(
    model, batches: Iterable[Batch], device, precision: Precision, stop: StopFlag | None
) -> Features | None:
    """Pooled (N, D) backbone features and (N,) labels of `batches` as float32 CPU tensors; None on Ctrl-C."""
    model = model.eval()
    feats, labels = [], []
    with torch.inference_mode(), precision.autocast(device):
        for x, y in batches:
            if stop is not None and stop.set:
                return None
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            feats.append(model.forward_head(model.forward_features(x), pre_logits=True).float().cpu())
            labels.append(y)
    if not feats:
        return torch.zeros(0, model.num_features), torch.zeros(0, dtype=torch.long)
    # clone() outside inference mode: inference tensors can't take part in autograd later.
    return torch.cat(feats).clone(), torch.cat(labels).clone()
