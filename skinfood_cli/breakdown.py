"""Evaluation figures on parts of a test set: by estimated skin tone, and without leaked photos.

Both work on the per-photo rows an evaluation scored (`EvalReport.predictions`:
path, true, predicted), so no photo goes through the model twice; each part gets
the same metrics and bootstrap intervals as the whole (metrics.py).
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass
from pathlib import Path


def subset_metrics(y, pred, num_classes: int, *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Count, accuracy, balanced accuracy and macro-F1 with 95% bootstrap intervals."""
    import numpy as np

    from skinfood_cli import metrics as M

    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if not len(y):
        return {"count": 0, "accuracy": None, "balanced_accuracy": None, "macro_f1": None, "ci": {}}
    return {
        "count": len(y),
        "accuracy": M.accuracy(y, pred),
        "balanced_accuracy": M.balanced_accuracy(y, pred, num_classes),
        "macro_f1": M.macro_f1(y, pred, num_classes),
        "ci": M.bootstrap_ci(y, pred, num_classes, samples=bootstrap, seed=seed),
    }


def skin_tone_table(y, pred, itas, num_classes: int, *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Per Del Bino group (and "unknown"): the photos' count and scores; the counts add up to len(y)."""
    import numpy as np

    from skinfood_cli.data.skin_tone import GROUP_NAMES, NOTE, group_range, ita_group

    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    groups = np.array([ita_group(v) for v in itas], dtype=object)
    rows = []
    for name in GROUP_NAMES:
        keep = groups == name
        rows.append(
            {
                "group": name,
                "ita": group_range(name),
                **subset_metrics(y[keep], pred[keep], num_classes, bootstrap=bootstrap, seed=seed),
            }
        )
    return {"note": NOTE, "groups": rows, "total": len(y)}


@dataclass(frozen=True)
class SubsetScores:
    """`subset_metrics` of a part of the scored photos (accuracy etc. None when it is empty)."""

    count: int
    accuracy: float | None
    balanced_accuracy: float | None
    macro_f1: float | None
    ci: dict  # metric -> [low, high], 95% bootstrap


@dataclass(frozen=True)
class LeakedPhoto:
    path: str
    distance: int  # difference-hash bits to its nearest training photo


@dataclass(frozen=True)
class LeakCheck:
    """Scored photos with a near copy among the model's training photos, and the scores without them."""

    threshold: int  # of 256 difference-hash bits
    count: int
    photos: list[LeakedPhoto]  # nearest first
    without: SubsetScores

    def to_dict(self) -> dict:
        """The `leaks` object of `evaluate --format json`."""
        return asdict(self)


def _arrays(rows: list[dict], classes: list[str]):
    import numpy as np

    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[r["true"]] for r in rows], dtype=np.int64)
    pred = np.array([index[r["predicted"]] for r in rows], dtype=np.int64)
    return y, pred


def skin_tone_breakdown(
    rows: list[dict], classes: list[str], *, bootstrap: int = 1000, seed: int = 0, workers: int | None = None
) -> dict:
    """`skin_tone_table` of every scored photo (`rows`: evaluate's per-photo rows), each photo's ITA measured."""
    from skinfood_cli.data.hash_cache import collect_facts

    y, pred = _arrays(rows, classes)
    facts, _ = collect_facts([r["path"] for r in rows], workers=workers)
    itas = [None if f.error else f.ita for f in facts]
    return skin_tone_table(y, pred, itas, len(classes), bootstrap=bootstrap, seed=seed)


def leak_check(
    rows: list[dict],
    classes: list[str],
    meta: dict,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    workers: int | None = None,
) -> LeakCheck | None:
    """Scored photos (`rows`) with a near copy among the model's training photos (recorded in its
    checkpoint), and the metrics without them.

    None for models that record no training hashes (older runs, exported files).
    """
    import numpy as np

    from skinfood_cli.data.check import DEFAULT_THRESHOLD
    from skinfood_cli.data.leaks import find_training_copies

    data = meta.get("data") or {}
    hashes = data.get("train_hashes")
    if not hashes:
        return None
    threshold = int((data.get("leaks") or {}).get("threshold", DEFAULT_THRESHOLD))
    y, pred = _arrays(rows, classes)
    found = find_training_copies([r["path"] for r in rows], hashes, threshold, workers=workers)
    keep = np.array([r["path"] not in found for r in rows], dtype=bool)
    return LeakCheck(
        threshold=threshold,
        count=len(found),
        photos=[LeakedPhoto(p, d) for p, d in sorted(found.items(), key=lambda kv: (kv[1], kv[0]))],
        without=SubsetScores(**subset_metrics(y[keep], pred[keep], len(classes), bootstrap=bootstrap, seed=seed)),
    )


def write_skin_tone_csv(table: dict | None, folder: str | os.PathLike) -> Path | None:
    """skin_tone.csv in a report folder from a `skin_tone_table` (nothing without one)."""
    if not table:
        return None
    path = Path(folder) / "skin_tone.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "group",
                "ita",
                "count",
                "accuracy",
                "accuracy_low",
                "accuracy_high",
                "macro_f1",
                "macro_f1_low",
                "macro_f1_high",
            ]
        )
        for row in table["groups"]:
            ci = row["ci"]
            w.writerow(
                [
                    row["group"],
                    row["ita"],
                    row["count"],
                    row["accuracy"],
                    *ci.get("accuracy", ["", ""]),
                    row["macro_f1"],
                    *ci.get("macro_f1", ["", ""]),
                ]
            )
    return path
