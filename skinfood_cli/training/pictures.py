"""The pictures in every run folder: curves.png (how training went) and confusion.png (validation).

Drawn with Pillow alone (no matplotlib) and the bundled font, so class names in
Korean read on any machine. Sized for a phone: 1200 px wide, 22-36 px text,
colour-blind-safe colours (Okabe-Ito) and a different marker per line, so a
line still reads in grey.

The core takes plain data (history rows as loop.py writes them, a confusion
matrix, class names) and a folder, and returns the paths written;
`save_run_pictures` is the one call the training loop makes, and it never fails
a finished run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CURVES, CONFUSION = "curves.png", "confusion.png"

# Okabe & Ito's palette: told apart with the common colour-vision deficiencies.
BLUE, ORANGE, GREEN, PINK, SKY, VERMILLION, GREY = (
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
    (60, 60, 60),
)
UNFROZEN_COLOUR, BUDGET_COLOUR = (140, 86, 75), VERMILLION

# (title, [(history key, legend label, colour, marker)], fixed y range or None: from 0 to the top value)
PANELS: list[tuple[str, list[tuple[str, str, tuple[int, int, int], str]], tuple[float, float] | None]] = [
    ("loss", [("train_loss", "train", BLUE, "o"), ("val_loss", "validation", ORANGE, "s")], None),
    (
        "accuracy",
        [
            ("val_acc", "validation accuracy", GREEN, "^"),
            ("val_macro_f1", "validation macro-F1", PINK, "D"),
            ("train_acc", "train accuracy", SKY, "o"),
        ],
        (0.0, 1.05),  # a little above 1, so points at 100% don't sit on the frame
    ),
    ("learning rate (head)", [("lr", "at the end of each epoch", GREY, "o")], None),
]

WIDTH = 1200
LEFT, RIGHT = 130, 40  # the plots' margins: y tick labels on the left
HEADER = 130  # title and the marker legend
PANEL_TITLE, PLOT_H, PANEL_GAP = 56, 250, 64  # a panel's title row, its plot, the x tick labels under it
FOOTER = 60  # the x axis' name


def write_pictures(
    folder: str | os.PathLike,
    history: Sequence[dict],
    *,
    matrix: Any = None,
    classes: Sequence[str] = (),
    budget_end: float | None = None,
    title: str = "training",
) -> list[Path]:
    """Draw curves.png (always) and confusion.png (when a validation matrix is given) in `folder`.

    Args:
        folder: the run folder.
        history: one dict per epoch (loop.py's rows: epoch, phase, lr, train_loss, train_acc,
            val_loss, val_acc, val_macro_f1; a missing or NaN value leaves a gap).
        matrix: the validation confusion matrix (K, K), rows true class, columns predicted; None
            (too few validation photos) removes a confusion.png left by an earlier session.
        classes: the K class names, drawn as they are (Hangul included).
        budget_end: the epoch (fractional) where a --minutes budget ended the run, or None.
        title: the curves' headline, e.g. the run's name.

    Returns:
        The paths written.
    """
    folder = Path(folder)
    written = [_save(draw_curves(history, budget_end=budget_end, title=title), folder / CURVES)]
    if matrix is not None:
        written.append(_save(draw_confusion(matrix, list(classes)), folder / CONFUSION))
    else:
        (folder / CONFUSION).unlink(missing_ok=True)
    return written


def save_run_pictures(
    run_dir: Path,
    history: Sequence[dict],
    *,
    validation: tuple[Any, Any] | None,
    classes: Sequence[str],
    budget_end: float | None,
    warn: Callable[[str], None],
) -> list[Path]:
    """The run's pictures, from its history and best.pt's validation logits (N, K) and labels (N,).

    Drawing is the last and least important thing a run does: any failure becomes a
    `warn`ing, and the finished run (best.pt, the model card) stands. `validation` None
    (too few photos to calibrate on) draws no confusion.png.
    """
    from skinfood_cli.metrics import confusion_matrix

    try:
        matrix = None
        if validation is not None and len(validation[1]):
            logits, labels = validation
            matrix = confusion_matrix(labels, logits.argmax(1), len(classes))
        return write_pictures(
            run_dir,
            history,
            matrix=matrix,
            classes=list(classes),
            budget_end=budget_end,
            title=f"{Path(run_dir).name}: training",
        )
    except Exception as exc:  # a picture must never fail a trained model
        warn(f"could not draw the run's pictures ({exc}); the model is saved and usable")
        return []


# --- curves.png ----------------------------------------------------------------------


def draw_curves(history: Sequence[dict], *, budget_end: float | None = None, title: str = "training"):
    """Loss, accuracy and learning rate against epochs, one panel each, as a PIL image.

    Each row is plotted at the end of its epoch; under --minutes the last, cut-short epoch
    at `budget_end`. Dashed lines mark where the backbone was unfrozen and where the
    budget ended, in every panel.
    """
    from PIL import Image, ImageDraw

    xs = _epoch_ends(history, budget_end)
    unfrozen = _unfrozen_at(history)
    x_last = max([1.0, *xs, budget_end or 0.0])
    x_max = x_last + max(0.25, 0.03 * x_last)  # room right of the last point and the budget's line
    height = HEADER + len(PANELS) * (PANEL_TITLE + PLOT_H + PANEL_GAP) + FOOTER
    img = Image.new("RGB", (WIDTH, height), "white")
    d = ImageDraw.Draw(img)
    d.text((LEFT, 20), title, fill="black", font=_font(36))
    markers = []
    if unfrozen is not None:
        markers.append((unfrozen, UNFROZEN_COLOUR, f"backbone unfrozen after epoch {unfrozen:g}"))
    if budget_end is not None:
        markers.append((budget_end, BUDGET_COLOUR, f"--minutes budget ended (epoch {budget_end:.2f})"))
    trained = f"{budget_end:.2f}" if budget_end is not None else str(len(history))
    _marker_legend(d, f"{trained} epoch{'' if trained == '1' else 's'}", markers)
    top = HEADER
    for panel_title, series, fixed in PANELS:
        values = [[_value(row, key) for row in history] for key, *_ in series]
        y_lo, y_hi = fixed or (0.0, _top([v for vs in values for v in vs]))
        box = (LEFT, top + PANEL_TITLE, WIDTH - RIGHT, top + PANEL_TITLE + PLOT_H)
        _axes(d, box, (0.0, x_max), (y_lo, y_hi))
        for at, colour, _ in markers:
            _vline(d, box, _x(box, at, x_max), colour)
        for (_, _, colour, marker), ys in zip(series, values):
            _polyline(d, box, xs, ys, x_max, (y_lo, y_hi), colour, marker)
        _panel_title(d, top, panel_title, [(label, colour, marker) for _, label, colour, marker in series])
        top += PANEL_TITLE + PLOT_H + PANEL_GAP
    d.text((WIDTH // 2, height - 24), "epoch", fill="black", font=_font(26), anchor="ms")
    return img


def _epoch_ends(history: Sequence[dict], budget_end: float | None) -> list[float]:
    """Where each row sits on the x axis: the end of its epoch, the last one cut short by --minutes."""
    xs = [float(row.get("epoch", i + 1)) for i, row in enumerate(history)]
    if xs and budget_end is not None and xs[-1] - 1 < budget_end < xs[-1]:
        xs[-1] = budget_end
    return xs


def _unfrozen_at(history: Sequence[dict]) -> float | None:
    """The epoch boundary where `phase` went from "head" to "full", if it did."""
    for before, row in zip(history, history[1:]):
        if before.get("phase") == "head" and row.get("phase") == "full":
            return float(row.get("epoch", 1)) - 1
    return None


def _value(row: dict, key: str) -> float:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return math.nan


def _top(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    top = max(finite, default=0.0)
    return top * 1.08 if top > 0 else 1.0


def _x(box, x: float, x_max: float) -> float:
    return box[0] + (box[2] - box[0]) * x / x_max


def _y(box, y: float, y_range: tuple[float, float]) -> float:
    lo, hi = y_range
    return box[3] - (box[3] - box[1]) * (y - lo) / (hi - lo)


def _axes(d, box, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
    """Frame, grid lines and tick labels of one panel."""
    ticks = _font(22)
    for y in _ticks(*y_range):
        py = _y(box, y, y_range)
        d.line([(box[0], py), (box[2], py)], fill=(225, 225, 225), width=1)
        d.text((box[0] - 10, py), _tick_label(y, y_range), fill="black", font=ticks, anchor="rm")
    for x in _ticks(*x_range, integer=True):
        px = _x(box, x, x_range[1])
        d.line([(px, box[1]), (px, box[3])], fill=(235, 235, 235), width=1)
        d.text((px, box[3] + 10), f"{x:g}", fill="black", font=ticks, anchor="mt")
    d.rectangle(box, outline=(120, 120, 120), width=2)


def _ticks(lo: float, hi: float, integer: bool = False, count: int = 6) -> list[float]:
    """About `count` round values (1, 2 or 5 times a power of ten) from lo to hi."""
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    step = next(m * step for m in (1, 2, 5, 10) if m * step >= raw)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _tick_label(value: float, y_range: tuple[float, float]) -> str:
    span = y_range[1] - y_range[0]
    decimals = max(0, 1 - math.floor(math.log10(span / 5)))
    return f"{round(value, decimals):g}"


def _vline(d, box, px: float, colour) -> None:
    """A dashed vertical line across the plot."""
    y = box[1]
    while y < box[3]:
        d.line([(px, y), (px, min(y + 12, box[3]))], fill=colour, width=3)
        y += 20


def _polyline(d, box, xs, ys, x_max, y_range, colour, marker: str) -> None:
    """Line through the finite points (a NaN breaks it), a marker on each."""
    points = [(_x(box, x, x_max), _y(box, y, y_range)) if math.isfinite(y) else None for x, y in zip(xs, ys)]
    run: list[tuple[float, float]] = []
    for p in [*points, None]:
        if p is None:
            if len(run) > 1:
                d.line(run, fill=colour, width=4, joint="curve")
            run = []
        else:
            run.append(p)
    for p in points:
        if p is not None:
            _marker(d, p, colour, marker)


def _marker(d, at: tuple[float, float], colour, shape: str, r: int = 7) -> None:
    x, y = at
    if shape == "s":
        d.rectangle([x - r, y - r, x + r, y + r], fill=colour)
    elif shape == "^":
        d.polygon([(x, y - r - 1), (x - r - 1, y + r), (x + r + 1, y + r)], fill=colour)
    elif shape == "D":
        d.polygon([(x, y - r - 2), (x + r + 2, y), (x, y + r + 2), (x - r - 2, y)], fill=colour)
    else:
        d.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def _panel_title(d, top: int, title: str, entries: list[tuple[str, Any, str]]) -> None:
    """The panel's name on the left, its legend (line, marker, label) right-aligned on the same row."""
    y = top + PANEL_TITLE // 2
    d.text((LEFT, y), title, fill="black", font=_font(28), anchor="lm")
    room = WIDTH - RIGHT - LEFT - int(d.textlength(title, font=_font(28))) - 40
    size = 24
    while size > 14 and _legend_width(d, entries, size) > room:
        size -= 2
    x = WIDTH - RIGHT - _legend_width(d, entries, size)
    for label, colour, marker in entries:
        d.line([(x, y), (x + 40, y)], fill=colour, width=4)
        _marker(d, (x + 20, y), colour, marker)
        d.text((x + 48, y), label, fill="black", font=_font(size), anchor="lm")
        x += 48 + int(d.textlength(label, font=_font(size))) + 28


