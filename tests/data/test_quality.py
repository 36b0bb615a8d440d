"""Photo-quality hints (skinfood_cli/data/quality.py): dark, blurred, small, compressed.

The photos are generated here: a skin-toned picture with coarse texture and a
few sharp "lesions" (640 x 480, the size of a DermNet photo), then the same made
dark, blurred, small and heavily compressed. The thresholds themselves were
chosen on real photos (benchmarks/quality.py; docs/usage.md has the rates).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import parse_json
from PIL import Image, ImageDraw, ImageFilter

from skinfood_cli.data import quality as Q
from skinfood_cli.data.images import load_image_file


def normal_photo(size: tuple[int, int] = (640, 480), seed: int = 0) -> Image.Image:
    """Skin tone with blotchy texture, fine grain and twelve sharp-edged spots."""
    rng = np.random.default_rng(seed)
    w, h = size
    blotches = Image.fromarray(np.clip(rng.normal(128, 18, (h // 8, w // 8, 3)), 0, 255).astype(np.uint8))
    texture = np.asarray(blotches.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32) - 128
    pixels = np.array([214, 160, 110], dtype=np.float32) + texture + rng.normal(0, 6, (h, w, 3))
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(8, 40))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(150, 40, 50))
    return img


MADE = {
    "normal": lambda im: im,
    "dark": lambda im: Image.eval(im, lambda v: v // 5),
    "blurred": lambda im: im.filter(ImageFilter.GaussianBlur(6)),
    "small": lambda im: im.resize((160, 120), Image.Resampling.LANCZOS),
    "compressed": lambda im: im,  # saved at quality 10 below
}


def write_photo(folder: Path, kind: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}.jpg"
    MADE[kind](normal_photo()).save(path, "JPEG", quality=10 if kind == "compressed" else 92)
    return path


@pytest.mark.parametrize("kind", list(MADE))
def test_each_made_worse_photo_gets_its_hint_and_only_it(tmp_path, kind):
    loaded = load_image_file(write_photo(tmp_path, kind), draft_size=224)
    assert Q.photo_quality(loaded) == ([] if kind == "normal" else [kind])


def test_the_hints_survive_the_decode_check_and_a_small_model_use(tmp_path):
    """check decodes at >= 128 px, a 96 px model at >= 96: the grey copy is the same picture."""
    for kind in MADE:
        path = write_photo(tmp_path, kind)
        full = Q.photo_quality(load_image_file(path))
        assert [Q.photo_quality(load_image_file(path, draft_size=d)) for d in (96, 128, 224)] == [full] * 3, kind


@pytest.mark.parametrize("quality", [10, 25, 50, 75, 90])
def test_jpeg_quality_reads_back_the_quality_pillow_saved_at(quality):
    buf = io.BytesIO()
    normal_photo((64, 48)).save(buf, "JPEG", quality=quality)
    estimate = Q.jpeg_quality(load_image_file(buf.getvalue()).quantization)
    # q10's steps clamp at 255, so it reads a little high; the others are libjpeg's own tables.
    assert estimate == pytest.approx(quality, abs=5 if quality == 10 else 0.5)


def test_a_png_has_no_compression_measure_and_no_compressed_hint():
    buf = io.BytesIO()
    normal_photo().save(buf, "PNG")
    loaded = load_image_file(buf.getvalue())
    assert loaded.format == "PNG" and loaded.quantization is None
    m = Q.measure(loaded.image, pixels=loaded.pixels, quantization=loaded.quantization)
    assert m.jpeg_quality is None and Q.assess(m) == []


def test_a_uniform_or_tiny_picture_does_not_break_the_measures():
    flat = Image.new("RGB", (50, 40), (200, 150, 120))
    assert Q.assess(Q.measure(flat)) == ["blurred", "small"]
    assert Q.measure(Image.new("RGB", (2, 1), (0, 0, 0))).sharpness == 0.0
    black = Q.measure(Image.new("RGB", (400, 300), (0, 0, 0)))
    assert "dark" in Q.assess(black)


def test_the_hint_names_the_problems_in_each_language():
    assert Q.quality_hint([], "en") is None
    en = Q.quality_hint(["dark", "blurred"], "en")
    assert en.startswith("Photo quality: too dark, blurred.") and "retake" in en
    assert Q.quality_hint(["small"], "ko").startswith("사진 품질: 너무 작음.")


def test_the_serve_page_says_what_the_hint_says():
    """app.js carries its own strings: they are the Python ones, word for word."""
    script = (Path(Q.__file__).parent.parent / "serving" / "web" / "app.js").read_text(encoding="utf-8")
    for lang in ("en", "ko"):
        block = script.split(f"\n    {lang}: {{", 1)[1].split("\n    },", 1)[0]
        assert f"qualityHint: '{Q.HINT[lang]}'" in block, lang
        for code, words in Q.PROBLEMS[lang].items():
            assert f"quality_{code}: '{words}'" in block, (lang, code)
    assert re.search(r"data\.quality", script)


# --- through the commands -----------------------------------------------------------------


def test_predict_json_carries_the_quality_of_a_dark_photo(cli, model_path, tmp_path):
    """The issue's bar: `skinfood predict DARK.jpg --format json` says the photo is dark."""
    dark, normal = write_photo(tmp_path, "dark"), write_photo(tmp_path, "normal")
    r = cli("predict", dark, normal, "--format", "json", "--model", model_path)
    assert r.exit_code == 0, r.output
    records = {Path(rec["path"]).stem: rec for rec in parse_json(r.stdout)}
    assert records["dark"]["quality"] == ["dark"]
    assert records["normal"]["quality"] == []


def test_predict_csv_has_a_quality_column_and_the_human_answer_a_hint_line(cli, model_path, tmp_path):
    dark = write_photo(tmp_path, "dark")
    r = cli("predict", dark, "--format", "csv", "--model", model_path)
    assert r.exit_code == 0, r.output
    header, row = r.stdout.splitlines()[:2]
    assert "quality" in header.split(",") and ",dark," in row
    human = cli("predict", dark, "--model", model_path, "--lang", "en")
    assert human.exit_code == 0, human.output
    assert "Photo quality: too dark." in human.stdout


def test_an_unreadable_photo_has_an_error_and_no_quality(cli, model_path, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    r = cli("predict", bad, "--format", "json", "--model", model_path)
    (record,) = parse_json(r.stdout)
    assert record["error"] and record["quality"] == []


def test_check_lists_the_photos_each_hint_fires_on(cli, tmp_path):
    data = tmp_path / "set"
    for i, kind in enumerate(("dark", "blurred", "normal")):
        write_photo(data / "train" / "acne", kind).rename(data / "train" / "acne" / f"{i}-{kind}.jpg")
    r = cli("check", "--data", data, "--format", "json")
    assert r.exit_code == 0, r.output
    found = parse_json(r.stdout)["quality"]
    assert set(found) == set(Q.CODES)
    assert [Path(p).stem for p in found["dark"]] == ["0-dark"]
    assert [Path(p).stem for p in found["blurred"]] == ["1-blurred"]
    assert found["small"] == found["compressed"] == []
    table = cli("check", "--data", data)
    assert "1 too dark (photo-quality hint)" in table.stdout
