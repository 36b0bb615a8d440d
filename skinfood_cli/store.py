"""What `skinfood models` shows about each run, read from its text files.

Reading config.yaml and metrics.csv instead of the checkpoints keeps the listing
instant (no torch import, no 100 MB loads).
"""

from __future__ import annotations

import csv

from skinfood_cli.paths import list_runs


def describe_runs() -> list[dict]:
    """One row per run, newest first; `default` marks the one used without --model."""
    import yaml

    rows = []
    for i, run in enumerate(list_runs()):
        config: dict = {}
        best, epochs = None, None
        try:
            config = yaml.safe_load((run.path / "config.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            pass
        try:
            with open(run.path / "metrics.csv", newline="", encoding="utf-8") as f:
                history = list(csv.DictReader(f))
            epochs = len(history)
            if history and config.get("select", "best") == "last":
                best = history[-1]  # best.pt is the end of the schedule
            elif history:
                best = max(
                    history,
                    key=lambda r: (
                        float(r.get("val_macro_f1") or "nan") if (r.get("val_macro_f1") or "nan") != "nan" else -1.0
                    ),
                )
        except (OSError, csv.Error):
            pass
        classes = list(config.get("classes") or [])
        rows.append(
            {
                "name": run.name,
                "default": i == 0,
                "created": run.modified.strftime("%Y-%m-%d %H:%M"),
                "classes": classes,
                "num_classes": len(classes),
                "val_macro_f1": _float(best, "val_macro_f1"),
                "val_acc": _float(best, "val_acc"),
                "epochs": epochs,
                "size_mb": round(_folder_bytes(run.path) / 1e6, 1),
                "path": str(run.best if run.best.is_file() else run.last),
            }
        )
    return rows


def _folder_bytes(path) -> int:
    """Bytes of the files in a run folder (a ResNet50 run with its resumable last.pt is ~380 MB)."""
    total = 0
    for entry in path.rglob("*"):
        try:
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_size
        except OSError:  # removed while we looked
            pass
    return total


def _float(row: dict | None, key: str) -> float | None:
    try:
        value = float(row[key]) if row else None
    except (KeyError, TypeError, ValueError):
        return None
    return None if value is None or value != value else value


# What each file a run folder may hold is, for `skinfood models NAME` (docs/files.md has the list).
RUN_FILES = {
    "best.pt": "the model, calibrated",
    "last.pt": "the latest epoch, resumable (optimizer state)",
    "metrics.csv": "one row per epoch",
    "config.yaml": "every setting, skinfood and torch versions",
    "MODEL_CARD.md": "what the model is, its data and figures",
    "curves.png": "loss, accuracy, macro-F1 and learning rate per epoch",
    "confusion.png": "validation confusion matrix",
    "skipped.txt": "files the pre-scan left out",
}


def describe_run_files(name: str) -> list[dict]:
    """The files in run `name`'s folder, with their size and what they are (no subfolders, no temp files)."""
    from skinfood_cli.paths import find_run

    rows = []
    for entry in sorted(find_run(name).iterdir()):
        try:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            size = entry.stat().st_size
        except OSError:  # removed while we looked
            continue
        rows.append({"file": entry.name, "bytes": size, "what": RUN_FILES.get(entry.name, ""), "path": str(entry)})
    return rows
