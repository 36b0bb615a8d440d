"""Split-conformal prediction sets, calibrated on validation.

`qhat` is chosen on n validation photos so that the true condition is in the set
for at least `coverage` of new photos drawn like them. Two rules (the `rule` a
model records beside its qhat):

  lac (the default since EfficientNet-Lite; Sadinle et al. 2019): the sets with the
  fewest conditions on average that keep the promise.
    score_i = 1 - the probability of photo i's true class
    set(x)  = {classes whose probability is >= 1 - qhat}, never empty
  aps (Angelopoulos et al. 2021; models that record no rule): sets that grow with the
  model's uncertainty, but bigger: with a model at 75% accuracy on six conditions
  they averaged 3.2 conditions against LAC's 2 at the same coverage.
    score_i = sum of the probabilities ranked at or above photo i's true class
    set(x)  = {classes whose running sum, most probable first, is <= qhat}, never empty

  qhat = the ceil((n + 1) * coverage)-th smallest score_i     (finite-sample correction)

When ceil((n + 1) * coverage) > n (fewer than ~coverage/(1-coverage) photos,
9 at 90%) no quantile of n photos can promise the coverage: qhat is +inf and
every set is the full list of classes, and `reason` says why.

This is the deterministic variant (no random tie-breaking), so the same photo
always gets the same set. Its coverage is still at least `coverage` on average
over calibration draws, but it can over-cover: the randomised version would hit
the level exactly. Keeping the top class in an otherwise empty set only adds
coverage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Calibration:
    """What a fitted set rule needs and what it achieved on the photos it was fitted on."""

    qhat: float  # +inf: every set is the full list
    coverage: float  # the level asked for
    n: int  # calibration photos
    achieved: float  # share of the calibration photos whose set holds their true class
    mean_size: float
    reason: str = ""  # why the sets are full, when they are
    rule: str = "lac"

    def state(self) -> dict:
        return {
            "rule": self.rule,
            "qhat": float(self.qhat),
            "coverage": float(self.coverage),
            "calibration_size": int(self.n),
            "validation_coverage": float(self.achieved),
            "validation_mean_set_size": float(self.mean_size),
            "reason": self.reason,
        }


def conformal_quantile(scores, coverage: float) -> float:
    """The ceil((n + 1) * coverage)-th smallest score, or +inf when n is too small for it."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = len(s)
    rank = math.ceil((n + 1) * coverage - 1e-9)
    if n == 0 or rank > n:
        return math.inf
    return float(s[max(rank, 1) - 1])


def aps_scores(probs, labels):
    """(N,) cumulative probability, most probable first, down to and including the true class."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    order = np.argsort(-p, axis=1, kind="stable")
    cum = np.cumsum(np.take_along_axis(p, order, axis=1), axis=1)
    rank_of_true = np.argmax(order == y[:, None], axis=1)
    return cum[np.arange(len(y)), rank_of_true]


def lac_scores(probs, labels):
    """(N,) one minus the probability of the true class."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    return 1.0 - p[np.arange(len(y)), y]


SCORES = {"lac": lac_scores, "aps": aps_scores}


def prediction_sets(probs, qhat: float, rule: str = "aps") -> list[list[int]]:
    """Class indices of each row's set under `rule`, most probable first (never empty)."""
    p = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    order = np.argsort(-p, axis=1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=1)
    # A tiny tolerance, so a score equal to qhat (the calibration photo that set it) stays in.
    if rule == "lac":
        keep = 1.0 - ranked <= qhat + 1e-12
    else:
        keep = np.cumsum(ranked, axis=1) <= qhat + 1e-12
    keep[:, 0] = True
    return [[int(c) for c, k in zip(row, mask) if k] for row, mask in zip(order, keep)]


def calibrate(probs, labels, coverage: float = 0.9, rule: str = "lac") -> Calibration:
    """Fit `qhat` of `rule` on validation probabilities (N, K) and labels (N,) for `coverage`."""
    if not 0 < coverage < 1:
        raise ValueError("coverage must be between 0 and 1")
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n = len(y)
    qhat = conformal_quantile(SCORES[rule](p, y), coverage) if n else math.inf
    reason = ""
    if math.isinf(qhat):
        need = math.ceil(coverage / (1 - coverage) - 1e-9)
        reason = (
            f"{n} validation photo(s) cannot calibrate {coverage:.0%} coverage (it needs at least {need}): "
            "every prediction set is the full list of conditions"
        )
    achieved, size = set_metrics(p, y, qhat, rule) if n else (float("nan"), float("nan"))
    return Calibration(qhat, coverage, n, achieved, size, reason, rule)


def set_metrics(probs, labels, qhat: float, rule: str = "aps") -> tuple[float, float]:
    """(empirical coverage, mean set size) of the `rule` sets for `probs` against `labels`."""
    sets = prediction_sets(probs, qhat, rule)
    y = np.asarray(labels, dtype=np.int64)
    if not len(y):
        return float("nan"), float("nan")
    covered = np.mean([int(t) in s for t, s in zip(y, sets)])
    return float(covered), float(np.mean([len(s) for s in sets]))
