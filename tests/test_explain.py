"""`skinfood explain`: show where the model looked (Grad-CAM).

The generated photos hold one coloured "lesion" each, and it is the only class
evidence, so a model that learned the task must look at it: that is what the
core Grad-CAM test checks, against the lesion's known bounding box.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, PHOTO_SIZE
from PIL import Image

from skinfood_cli.data.synthetic import make_image

pytestmark = pytest.mark.slow

HANGUL = re.compile(r"[\uac00-\ud7a3]")
GRID = 3  # ResNet50 at 96 px: layer4 is a 3x3 map (96 / 32)
MIN_MEDIAN_RATIO = 1.5
MIN_HIT_SHARE = 2 / 3


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(trained):
    from skinfood_cli.engine import Engine, load_model

    device = os.environ.get("SKINFOOD_TEST_DEVICE", "cpu")
    return Engine(load_model(trained.best_path), device=device, precision="fp32")


@pytest.fixture(scope="module")
def book():
    from skinfood_cli.descriptions import load_descriptions

    return load_descriptions(include_user=False)


def fresh_images(count: int = 9, size=PHOTO_SIZE, first_seed: int = 5000):
    """Photos the model never saw: (class, image, lesion box), cycling over the classes."""
    out = []
    for i in range(count):
        cls = CLASSES[i % len(CLASSES)]
        img, box = make_image(cls, size, random.Random(first_seed + i), lesion_scale=0.4)
        out.append((cls, img, box))
    return out


def save_photo(path: Path, cls: str = "acne", size=PHOTO_SIZE, seed: int = 77) -> Path:
    img, _ = make_image(cls, size, random.Random(seed), lesion_scale=0.4)
    img.save(path, quality=92)
    return path


def lesion_mask(shape, box) -> np.ndarray:
    h, w = shape
    x0, y0, x1, y1 = box
    mask = np.zeros((h, w), dtype=bool)
    mask[max(0, y0) : min(h, y1 + 1), max(0, x0) : min(w, x1 + 1)] = True
    return mask


def cam_statistics(cam: np.ndarray, box) -> tuple[float, bool]:
    """(mean cam inside the lesion box / mean outside, whether the box overlaps the peak's grid cell).

    The grid cell is the one of the model's 3x3 feature map (the photo split into 3x3
    equal cells) that holds the map's maximum: Grad-CAM can't point finer than that.
    """
    h, w = cam.shape
    mask = lesion_mask(cam.shape, box)
    inside, outside = float(cam[mask].mean()), float(cam[~mask].mean())
    ratio = inside / outside if outside > 0 else (float("inf") if inside > 0 else 1.0)
    py, px = np.unravel_index(int(np.argmax(cam)), cam.shape)
    cw, ch = w / GRID, h / GRID
    cx, cy = min(GRID - 1, int(px // cw)), min(GRID - 1, int(py // ch))
    left, right, top, bottom = cx * cw, (cx + 1) * cw, cy * ch, (cy + 1) * ch
    x0, y0, x1, y1 = box
    hit = x0 < right and x1 + 1 > left and y0 < bottom and y1 + 1 > top
    return ratio, hit


def looks_at_lesions(stats: list[tuple[float, bool]]) -> bool:
    """The acceptance criterion: median ratio >= 1.5 and the peak cell on the lesion in >= 2/3."""
    ratios = [r for r, _ in stats]
    hits = sum(h for _, h in stats)
    return statistics.median(ratios) >= MIN_MEDIAN_RATIO and hits >= MIN_HIT_SHARE * len(stats)


def wrong_corner_map(shape, box) -> np.ndarray:
    """A map peaking in the photo corner farthest from the lesion."""
    h, w = shape
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    corner_x = 0 if cx > w / 2 else w - 1
    corner_y = 0 if cy > h / 2 else h - 1
    yy, xx = np.mgrid[0:h, 0:w]
    d2 = (xx - corner_x) ** 2 + (yy - corner_y) ** 2
    return np.exp(-d2 / (2 * (min(h, w) / 4) ** 2)).astype(np.float32)


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32)


def flat(text: str) -> str:
    """Text with Rich's line wrapping undone (all whitespace runs -> one space)."""
    return " ".join(text.split())


# --- the core: Grad-CAM points at the lesion ----------------------------------------------


