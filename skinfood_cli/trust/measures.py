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


def scope_summary(scopes, probs, labels, qhat: float | None, coverage: float | None, *, rule: str = "aps") -> dict:
    """The test split's side: share wrongly flagged, and the prediction sets' coverage and size.

    Args:
        scopes: (N,) scope scores of the in-scope test photos (None entries: no scope check).
        probs, labels: (N, K) calibrated probabilities and (N,) true classes.
        qhat, coverage: the model's conformal quantile and the coverage it was calibrated for.
    """
    from skinfood_cli.trust.conformal import set_metrics

    out: dict = {"scope_check": scopes is not None and all(s is not None for s in scopes)}
    if out["scope_check"]:
        s = np.asarray(scopes, dtype=np.float64)
        out["test_flagged"] = float(np.mean(s < 0)) if len(s) else float("nan")
    if qhat is not None and len(labels):
        covered, size = set_metrics(probs, labels, qhat, rule)
        out.update({"coverage_target": coverage, "test_coverage": covered, "test_mean_set_size": size})
    return out


def ood_report(engine, folder: str, items: list[str], test_scopes) -> dict:
    """Score the pictures `items` of `folder` (which the model should not recognise) against the test photos.

    Returns {folder, num_images, unreadable, auroc, flagged}: AUROC of the scope
    score, in-scope test photos against these, and the share of them flagged.
    """
    scores, unreadable = [], 0
    for result in engine.run_paths(items):
        if result.error is not None or result.scope is None:
            unreadable += result.error is not None
            continue
        scores.append(result.scope)
    s = np.asarray(scores, dtype=np.float64)
    return {
        "folder": str(folder),
        "num_images": len(s),
        "unreadable": unreadable,
        "auroc": auroc(test_scopes, s),
        "flagged": float(np.mean(s < 0)) if len(s) else float("nan"),
    }
