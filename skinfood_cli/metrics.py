"""Classification metrics on numpy arrays, shared by training and evaluate.

Conventions (sklearn's, made explicit): precision of a class the model never
predicts is 0 (there is no right answer to divide by), recall of a class with no
examples is 0, F1 is 0 when precision + recall is 0. Macro averages are over
classes that have examples, unless stated otherwise.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    cm = confusion_matrix(y_true, y_pred, num_classes)
    scores = per_class_scores(cm)
    present = scores["support"] > 0
    return float(scores["f1"][present].mean()) if present.any() else 0.0


def balanced_accuracy(y_true, y_pred, num_classes: int) -> float:
    """Mean recall over the classes that have examples."""
    scores = per_class_scores(confusion_matrix(y_true, y_pred, num_classes))
    present = scores["support"] > 0
    return float(scores["recall"][present].mean()) if present.any() else 0.0


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else 0.0


def top_k_accuracy(y_true, probs, k: int) -> float:
    """Share of examples whose true class is among the k most probable."""
    probs = np.asarray(probs)
    k = max(1, min(k, probs.shape[1]))
    top = np.argsort(-probs, axis=1)[:, :k]
    return float((top == np.asarray(y_true)[:, None]).any(axis=1).mean()) if len(probs) else 0.0


def cross_entropy(y_true, probs) -> float:
    """Mean negative log-likelihood of the true class."""
    probs = np.asarray(probs, dtype=np.float64)
    picked = probs[np.arange(len(probs)), np.asarray(y_true)]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()) if len(probs) else 0.0


def expected_calibration_error(y_true, probs, bins: int = 15) -> float:
    """ECE: |accuracy - confidence| averaged over equal-width confidence bins."""
    probs = np.asarray(probs)
    if not len(probs):
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def bootstrap_ci(
    y_true, y_pred, num_classes: int, *, samples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals for accuracy, balanced accuracy and macro-F1.

    Each resample draws len(y) examples with replacement and recomputes the
    metrics from its confusion matrix (one bincount per resample, so 1000
    resamples of 4000 images take well under a second).
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    n = len(y_true)
    if n == 0 or samples <= 0:
        return {}
    rng = np.random.default_rng(seed)
    cell = y_true * num_classes + y_pred
    values: dict[str, list[float]] = {"accuracy": [], "balanced_accuracy": [], "macro_f1": []}
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        cm = np.bincount(cell[idx], minlength=num_classes * num_classes).reshape(num_classes, num_classes)
        scores = per_class_scores(cm)
        present = scores["support"] > 0
        values["accuracy"].append(np.trace(cm) / n)
        values["balanced_accuracy"].append(scores["recall"][present].mean())
        values["macro_f1"].append(scores["f1"][present].mean())
    alpha = (1 - level) / 2
    return {k: [float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))] for k, v in values.items()}


def most_confused(cm: np.ndarray, classes: list[str], limit: int = 10) -> list[dict]:
    """Off-diagonal cells, largest first: [{true, predicted, count}]."""
    pairs: list[dict] = [
        {"true": classes[i], "predicted": classes[j], "count": int(cm[i, j])}
        for i in range(len(classes))
        for j in range(len(classes))
        if i != j and cm[i, j] > 0
    ]
    pairs.sort(key=lambda p: (-p["count"], p["true"], p["predicted"]))
    return pairs[:limit]


def fit_temperature(
    logits, labels, max_iter: int = 100, min_examples: int = 20, bounds: tuple[float, float] = (0.5, 10.0)
) -> float:
    """The temperature T minimising NLL of softmax(logits / T) (Guo et al., 2017).

    Optimises log T so T stays positive; a 1-D problem, solved by a bracketed
    golden-section search in numpy (no autograd needed, deterministic).

    T is kept within `bounds`: on a small validation set that the model gets all
    right, the NLL keeps falling as T -> 0, and an unbounded fit would turn every
    answer into "100%". T < 1 is still allowed, since label smoothing leaves a
    model under-confident. With fewer than `min_examples` photos, T = 1.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) < min_examples:
        return 1.0

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(labels)), labels].mean())

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(max_iter):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
        if hi - lo < 1e-4:
            break
    return float(np.exp((lo + hi) / 2))


def confidence_threshold(
    probs, labels, target_precision: float = 0.9, floor: float = 0.3, ceiling: float = 0.95, min_examples: int = 20
) -> float:
    """The lowest confidence above which validation answers are right `target_precision` of the time.

    Below it a prediction is flagged uncertain. Clamped to [floor, ceiling];
    with too few validation photos to say, the default threshold.
    """
    from skinfood_cli.checkpoint import DEFAULT_THRESHOLD

    probs = np.asarray(probs)
    if len(probs) < min_examples:
        return DEFAULT_THRESHOLD
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    order = np.argsort(-confidence)
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(running >= target_precision)[0]
    if not len(ok):
        return ceiling
    # The largest prefix (most answers kept) that still meets the target.
    threshold = float(confidence[order][ok[-1]])
    return float(min(max(threshold, floor), ceiling))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) along the last axis, in float64 (the calibrated probabilities)."""
    z = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-6)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
