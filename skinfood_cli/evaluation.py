"""`skinfood evaluate`: how good a model is on held-out photos, and where it errs.

The images go through the same streaming engine as `predict`; this module only
decides which photos, maps their folders to the model's classes, and turns the
answers into metrics (metrics.py) and report files.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from skinfood_cli.errors import DataError, UsageError
from skinfood_cli.jsonio import dumps


@dataclass
class EvalSet:
    """The photos to score: (path, model class index), plus what was left out."""

    root: Path
    split: str
    samples: list[tuple[str, int]]
    unknown: dict[str, int] = field(default_factory=dict)  # folder -> photos skipped


def resolve_eval_set(
    meta: dict, classes: list[str], data: str | None, split: str, skip_unknown: bool = False
) -> EvalSet:
    """Which photos to evaluate: `--data`/`--split`, or the model's own test split."""
    from skinfood_cli.data.dataset import detect_layout, gather, list_class_folders, relative_key
    from skinfood_cli.data.images import is_image_path

    recorded = meta.get("data") or {}
    root_text = data or recorded.get("root")
    if not root_text:
        raise UsageError("this model records no dataset: pass --data DIR")
    root = Path(root_text).expanduser()
    folders = detect_layout(root)
    if folders.get("train") == root:  # DIR/<class>/ only: every photo in it is the test set
        folder, split = root, "all"
    elif "train" not in folders:  # DIR/test/ and/or DIR/val/ only: held-out photos
        if split not in folders and split == "test" and "val" in folders:
            split = "val"  # the default --split, and val/ is the held-out folder there is
        if split not in folders:
            raise DataError(
                f"{root} has no {split}/ folder (it holds {', '.join(f'{n}/' for n in folders)}): "
                "drop --split, or pass --split " + next(iter(folders))
            )
        folder = folders[split]
    elif split == "test":
        if "test" not in folders:
            raise DataError(f"{root} has no test/ folder: use --split val, or --data a folder of class folders")
        folder = folders["test"]
    elif split == "val" and "val" in folders:
        folder = folders["val"]
    else:
        folder = folders["train"]
    names = list_class_folders(folder)
    index = _match_classes(names, classes)
    unknown_names = [n for n in names if n not in index]
    if unknown_names and not skip_unknown:
        splits = [n for n in unknown_names if n in ("train", "val", "test")]
        hint = (
            f"; {splits[0]}/ looks like a split folder: keep only train/, val/ and test/ in {root}, "
            "each of class folders"
            if splits
            else ""
        )
        raise DataError(
            f"the model does not know the class(es) {', '.join(unknown_names)} found in {folder} "
            f"(it knows: {', '.join(classes)}); pass --skip-unknown to leave them out{hint}"
        )
    known = [n for n in names if n in index]
    samples = [(p, index[known[label]]) for p, label in gather(folder, known)]
    unknown = {n: sum(is_image_path(Path(p)) for p, _ in gather(folder, [n])) for n in unknown_names}
    if split in ("val", "train") and "val" not in folders:
        held = set(recorded.get("val_files") or [])
        # --val-fraction 0 records an empty split: then every photo in train/ was a training photo.
        none_held = "val_files" in recorded and recorded.get("num_val") == 0
        if not held and data is None and not (split == "train" and none_held):
            raise DataError("this model records no validation split: use --split test")
        samples = [s for s in samples if (relative_key(s[0], root) in held) == (split == "val")]
    samples = [s for s in samples if is_image_path(Path(s[0]))]
    if not samples:
        raise DataError(f"no images to evaluate in {folder}")
    return EvalSet(root, split, samples, unknown)


def _match_classes(folders: list[str], classes: list[str]) -> dict[str, int]:
    """Folder name -> model class index, exact first, then ignoring case and spacing."""

    def norm(s: str) -> str:
        return "".join(ch for ch in s.lower() if ch.isalnum())

    exact = {c: i for i, c in enumerate(classes)}
    loose = {norm(c): i for i, c in enumerate(classes)}
    out = {}
    for name in folders:
        if name in exact:
            out[name] = exact[name]
        elif norm(name) in loose:
            out[name] = loose[norm(name)]
    return out


