"""The Python API (skinfood_cli/api.py) and its page, docs/python.md.

The page is run as a notebook would run it: its ```python blocks in order, in
one namespace. Its first block names what a reader has, as constants:

    MODEL = "my-run"          PHOTOS = "photos/"
    PHOTO = "photos/arm.jpg"  DATA = "dermnet/"

and this test substitutes, in that block only, the session model's checkpoint
(the `model_path` fixture), a folder of its test photos, one photo of it, and
the session dataset (`dataset`). Nothing else on the page is changed, so a
block that stops working fails here. The direct tests below hold each method
to the command it stands for (`predict --format json`, `evaluate --format json`).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import parse_json
from PIL import Image

from skinfood_cli.errors import ModelError, UsageError
from skinfood_cli.jsonio import dumps
from skinfood_cli.prediction import Prediction

PAGE = Path(__file__).resolve().parent.parent / "docs" / "python.md"


@pytest.fixture
def photos(dataset, tmp_path) -> Path:
    """Six of the session set's test photos, in one folder of this test's own."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted((dataset / "test").rglob("*.jpg"))[::4]:
        shutil.copy(path, folder / f"{path.parent.name}-{path.name}")
    return folder


@pytest.fixture
def model(model_path):
    from skinfood_cli import load_model

    return load_model(model_path, lang="en", precision="fp32")


def page_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)