def test_grad_cam_points_at_the_lesion(engine):
    from skinfood_cli.explanation import grad_cam

    stats, fakes_uniform, fakes_corner = [], [], []
    for _cls, img, box in fresh_images(12):  # 4 per class
        result = grad_cam(engine, img)
        cam = result.cam
        assert cam.shape == (img.height, img.width) == (96, 128)
        assert cam.dtype == np.float32
        assert float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0
        assert float(cam.max()) == pytest.approx(1.0)  # normalised to its peak
        assert 0 <= result.target < len(CLASSES)
        assert result.target == int(np.argmax(result.probs))  # by default: the top class
        assert float(np.sum(result.probs)) == pytest.approx(1.0)
        stats.append(cam_statistics(cam, box))
        fakes_uniform.append(cam_statistics(np.full(cam.shape, 0.5, dtype=np.float32), box))
        fakes_corner.append(cam_statistics(wrong_corner_map(cam.shape, box), box))

    ratios = [round(r, 2) for r, _ in stats]
    hits = sum(h for _, h in stats)
    assert statistics.median(ratios) >= MIN_MEDIAN_RATIO, f"ratios inside/outside the lesion: {ratios}"
    assert hits >= MIN_HIT_SHARE * len(stats), f"peak cell on the lesion in {hits} of {len(stats)}"
    assert looks_at_lesions(stats)

    # The criterion can fail: a map that looks everywhere, or in the wrong corner, does not pass.
    assert not looks_at_lesions(fakes_uniform)
    assert statistics.median(r for r, _ in fakes_uniform) == pytest.approx(1.0)
    assert not looks_at_lesions(fakes_corner)
    assert statistics.median(r for r, _ in fakes_corner) < 1.0


def test_grad_cam_for_a_chosen_class(engine):
    from skinfood_cli.explanation import grad_cam

    _cls, img, _box = fresh_images(1, first_seed=6000)[0]
    top = grad_cam(engine, img)
    other = (top.target + 1) % len(CLASSES)
    chosen = grad_cam(engine, img, target=other)
    assert chosen.target == other
    assert np.allclose(chosen.probs, top.probs)  # the answer doesn't change, only the map
    assert chosen.cam.shape == top.cam.shape
    assert float(chosen.cam.min()) >= 0.0 and float(chosen.cam.max()) <= 1.0
    assert not np.allclose(chosen.cam, top.cam)


def test_grad_cam_leaves_no_hook_behind(engine):
    from skinfood_cli.explanation import grad_cam

    _cls, img, _box = fresh_images(1, first_seed=6100)[0]
    before = len(engine.module.layer4._forward_hooks)
    grad_cam(engine, img)
    assert len(engine.module.layer4._forward_hooks) == before
    # and predictions afterwards are unaffected (no gradients kept, eval mode intact)
    assert not engine.module.training
    logits = engine.run_images([img])
    assert logits.shape == (1, len(CLASSES))


# --- the command ------------------------------------------------------------------------------


def test_explain_writes_photo_and_overlay_side_by_side(cli, model_path, tmp_path, book):
    photo = save_photo(tmp_path / "photo.jpg")
    out = tmp_path / "out.png"
    r = cli("explain", photo, "--model", model_path, "--output", out, "--lang", "en")
    assert r.exit_code == 0, r.stderr
    assert out.is_file()

    with Image.open(photo) as p:
        reference = pixels(p)  # the JPEG as PIL decodes it
    with Image.open(out) as png:
        assert png.format == "PNG"
        canvas = pixels(png)
    h, w = reference.shape[:2]
    assert (w, h) == PHOTO_SIZE
    assert canvas.shape[1] == 2 * w  # kept at the photo's own resolution
    assert canvas.shape[0] > h  # a caption band underneath
    left, right = canvas[:h, :w], canvas[:h, w:]
    assert np.abs(left - reference).mean() < 2.0, "the left half should be the photo itself"
    assert np.abs(right - reference).mean() > 10.0, "the right half should carry the heatmap overlay"

    text = flat(r.stdout)
    top_lines = re.findall(r"^\s*(\d)\.\s+(.+?)\s+(\d+\.\d)%", r.stdout, re.MULTILINE)
    assert [int(n) for n, _, _ in top_lines] == [1, 2, 3]
    shown = [float(p) for _, _, p in top_lines]
    assert shown == sorted(shown, reverse=True)
    assert sum(shown) == pytest.approx(100.0, abs=0.3)
    names = {book.get(c, "en").name: c for c in CLASSES}
    assert {name for _, name, _ in top_lines} == set(names)
    top_class = names[top_lines[0][1]]
    assert flat(book.get(top_class, "en").summary) in text  # the description of the top answer
    assert f"heatmap: {out}" in text
    assert "not a diagnosis" in text.lower()


