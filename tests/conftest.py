"""Shared fixtures: an isolated data home per test, and one model trained per session.

Training a ResNet50, even at 96 px, takes ~45 s on 2 CPU cores, so the session
trains one on generated photos (coloured "lesions" on skin-toned noise) and the
tests that need a model share it, read-only.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from skinfood_cli.data.synthetic import make_dataset

CLASSES = ("acne", "psoriasis", "vitiligo")
PHOTO_SIZE = (128, 96)
IMAGE_SIZE = 96


@pytest.fixture(autouse=True)
def env_setup(tmp_path, monkeypatch):
    """Each test gets its own data home and config dir, and a wide, plain terminal."""
    monkeypatch.setenv("SKINFOOD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SKINFOOD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SKINFOOD_DEVICE", os.environ.get("SKINFOOD_TEST_DEVICE", "cpu"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.delenv("LANGUAGE", raising=False)
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.delenv("SKINFOOD_DEBUG", raising=False)
    # Issue 20: no test reads the machine's Hugging Face cache or reaches the Hub. huggingface_hub
    # reads these when `constants` loads, so a loaded one is reloaded (tests/backends/test_hub.py does too).
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    if "huggingface_hub.constants" in sys.modules:
        importlib.reload(sys.modules["huggingface_hub.constants"])
    from skinfood_cli.cli import output

    output._consoles.clear()
    yield
    output._consoles.clear()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """A DermNet-style train/ + test/ tree of generated photos (read-only for tests)."""
    return make_dataset(
        tmp_path_factory.mktemp("dataset"),
        CLASSES,
        train_per_class=40,
        test_per_class=8,
        size=PHOTO_SIZE,
        lesion_scale=0.4,
    )


@pytest.fixture
def small_data(tmp_path) -> Path:
    """Three classes of 14 training and 3 test photos: enough for a tiny run at 32 px."""
    return make_dataset(tmp_path / "small", CLASSES, train_per_class=14, test_per_class=3, size=(48, 40))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, dataset):
    """One ResNet50 trained from scratch on `dataset` (same recipe as the demo, at 96 px)."""
    from skinfood_cli.training import TrainConfig, train

    home = tmp_path_factory.mktemp("session-home")
    old = os.environ.get("SKINFOOD_HOME")
    os.environ["SKINFOOD_HOME"] = str(home)
    try:
        result = train(
            TrainConfig(
                data=str(dataset),
                name="session",
                epochs=8,
                image_size=IMAGE_SIZE,
                batch_size=16,
                lr=2e-3,
                pretrained=False,
                progressive=False,
                device="cpu",
                # fp32 on every CPU: auto picks bf16 where it is native, and the tests that read
                # this model's accuracy are about something else than the CPU's arithmetic.
                precision="fp32",
            )
        )
    finally:
        if old is None:
            os.environ.pop("SKINFOOD_HOME", None)
        else:
            os.environ["SKINFOOD_HOME"] = old
    return result


@pytest.fixture
def model_path(trained) -> Path:
    return trained.best_path


@pytest.fixture
def installed_run(trained, tmp_path) -> Path:
    """Copy the session run into this test's home, so commands find it without --model."""
    target = tmp_path / "home" / "runs" / trained.run_dir.name
    shutil.copytree(trained.run_dir, target)
    return target


@pytest.fixture
def cli():
    """Run the CLI in-process; returns typer's Result (stdout and stderr separate)."""
    from typer.testing import CliRunner

    from skinfood_cli.cli import app

    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


def parse_json(text: str):
    return json.loads(text)


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture
def browser(tmp_path):
    """Debian's headless Chromium through selenium, a fresh profile per test, a phone-sized window."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--lang=en-US",
        "--window-size=390,844",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


# --- HEIC photos, as a phone stores them (tests/data and tests/serving) -------------

ORIENTATION = 0x0112
ROTATE_90_CW = 6  # EXIF: the stored pixels must be turned 90° clockwise to stand up


def heic_bytes(image: Image.Image, orientation: int = ROTATE_90_CW) -> bytes:
    """`image` as a phone stores it: pixels turned so that `orientation` stands them back up."""
    pillow_heif = pytest.importorskip("pillow_heif")
    stored = image.transpose(Image.Transpose.ROTATE_90) if orientation == ROTATE_90_CW else image
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    buf = io.BytesIO()
    pillow_heif.from_pillow(stored).save(buf, quality=95, exif=exif.tobytes())
    return buf.getvalue()


def write_heic_twin(jpeg: Path, folder: Path) -> Path:
    """A HEIC file (rotated pixels + EXIF orientation) showing the same picture as `jpeg`."""
    with Image.open(jpeg) as src:
        upright = src.convert("RGB")
    path = folder / f"{jpeg.stem}.HEIC"
    path.write_bytes(heic_bytes(upright))
    return path