def test_the_page_runs_block_by_block_against_the_session_model(model_path, photos, dataset, tmp_path):
    blocks = page_blocks()
    assert len(blocks) >= 6
    given = {
        "MODEL": model_path,
        "PHOTOS": photos,
        "PHOTO": sorted(photos.iterdir())[0],
        "DATA": dataset,
        "OUT": tmp_path / "exports",
    }
    first = blocks[0]
    for name, value in given.items():
        first, count = re.subn(rf'^{name} = "[^"]*"', f"{name} = {str(value)!r}", first, flags=re.MULTILINE)
        assert count == 1, f'docs/python.md\'s first block no longer sets {name} = "..."'
    blocks[0] = first
    namespace: dict = {}
    out = io.StringIO()
    for number, block in enumerate(blocks, 1):
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(block, f"docs/python.md block {number}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"docs/python.md block {number} fails: {exc!r}\n{block}") from exc
    printed = out.getvalue()
    records = namespace["records"]
    assert len(records) == len(list(photos.iterdir())) and all(isinstance(r, Prediction) for r in records)
    assert "accuracy" in printed and "macro-F1 95% interval" in printed
    made = namespace["made"]  # the export block: the command's verified file, where the page said
    assert made.path == tmp_path / "exports" / "skin.onnx" and made.path.is_file() and made.passed
    assert isinstance(namespace["why"].overlay, Image.Image)
    assert "Not a diagnosis" in printed
    assert "error: no model file or run named 'no-such-run'" in printed


def test_import_skinfood_cli_and_the_name_load_model_stay_free_of_torch():
    code = "import sys, skinfood_cli; skinfood_cli.load_model; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_load_model_finds_a_run_by_name_or_the_newest_as_the_cli_does(installed_run):
    from skinfood_cli import SkinModel, load_model

    by_name = load_model(installed_run.name)
    newest = load_model()
    assert isinstance(by_name, SkinModel)
    assert by_name.path == newest.path == installed_run / "best.pt"
    assert by_name.classes == ["acne", "psoriasis", "vitiligo"]


def test_a_missing_model_raises_the_cli_error_and_line(cli, tmp_path):
    from skinfood_cli import load_model

    with pytest.raises(ModelError) as caught:
        load_model("no-such-run")
    r = cli("predict", tmp_path, "--model", "no-such-run")
    assert r.exit_code == caught.value.exit_code == 2
    assert r.stderr.strip() == f"error: {caught.value}"
    with pytest.raises(UsageError, match="unknown language"):
        load_model("no-such-run", lang="fr")


def test_predict_gives_the_records_predict_json_prints(cli, model, model_path, photos):
    records = model.predict(photos)
    r = cli("predict", photos, "--format", "json", "--model", model_path, "--precision", "fp32")
    printed = parse_json(r.stdout)
    assert [r.path for r in records] == [p["path"] for p in printed]
    assert [r.label for r in records] == [p["label"] for p in printed]
    for record, expected in zip(records, printed):
        assert record.to_dict().keys() == expected.keys()
        assert record.confidence == pytest.approx(expected["confidence"], abs=1e-5)
        assert (record.prediction_set, record.in_scope, record.quality) == (
            expected["prediction_set"],
            expected["in_scope"],
            expected["quality"],
        )
        assert record.notice and record.notice == expected["notice"]


def test_predict_takes_one_path_a_list_pil_images_and_a_mix_in_order(model, photos):
    files = sorted(photos.iterdir())
    (single,) = model.predict(files[0])
    (from_str,) = model.predict(str(files[0]))
    assert single.label == from_str.label and single.path == str(files[0])
    with Image.open(files[0]) as a, Image.open(files[1]) as b:
        mixed = model.predict([a, files[1], b, str(files[2])])
    assert [r.path for r in mixed] == ["<image 0>", str(files[1]), "<image 2>", str(files[2])]
    assert mixed[0].label == single.label and mixed[0].confidence == pytest.approx(single.confidence, abs=1e-5)
    assert mixed[2].label == mixed[1].label
    assert mixed[0].quality == single.quality  # the same measures on the photo in memory
    grey = Image.open(files[0]).convert("L")
    assert model.predict(grey)[0].label is not None  # any mode: made RGB as the loader does


def test_a_file_that_is_not_a_photo_is_a_record_with_an_error(model, photos, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    records = model.predict([bad, sorted(photos.iterdir())[0], tmp_path / "missing.jpg"])
    assert records[0].error == "not an image file (unrecognised format)" and records[0].label is None
    assert records[1].error is None and records[1].label
    assert records[2].error == "file not found"


def test_evaluate_returns_the_figures_evaluate_json_prints(cli, installed_run, dataset):
    from skinfood_cli import load_model

    model = load_model(installed_run / "best.pt", precision="fp32")
    report = model.evaluate(dataset, bootstrap=50)
    printed = parse_json(
        cli(
            "evaluate",
            "--model",
            installed_run / "best.pt",
            "--data",
            dataset,
            "--format",
            "json",
            "--bootstrap",
            "50",
            "--precision",
            "fp32",
        ).stdout
    )
    assert report.num_images == printed["num_images"] == 24
    assert report.accuracy == pytest.approx(printed["accuracy"])
    assert report.macro_f1 == pytest.approx(printed["macro_f1"])
    assert report.ci == printed["ci"]
    assert set(report.per_class) == set(printed["per_class"])
    for name, scores in report.per_class.items():
        assert isinstance(scores.f1, float) and isinstance(scores.support, int)
        assert scores.recall == pytest.approx(printed["per_class"][name]["recall"])
    assert report["confusion_matrix"] == printed["confusion_matrix"] == report.confusion_matrix
    assert len(report.predictions) == 24 and {"path", "true", "predicted"} <= set(report.predictions[0])
    # the command's own report, less the skin-tone table it adds for the run's card (the API writes no card)
    assert json.loads(dumps(report.to_dict())) == {k: v for k, v in printed.items() if k != "by_skin_tone"}
    assert report.leaks is not None and report.leaks.count == printed["leaks"]["count"] == 0
    assert report.files == [] and report.card_path is None
    card = installed_run / "MODEL_CARD.md"
    before = card.read_text()
    assert model.evaluate(dataset, bootstrap=0, by_skin_tone=True).by_skin_tone["total"] == 24
    assert card.read_text() == before


def test_explain_gives_a_heatmap_an_overlay_and_the_record(model, photos):
    photo = sorted(photos.iterdir())[0]
    why = model.explain(photo)
    with Image.open(photo) as img:
        size = img.size
    assert isinstance(why.heatmap, np.ndarray) and why.heatmap.dtype == np.float32
    assert why.heatmap.shape == (size[1], size[0])
    assert why.heatmap.min() >= 0.0 and why.heatmap.max() <= 1.0
    assert isinstance(why.overlay, Image.Image) and why.overlay.size == size
    assert why.picture.width == 2 * size[0]
    (predicted,) = model.predict(photo)
    assert why.prediction.label == predicted.label == why.explained_label
    assert why.prediction.confidence == pytest.approx(predicted.confidence, abs=1e-4)
    assert why.prediction.quality == predicted.quality and why.prediction.notice


def test_explain_takes_a_pil_image_and_another_class_and_says_what_is_wrong(model, photos, tmp_path):
    photo = sorted(photos.iterdir())[0]
    with Image.open(photo) as img:
        other = model.explain(img, target_class="vitiligo")
    assert other.explained_label == "vitiligo" and other.prediction.path == "<image 0>"
    assert other.save(tmp_path / "why.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UsageError, match="not one of the model's classes"):
        model.explain(photo, target_class="warts")
    from skinfood_cli.errors import ImageError

    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    with pytest.raises(ImageError, match="not an image file"):
        model.explain(bad)
