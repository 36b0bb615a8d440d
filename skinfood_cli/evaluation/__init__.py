"""`skinfood evaluate`: how good a model is on held-out photos, and where it errs.

The images go through the same streaming engine as `predict`; this package only
decides which photos, maps their folders to the model's classes, and turns the
answers into metrics (metrics.py) and report files.

    sets.py     which photos: `--data`/`--split`, or the model's own test split (EvalSet)
    scoring.py  the photos through the engine, the answers into metrics and trust figures
    files.py    the --report folder: metrics.json, the CSVs, confusion.png, index.html
    report.py   `evaluate_model`: all of the above, the leak check, the skin-tone table and
                the model card, returning an `EvalReport` (what the CLI and the API read)
"""

from skinfood_cli.evaluation.files import draw_confusion_grid, render_confusion_png, write_report
from skinfood_cli.evaluation.report import ClassScores, EvalProgress, EvalReport, card_is_due, evaluate_model
from skinfood_cli.evaluation.scoring import evaluate
from skinfood_cli.evaluation.sets import EvalSet, resolve_eval_set

__all__ = [
    "ClassScores",
    "EvalProgress",
    "EvalReport",
    "EvalSet",
    "card_is_due",
    "draw_confusion_grid",
    "evaluate",
    "evaluate_model",
    "render_confusion_png",
    "resolve_eval_set",
    "write_report",
]
