"""`skinfood evaluate` as one call: `evaluate_model(engine, ...)` -> `EvalReport`.

It resolves the photos (sets.py), scores them (scoring.py), adds the leak check
and, when asked or when the run's model card is about to get the test figures,
the skin-tone table (breakdown.py), writes the `--report` folder (files.py) when
given one and the run's MODEL_CARD.md when due (model_card.py). The command and
the Python API both call it; the command only words what the report says
(`skipped_unknown`, `unreadable`, `leaks`, `files`, `card_path`) and prints it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from skinfood_cli.breakdown import LeakCheck, leak_check, skin_tone_breakdown, write_skin_tone_csv
from skinfood_cli.evaluation.files import write_report
from skinfood_cli.evaluation.scoring import evaluate
from skinfood_cli.evaluation.sets import EvalSet, resolve_eval_set


@dataclass(frozen=True)
class ClassScores:
    """One class's row of the per-class table."""

    precision: float
    recall: float
    f1: float
    support: int
    never_predicted: bool


@dataclass(frozen=True)
class EvalReport:
    """What `evaluate` found, with attribute access; `report["key"]` reaches every JSON key.

    `to_dict()` is what `skinfood evaluate --format json` prints; `predictions`
    holds one row per photo (path, true, predicted, confidence, correct, ...).
    `files` lists what was written to the report folder and `card_path` the
    MODEL_CARD.md that got the test figures (None when none did); neither is in
    the JSON.
    """

    model: str
    data: str
    split: str  # "test", "val", "train", or "all" for a folder of class folders
    num_images: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    ci: dict  # metric -> [low, high], 95% bootstrap; {} with bootstrap=0
    top_k: int
    top_k_accuracy: float
    loss: float
    ece: float
    temperature: float
    classes: list[str]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted
    per_class: dict[str, ClassScores]
    most_confused: list[dict]  # {"true", "predicted", "count"}, most first
    trust: dict  # prediction-set coverage and the scope check, on the split and each --ood folder
    unreadable: list[dict]  # {"path", "error"}: photos that could not be read (left out of the figures)
    skipped_unknown: dict[str, int]  # class folder the model does not know -> photos left out
    leaks: LeakCheck | None = None  # None: the model records no training photos to compare with
    by_skin_tone: dict | None = None  # breakdown.skin_tone_table, when asked for or written into the card
    predictions: list[dict] = field(default_factory=list, repr=False)
    files: list[Path] = field(default_factory=list)
    card_path: Path | None = None

    @classmethod
    def from_scores(cls, scores: dict, **extra: Any) -> EvalReport:
        """Type `scoring.evaluate`'s dict (its lists and dicts are kept, not copied)."""
        return cls(
            model=scores["model"],
            data=scores["data"],
            split=scores["split"],
            num_images=int(scores["num_images"]),
            accuracy=float(scores["accuracy"]),
            balanced_accuracy=float(scores["balanced_accuracy"]),
            macro_f1=float(scores["macro_f1"]),
            ci=scores["ci"],
            top_k=int(scores["top_k"]),
            top_k_accuracy=float(scores["top_k_accuracy"]),
            loss=float(scores["loss"]),
            ece=float(scores["ece"]),
            temperature=scores["temperature"],
            classes=list(scores["classes"]),
            confusion_matrix=scores["confusion_matrix"],
            per_class={name: ClassScores(**row) for name, row in scores["per_class"].items()},
            most_confused=scores["most_confused"],
            trust=scores["trust"],
            unreadable=scores["unreadable"],
            skipped_unknown=scores["skipped_unknown"],
            predictions=scores["predictions"],
            **extra,
        )

    def to_dict(self) -> dict:
        """The object `skinfood evaluate --format json` prints (and --report's metrics.json holds)."""
        out = {
            "model": self.model,
            "data": self.data,
            "split": self.split,
            "num_images": self.num_images,
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "macro_f1": self.macro_f1,
            "ci": self.ci,
            "top_k": self.top_k,
            "top_k_accuracy": self.top_k_accuracy,
            "loss": self.loss,
            "ece": self.ece,
            "temperature": self.temperature,
            "classes": self.classes,
            "confusion_matrix": self.confusion_matrix,
            "per_class": {name: asdict(row) for name, row in self.per_class.items()},
            "most_confused": self.most_confused,
            "trust": self.trust,
            "unreadable": self.unreadable,
            "skipped_unknown": self.skipped_unknown,
        }
        if self.leaks is not None:
            out["leaks"] = self.leaks.to_dict()
        if self.by_skin_tone is not None:
            out["by_skin_tone"] = self.by_skin_tone
        return out

    def __getitem__(self, key: str) -> Any:
        if key == "predictions":
            return self.predictions
        return self.to_dict()[key]


