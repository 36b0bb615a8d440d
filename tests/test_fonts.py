"""The bundled font: Hangul drawn as letters (not boxes) in every picture skinfood makes.

Fast: no model. The explain picture itself is checked in test_explain.py.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from skinfood_cli.explanation import (
    CAPTION_TEXT,
    HEATMAP_NOTE,
    Caption,
    build_caption,
    render_caption,
)
from skinfood_cli.fonts import font_path, load_font

HANGUL = re.compile(r"[\u1100-\u11ff\u3131-\u318e\uac00-\ud7a3]")
NOT_IN_FONT = "漢"  # a hanja: outside the subset, so it draws the font's missing-glyph box


def ink(text: str, size: int = 32) -> np.ndarray:
    """`text` drawn black on white with the bundled font, as a (H, W) uint8 array."""
    font = load_font(size)
    image = Image.new("L", (size * (len(text) + 2), size * 2), 255)
    ImageDraw.Draw(image).text((size // 2, size // 2), text, font=font, fill=0)
    return np.asarray(image)


def cmap() -> set[int]:
    from fontTools.ttLib import TTFont

    return set(TTFont(font_path())["cmap"].getBestCmap())


def ks_x_1001_hangul() -> set[str]:
    return {bytes([a, b]).decode("euc_kr") for a in range(0xB0, 0xC9) for b in range(0xA1, 0xFF)}


def korean_ui_strings() -> list[str]:
    """Every Korean string skinfood itself draws or prints (the page's are rendered by the browser)."""
    from skinfood_cli.cli import output
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS

    return [
        HEATMAP_NOTE["ko"],
        NOT_A_DIAGNOSIS["ko"],
        *CAPTION_TEXT["ko"].values(),
        *output.LABELS["ko"].values(),
        *output.URGENCY_TEXT["ko"].values(),
    ]


def test_font_is_shipped_with_its_licence_and_stays_small():
    folder = resources.files("skinfood_cli.fonts")
    assert "SIL Open Font License" in folder.joinpath("OFL.txt").read_text(encoding="utf-8")
    assert Path(font_path()).stat().st_size < 600_000  # the full Noto Sans CJK face is ~16 MB


def test_font_covers_the_bundled_descriptions_and_skinfoods_korean_strings():
    covered = cmap()
    from skinfood_cli.descriptions import bundled_path

    yaml_text = bundled_path().read_text(encoding="utf-8")
    needed = {c for c in yaml_text if ord(c) > 0x7E} | {c for s in korean_ui_strings() for c in s}
    assert HANGUL.search(yaml_text) and len(needed) > 200
    missing = sorted(c for c in needed if ord(c) not in covered)
    assert not missing, f"not in the bundled font: {''.join(missing)} (rerun tools/subset_font.py)"
    # Descriptions users write stay within the 2,350 everyday syllables of KS X 1001.
    assert not [c for c in ks_x_1001_hangul() if ord(c) not in covered]
    assert ord(NOT_IN_FONT) not in covered


def test_a_hangul_glyph_is_not_the_missing_glyph_box():
    box = ink(NOT_IN_FONT)
    assert (box < 128).any(), "the missing-glyph box should have an outline (notdef_outline)"
    for syllable in "백반증건선피부":
        drawn = ink(syllable)
        assert (drawn < 128).sum() > 20, syllable
        assert not np.array_equal(drawn, box), f"{syllable} drew the missing-glyph box"


def test_two_hangul_captions_render_to_different_pixels():
    a = np.asarray(render_caption(Caption(["백반증: 25.5%"], []), 400))
    b = np.asarray(render_caption(Caption(["건선: 25.5%"], []), 400))
    boxes = np.asarray(render_caption(Caption([f"{NOT_IN_FONT * 3}: 25.5%"], []), 400))
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b).mean() > 0.5
    assert not np.array_equal(a, boxes) and not np.array_equal(b, boxes)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_caption_carries_what_the_terminal_says(lang):
    from skinfood_cli.cli import output
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS

    record = {
        "label": "vitiligo",
        "disease_name": {"en": "Vitiligo", "ko": "백반증"}[lang],
        "confidence": 0.255,
        "uncertain": True,
    }
    caption = build_caption(record, lang=lang)
    head = caption.lines[0]
    assert head.startswith(f"{record['disease_name']}: 25.5%")
    assert output.label(lang, "not sure") in head  # the terminal's words
    assert caption.notes == [HEATMAP_NOTE[lang], NOT_A_DIAGNOSIS[lang]]
    assert len(caption.lines) == 1

    sure = build_caption({**record, "confidence": 0.9, "uncertain": False}, lang=lang)
    assert output.label(lang, "not sure") not in " ".join(sure.lines)

    from skinfood_cli.prediction import OUT_OF_SCOPE

    other = build_caption({**record, "in_scope": False}, lang=lang, explained_name="X", explained_probability=0.1)
    assert other.lines[0] == OUT_OF_SCOPE[lang]  # the out-of-scope sentence leads, as on the terminal
    assert CAPTION_TEXT[lang]["closest"] in other.lines[1] and output.label(lang, "not sure") not in other.lines[1]
    assert other.lines[-1] == f"{CAPTION_TEXT[lang]['heatmap for']} X (10.0%)"


def test_long_text_wraps_inside_the_picture():
    long = "히트맵은 모델이 주목한 곳입니다 " * 8 + "x" * 200  # and one word wider than the band
    band = render_caption(Caption([long], []), 300)
    assert band.width == 300 and band.height > 5 * 20
    pixels = np.asarray(band.convert("L"))
    assert (pixels[:, -4:] == 255).all(), "text ran off the right edge"


def test_confusion_png_draws_korean_class_names(tmp_path):
    from skinfood_cli.evaluation import render_confusion_png

    matrix = [[3, 1], [0, 4]]
    a = render_confusion_png(matrix, ["백반증", "건선"], tmp_path / "a.png")
    b = render_confusion_png(matrix, ["대상포진", "건선"], tmp_path / "b.png")
    boxes = render_confusion_png(matrix, [NOT_IN_FONT * 3, "건선"], tmp_path / "c.png")
    with Image.open(a) as x, Image.open(b) as y, Image.open(boxes) as z:
        ax, bx, zx = (np.asarray(i.convert("L"), dtype=int) for i in (x, y, z))
    width = min(ax.shape[1], bx.shape[1], zx.shape[1])
    assert np.abs(ax[:, :width] - bx[:, :width]).sum() > 0
    assert np.abs(ax[:, :width] - zx[:, :width]).sum() > 0


def test_pictures_still_come_without_the_font_file(monkeypatch):
    from skinfood_cli import fonts

    monkeypatch.setattr(fonts, "font_path", lambda: "/nonexistent/font.otf")
    band = render_caption(Caption(["Vitiligo: 25.5%"], ["Not a diagnosis."]), 300)
    assert (np.asarray(band.convert("L")) < 128).any()