def evaluate(
    engine,
    eval_set: EvalSet,
    *,
    top_k: int = 3,
    bootstrap: int = 1000,
    seed: int = 0,
    progress=None,
    ood: list[str] | None = None,
) -> dict:
    """Run the engine over the set and compute every metric `evaluate` reports.

    Returns the JSON-ready dict documented in docs/usage.md (keys: accuracy,
    balanced_accuracy, macro_f1, ci, top_k_accuracy, loss, ece, num_images,
    classes, confusion_matrix, per_class, most_confused, ...).
    """
    import numpy as np

    from skinfood_cli import metrics as M

    classes = engine.classes
    K = len(classes)
    from skinfood_cli.trust import prediction_sets

    qhat = engine.model.qhat
    labels, probs, rows, failed, scopes = [], [], [], [], []
    for result in engine.run_paths([p for p, _ in eval_set.samples]):
        true = eval_set.samples[result.index][1]
        if progress:
            progress()
        if result.error is not None:
            failed.append({"path": result.path, "error": result.error})
            continue
        p = engine.probabilities(result.logits)
        labels.append(true)
        probs.append(p)
        pred = int(np.argmax(p))
        scopes.append(result.scope)
        members = prediction_sets(p[None], qhat, engine.model.set_rule)[0] if qhat is not None else [pred]
        rows.append(
            {
                "path": result.path,
                "true": classes[true],
                "predicted": classes[pred],
                "confidence": round(float(p[pred]), 6),
                "correct": pred == true,
                "in_scope": result.scope is None or result.scope >= 0,
                "scope_score": None if result.scope is None else round(result.scope, 6),
                "prediction_set": "|".join(classes[i] for i in members),
            }
        )
    if not labels:
        raise DataError("none of the images could be read: nothing to evaluate")
    y = np.asarray(labels)
    P = np.stack(probs)
    pred = P.argmax(1)
    cm = M.confusion_matrix(y, pred, K)
    scores = M.per_class_scores(cm)
    k = max(1, min(top_k, K))
    return {
        "model": str(engine.model.path),
        "data": str(eval_set.root),
        "split": eval_set.split,
        "num_images": len(y),
        "accuracy": M.accuracy(y, pred),
        "balanced_accuracy": M.balanced_accuracy(y, pred, K),
        "macro_f1": M.macro_f1(y, pred, K),
        "ci": M.bootstrap_ci(y, pred, K, samples=bootstrap, seed=seed),
        "top_k": k,
        "top_k_accuracy": M.top_k_accuracy(y, P, k),
        "loss": M.cross_entropy(y, P),
        "ece": M.expected_calibration_error(y, P),
        "temperature": engine.model.temperature,
        "classes": list(classes),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            c: {
                "precision": float(scores["precision"][i]),
                "recall": float(scores["recall"][i]),
                "f1": float(scores["f1"][i]),
                "support": int(scores["support"][i]),
                "never_predicted": bool(cm[:, i].sum() == 0),
            }
            for i, c in enumerate(classes)
        },
        "most_confused": M.most_confused(cm, list(classes)),
        "trust": _trust_report(engine, scopes, P, y, ood or []),
        "unreadable": failed,
        "skipped_unknown": eval_set.unknown,
        "predictions": rows,
    }


def _trust_report(engine, scopes, probs, labels, ood: list[str]) -> dict:
    """Scope check and prediction sets on this split, and per --ood folder (trust/measures.py)."""
    from skinfood_cli.trust.measures import ood_report, scope_summary

    conformal = (engine.model.trust or {}).get("conformal") or {}
    report = scope_summary(
        scopes, probs, labels, engine.model.qhat, conformal.get("coverage"), rule=engine.model.set_rule
    )
    report["method"] = (engine.model.trust or {}).get("method")
    if report["scope_check"]:
        from skinfood_cli.prediction import expand_inputs

        report["ood"] = [
            ood_report(engine, folder, [i.path for i in expand_inputs([folder]) if i.error is None], scopes)
            for folder in ood
        ]
    elif ood:
        report["ood"] = []
        report["note"] = "this model has no scope check: --ood folders were not scored"
    return report


