"""The mistakes gallery: `evaluate --report DIR` writes DIR/index.html.

One self-contained page to read where a model errs: the confusion matrix, the
per-class scores, the most confused pairs and, for each of the top pairs, its
most confident wrong answers as thumbnails; then the photos the scope check
flagged. Every picture is an inline JPEG/PNG data URI, so the page opens from
a copied folder, offline, with no JavaScript. Plain data in (the dict
`evaluation.evaluate` returns), a path out.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skinfood_cli.descriptions import NOT_A_DIAGNOSIS

MAX_PAIRS = 5  # confused pairs that get a row of photos
MAX_PER_PAIR = 6  # photos per pair: the most confident mistakes first
MAX_OUT_OF_SCOPE = 12
THUMB = 160  # longest thumbnail side, px
# Photos are decoded at a reduced JPEG scale that stays >= this: enough for a 160 px
# thumbnail and for the model's input when a Grad-CAM overlay is drawn on it.
DRAFT = 512

# (RGB PIL image, predicted class name) -> the same photo with a heatmap over it
Overlay = Callable[[Any, str], Any]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 70em; }
.notice { background: #fff4d6; border: 1px solid #e0c060; padding: .6em 1em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; margin-bottom: 1.5em; }
figure { margin: 0; width: 170px; font-size: .8em; }
figure img { max-width: 160px; max-height: 160px; display: block; }
figcaption { word-break: break-all; }
"""


def write_gallery(report: dict, folder: Path, *, overlay: Overlay | None = None) -> Path:
    """Write folder/index.html from an evaluate report; returns its path.

    `overlay`, when given, draws a Grad-CAM heatmap for each shown mistake (the
    caller has the model; this module does not).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = report.get("predictions") or []
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>skinfood evaluation: {_e(report.get('split', ''))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Where the model errs</h1>",
        f'<p class="notice">{_e(NOT_A_DIAGNOSIS["en"])}</p>',
        f"<p>model <code>{_e(report.get('model', ''))}</code>, data <code>{_e(report.get('data', ''))}</code>, "
        f"split {_e(report.get('split', ''))}, {_e(report.get('num_images', len(rows)))} photo(s).</p>",
        _summary(report),
        _confusion(folder / "confusion.png"),
        _per_class(report.get("per_class") or {}),
        _pairs(report, rows, overlay),
        _out_of_scope(rows),
        "</body></html>",
    ]
    path = folder / "index.html"
    path.write_text("\n".join(p for p in parts if p) + "\n", encoding="utf-8")
    return path


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1%}"


def _summary(report: dict) -> str:
    ci = report.get("ci") or {}
    lines = []
    for key, name in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro-F1")):
        if key not in report:
            continue
        low_high = ci.get(key)
        interval = f" (95% CI {_pct(low_high[0])} – {_pct(low_high[1])})" if low_high else ""
        lines.append(f"<tr><td>{name}</td><td>{_pct(report[key])}{interval}</td></tr>")
    return "<h2>Scores</h2><table>" + "".join(lines) + "</table>" if lines else ""


def _confusion(png: Path) -> str:
    if not png.is_file():
        return ""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<h2>Confusion matrix</h2><img alt="confusion matrix" src="data:image/png;base64,{data}">'


def _per_class(per_class: dict) -> str:
    if not per_class:
        return ""
    head = "<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>photos</th></tr>"
    body = "".join(
        f"<tr><td>{_e(name)}{' (never predicted)' if s.get('never_predicted') else ''}</td>"
        f"<td>{_pct(s.get('precision'))}</td><td>{_pct(s.get('recall'))}</td><td>{_pct(s.get('f1'))}</td>"
        f"<td>{_e(s.get('support', ''))}</td></tr>"
        for name, s in per_class.items()
    )
    return f"<h2>Per class</h2><table>{head}{body}</table>"


def _pairs(report: dict, rows: list[dict], overlay: Overlay | None) -> str:
    pairs = report.get("most_confused") or []
    if not pairs:
        return "<h2>Most confused pairs</h2><p>No mistakes.</p>"
    table = "".join(f"<tr><td>{_e(p['true'])} → {_e(p['predicted'])}</td><td>{_e(p['count'])}</td></tr>" for p in pairs)
    out = [f"<h2>Most confused pairs</h2><table><tr><th>true → predicted</th><th>photos</th></tr>{table}</table>"]
    for pair in pairs[:MAX_PAIRS]:
        wrong = [r for r in rows if r["true"] == pair["true"] and r["predicted"] == pair["predicted"]]
        wrong.sort(key=lambda r: -float(r["confidence"]))
        out.append(f"<h3>{_e(pair['true'])} taken for {_e(pair['predicted'])}</h3>")
        out.append('<div class="cards">' + "".join(_card(r, overlay) for r in wrong[:MAX_PER_PAIR]) + "</div>")
    return "\n".join(out)


def _out_of_scope(rows: list[dict]) -> str:
    flagged = [r for r in rows if r.get("in_scope") is False]
    if not flagged:
        return ""
    flagged.sort(key=lambda r: float(r["scope_score"]) if r.get("scope_score") is not None else 0.0)
    cards = "".join(_card(r, None) for r in flagged[:MAX_OUT_OF_SCOPE])
    note = f" (the {MAX_OUT_OF_SCOPE} furthest out shown)" if len(flagged) > MAX_OUT_OF_SCOPE else ""
    return f'<h2>Flagged out of scope: {len(flagged)}{note}</h2><div class="cards">{cards}</div>'


def _card(row: dict, overlay: Overlay | None) -> str:
    """One photo: its thumbnail (and heatmap), true and predicted class, confidence, set, scope."""
    from skinfood_cli.errors import SkinfoodError

    try:
        from skinfood_cli.data.images import load_image

        image = load_image(row["path"], draft_size=DRAFT)
        pictures = f'<img class="thumb" alt="photo" src="{_thumb(image)}">'
        if overlay is not None:
            pictures += f'<img class="cam" alt="Grad-CAM heatmap" src="{_thumb(overlay(image, row["predicted"]))}">'
    except SkinfoodError as exc:  # moved or unreadable since evaluate scored it: say so, keep the text
        pictures = f"<p>(photo not shown: {_e(exc)})</p>"
    scope = row.get("scope_score")
    caption = [
        f"true: <b>{_e(row['true'])}</b>",
        f"predicted: <b>{_e(row['predicted'])}</b> ({_pct(row['confidence'])})",
        f"set: {_e(str(row.get('prediction_set', '')).replace('|', ', '))}",
        f"scope score: {'–' if scope is None else f'{float(scope):.2f}'}",
        f"<code>{_e(row['path'])}</code>",
    ]
    return f"<figure>{pictures}<figcaption>{'<br>'.join(caption)}</figcaption></figure>"


def _thumb(image) -> str:
    """A JPEG data URI of the picture, its longest side at most THUMB px."""
    small = image.convert("RGB")
    small.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
