"""Trust: out-of-scope detection and conformal prediction sets (issue 17).

scores.py     max-softmax, energy, Mahalanobis, kNN: fitted modules, higher = more typical
conformal.py  split-conformal APS sets with the finite-sample quantile
scope.py      the checkpoint's `trust` dict and ScopedClassifier (logits + scope score)
measures.py   AUROC of a score between in-scope and out-of-scope photos
"""

from skinfood_cli.trust.conformal import (
    Calibration,
    aps_scores,
    calibrate,
    conformal_quantile,
    prediction_sets,
    set_metrics,
)
from skinfood_cli.trust.measures import auroc
from skinfood_cli.trust.scope import (
    DEFAULT_METHOD,
    KEEP,
    NO_SCOPE_CHECK,
    TRUST_VERSION,
    ScopedClassifier,
    ScopeInputs,
    fit_trust,
    pooled_features,
    scope_inputs,
    stage_statistics,
    staged_features,
)
from skinfood_cli.trust.scores import (
    KNN,
    METHODS,
    Energy,
    Mahalanobis,
    MaxSoftmax,
    Score,
    WhitenedMahalanobis,
    fit_score,
    in_scope_threshold,
    ledoit_wolf,
    ledoit_wolf_shrinkage,
    score_from_state,
)

__all__ = [
    "DEFAULT_METHOD",
    "KEEP",
    "KNN",
    "METHODS",
    "NO_SCOPE_CHECK",
    "TRUST_VERSION",
    "Calibration",
    "Energy",
    "Mahalanobis",
    "MaxSoftmax",
    "ScopeInputs",
    "ScopedClassifier",
    "Score",
    "WhitenedMahalanobis",
    "aps_scores",
    "auroc",
    "calibrate",
    "conformal_quantile",
    "fit_score",
    "fit_trust",
    "in_scope_threshold",
    "ledoit_wolf",
    "ledoit_wolf_shrinkage",
    "pooled_features",
    "prediction_sets",
    "scope_inputs",
    "score_from_state",
    "set_metrics",
    "stage_statistics",
    "staged_features",
]
