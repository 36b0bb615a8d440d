"""The mistakes gallery: `evaluate --report DIR` writes DIR/index.html."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from skinfood_cli.descriptions import NOT_A_DIAGNOSIS
from skinfood_cli.gallery import write_gallery

EVIL = "<script>alert(1)</script>"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs: list[dict] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)


def _row(path, true, predicted, confidence, *, in_scope=True, scope=0.5):
    # the keys and value shapes of evaluation.evaluate's "predictions" rows
    return {
        "path": str(path),
        "true": true,
        "predicted": predicted,
        "confidence": confidence,
        "correct": true == predicted,
        "in_scope": in_scope,
        "scope_score": scope,
        "prediction_set": f"{predicted}|{true}",
    }


def _report(tmp_path: Path) -> dict:
    photos = []
    for i, colour in enumerate(["red", "green", "blue", "orange"]):
        photos.append(tmp_path / f"photo{i}.jpg")
        Image.new("RGB", (64, 48), colour).save(photos[-1])
    classes = ["acne", EVIL, "vitiligo"]
    rows = [
        _row(photos[0], "acne", EVIL, 0.9),  # mistake
        _row(photos[1], "acne", EVIL, 0.7),  # mistake
        _row(photos[2], "vitiligo", "acne", 0.6, in_scope=False, scope=-1.5),  # mistake, out of scope
        _row(photos[3], "vitiligo", "vitiligo", 0.95),  # right
    ]
    return {
        "model": "model.pt",
        "data": str(tmp_path),
        "split": "test",
        "num_images": 4,
        "accuracy": 0.25,
        "balanced_accuracy": 0.25,
        "macro_f1": 0.2,
        "ci": {"accuracy": [0.0, 0.75], "balanced_accuracy": [0.0, 0.75], "macro_f1": [0.0, 0.6]},
        "classes": classes,
        "confusion_matrix": [[0, 2, 0], [0, 0, 0], [1, 0, 1]],
        "per_class": {
            c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 1, "never_predicted": False} for c in classes
        },
        "most_confused": [
            {"true": "acne", "predicted": EVIL, "count": 2},
            {"true": "vitiligo", "predicted": "acne", "count": 1},
        ],
        "predictions": rows,
    }


def test_gallery_shows_each_mistake_escaped_and_offline(tmp_path):
    report = _report(tmp_path)
    page = write_gallery(report, tmp_path / "report")
    assert page == tmp_path / "report" / "index.html" and page.is_file()
    text = page.read_text(encoding="utf-8")
    tags = _Tags()
    tags.feed(text)
    tags.close()

    thumbs = [img for img in tags.imgs if img.get("class") == "thumb"]
    # 3 mistakes in the two pairs, plus the out-of-scope one shown again in its own section
    assert len(thumbs) == 3 + 1
    assert all(img["src"].startswith("data:image/jpeg;base64,") for img in thumbs)
    assert EVIL not in text and html.escape(EVIL) in text
    assert not re.search(r"https?://", text)
    assert NOT_A_DIAGNOSIS["en"] in "".join(tags.text)
    assert "95% CI" in text


def test_gallery_calls_the_overlay_for_mistakes_only(tmp_path):
    seen = []

    def overlay(image, predicted):
        seen.append(predicted)
        return image

    write_gallery(_report(tmp_path), tmp_path / "report", overlay=overlay)
    assert sorted(seen) == sorted(["acne", EVIL, EVIL])


@pytest.mark.slow
def test_evaluate_report_gallery_renders_in_chromium(cli, model_path, dataset, tmp_path, browser):
    report = tmp_path / "report"
    r = cli("evaluate", "--model", model_path, "--data", dataset, "--report", report)
    assert r.exit_code == 0, r.stderr
    page = report / "index.html"
    assert page.is_file()
    if 'class="thumb"' not in page.read_text(encoding="utf-8"):
        pytest.skip("the session model made no mistakes and flagged nothing: no thumbnails to render")

    browser.get(page.as_uri())
    assert browser.get_screenshot_as_png()
    widths = browser.execute_script(
        "return Array.from(document.querySelectorAll('img.thumb')).map(i => i.complete ? i.naturalWidth : 0)"
    )
    assert any(w > 0 for w in widths), widths