@pytest.mark.parametrize("size", [(2400, 1800), (1800, 2400)], ids=["landscape", "portrait"])
def test_large_photo_is_scaled_to_1024_on_its_long_side(cli, model_path, tmp_path, size):
    photo = save_photo(tmp_path / "big.jpg", size=size, seed=3)
    out = tmp_path / "big.png"
    r = cli("explain", photo, "--model", model_path, "--output", out)
    assert r.exit_code == 0, r.stderr
    w, h = size
    scale = 1024 / max(w, h)
    photo_w, photo_h = round(w * scale), round(h * scale)
    with Image.open(out) as png:
        canvas = pixels(png)
    assert canvas.shape[1] == 2 * photo_w
    assert canvas.shape[0] > photo_h
    assert max(photo_w, photo_h) == 1024
    with Image.open(photo) as p:
        reference = pixels(p.convert("RGB").resize((photo_w, photo_h), Image.BILINEAR))
    assert np.abs(canvas[:photo_h, :photo_w] - reference).mean() < 3.0


def test_json_over_a_folder_with_a_broken_file(cli, model_path, dataset, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    save_photo(folder / "a_acne.jpg", "acne", seed=11)
    save_photo(folder / "c_vitiligo.jpg", "vitiligo", seed=12)
    (folder / "b_broken.jpg").write_text("not really a photo\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    r = cli("explain", "photos", "--model", model_path, "--format", "json")
    assert r.exit_code == 1, r.stderr
    records = json.loads(r.stdout)
    assert isinstance(records, list) and len(records) == 3
    for rec in records:
        assert {"path", "label", "disease_name", "confidence", "top_k", "heatmap", "error"} <= set(rec)
    by_name = {Path(rec["path"]).name: rec for rec in records}
    assert set(by_name) == {"a_acne.jpg", "b_broken.jpg", "c_vitiligo.jpg"}

    broken = by_name["b_broken.jpg"]
    assert broken["error"]
    assert broken["heatmap"] is None
    assert broken["label"] is None

    heatmaps = set()
    for name in ("a_acne.jpg", "c_vitiligo.jpg"):
        rec = by_name[name]
        assert rec["error"] is None
        assert rec["label"] in CLASSES
        assert 0.0 < rec["confidence"] <= 1.0
        assert rec["top_k"][0]["label"] == rec["label"]
        heatmap = Path(rec["heatmap"])
        resolved = heatmap if heatmap.is_absolute() else tmp_path / heatmap
        assert resolved.is_file()
        assert resolved.parent == tmp_path / "skinfood-explain"  # the default output folder
        with Image.open(resolved) as png:
            assert png.width == 2 * PHOTO_SIZE[0]
        heatmaps.add(resolved)
    assert len(heatmaps) == 2
    assert "b_broken.jpg" not in {p.name for p in (tmp_path / "skinfood-explain").iterdir()}
    assert "could not be explained" in r.stderr


def test_json_records_are_predicts_records_and_the_heatmap(cli, model_path, tmp_path):
    """explain --format json: each record has every key predict --format json gives (the photo-quality
    hints included), the same answer, then the class the heatmap is for and where the picture went."""
    from dataclasses import fields

    from skinfood_cli.cli.output import EXPLAIN_COLUMNS, RECORD_COLUMNS
    from skinfood_cli.prediction import Prediction

    assert sorted(RECORD_COLUMNS) == sorted(f.name for f in fields(Prediction))
    assert [*RECORD_COLUMNS[:-1], "explained_label", "heatmap", "error"] == EXPLAIN_COLUMNS
    folder = tmp_path / "photos"
    folder.mkdir()
    save_photo(folder / "a_acne.jpg", "acne", seed=31)
    dark = save_photo(folder / "b_dark.jpg", "vitiligo", seed=32)
    with Image.open(dark) as img:
        Image.eval(img, lambda v: v // 8).save(dark, quality=92)
    (folder / "c_broken.jpg").write_text("not really a photo\n", encoding="utf-8")
    base = ["--model", model_path, "--format", "json", "--precision", "fp32"]
    predicted = json.loads(cli("predict", folder, *base).stdout)
    r = cli("explain", folder, *base[:-2], "--output-dir", tmp_path / "out")
    assert r.exit_code == 1, r.stderr  # the broken file
    explained = json.loads(r.stdout)
    assert [e["path"] for e in explained] == [p["path"] for p in predicted]
    for e, p in zip(explained, predicted):
        assert list(e) == EXPLAIN_COLUMNS
        numbers = ("confidence", "top_k", "scope_score")  # one photo through Grad-CAM vs a batch: last digits
        assert {k: v for k, v in e.items() if k not in (*numbers, "explained_label", "heatmap")} == {
            k: v for k, v in p.items() if k not in numbers
        }
        if p["confidence"] is not None:
            assert e["confidence"] == pytest.approx(p["confidence"], abs=1e-4)
    good, darkened, broken = explained
    assert "dark" in darkened["quality"] and "dark" not in good["quality"]
    assert good["explained_label"] == good["label"] and Path(good["heatmap"]).is_file()
    assert broken["error"] and broken["explained_label"] is None and broken["heatmap"] is None


@pytest.mark.parametrize("spelling", ["same", "dotted"])
def test_output_equal_to_the_input_is_refused(cli, model_path, tmp_path, monkeypatch, spelling):
    photo = save_photo(tmp_path / "photo.jpg")
    before = photo.read_bytes()
    monkeypatch.chdir(tmp_path)
    output = photo if spelling == "same" else "./photo.jpg"
    r = cli("explain", photo, "--model", model_path, "--output", output)
    assert r.exit_code == 2, r.stdout
    assert "input" in r.stderr
    assert photo.read_bytes() == before


@pytest.mark.parametrize("kind", ["folder", "no-extension", "text-extension"])
def test_an_output_that_is_not_a_picture_file_is_refused_before_any_work(cli, tmp_path, kind):
    photo = save_photo(tmp_path / "photo.jpg")
    output = {"folder": tmp_path, "no-extension": tmp_path / "why", "text-extension": tmp_path / "why.txt"}[kind]
    # No model exists: the option is refused before one is loaded.
    r = cli("explain", photo, "--model", tmp_path / "missing.pt", "--output", output)
    assert r.exit_code == 2, r.stdout
    assert len(r.stderr.strip().splitlines()) == 1 and "--output" in r.stderr, r.stderr
    assert ("--output-dir" in r.stderr) and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]  # nothing written


def test_class_option_explains_that_class(engine, book, tmp_path):
    from skinfood_cli.explanation import explain_items
    from skinfood_cli.prediction import InputItem

    photo = save_photo(tmp_path / "acne.jpg", "acne", seed=21)
    for asked in ("vitiligo", "VITILIGO", "백반증"):  # the class name, any case, or a display name
        out = tmp_path / f"why-{asked}.png"
        [(record, cam)] = list(
            explain_items(
                [InputItem(str(photo))],
                engine,
                book,
                lang="en",
                top_k=3,
                target_class=asked,
                output=str(out),
                output_dir=tmp_path,
            )
        )
        assert record["explained_label"] == "vitiligo"
        assert cam.target == CLASSES.index("vitiligo")
        assert record["heatmap"] == str(out) and out.is_file()
        # the answer is still the model's top class; only the map is for the chosen one
        assert record["label"] == CLASSES[int(np.argmax(cam.probs))]

    [(default, _)] = list(
        explain_items(
            [InputItem(str(photo))],
            engine,
            book,
            lang="en",
            top_k=3,
            target_class=None,
            output=None,
            output_dir=tmp_path / "d",
        )
    )
    assert default["explained_label"] == default["label"]


def test_class_option_changes_the_heatmap(cli, model_path, tmp_path):
    photo = save_photo(tmp_path / "acne.jpg", "acne", seed=21)
    maps = {}
    for name in CLASSES:
        out = tmp_path / f"{name}.png"
        r = cli("explain", photo, "--model", model_path, "--class", name, "--output", out)
        assert r.exit_code == 0, r.stderr
        with Image.open(out) as png:
            maps[name] = pixels(png)[: PHOTO_SIZE[1], PHOTO_SIZE[0] :]
    # explaining different classes of one photo gives different overlays
    assert np.abs(maps["acne"] - maps["vitiligo"]).mean() > 1.0
    assert np.abs(maps["acne"] - maps["psoriasis"]).mean() > 1.0


def test_unknown_class_option_names_the_models_classes(cli, model_path, tmp_path, monkeypatch):
    photo = save_photo(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    r = cli("explain", photo, "--model", model_path, "--class", "nosuch")
    assert r.exit_code == 2, r.stdout
    assert "nosuch" in r.stderr
    for name in CLASSES:
        assert name in r.stderr
    assert not (tmp_path / "skinfood-explain").exists() or not any((tmp_path / "skinfood-explain").iterdir())


def test_lang_ko_prints_the_korean_description(cli, model_path, tmp_path, book):
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS, OUT_OF_SCOPE

    korean_names = {book.get(c, "ko").name: c for c in CLASSES}
    # The tiny test model flags some of its own generated photos out of scope (then no description is
    # shown as the answer, which test_scope.py checks): take the first photo it keeps in scope.
    for seed in range(31, 43):
        photo = save_photo(tmp_path / f"photo{seed}.jpg", "psoriasis", seed=seed)
        out = tmp_path / "ko.png"
        r = cli("explain", photo, "--model", model_path, "--output", out, "--lang", "ko")
        assert r.exit_code == 0, r.stderr
        if flat(OUT_OF_SCOPE["ko"]) not in flat(r.stdout):
            break
    assert HANGUL.search(r.stdout)
    text = flat(r.stdout)
    first = re.search(r"^\s*1\.\s+(.+?)\s+\d+\.\d%", r.stdout, re.MULTILINE)
    assert first and first.group(1) in korean_names
    top_class = korean_names[first.group(1)]
    assert flat(book.get(top_class, "ko").summary) in text
    assert flat(NOT_A_DIAGNOSIS["ko"]) in text


def test_lang_ko_picture_carries_the_korean_caption(cli, model_path, tmp_path, book):
    """The caption under the picture is Hangul drawn as letters: the name, and the caveat lines."""
    from skinfood_cli.explanation import HEATMAP_NOTE, build_caption, caption_sizes, font, render_caption
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS

    photo = save_photo(tmp_path / "photo.jpg", "vitiligo", seed=41)
    out = tmp_path / "ko.png"
    r = cli("explain", photo, "--model", model_path, "--output", out, "--lang", "ko", "--format", "json")
    assert r.exit_code == 0, r.stderr
    [record] = json.loads(r.stdout)
    assert HANGUL.search(record["disease_name"])
    caption = build_caption(record, lang="ko")
    assert caption.notes == [HEATMAP_NOTE["ko"], NOT_A_DIAGNOSIS["ko"]]
    with Image.open(out) as png:
        picture = png.convert("RGB")
    w, h = PHOTO_SIZE
    band = picture.crop((0, h, 2 * w, picture.height))
    assert band.tobytes() == render_caption(caption, 2 * w).tobytes()

    # Independently of render_caption: the Korean name, drawn alone with the bundled font at the
    # headline's size and place, is what the band shows there (and a row of boxes is not).
    size, _ = caption_sizes(2 * w)
    from PIL import ImageDraw

    def name_drawn(text: str) -> np.ndarray:
        alone = Image.new("RGB", band.size, "white")
        ImageDraw.Draw(alone).text((8, 6 + size), text, fill="black", font=font(size), anchor="ls")
        return pixels(alone)

    name = record["disease_name"]
    x1 = 8 + int(ImageDraw.Draw(band).textlength(name, font=font(size))) - 2
    region = (slice(0, 6 + int(size * 1.35)), slice(0, x1))
    assert np.abs(pixels(band)[region] - name_drawn(name)[region]).mean() < 1.0
    assert np.abs(pixels(band)[region] - name_drawn("漢" * len(name))[region]).mean() > 5.0
