"""The `--report DIR` files: metrics.json, confusion.csv, predictions.csv, confusion.png, index.html.

`draw_confusion_grid` is also how train's pictures draw their matrices.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from skinfood_cli.jsonio import dumps


def write_report(report: dict, folder: str | os.PathLike, engine=None) -> list[Path]:
    """metrics.json, confusion.csv, predictions.csv, confusion.png and index.html in `folder`.

    `report` is an evaluation's JSON object with its per-photo rows under "predictions"
    (`{**EvalReport.to_dict(), "predictions": EvalReport.predictions}`).

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