class EvalProgress(Protocol):
    """What `evaluate_model` tells as it goes (the CLI's bar; its warnings once the photos are known)."""

    def start(self, eval_set: EvalSet) -> None:
        """The photos are resolved: `eval_set.samples` are about to be scored, `eval_set.unknown` left out."""

    def advance(self) -> None:
        """One more photo scored (or found unreadable)."""


def evaluate_model(
    engine,
    *,
    data: str | os.PathLike | None = None,
    split: str = "test",
    skip_unknown: bool = False,
    top_k: int = 3,
    bootstrap: int = 1000,
    seed: int = 0,
    by_skin_tone: bool = False,
    ood: Sequence[str | os.PathLike] = (),
    report_dir: str | os.PathLike | None = None,
    update_card: bool = True,
    progress: EvalProgress | None = None,
) -> EvalReport:
    """Score `engine`'s model on held-out photos: everything `skinfood evaluate` does but print.

    Args:
        data: a dataset folder in any layout `train` takes (default: the model's own).
        split: "test", "val" or "train" (a folder of class folders is all test).
        skip_unknown: leave out class folders the model does not know (else DataError).
        top_k: k of the top-k accuracy (clamped to the number of classes).
        bootstrap: resamples for the 95% intervals (0: none); `seed` seeds them.
        by_skin_tone: add the per-skin-tone table (it is added anyway when the card gets it).
        ood: folders of photos the model should not recognise, for the scope check.
        report_dir: write metrics.json, confusion.csv, predictions.csv, confusion.png,
            index.html (and skin_tone.csv) there; `report.files` lists them.
        update_card: on the test split of a run's own checkpoint, write the test
            figures into the run's MODEL_CARD.md (`report.card_path`).

    Raises:
        UsageError, DataError: no dataset, no such split, unknown classes, no photos,
            or none of them readable.
    """
    model = engine.model
    eval_set = resolve_eval_set(model.meta, engine.classes, os.fspath(data) if data else None, split, skip_unknown)
    if progress is not None:
        progress.start(eval_set)
    scores = evaluate(
        engine,
        eval_set,
        top_k=top_k,
        bootstrap=bootstrap,
        seed=seed,
        progress=progress.advance if progress is not None else None,
        ood=[os.fspath(p) for p in ood],
    )
    rows, classes = scores["predictions"], scores["classes"]
    card_due = update_card and card_is_due(model.path, eval_set.split)
    report = EvalReport.from_scores(
        scores,
        leaks=leak_check(rows, classes, model.meta, bootstrap=bootstrap, seed=seed),
        # the card shows the skin-tone table, so the JSON has what the card has
        by_skin_tone=(
            skin_tone_breakdown(rows, classes, bootstrap=bootstrap, seed=seed) if by_skin_tone or card_due else None
        ),
    )
    if report_dir is not None:
        files = write_report({**report.to_dict(), "predictions": rows}, report_dir, engine=engine)
        tones = write_skin_tone_csv(report.by_skin_tone, report_dir)
        report = replace(report, files=files + ([tones] if tones else []))
    if card_due:
        from skinfood_cli.model_card import update_model_card

        report = replace(report, card_path=update_model_card(model.path, model.meta, report.to_dict()))
    return report


def card_is_due(model_path: str | os.PathLike, split: str) -> bool:
    """Whether evaluating `split` updates the model card: the test split of a run's own checkpoint
    (not an export copied elsewhere), in a run folder (one with a card or config.yaml)."""
    from skinfood_cli.backends import is_exported
    from skinfood_cli.model_card import CARD_NAME

    model_path = Path(model_path)
    folder = model_path.parent
    return (
        not is_exported(model_path)
        and split in ("test", "all")
        and ((folder / CARD_NAME).is_file() or (folder / "config.yaml").is_file())
    )