def write_report(report: dict, folder: str | os.PathLike, engine=None) -> list[Path]:
    """metrics.json, confusion.csv, predictions.csv, confusion.png and index.html in `folder`.

    With the `engine` that scored the photos, index.html's mistakes get Grad-CAM overlays
    (when the model has gradients: a .pt checkpoint).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    classes = report["classes"]
    metrics = {k: v for k, v in report.items() if k != "predictions"}
    paths = [folder / "metrics.json", folder / "confusion.csv", folder / "predictions.csv", folder / "confusion.png"]
    paths[0].write_text(dumps(metrics, indent=2) + "\n", encoding="utf-8")
    with open(paths[1], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, report["confusion_matrix"]):
            w.writerow([name, *row])
    with open(paths[2], "w", newline="", encoding="utf-8") as f:
        rows = csv.DictWriter(
            f,
            fieldnames=[
                "path",
                "true",
                "predicted",
                "confidence",
                "correct",
                "in_scope",
                "scope_score",
                "prediction_set",
            ],
        )
        rows.writeheader()
        rows.writerows(report["predictions"])
    render_confusion_png(report["confusion_matrix"], classes, paths[3])
    from skinfood_cli.gallery import write_gallery

    paths.append(write_gallery(report, folder, overlay=_cam_overlay(engine)))
    return paths


def _cam_overlay(engine):
    """(photo, predicted class) -> the photo under its Grad-CAM heatmap, or None without gradients."""
    if engine is None or not engine.supports_gradients:
        return None
    from skinfood_cli.explanation import grad_cam, heatmap_overlay

    index = {name: i for i, name in enumerate(engine.classes)}
    return lambda image, predicted: heatmap_overlay(image, grad_cam(engine, image, index[predicted]).cam)


def render_confusion_png(matrix, classes: list[str], path: Path) -> Path:
    """A row-normalised heatmap with counts, numbered axes and a legend (Pillow only)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from skinfood_cli.explanation import font

    cm = np.asarray(matrix, dtype=np.float64)
    K = len(classes)
    cell = max(28, min(60, 900 // max(K, 1)))
    small, label_font = font(max(10, cell // 3)), font(14)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    legend_w = int(max(probe.textlength(f"{K}  {c}", font=label_font) for c in classes)) + 20
    left, top = 60, 60
    width = left + K * cell + 30 + legend_w
    height = max(top + K * cell + 40, top + 20 * K + 40)
    title = "confusion matrix (rows: true class, columns: predicted; shade = row share)"
    width = max(width, left + int(probe.textlength(title, font=label_font)) + 10)
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    d.text((left, 10), title, fill="black", font=label_font)
    draw_confusion_grid(d, (left, top), cm, cell, small)
    lx = left + K * cell + 30
    for i, name in enumerate(classes):
        d.text((lx, top + i * 20), f"{i + 1}  {name}", fill="black", font=label_font)
    img.save(path)
    return path


def draw_confusion_grid(draw, origin: tuple[int, int], matrix, cell: int, font, *, shares: bool = False) -> None:
    """Draw a K x K confusion heatmap whose top-left cell starts at `origin`, numbered 1..K on both axes.

    Shade = the cell's share of its row (the true class): blue on the diagonal, red off it. The
    text is the count, or with `shares` that share in percent. evaluate's and train's pictures
    both draw their matrices with it.
    """
    import numpy as np

    cm = np.asarray(matrix, dtype=np.float64)  # (K, K): rows true, columns predicted
    rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    left, top = origin
    gap_x, gap_y, mid = max(10, cell // 6), max(6, cell // 10), cell // 2  # numbers sit this far off the grid
    for i in range(len(cm)):
        draw.text((left - gap_x, top + i * cell + mid), f"{i + 1}", fill="black", font=font, anchor="rm")
        draw.text((left + i * cell + mid, top - gap_y), f"{i + 1}", fill="black", font=font, anchor="ms")
        for j in range(len(cm)):
            v = rows[i, j]
            shade = (
                (int(255 - 200 * v), int(255 - 120 * v), 255)
                if i == j
                else (255, int(255 - 200 * v), int(255 - 200 * v))
            )
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=shade, outline=(200, 200, 200))
            if cm[i, j]:
                text = f"{v:.0%}" if shares else str(int(cm[i, j]))
                draw.text((x0 + mid, y0 + mid), text, fill="black", font=font, anchor="mm")
