"""Reliability: what the real `skinfood` command does when the world misbehaves.

Broken and unusual image files, hostile or damaged checkpoints, bad description
files, Ctrl-C and SIGKILL in the middle of training, a full disk, no network,
two commands at once, and fuzzed image bytes.

Every case runs the real CLI as `python -m skinfood_cli` in a subprocess, except
the fuzzer (which targets `load_image` directly), the storage cases (the CLI runs
in-process so an OSError can be injected, see below) and the `fetch_weights`
cache checks (a fake opener). Each checks what a user would notice: the exit
code, the single `error:` line on stderr, each record's `error` field, and the
files left on disk. Tests that train, or use the session model, are marked slow.
"""

from __future__ import annotations

import csv
import errno
import functools
import hashlib
import io
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from skinfood_cli.checkpoint import load_checkpoint
from skinfood_cli.data.images import load_image
from skinfood_cli.data.synthetic import make_dataset, make_image
from skinfood_cli.errors import ImageError, WeightsError
from skinfood_cli.weights import sha256_of

PY = sys.executable
CLASSES = ("acne", "psoriasis", "vitiligo")
TINY = ["--image-size", "32", "--batch-size", "8", "--no-pretrained"]
TIMEOUT = 600  # seconds for one subprocess; generous, CI machines share their 2 cores


# --- helpers ------------------------------------------------------------------------------


