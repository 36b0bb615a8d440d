"""The scope check and prediction sets a checkpoint carries, and the module that computes them.

`fit_trust` runs once at the end of training, on best.pt's weights: it fits the
out-of-scope score on the training photos' pooled features, sets its cut so
that `keep` (95%) of the validation photos stay in scope, and calibrates the
conformal sets on validation. Its result is one plain dict, `ckpt["trust"]`:

    version, method, score (the fitted state), threshold, scale, keep, num_train,
    num_val, conformal (qhat, coverage, calibration_size, validation_coverage, ...)

`ScopedClassifier(model, trust)` wraps the ResNet50 so one forward gives the
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

from skinfood_cli.model import pooled_features
from skinfood_cli.trust.conformal import calibrate
from skinfood_cli.trust.scores import fit_score, in_scope_threshold, score_from_state

TRUST_VERSION = 1
# Chosen by benchmarks/trust.py on dermnet-dev (docs/trust.md): with Mahalanobis, the
# best at separating non-skin pictures, and unlike it stable under int8 exports.
DEFAULT_METHOD = "knn"
KEEP = 0.95
NO_SCOPE_CHECK = (
    "this model has no scope check (trained or exported before skinfood had one): every photo "
    "counts as in scope; retrain it to flag photos that are not skin conditions it knows"
)


class ScopedClassifier(nn.Module):
    """(B, 3, S, S) images -> (logits (B, K), scope_score (B,)): the network plus its scope check."""

    def __init__(self, model, trust: dict):
        super().__init__()
        self.model = model
        self.score = score_from_state(trust["score"])
        self.threshold = float(trust["threshold"])
        self.scale = float(trust.get("scale", 1.0)) or 1.0

    def forward(self, x):
        features, logits = pooled_features(self.model, x)
        return logits, self.scope_from(features, logits)

    def scope_from(self, features, logits):
        """(B,) scope scores from pooled features (B, D) and logits (B, K): >= 0 is in scope."""
        raw = self.score(features.float(), logits.float())
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
) -> dict:
    """Fit the scope score and the conformal sets; returns the checkpoint's `trust` dict.

    Args:
        train_features, train_logits, train_labels: (N, D), (N, K), (N,) for the training photos
            (eval-mode transforms, not augmented).
        val_features, val_logits, val_labels: the same for the validation photos.
        temperature: the fitted softmax temperature (used by the logit scores and the sets).
        coverage: the share of photos whose set should hold the true condition.
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
        "conformal": cal.state(),
    }