def _legend_width(d, entries, size: int) -> int:
    return sum(48 + int(d.textlength(label, font=_font(size))) + 28 for label, _, _ in entries) - 28


def _marker_legend(d, text: str, markers) -> None:
    """Under the title: how many epochs, and what each dashed line means (smaller text if it must)."""
    y, size = 90, 24

    def width(size: int) -> int:
        return sum(int(d.textlength(label, font=_font(size))) + 88 for _, _, label in [(0, 0, text), *markers])

    while size > 14 and LEFT + width(size) > WIDTH:
        size -= 2
    x = LEFT
    d.text((x, y), text, fill=(90, 90, 90), font=_font(size), anchor="lm")
    x += int(d.textlength(text, font=_font(size))) + 36
    for _, colour, label in markers:
        for dx in (0, 16, 32):
            d.line([(x + dx, y), (x + dx + 10, y)], fill=colour, width=4)
        d.text((x + 52, y), label, fill="black", font=_font(size), anchor="lm")
        x += 52 + int(d.textlength(label, font=_font(size))) + 36


# --- confusion.png -------------------------------------------------------------------


def draw_confusion(matrix, classes: list[str]):
    """The validation confusion matrix twice, side by side: counts, and each true class's shares.

    The grids are evaluate's (evaluation.draw_confusion_grid); the class names, numbered
    as on the axes, are listed under them.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    from skinfood_cli.evaluation import draw_confusion_grid

    cm = np.asarray(matrix, dtype=np.int64)  # (K, K)
    K = len(classes)
    cell = max(36, min(120, 480 // max(K, 1)))
    grid = K * cell
    left, gap, top = 70, 90, 220
    legend, text = _font(24), _font(max(14, min(30, cell // 3)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    names_w = int(max((probe.textlength(f"{K}   {c}", font=legend) for c in classes), default=0))
    width = max(800, left + 2 * grid + gap + 40, left + names_w + 40)
    height = max(500, top + grid + 50 + 36 * K + 30)
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    total = int(cm.sum())
    right = int(np.trace(cm))
    d.text((left, 20), "validation confusion matrix", fill="black", font=_font(36))
    summary = f"{total} photos, {right / max(total, 1):.0%} right; rows: true class, columns: predicted"
    d.text((left, 75), summary, fill=(90, 90, 90), font=_font(24))
    for i, (name, shares) in enumerate((("counts", False), ("share of each true class", True))):
        x0 = left + i * (grid + gap)
        d.text((x0 - 30, top - 60), name, fill="black", font=_font(28), anchor="ls")
        draw_confusion_grid(d, (x0, top), cm, cell, text, shares=shares)
    y = top + grid + 50
    for i, name in enumerate(classes):
        d.text((left - 30, y + 36 * i), f"{i + 1}   {name}", fill="black", font=legend)
    return img


# --- shared -----------------------------------------------------------------------------


def _font(size: int):
    from skinfood_cli.fonts import load_font

    return load_font(size)


def _save(img, path: Path) -> Path:
    """Write atomically: a failed or interrupted save leaves the old picture, not half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
