"""How well a scope score separates photos the model knows from those it doesn't."""

from __future__ import annotations

import numpy as np


def auroc(in_scores, out_scores) -> float:
    """P(an in-scope photo scores higher than an out-of-scope one), ties counting half.

    1.0: the score ranks every out-of-scope picture below every in-scope photo;
    0.5: a coin. Computed from ranks (Mann-Whitney U), no thresholds involved.
    """
    a = np.asarray(in_scores, dtype=np.float64).ravel()
    b = np.asarray(out_scores, dtype=np.float64).ravel()
    if not len(a) or not len(b):
        return float("nan")
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both), dtype=np.float64)
    ranks[order] = np.arange(1, len(both) + 1)
    # average ranks over ties
    sorted_vals = both[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_vals)) + 1]
    ends = np.r_[starts[1:], len(both)]
    for s, e in zip(starts, ends):
        if e - s > 1:
            ranks[order[s:e]] = (s + 1 + e) / 2
    u = ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2
    return float(u / (len(a) * len(b)))
