"""Split-conformal prediction sets (APS, Angelopoulos et al. 2021), calibrated on validation.

A photo's prediction set is the smallest group of conditions, taken from the
most to the least probable, whose calibrated probabilities add up to `qhat`.
`qhat` is chosen on n validation photos so that the true condition is in the
set for at least `coverage` of new photos drawn like them:

    score_i = sum of the probabilities ranked at or above photo i's true class
    qhat    = the ceil((n + 1) * coverage)-th smallest score_i     (finite-sample correction)
    set(x)  = {classes whose running sum, most probable first, is <= qhat}, never empty

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

    def state(self) -> dict:
        return {
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


def prediction_sets(probs, qhat: float) -> list[list[int]]:
    """Class indices of each row's set, most probable first (never empty)."""
    p = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    order = np.argsort(-p, axis=1, kind="stable")
    cum = np.cumsum(np.take_along_axis(p, order, axis=1), axis=1)
    # A tiny tolerance, so a score equal to qhat (the calibration photo that set it) stays in.
    keep = cum <= qhat + 1e-12
    keep[:, 0] = True
    return [[int(c) for c, k in zip(row, mask) if k] for row, mask in zip(order, keep)]


def calibrate(probs, labels, coverage: float = 0.9) -> Calibration:
    """Fit `qhat` on validation probabilities (N, K) and labels (N,) for `coverage`."""
    if not 0 < coverage < 1:
        raise ValueError("coverage must be between 0 and 1")
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n = len(y)
    qhat = conformal_quantile(aps_scores(p, y), coverage) if n else math.inf
    reason = ""
    if math.isinf(qhat):
        need = math.ceil(coverage / (1 - coverage) - 1e-9)
        reason = (
            f"{n} validation photo(s) cannot calibrate {coverage:.0%} coverage (it needs at least {need}): "
            "every prediction set is the full list of conditions"
        )
    achieved, size = set_metrics(p, y, qhat) if n else (float("nan"), float("nan"))
    return Calibration(qhat, coverage, n, achieved, size, reason)


def set_metrics(probs, labels, qhat: float) -> tuple[float, float]:
    """(empirical coverage, mean set size) of the sets for `probs` against `labels`."""
    sets = prediction_sets(probs, qhat)
    y = np.asarray(labels, dtype=np.int64)
    if not len(y):
        return float("nan"), float("nan")
    covered = np.mean([int(t) in s for t, s in zip(y, sets)])
    return float(covered), float(np.mean([len(s) for s in sets]))
