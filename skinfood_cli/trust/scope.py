"""The scope check and prediction sets a checkpoint carries, and the module that computes them.

`fit_trust` runs once at the end of training, on best.pt's weights: it fits the
out-of-scope score on the training photos' scope inputs, sets its cut so that
`keep` (95%) of the validation photos stay in scope, and calibrates the
conformal sets on validation. Its result is one plain dict, `ckpt["trust"]`:

    version, method, score (the fitted state), threshold, scale, keep, num_train,
    num_val, stage, conformal (qhat, coverage, calibration_size, validation_coverage, ...)

The scope inputs (`scope_inputs`) are the pooled pre-logit features beside the
per-channel mean and spread of an earlier feature stage (`stage`, model.scope_stage),
each scaled to unit length. The pooled features are what fine-tuning sharpens for
telling conditions apart, and on their own they let some non-skin pictures through
(84-95% flagged across three fine-tuned EfficientNet-Lite0 models); the stage
statistics are texture and colour statistics, which fine-tuning changes less and
which set a page of text or a chessboard far from any skin photo (92-100% flagged
together, other skin conditions separated no worse: docs/trust.md). `stage`
absent (models trained before) means the pooled features alone.

`ScopedClassifier(model, trust)` wraps the network so one forward gives the
logits AND the scope score, in torch: the same module is what predict runs and
what ONNX and TorchScript export, so every backend computes the same number.

The scope score a record shows is (raw - threshold) / scale, with scale the
spread of the validation photos' raw scores: 0 is the cut, >= 0 is in scope,
and -1 means one validation spread below it, whatever the method.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skinfood_cli.model import pooled_features, staged_features
from skinfood_cli.trust.conformal import calibrate
from skinfood_cli.trust.scores import fit_score, in_scope_threshold, score_from_state

TRUST_VERSION = 2  # 2: scope inputs include an earlier stage's statistics (`stage`)
# Chosen by benchmarks/trust.py on dermnet-dev (docs/trust.md). On the scope inputs of three
# fine-tuned EfficientNet-Lite0 models Mahalanobis separated other skin conditions a little
# better (0.701-0.748 against 0.697-0.728), but int8 noise lands in the directions it weighs
# most: on the test suite's from-scratch ResNet50 its int8 scores fell by 0.4-2 validation
# spreads and the export failed its check. kNN's cosine distances stay stable under int8.
DEFAULT_METHOD = "knn"
KEEP = 0.95
NO_SCOPE_CHECK = (
    "this model has no scope check (trained or exported before skinfood had one): every photo "
    "counts as in scope; retrain it to flag photos that are not skin conditions it knows"
)


def stage_statistics(stage):
    """(B, C, h, w) feature map -> (B, 2C): each channel's mean and standard deviation over positions, fp32."""
    x = stage.float()
    mean = x.mean(dim=(2, 3))
    spread = (x - mean[:, :, None, None]).pow(2).mean(dim=(2, 3)).sqrt()
    return torch.cat([mean, spread], dim=1)


def scope_inputs(features, stage=None):
    """What the scope score reads: pooled features (B, D), or with a stage map (B, C, h, w) the
    pooled features and the stage's statistics, each scaled to unit length, side by side (B, D + 2C)."""
    if stage is None:
        return features.float()
    pooled = nn.functional.normalize(features.float(), dim=1)
    return torch.cat([pooled, nn.functional.normalize(stage_statistics(stage), dim=1)], dim=1)


class ScopeInputs(nn.Module):
    """`scope_inputs` as a module, so an int8 export can leave it in fp32 (backends/quantize.py):
    unit-length vectors of a few hundred int8-rounded numbers would be too coarse to compare."""

    def forward(self, features, stage=None):
        return scope_inputs(features, stage)


class ScopedClassifier(nn.Module):
    """(B, 3, S, S) images -> (logits (B, K), scope_score (B,)): the network plus its scope check."""

    def __init__(self, model, trust: dict):
        super().__init__()
        self.model = model
        self.inputs = ScopeInputs()
        self.score = score_from_state(trust["score"])
        self.threshold = float(trust["threshold"])
        self.scale = float(trust.get("scale", 1.0)) or 1.0
        stage = trust.get("stage")
        self.stage = None if stage is None else int(stage)

    def forward(self, x):
        features, logits, stage = self.network(x)
        return logits, self.scope_from(features, logits, stage)

    def network(self, x):
        """(pooled features, logits, stage map or None), in `staged_features`' order: the one
        forward pass the score reads."""
        if self.stage is None:
            return (*pooled_features(self.model, x), None)
        return staged_features(self.model, x, self.stage)

    def scope_from(self, features, logits, stage=None):
        """(B,) scope scores from `network`'s outputs, computed in fp32: >= 0 is in scope."""
        raw = self.score(self.inputs(features, stage), logits.float())
        return (raw - self.threshold) / self.scale


def fit_trust(
    train_features,
    train_logits,
    train_labels,
    val_features,
    val_logits,
    val_labels,
    *,
    temperature: float = 1.0,
    coverage: float = 0.9,
    method: str = DEFAULT_METHOD,
    keep: float = KEEP,
    stage: int | None = None,
) -> dict:
    """Fit the scope score and the conformal sets; returns the checkpoint's `trust` dict.

    Args:
        train_features, train_logits, train_labels: (N, D), (N, K), (N,) for the training photos
            (eval-mode transforms, not augmented); the features are `scope_inputs`.
        val_features, val_logits, val_labels: the same for the validation photos.
        temperature: the fitted softmax temperature (used by the logit scores and the sets).
        coverage: the share of photos whose set should hold the true condition.
        stage: the feature stage whose statistics the inputs include, or None for pooled features alone.
    """
    from skinfood_cli.metrics import softmax

    val_features = torch.as_tensor(val_features, dtype=torch.float32)
    val_logits = torch.as_tensor(val_logits, dtype=torch.float32)
    score = fit_score(
        method,
        torch.as_tensor(train_features, dtype=torch.float32),
        torch.as_tensor(train_logits, dtype=torch.float32),
        torch.as_tensor(train_labels),
        temperature=temperature,
    )
    with torch.no_grad():
        val_raw = score(val_features, val_logits).double()
    threshold = in_scope_threshold(val_raw, keep)
    scale = float(val_raw.std()) if len(val_raw) > 1 else 1.0
    if not math.isfinite(scale) or scale <= 0:
        scale = 1.0
    if not math.isfinite(threshold):  # no validation photos: nothing is out of scope
        threshold = -1e30
    cal = calibrate(softmax(val_logits.numpy(), temperature), val_labels, coverage)
    return {
        "version": TRUST_VERSION,
        "method": method,
        "score": score.state(),
        "threshold": threshold,
        "scale": scale,
        "keep": keep,
        "num_train": len(train_labels),
        "num_val": len(val_labels),
        **({"stage": int(stage)} if stage is not None else {}),
        "conformal": cal.state(),
    }