def skinfood(*args, env: dict | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run the real CLI (`python -m skinfood_cli ARGS`) and capture its output as UTF-8 text."""
    return subprocess.run(
        [PY, "-m", "skinfood_cli", *map(str, args)],
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
    )


def assert_one_error_line(stderr: str, *needles: str) -> str:
    """stderr is exactly one line, `error: ...`, holding every needle; no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert lines[0].startswith("error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def home() -> Path:
    return Path(os.environ["SKINFOOD_HOME"])


def sha256(path: Path) -> str:
    return sha256_of(path)


def metrics_epochs(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def file_version(path: Path):
    """(inode, mtime) of a file, or None: atomic rewrites (os.replace) change the inode."""
    try:
        s = path.stat()
    except FileNotFoundError:
        return None
    return (s.st_ino, s.st_mtime_ns)


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """A small DermNet-style tree (36 train + 6 val + 9 test photos of 48x40): seconds per epoch at 32 px."""
    return make_dataset(tmp_path / "tiny", CLASSES, train_per_class=14, test_per_class=3, size=(48, 40))


@pytest.fixture
def procs():
    """Popen objects started by a test; any still running at teardown is killed with its workers."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the CLI and its DataLoader workers
            except ProcessLookupError:
                pass
            proc.wait(timeout=60)


def start(procs: list, args, stderr_path: Path, env: dict | None = None) -> subprocess.Popen:
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [PY, "-m", "skinfood_cli", *map(str, args)],
            env=env or os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    procs.append(proc)
    return proc


def wait_for(
    predicate, proc: subprocess.Popen, stderr_path: Path, what: str, timeout: float = TIMEOUT, poll: float = 0.05
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            if predicate():
                return
            pytest.fail(
                f"skinfood exited ({proc.returncode}) before {what}:\n{stderr_path.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(autouse=True)
def _drop_big_checkpoints(tmp_path):
    """Each run here leaves ~380 MB of checkpoints; pytest keeps three sessions of temp dirs."""
    yield
    for pattern in ("*.pt", "*.tmp", "*.pth"):
        for path in tmp_path.rglob(pattern):
            if path.is_file() and not path.is_symlink():
                path.unlink()


# --- the image zoo ----------------------------------------------------------------------------

# Files that must be classified (any mode, any container, awkward names) ...
GOOD_FILES = (
    "cmyk.jpg",
    "gray.jpg",
    "deep16.png",
    "palette.png",
    "rgba.png",
    "anim.gif",
    "photo.webp",
    "rotated.jpg",
    "with space.jpg",
    "피부 사진 é.jpg",
    "UPPER.JPG",
)
# ... and files that must become an error record: name -> a phrase the reason must contain (None: any).
BAD_FILES = {
    "zero.jpg": "empty",
    "text.jpg": "not an image",
    "truncated.jpg": "truncat",
    "bomb.png": "too large",
    "loop_a.jpg": None,  # symlink loop: loop_a -> loop_b -> loop_a
    "loop_b.jpg": None,
    "gone.jpg": None,  # a dangling symlink: a path that doesn't exist, found inside a folder
}
FOLDER_LIKE_IMAGE = "dir.jpg"  # an (empty) folder named like an image


@functools.cache
def _bomb_png() -> bytes:
    """A ~50 kB PNG whose header claims 20000x20000 = 400 megapixels."""
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")
    return buf.getvalue()


def _photo(size=(128, 96)) -> Image.Image:
    return make_image("acne", size, random.Random(7), lesion_scale=0.4)[0]


def make_zoo(folder: Path, size=(128, 96)) -> Path:
    """Write every GOOD_FILES and BAD_FILES entry, plus the folder named dir.jpg, into `folder`."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    photo = _photo(size)
    w, h = photo.size
    photo.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    photo.convert("L").save(folder / "gray.jpg", quality=95)
    deep = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)  # mode I;16
    assert deep.mode == "I;16"
    deep.save(folder / "deep16.png")
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    palette.save(folder / "palette.png", transparency=0)
    rgba = photo.convert("RGBA")
    alpha = np.full((h, w), 255, np.uint8)
    alpha[:, : w // 2] = 0  # left half fully transparent: must come out white
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(folder / "rgba.png")
    photo.save(
        folder / "anim.gif", save_all=True, append_images=[photo.transpose(Image.FLIP_LEFT_RIGHT)], duration=100, loop=0
    )
    photo.save(folder / "photo.webp")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    photo.save(folder / "rotated.jpg", exif=exif.tobytes(), quality=95)
    for name in ("with space.jpg", "피부 사진 é.jpg", "UPPER.JPG"):
        photo.save(folder / name, "JPEG", quality=95)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is a text file, not a photo\n")
    good = (folder / "with space.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "bomb.png").write_bytes(_bomb_png())
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    os.symlink(folder / "no-such-folder" / "gone.jpg", folder / "gone.jpg")
    (folder / FOLDER_LIKE_IMAGE).mkdir()
    return folder


def check_error(rec: dict, name: str) -> None:
    assert rec["error"], f"{name} should have failed: {rec}"
    assert rec["label"] is None and rec["confidence"] is None, rec
    phrase = BAD_FILES.get(name)
    if phrase:
        assert phrase in rec["error"], (name, rec["error"])


def check_classified(rec: dict, name: str) -> None:
    assert rec["error"] is None, f"{name} should have been classified: {rec['error']}"
    assert rec["label"] in CLASSES, rec
    assert 0.0 <= rec["confidence"] <= 1.0 and rec["top_k"], rec


def assert_no_crash(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert not [line for line in stderr.splitlines() if line.startswith("error:")], stderr


# --- image files: predict, evaluate, explain, train --------------------------------------------------


@pytest.mark.slow
def test_predict_json_has_a_record_for_every_odd_file(model_path, tmp_path):
    zoo = make_zoo(tmp_path / "zoo")
    names = [*GOOD_FILES, *BAD_FILES, FOLDER_LIKE_IMAGE]
    inputs = [str(zoo / n) for n in names] + [str(tmp_path / "no such photo.jpg")]
    r = skinfood("predict", "--model", model_path, "--format", "json", *inputs)
    assert r.returncode == 1, r.stderr
    assert_no_crash(r.stderr)
    records = json.loads(r.stdout)
    assert [rec["path"] for rec in records] == inputs, "one record per input, in input order"
    by_name = dict(zip(names + ["missing"], records))
    for name in GOOD_FILES:
        check_classified(by_name[name], name)
    for name in BAD_FILES:
        check_error(by_name[name], name)
    assert by_name[FOLDER_LIKE_IMAGE]["error"], "a folder named like an image holds no image"
    assert "not found" in by_name["missing"]["error"]
    assert f"{len(BAD_FILES) + 2} of {len(inputs)}" in r.stderr


@pytest.mark.slow
def test_predict_over_a_folder_of_odd_files(model_path, tmp_path):
    zoo = make_zoo(tmp_path / "zoo")
    r = skinfood("predict", "--model", model_path, "--format", "json", zoo)
    assert r.returncode == 1, r.stderr
    assert_no_crash(r.stderr)
    records = {Path(rec["path"]).name: rec for rec in json.loads(r.stdout)}
    assert set(records) == set(GOOD_FILES) | set(BAD_FILES), "every image-named file once; dir.jpg/ is no file"
    for name in GOOD_FILES:
        check_classified(records[name], name)
    for name in BAD_FILES:
        check_error(records[name], name)


@pytest.mark.slow
def test_evaluate_lists_unreadable_photos_and_scores_the_rest(model_path, dataset, tmp_path):
    photos = tmp_path / "test-copy"
    shutil.copytree(dataset / "test", photos)  # DIR/<class>/ : every photo in it is evaluated
    originals = sum(1 for _ in photos.rglob("*.jpg"))
    make_zoo(photos / "acne")
    r = skinfood("evaluate", "--model", model_path, "--data", photos, "--format", "json", "--bootstrap", "0")
    assert r.returncode == 1, r.stderr
    assert_no_crash(r.stderr)
    result = json.loads(r.stdout)
    unreadable = {Path(item["path"]).name: item["error"] for item in result["unreadable"]}
    assert set(unreadable) == set(BAD_FILES)
    for name, phrase in BAD_FILES.items():
        assert phrase is None or phrase in unreadable[name], (name, unreadable[name])
        assert str(photos / "acne" / name) in r.stderr, f"{name} is not listed on stderr"
    assert result["num_images"] == originals + len(GOOD_FILES)
    assert sum(map(sum, result["confusion_matrix"])) == result["num_images"]


@pytest.mark.slow
def test_evaluate_names_a_skipped_file_with_brackets_verbatim(model_path, dataset, tmp_path):
    photos = tmp_path / "test-copy"
    shutil.copytree(dataset / "test", photos)
    odd = photos / "acne" / "scan [b] 1.jpg"
    odd.write_text("not a photo")
    r = skinfood("evaluate", "--model", model_path, "--data", photos, "--format", "json", "--bootstrap", "0")
    assert r.returncode == 1, r.stderr
    assert [item["path"] for item in json.loads(r.stdout)["unreadable"]] == [str(odd)]
    assert str(odd) in r.stderr, r.stderr


@pytest.mark.slow
def test_explain_json_has_a_record_and_a_picture_for_every_odd_file(model_path, tmp_path):
    import numpy as np

    zoo = make_zoo(tmp_path / "zoo")
    names = [*GOOD_FILES, *BAD_FILES, FOLDER_LIKE_IMAGE]
    inputs = [str(zoo / n) for n in names] + [str(tmp_path / "no such photo.jpg")]
    out = tmp_path / "explained"
    r = skinfood("explain", "--model", model_path, "--format", "json", "--output-dir", out, *inputs)
    assert r.returncode == 1, r.stderr
    assert_no_crash(r.stderr)
    records = json.loads(r.stdout)
    assert [rec["path"] for rec in records] == inputs
    by_name = dict(zip(names + ["missing"], records))
    for name in GOOD_FILES:
        check_classified(by_name[name], name)
        assert Path(by_name[name]["heatmap"]).is_file(), name
    for name in BAD_FILES:
        check_error(by_name[name], name)
        assert by_name[name]["heatmap"] is None
    assert by_name[FOLDER_LIKE_IMAGE]["error"] and by_name["missing"]["error"]
    assert len(list(out.glob("*.png"))) == len(GOOD_FILES), "one picture per good photo, none for the bad"

    def left_panel(name):  # the explanation is photo | overlay at the photo's own resolution
        picture = Image.open(by_name[name]["heatmap"]).convert("RGB")
        return picture, np.asarray(picture)

    picture, _ = left_panel("rotated.jpg")
    assert picture.width == 2 * 96, "EXIF orientation 6 was not applied: the 128x96 photo stands 96 wide"
    _, rgba = left_panel("rgba.png")
    assert rgba[:96, :60].min() >= 250, "transparent pixels are composited on white"
    _, deep = left_panel("deep16.png")
    _, gray = left_panel("gray.jpg")
    assert abs(deep[:96, :128].mean() - gray[:96, :128].mean()) < 8, "16-bit scaled to 8 bits, not clipped"


@pytest.mark.slow
def test_train_prescan_lists_bad_files_and_still_trains(tiny_data):
    make_zoo(tiny_data / "train" / "acne", size=(48, 40))
    # The zoo holds one picture in many encodings (CMYK, grey, 16-bit, ...): near copies of each other,
    # which the leak screen would rightly leave out of train; this test is about decoding them.
    r = skinfood("train", "--data", tiny_data, "--name", "zoo", "--epochs", "1", "--leaks", "keep", *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    run = home() / "runs" / "zoo"
    skipped = dict(line.split("\t", 1) for line in (run / "skipped.txt").read_text().splitlines())
    assert {Path(p).name for p in skipped} == set(BAD_FILES)
    for path, reason in skipped.items():
        assert path in r.stderr, f"{path} is not listed on stderr"
        phrase = BAD_FILES[Path(path).name]
        assert phrase is None or phrase in reason, (path, reason)
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["data"]["num_train"] + ckpt["data"]["num_val"] == 3 * 14 + len(GOOD_FILES)


# --- checkpoints ----------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this makes a folder: the probe for code execution on load."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))  # posix.mkdir: importable in any process


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory) -> dict:
    """name -> a --model file that must be refused; plus 'good' (a valid random-init checkpoint)."""
    import torch
    from torchvision.models import resnet50

    from skinfood_cli.checkpoint import FORMAT
    from skinfood_cli.model import build_model

    root = tmp_path_factory.mktemp("models")

    def valid(**changes) -> dict:
        ckpt = {
            "format": FORMAT,
            "format_version": 1,
            "arch": "resnet50",
            "state_dict": build_model(len(CLASSES)).state_dict(),
            "classes": list(CLASSES),
            "image_size": 32,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "temperature": 1.0,
            "threshold": 0.5,
        }
        ckpt.update(changes)
        return ckpt

    files = {}
    files["good"] = root / "good.pt"
    torch.save(valid(), files["good"])
    files["code"] = root / "runs-code.pt"
    torch.save(valid(notes=_RunsCode(str(root / "CODE-RAN"))), files["code"])
    data = files["good"].read_bytes()
    files["truncated"] = root / "truncated.pt"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["other-arch"] = root / "other-arch.pt"
    torch.save(valid(arch="vit_b_16"), files["other-arch"])
    files["more-classes"] = root / "more-classes.pt"
    torch.save(valid(classes=[*CLASSES, "eczema"]), files["more-classes"])
    files["random-bytes"] = root / "random.pt"
    files["random-bytes"].write_bytes(random.Random(0).randbytes(64 * 1024))
    files["text"] = root / "notes.pt"
    files["text"].write_text("this is not a model\n")
    files["bare-state-dict"] = root / "resnet50.pth"
    torch.save(resnet50().state_dict(), files["bare-state-dict"])
    files["empty"] = root / "empty.pt"
    files["empty"].write_bytes(b"")
    files["marker"] = root / "CODE-RAN"
    return files


@pytest.fixture(scope="module")
def one_photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    _photo().save(path, quality=95)
    return path


def test_the_code_execution_probe_is_live(tmp_path):
    marker = tmp_path / "probe"
    pickle.loads(pickle.dumps(_RunsCode(str(marker))))
    assert marker.is_dir(), "the payload must really run code when unpickled unsafely"


@pytest.mark.parametrize(
    "kind", ["code", "truncated", "other-arch", "more-classes", "random-bytes", "text", "bare-state-dict", "empty"]
)
def test_a_bad_checkpoint_is_one_error_line_and_exit_2(kind, bad_models, one_photo):
    model = bad_models[kind]
    r = skinfood("predict", "--model", model, one_photo)
    assert r.returncode == 2, r.stderr
    assert r.stdout == "", "no records for a model that can't be loaded"
    line = assert_one_error_line(r.stderr, str(model))
    if kind == "code":
        assert not bad_models["marker"].exists(), "loading the checkpoint ran its code"
        assert "refuses to run" in line
    if kind == "other-arch":
        assert "vit_b_16" in line
    if kind == "bare-state-dict":
        assert "--weights" in line


def test_the_good_checkpoint_fixture_is_accepted(bad_models, one_photo):
    r = skinfood("predict", "--model", bad_models["good"], one_photo, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["label"] in CLASSES


def test_random_bytes_are_not_reported_as_code(bad_models, one_photo):
    r = skinfood("predict", "--model", bad_models["random-bytes"], one_photo)
    assert r.returncode == 2
    line = assert_one_error_line(r.stderr, str(bad_models["random-bytes"]))
    assert "refuses to run" not in line and "code" not in line, line


# --- descriptions files -------------------------------------------------------------------------


def _entry(key: str, aliases=()) -> dict:
    block = {
        "name": key.replace("_", " "),
        "summary": "A test summary.",
        "signs": ["Red"],
        "look_alikes": [],
        "self_care": ["Moisturise"],
        "see_a_doctor": "If it spreads.",
    }
    return {
        "key": key,
        "aliases": list(aliases),
        "urgency": "routine",
        "links": [],
        "en": dict(block),
        "ko": dict(block),
    }


def _descriptions(kind: str, folder: Path) -> tuple[Path, tuple[str, ...]]:
    """A broken descriptions file, and what its error line must name (besides the file)."""
    import yaml

    path = folder / f"{kind}.yaml"
    if kind == "syntax-error":
        path.write_text(
            "schema_version: 1\ndiseases:\n  - key: rash_a\n    aliases: [unclosed\n    urgency: routine\n",
            encoding="utf-8",
        )
        return path, ("YAML syntax error", "line 5")
    entries = [_entry("rash_a", ["Red Rash"])]
    if kind == "missing-field":
        del entries[0]["en"]["summary"]
        expect = ("entry 'rash_a'", "field 'en.summary'", "missing")
    elif kind == "wrong-type":
        entries[0]["ko"]["signs"] = "빨개요"
        expect = ("entry 'rash_a'", "field 'ko.signs'", "list of strings")
    elif kind == "duplicated-alias":
        entries.append(_entry("rash_b", ["red-rash"]))
        expect = ("entry 'rash_b'", "field 'aliases'", "'red-rash'", "rash_a")
    else:
        raise AssertionError(kind)
    path.write_text(yaml.safe_dump({"schema_version": 1, "diseases": entries}, allow_unicode=True), encoding="utf-8")
    return path, expect


@pytest.mark.parametrize("command", ["predict", "diseases"])
@pytest.mark.parametrize("kind", ["syntax-error", "missing-field", "wrong-type", "duplicated-alias"])
def test_a_bad_descriptions_file_is_named_with_its_entry_and_field(kind, command, tmp_path, bad_models, one_photo):
    path, expect = _descriptions(kind, tmp_path)
    if command == "predict":
        args = ["predict", "--model", bad_models["good"], one_photo, "--descriptions", path]
    else:
        args = ["diseases", "--descriptions", path]
    r = skinfood(*args)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert_one_error_line(r.stderr, str(path), *expect)


def test_a_valid_descriptions_file_is_used(tmp_path, bad_models, one_photo):
    import yaml

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"schema_version": 1, "diseases": [_entry("rash_a", ["Red Rash"])]}))
    r = skinfood("diseases", "--descriptions", good, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert "rash_a" in [row["key"] for row in json.loads(r.stdout)]


# --- interruption ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigint_mid_epoch_exits_130_and_resume_finishes_the_run(tiny_data, tmp_path, procs):
    epochs = 4
    run = home() / "runs" / "cut"
    err = tmp_path / "train.err"
    proc = start(procs, ["train", "--data", tiny_data, "--name", "cut", "--epochs", epochs, *TINY], err)
    wait_for(lambda: (run / "last.pt").exists(), proc, err, "the first last.pt")
    proc.send_signal(signal.SIGINT)  # lands in epoch 2, before its first step ends
    assert proc.wait(timeout=TIMEOUT) == 130, err.read_text()
    stderr = err.read_text()
    assert "Traceback" not in stderr and "skinfood train --resume cut" in stderr
    state = load_checkpoint(run / "last.pt")["train_state"]
    assert 1 <= state["epoch"] < epochs, state

    r = skinfood("train", "--resume", "cut")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming cut at epoch {state['epoch'] + 1}, batch {state['batch'] + 1}" in r.stderr
    assert metrics_epochs(run) == list(range(1, epochs + 1))
    assert load_checkpoint(run / "last.pt")["train_state"]["epoch"] == epochs
    assert load_checkpoint(run / "best.pt")["classes"] == list(CLASSES)


@pytest.mark.slow
def test_resume_after_ctrl_c_at_the_end_of_an_epoch_logs_real_training_metrics(tiny_data):
    from skinfood_cli.training import Reporter, TrainConfig, train

    class CtrlCAtStep8(Reporter):  # 36 photos, batch 8: 4 steps an epoch; step 8 ends epoch 2
        calls = 0

        def step(self, step, steps, loss, acc, rate):
            CtrlCAtStep8.calls += 1
            if CtrlCAtStep8.calls == 8:
                os.kill(os.getpid(), signal.SIGINT)

    stopped = train(
        TrainConfig(
            data=str(tiny_data), name="edge", epochs=3, image_size=32, batch_size=8, pretrained=False, device="cpu"
        ),
        CtrlCAtStep8(),
    )
    assert stopped.interrupted
    r = skinfood("train", "--resume", "edge")
    assert r.returncode == 0, r.stderr[-3000:]
    with open(stopped.run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    for row in rows:
        assert float(row["train_loss"]) > 0 and float(row["images_per_s"]) > 0, row


@pytest.mark.slow
def test_second_ctrl_c_stops_at_once_and_keeps_last_pt(tiny_data, tmp_path, procs):
    run = home() / "runs" / "twice"
    err = tmp_path / "train.err"
    proc = start(procs, ["train", "--data", tiny_data, "--name", "twice", "--epochs", 6, *TINY], err)
    wait_for(lambda: (run / "last.pt").exists(), proc, err, "the first last.pt")
    # As a terminal does: Ctrl-C goes to the whole foreground process group, DataLoader workers included.
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=TIMEOUT) == 130, err.read_text()
    assert "Traceback" not in err.read_text() and "error: interrupted" in err.read_text()
    assert load_checkpoint(run / "last.pt")["train_state"]["epoch"] >= 1


@pytest.mark.slow
def test_sigkill_at_random_moments_never_breaks_a_checkpoint(tiny_data, tmp_path, procs):
    """Kill -9 four times at seeded random moments; every *.pt left behind loads, and resume goes on."""
    from skinfood_cli.paths import resolve_model

    rng = random.Random(20261125)
    epochs = 10
    run = home() / "runs" / "kill"
    last = run / "last.pt"
    temp_files: set = set()
    previous = None
    for attempt in range(4):
        err = tmp_path / f"segment-{attempt}.err"
        args = (
            ["train", "--data", tiny_data, "--name", "kill", "--epochs", epochs, *TINY]
            if attempt == 0
            else ["train", "--resume", "kill"]
        )
        if attempt:
            state = load_checkpoint(last)["train_state"]
        proc = start(procs, args, err)
        # Progress first (a new last.pt), so the run always has something to resume from ...
        wait_for(lambda previous=previous: file_version(last) not in (None, previous), proc, err, "a new last.pt")
        if attempt:
            text = err.read_text()
            assert f"resuming kill at epoch {state['epoch'] + 1}, batch {state['batch'] + 1}" in text, (
                "resume did not continue from last.pt"
            )
        # ... then a random moment: any time (even kills), or just after a checkpoint write began (odd).
        if attempt % 2:
            stale = set(run.glob(".*.pt.*.tmp"))  # left by an earlier kill
            wait_for(
                lambda stale=stale: bool(set(run.glob(".*.pt.*.tmp")) - stale),
                proc,
                err,
                "a checkpoint write",
                poll=0.005,
            )
            time.sleep(rng.uniform(0.0, 0.15))
        else:
            time.sleep(rng.uniform(0.0, 3.0))
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its DataLoader workers, like a power cut
        assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
        for ckpt in sorted(run.glob("*.pt")):
            load_checkpoint(ckpt)  # raises ModelError if a kill left half a file under a real name
        temp_files |= {p.name for p in run.glob(".*.pt.*.tmp")}
        assert resolve_model(run).name in ("best.pt", "last.pt"), "a temp file would be loaded"
        assert resolve_model("kill").name in ("best.pt", "last.pt")
        previous = file_version(last)

    r = skinfood("train", "--resume", "kill")
    assert r.returncode == 0, r.stderr[-3000:]
    assert metrics_epochs(run) == list(range(1, epochs + 1))
    for ckpt in sorted(run.glob("*.pt")):
        load_checkpoint(ckpt)
    assert not list(run.glob(".*.pt.*.tmp")), "resume should clear half-written files of killed runs"
    print(f"kills that left a half-written temp file behind: {len(temp_files)}")


# --- storage ------------------------------------------------------------------------------------
# As root, chmod can't make a folder unwritable and a test can't fill the disk, so the failure is injected
# in-process: the CLI runs in this process (typer's CliRunner) with torch.save writing through a file that
# fills up (as a real full disk does, torch then raises a RuntimeError, "unexpected pos", while handling
# the OSError) or tempfile.mkstemp (unwritable folder) failing on the Nth checkpoint write. Training saves
# best.pt, then last.pt, each epoch (epoch 1 always improves), then best.pt once more after calibration.


class FillingDisk(io.RawIOBase):
    """Passes writes through to `f` until `room` bytes are used, then fails as a full disk does."""

    def __init__(self, f, room: int = 64 * 1024):
        self.f, self.room = f, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)


@pytest.mark.slow
@pytest.mark.parametrize(
    "failing, epochs, fail_on",
    [
        ("torch.save", 2, 3),  # disk full on epoch 2's first write: epoch 1's files exist
        ("torch.save", 1, 3),  # disk full on the calibrated best.pt
        ("mkstemp", 2, 3),
    ],
    ids=["disk-full-epoch-2", "disk-full-calibration", "unwritable-folder"],
)
def test_failed_save_is_one_error_line_and_the_previous_checkpoints_survive(
    failing, epochs, fail_on, tiny_data, monkeypatch
):
    import torch
    from typer.testing import CliRunner

    from skinfood_cli.cli import app

    calls, before = [], {}

    def snapshot():
        (run,) = (home() / "runs").iterdir()
        before.update({p.name: sha256(p) for p in run.glob("*.pt")})

    real_save, real_mkstemp = torch.save, tempfile.mkstemp

    def save(obj, f, *args, **kwargs):
        calls.append("save")
        if failing == "torch.save" and len(calls) == fail_on:
            snapshot()
            f = FillingDisk(f)
        return real_save(obj, f, *args, **kwargs)

    def mkstemp(*args, **kwargs):
        if failing == "mkstemp" and str(kwargs.get("suffix")) == ".tmp" and len(calls) + 1 == fail_on:
            calls.append("mkstemp")
            snapshot()
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    r = CliRunner().invoke(
        app, ["train", "--data", str(tiny_data), "--name", "full", "--epochs", str(epochs), "--quiet", *TINY]
    )
    assert len(calls) >= fail_on, f"the failure was never injected: {r.stderr}"
    run = home() / "runs" / "full"
    assert before, "there was no previous checkpoint to protect"
    assert r.exit_code not in (0, 130), r.stderr
    reason = "No space left on device" if failing == "torch.save" else "Permission denied"
    line = assert_one_error_line(r.stderr, "could not write", str(run), reason)
    assert "previous file is intact" in line
    for name, digest in before.items():
        assert sha256(run / name) == digest, f"{name} changed after the failed write"
        load_checkpoint(run / name)
    assert not list(run.glob(".*.tmp")), "the failed write left its temp file behind"


def test_a_full_disk_behind_another_error_is_one_line_naming_the_full_disk(capsys):
    # torch.jit.save (export) and torch.save fail this way; any command reports the reason, not torch's
    # "unexpected pos" or an internal-error line.
    import torch
    import typer

    from skinfood_cli.cli.app import handle_errors

    @handle_errors
    def write():
        torch.save({"w": torch.zeros(100_000)}, FillingDisk(io.BytesIO()))

    with pytest.raises(typer.Exit) as exit_:
        write()
    assert exit_.value.exit_code == 1
    line = assert_one_error_line(capsys.readouterr().err, "No space left on device")
    assert "internal error" not in line and "unexpected pos" not in line


# --- network ------------------------------------------------------------------------------------


def offline_env() -> dict:
    """Send every HTTP(S) request to a closed local port, so a download fails fast on any machine."""
    env = os.environ.copy()
    for var in ("no_proxy", "NO_PROXY"):
        env.pop(var, None)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        env[var] = "http://127.0.0.1:9"
    return env


def test_train_without_network_names_both_ways_out(tiny_data):
    r = skinfood("train", "--data", tiny_data, "--epochs", "1", "--image-size", "32", env=offline_env(), timeout=300)
    assert r.returncode == 2, r.stderr
    assert_one_error_line(r.stderr, "--weights", "--no-pretrained")
    runs = home() / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a run folder was left behind"
    weights = home() / "weights"
    assert not weights.exists() or not any(weights.iterdir()), "a partial download was left behind"


def test_corrupt_cached_weights_are_never_used(tiny_data):
    """A loadable ResNet50 state dict under the cached name, but not the published file: it must be
    hash-checked and fetched again (which fails offline), never trained from."""
    import torch
    from torchvision.models import resnet50

    from skinfood_cli.weights import RESNET50_URL

    cached = home() / "weights" / RESNET50_URL.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.save(resnet50().state_dict(), cached)
    r = skinfood("train", "--data", tiny_data, "--epochs", "1", "--image-size", "32", env=offline_env(), timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    assert_one_error_line(r.stderr, "--weights", "--no-pretrained")
    assert not cached.exists(), "the corrupt file is still in the cache"


class _Response(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _published(data: bytes) -> str:
    return f"https://weights.invalid/resnet50-{hashlib.sha256(data).hexdigest()[:8]}.pth"


def test_cached_weights_of_the_right_size_but_wrong_content_are_fetched_again(tmp_path):
    from skinfood_cli.weights import fetch_weights

    data = random.Random(1).randbytes(300_000)
    url = _published(data)
    cached = tmp_path / url.rsplit("/", 1)[-1]
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # one byte differs: same size, wrong hash
    cached.write_bytes(bytes(flipped))
    calls = []

    def opener(u, timeout):
        calls.append(u)
        return _Response(data)

    path = fetch_weights(tmp_path, url, opener=opener)
    assert calls == [url] and path == cached and path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == [cached.name], "no .part file left"


def test_corrupt_cached_weights_and_no_network_is_an_error_not_a_silent_use(tmp_path):
    from skinfood_cli.weights import fetch_weights

    data = random.Random(2).randbytes(300_000)
    url = _published(data)
    cached = tmp_path / url.rsplit("/", 1)[-1]
    cached.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))

    def offline(u, timeout):
        import urllib.error

        raise urllib.error.URLError("Network is unreachable")

    with pytest.raises(WeightsError, match="--no-pretrained"):
        fetch_weights(tmp_path, url, opener=offline)
    assert not cached.exists()


def test_a_download_that_stops_early_is_not_cached(tmp_path):
    from skinfood_cli.weights import fetch_weights

    data = random.Random(3).randbytes(300_000)
    url = _published(data)

    class Short(_Response):
        def __init__(self):
            super().__init__(data[: len(data) // 2])
            self.headers = {"Content-Length": str(len(data))}

    with pytest.raises(WeightsError):
        fetch_weights(tmp_path, url, opener=lambda u, timeout: Short())
    assert not list(tmp_path.iterdir()), "a partial download was kept"
    assert fetch_weights(tmp_path, url, opener=lambda u, timeout: _Response(data)).read_bytes() == data


# --- concurrency --------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_trainings_started_together_get_separate_run_folders(tiny_data, tmp_path, procs):
    errs = [tmp_path / "a.err", tmp_path / "b.err"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two trainers share the CI's two cores
    pair = [
        start(procs, ["train", "--data", tiny_data, "--epochs", "1", "--quiet", "--workers", "0", *TINY], err, env=env)
        for err in errs
    ]
    codes = [p.wait(timeout=TIMEOUT) for p in pair]
    assert codes == [0, 0], [e.read_text()[-2000:] for e in errs]
    runs = sorted((home() / "runs").iterdir())
    assert len(runs) == 2, runs
    saved = {
        line.split("model saved to ", 1)[1].strip()
        for e in errs
        for line in e.read_text().splitlines()
        if "model saved to" in line
    }
    assert saved == {str(run / "best.pt") for run in runs}, "each command reports its own model"
    for run in runs:
        assert load_checkpoint(run / "best.pt")["run_name"] == run.name
        assert load_checkpoint(run / "last.pt")["run_name"] == run.name
        assert metrics_epochs(run) == [1]


@pytest.mark.slow
def test_reading_last_pt_while_training_rewrites_it_always_gets_a_whole_file(tiny_data, tmp_path, procs, one_photo):
    run = home() / "runs" / "busy"
    last = run / "last.pt"
    err = tmp_path / "train.err"
    proc = start(procs, ["train", "--data", tiny_data, "--name", "busy", "--epochs", 3, *TINY], err)
    wait_for(lambda: last.exists(), proc, err, "the first last.pt")
    versions, loads, during_writes, predicted = set(), 0, 0, None
    while proc.poll() is None:
        version = file_version(last)
        during_writes += any(run.glob(".last.pt.*.tmp"))  # a new last.pt is being written right now
        ckpt = load_checkpoint(last)  # any torn read raises ModelError and fails the test
        assert ckpt["train_state"]["epoch"] >= 1
        versions.add(version)
        loads += 1
        if predicted is None:  # and once through the real CLI, while the writer is busy
            predicted = skinfood("predict", "--model", last, one_photo, "--format", "json")
        time.sleep(0.2)  # leave the CPU to the trainer: a load takes about as long as a step
    assert proc.wait(timeout=TIMEOUT) == 0, err.read_text()[-3000:]
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["label"] in CLASSES
    assert loads >= 2 and len(versions) >= 2, f"the reads never overlapped a rewrite ({loads} loads)"
    print(f"{loads} loads of {len(versions)} versions of last.pt, {during_writes} while it was being rewritten")


# --- fuzzing ------------------------------------------------------------------------------------


@functools.cache
def _seed_files() -> tuple[bytes, ...]:
    """Small real files in each format the loader must survive mutations of."""
    photo = _photo((24, 18))
    seeds = []
    for fmt, kwargs in (
        ("JPEG", {"quality": 90}),
        ("PNG", {}),
        ("WEBP", {}),
        ("GIF", {"save_all": True, "append_images": [photo.transpose(Image.FLIP_TOP_BOTTOM)]}),
    ):
        buf = io.BytesIO()
        photo.save(buf, fmt, **kwargs)
        seeds.append(buf.getvalue())
    for mode in ("RGBA", "P", "I;16"):
        buf = io.BytesIO()
        (photo.convert("L").convert("I;16") if mode == "I;16" else photo.convert(mode)).save(buf, "PNG")
        seeds.append(buf.getvalue())
    return tuple(seeds)


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(_seed_files())))
    for _ in range(draw(st.integers(1, 8))):
        # Half the edits hit the header, where sizes, modes and chunk lengths live.
        limit = min(len(data), 96) if draw(st.booleans()) else len(data)
        pos = draw(st.integers(0, max(0, limit - 1)))
        action = draw(st.sampled_from(["set", "insert", "delete"]))
        if action == "set":
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif len(data) > 1:
            del data[pos : pos + draw(st.integers(1, 16))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(data=st.one_of(st.binary(max_size=4096), mutated_images()))
def test_fuzzed_bytes_give_an_rgb_image_or_an_image_error(data):
    try:
        image = load_image(data)
    except ImageError as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert image.width > 0 and image.height > 0
    image.getpixel((0, 0))  # really decoded


def test_fuzz_seeds_themselves_load():
    for data in _seed_files():
        assert load_image(data).mode == "RGB"
