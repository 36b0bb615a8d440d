"""The one image loader and HEIC/HEIF (iPhone) photos: read everywhere a JPEG is, upright.

HEIC test photos are written in the test with pillow-heif (the test extra);
skinfood itself reads them with pi-heif, pillow-heif's decode-only build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import heic_bytes, parse_json, write_heic_twin
from PIL import Image

from skinfood_cli.data import images
from skinfood_cli.data.images import is_image_path, load_image


def difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


@pytest.fixture
def upright() -> Image.Image:
    """A picture whose orientation shows: a dark-to-light ramp left to right, a red block top-left."""
    ramp = np.tile(np.linspace(40, 220, 96, dtype=np.float32), (64, 1))
    pixels = np.stack([ramp, ramp * 0.8, ramp * 0.6], axis=-1).astype(np.uint8)
    pixels[:16, :24] = (220, 30, 30)
    return Image.fromarray(pixels)


def test_heic_with_exif_rotation_loads_upright(tmp_path, upright):
    path = tmp_path / "photo.heic"
    path.write_bytes(heic_bytes(upright))
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == upright.size == (96, 64)
    assert difference(loaded, upright) < 6.0
    upside_down = upright.transpose(Image.Transpose.ROTATE_180)
    assert difference(loaded, upside_down) > 30.0  # the check can tell a wrong orientation
    from_bytes = load_image(path.read_bytes())  # uploads arrive as bytes
    assert difference(from_bytes, loaded) == 0.0


def test_heic_and_heif_names_count_as_images(tmp_path, upright):
    from skinfood_cli.data.dataset import check_image_file, prescan

    for name in ("a.heic", "b.HEIC", "c.heif", "d.HIF"):
        assert is_image_path(Path(name)), name
    good = tmp_path / "good.heic"
    good.write_bytes(heic_bytes(upright))
    broken = tmp_path / "broken.heic"
    broken.write_bytes(good.read_bytes()[:200])
    assert check_image_file(str(good)) is None  # train's pre-scan keeps it
    kept, skipped = prescan([(str(good), 0), (str(broken), 0)])
    assert kept == [(str(good), 0)] and [p for p, _ in skipped] == [str(broken)]


def test_without_a_heif_decoder_the_error_says_what_to_install(tmp_path, upright, monkeypatch):
    from skinfood_cli.errors import ImageError

    monkeypatch.setattr(images, "HEIF_SUPPORT", False)
    monkeypatch.setattr(Image, "ID", [i for i in Image.ID if i != "HEIF"])
    data = heic_bytes(upright)
    for source in (data, tmp_path / "x.heic"):
        if isinstance(source, Path):
            source.write_bytes(data)
        with pytest.raises(ImageError, match="pip install pi-heif"):
            load_image(source)
    png = tmp_path / "not.heic"
    png.write_text("plain text")
    with pytest.raises(ImageError, match="pip install pi-heif"):  # a .heic name is enough of a hint
        load_image(png)


@pytest.mark.slow
def test_cli_classifies_a_heic_like_its_jpeg_twin(cli, model_path, dataset, tmp_path):
    jpegs = [min((dataset / "test" / cls).glob("*.jpg")) for cls in ("acne", "psoriasis", "vitiligo")]
    heics = [write_heic_twin(j, tmp_path) for j in jpegs]
    result = cli("predict", *jpegs, *heics, "--model", model_path, "--precision", "fp32", "--format", "json")
    assert result.exit_code == 0, result.stderr
    records = parse_json(result.stdout)
    jpeg_records, heic_records = records[:3], records[3:]
    for j, h in zip(jpeg_records, heic_records):
        assert h["error"] is None
        assert h["label"] == j["label"], (j["path"], h["path"])
        assert h["confidence"] == pytest.approx(j["confidence"], abs=0.05)

    folder = tmp_path / "only-heic"
    folder.mkdir()
    heics[0].rename(folder / heics[0].name)
    [found] = parse_json(cli("predict", folder, "--model", model_path, "--format", "json").stdout)
    assert found["path"].endswith(".HEIC") and found["error"] is None  # a folder walk finds it

    explained = cli("explain", heics[1], "--model", model_path, "--output", tmp_path / "h.png", "--format", "json")
    assert explained.exit_code == 0, explained.stderr
    with Image.open(tmp_path / "h.png") as png:
        assert png.width == 2 * 128  # upright: the photo is 128 wide, stored 96 wide
