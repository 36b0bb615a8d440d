"""The figures best.pt keeps for its model card, gathered at the end of training (model_card.py renders them)."""

from __future__ import annotations

from skinfood_cli import metrics as M
from skinfood_cli.breakdown import skin_tone_table, subset_metrics
from skinfood_cli.data.dataset import class_counts


def card_fields(ds, validation: tuple | None, temperature: float) -> dict:
    """What best.pt keeps for the card: class counts per split and the validation figures.

    Args:
        ds: the run's prepared dataset (training/prepare.py).
        validation: best.pt's raw validation logits (N, K) and labels (N,), as calibration
            saw them; None (too few photos to calibrate on) leaves the figures out.
        temperature: the fitted temperature.
    """
    K = len(ds.classes)
    counts = {
        split: dict(zip(ds.classes, class_counts(ds.split(split), K)))
        for split in ("train", "val", "test")
        if ds.split(split)
    }
    fields: dict = {"dataset_summary": {"class_counts": counts}}
    if validation is None or not len(validation[1]):
        return fields
    logits, labels = validation
    probs = M.softmax(logits, temperature)
    pred = probs.argmax(1)
    cm = M.confusion_matrix(labels, pred, K)
    scores = M.per_class_scores(cm)
    itas = [(ds.leaks.ita if ds.leaks else {}).get(p) for p, _ in ds.val]
    fields["validation"] = {
        **subset_metrics(labels, pred, K),
        "num_images": len(labels),
        "ece": M.expected_calibration_error(labels, probs),
        "ece_uncalibrated": M.expected_calibration_error(labels, M.softmax(logits)),
        "loss": M.cross_entropy(labels, probs),
        "per_class": _per_class(ds.classes, cm, scores),
        "by_skin_tone": skin_tone_table(labels, pred, itas, K),
    }
    return fields


def _per_class(classes, cm, scores) -> dict:
    return {
        c: {
            "precision": float(scores["precision"][i]),
            "recall": float(scores["recall"][i]),
            "f1": float(scores["f1"][i]),
            "support": int(scores["support"][i]),
        }
        for i, c in enumerate(classes)
    }
