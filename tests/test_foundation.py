"""The ground every command stands on: checkpoints, the model store, devices,
weights download, exit codes, instant help."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

from skinfood_cli import checkpoint, paths, weights
from skinfood_cli.errors import ModelError, UsageError, WeightsError
from skinfood_cli.model import resolve_device, resolve_precision

PY = sys.executable


def _tiny_checkpoint(classes=("a", "b"), arch="resnet50") -> dict:
    from skinfood_cli.model import build_model

    model = build_model(len(classes))
    return {
        "format": checkpoint.FORMAT,
        "format_version": 1,
        "arch": arch,
        "state_dict": model.state_dict(),
        "classes": list(classes),
        "image_size": 64,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "temperature": 1.5,
        "config": {"epochs": 1},
        "metrics": {"val_acc": 0.5},
    }


# --- checkpoints ------------------------------------------------------------------


def test_checkpoint_round_trip_keeps_weights_and_metadata(tmp_path):
    ckpt = _tiny_checkpoint(("acne", "eczema", "vitiligo"))
    path = checkpoint.save_checkpoint(ckpt, tmp_path / "m.pt")
    loaded = checkpoint.load_checkpoint(path)
    assert loaded["classes"] == ["acne", "eczema", "vitiligo"]
    assert loaded["image_size"] == 64 and loaded["temperature"] == 1.5
    assert loaded["mean"] == [0.5, 0.5, 0.5]
    model = checkpoint.model_from_checkpoint(loaded)
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not list(tmp_path.glob(".*.tmp")), "temp file left behind"


def test_checkpoint_gets_the_mode_a_plain_file_would(tmp_path):
    # Written through mkstemp (0600) and renamed: a model in a shared folder must still be readable
    # by the people the umask allows, as a file torch.save wrote directly would be.
    umask = os.umask(0o022)
    try:
        path = checkpoint.save_checkpoint(_tiny_checkpoint(), tmp_path / "m.pt")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_checkpoint_strips_ddp_and_compile_prefixes(tmp_path):
    ckpt = _tiny_checkpoint()
    ckpt["state_dict"] = {f"module._orig_mod.{k}": v for k, v in ckpt["state_dict"].items()}
    loaded = checkpoint.load_checkpoint(checkpoint.save_checkpoint(ckpt, tmp_path / "m.pt"))
    assert "fc.weight" in loaded["state_dict"]


class _Payload:
    """Unpickling this would create a marker file: the code-execution probe."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoint_with_pickled_code_is_refused_and_never_runs(tmp_path, cli):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    ckpt = _tiny_checkpoint()
    ckpt["extra"] = _Payload(marker)
    torch.save(ckpt, evil)
    with pytest.raises(ModelError, match="refuses to run"):
        checkpoint.load_checkpoint(evil)
    r = cli("predict", "--model", evil, tmp_path)
    assert r.exit_code == 2
    assert "refuses to run" in r.stderr and r.stderr.count("\n") == 1
    assert not marker.exists(), "the checkpoint's code ran"


def test_truncated_checkpoint_is_a_clear_error(tmp_path, cli):
    path = checkpoint.save_checkpoint(_tiny_checkpoint(), tmp_path / "m.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        checkpoint.load_checkpoint(path)
    r = cli("predict", "--model", path, tmp_path)
    assert r.exit_code == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(arch="vit_b_16"), "vit_b_16"),
        (lambda c: c.update(classes=["a", "b", "c"]), "does not fit its class list"),
        (lambda c: c.pop("classes"), "classes"),
    ],
)
def test_checkpoint_validation(tmp_path, mutate, message):
    ckpt = _tiny_checkpoint()
    mutate(ckpt)
    torch.save(ckpt, tmp_path / "m.pt")
    with pytest.raises(ModelError, match=message):
        checkpoint.load_checkpoint(tmp_path / "m.pt")


def test_files_that_are_not_checkpoints(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelError, match="not a valid checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "text.pt")
    torch.save(_tiny_checkpoint()["state_dict"], tmp_path / "bare.pt")
    with pytest.raises(ModelError, match="bare state dict"):
        checkpoint.load_checkpoint(tmp_path / "bare.pt")
    with pytest.raises(ModelError, match="not found"):
        checkpoint.load_checkpoint(tmp_path / "missing.pt")


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = checkpoint.save_checkpoint(_tiny_checkpoint(), tmp_path / "last.pt")
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    from skinfood_cli.errors import SkinfoodError

    with pytest.raises(SkinfoodError, match=r"No space left on device.*previous file is intact"):
        checkpoint.save_checkpoint(_tiny_checkpoint(), path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


# --- model store --------------------------------------------------------------------


def test_model_resolution_by_path_run_name_and_default(tmp_path):
    with pytest.raises(ModelError, match="skinfood train"):
        paths.resolve_model(None)
    old = paths.new_run_dir("old")
    checkpoint.save_checkpoint(_tiny_checkpoint(), old / "best.pt")
    new = paths.new_run_dir("new")
    checkpoint.save_checkpoint(_tiny_checkpoint(), new / "best.pt")
    os.utime(old / "best.pt", (1, 1))
    assert paths.resolve_model(None) == new / "best.pt"
    assert paths.resolve_model("old") == old / "best.pt"
    assert paths.resolve_model(str(old / "best.pt")) == old / "best.pt"
    with pytest.raises(ModelError, match="no model file or run named"):
        paths.resolve_model("nosuch")


def test_run_names_are_never_overwritten(tmp_path):
    paths.new_run_dir("mine")
    with pytest.raises(UsageError, match="already exists"):
        paths.new_run_dir("mine")
    first, second = paths.new_run_dir(None), paths.new_run_dir(None)
    assert first != second


def test_models_command_lists_runs_and_marks_default(cli, installed_run):
    r = cli("models", "--format", "json")
    assert r.exit_code == 0, r.stderr
    import json

    rows = json.loads(r.stdout)
    assert [row["name"] for row in rows] == [installed_run.name]
    assert rows[0]["default"] is True
    assert rows[0]["classes"] == ["acne", "psoriasis", "vitiligo"]
    delivered = checkpoint.load_checkpoint(installed_run / "best.pt")["metrics"]  # what best.pt holds
    assert rows[0]["val_macro_f1"] == pytest.approx(delivered["val_macro_f1"], abs=1e-6)
    on_disk = sum(p.stat().st_size for p in installed_run.rglob("*") if p.is_file())
    assert rows[0]["size_mb"] == pytest.approx(on_disk / 1e6, abs=0.1) and rows[0]["size_mb"] > 1
    table = cli("models")
    assert installed_run.name in table.stdout and "*" in table.stdout
    assert f"{on_disk / 1e6:.0f} MB" in table.stdout, "the table shows how much disk the run takes"


def test_home_is_overridable(cli, tmp_path):
    r = cli("home")
    assert r.stdout.strip() == str(tmp_path / "home")


# --- devices --------------------------------------------------------------------------


def test_device_selection(monkeypatch):
    assert resolve_device("cpu").type == "cpu"
    monkeypatch.setenv("SKINFOOD_DEVICE", "cpu")
    assert resolve_device(None).type == "cpu"
    monkeypatch.setenv("SKINFOOD_DEVICE", "auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device(None).type == expected
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_precision_selection():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu).dtype is None
    assert resolve_precision("bf16", cpu).dtype is torch.bfloat16
    with pytest.raises(UsageError, match="fp16 is for GPUs"):
        resolve_precision("fp16", cpu)
    auto = resolve_precision("auto", cpu)
    from skinfood_cli.model import cpu_has_native_bf16

    assert auto.name == ("bf16" if cpu_has_native_bf16() else "fp32")


# --- pretrained weights ---------------------------------------------------------------


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _fake_weights() -> tuple[bytes, str]:
    from torchvision.models import resnet50

    buf = io.BytesIO()
    torch.save(resnet50().state_dict(), buf)
    data = buf.getvalue()
    url = f"https://weights.invalid/resnet50-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    return data, url


def test_weights_are_downloaded_once_hash_checked_and_reused(tmp_path):
    data, url = _fake_weights()
    calls = []

    def opener(u, timeout):
        calls.append(u)
        return FakeResponse(data)

    seen = []
    umask = os.umask(0o022)
    try:
        path = weights.fetch_weights(tmp_path, url, opener=opener, progress=lambda d, t: seen.append((d, t)))
    finally:
        os.umask(umask)
    assert path.read_bytes() == data and len(calls) == 1
    assert path.stat().st_mode & 0o777 == 0o644, "the shared weights cache must be readable as a plain file"
    assert seen[-1] == (len(data), len(data))
    assert weights.fetch_weights(tmp_path, url, opener=opener) == path and len(calls) == 1
    state = weights.load_backbone_state(path)
    assert "conv1.weight" in state


def test_corrupt_cached_weights_are_fetched_again(tmp_path):
    data, url = _fake_weights()
    calls = []

    def opener(u, timeout):
        calls.append(u)
        return FakeResponse(data)

    target = tmp_path / url.rsplit("/", 1)[-1]
    target.write_bytes(data[: len(data) // 3])  # a partial download from an earlier try
    path = weights.fetch_weights(tmp_path, url, opener=opener)
    assert len(calls) == 1 and path.read_bytes() == data


def test_download_with_wrong_hash_is_refused_and_not_cached(tmp_path):
    data, url = _fake_weights()
    bad_url = url.rsplit("-", 1)[0] + "-00000000.pth"
    with pytest.raises(WeightsError, match="hash check"):
        weights.fetch_weights(tmp_path, bad_url, opener=lambda u, timeout: FakeResponse(data))
    assert not list(tmp_path.iterdir())


def test_offline_names_both_ways_out(tmp_path):
    def offline(u, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    with pytest.raises(WeightsError) as info:
        weights.fetch_weights(tmp_path, weights.RESNET50_URL, opener=offline)
    assert "--weights FILE" in str(info.value) and "--no-pretrained" in str(info.value)


def test_train_offline_exits_2_with_the_fix(cli, dataset, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    r = cli("train", "--data", dataset, "--epochs", "1")
    assert r.exit_code == 2
    assert "--weights FILE" in r.stderr and "--no-pretrained" in r.stderr
    assert r.stderr.count("\n") == 1
    assert not (Path(os.environ["SKINFOOD_HOME"]) / "runs").exists() or not any(
        (Path(os.environ["SKINFOOD_HOME"]) / "runs").iterdir()
    ), "an empty run folder was left behind"


def test_local_weights_file_is_used(tmp_path):
    from torchvision.models import resnet50

    reference = resnet50()
    torch.save(reference.state_dict(), tmp_path / "r50.pth")
    state, source = weights.resolve_backbone(
        pretrained=True, weights_file=tmp_path / "r50.pth", cache_dir=tmp_path / "cache"
    )
    assert torch.equal(state["conv1.weight"], reference.state_dict()["conv1.weight"])
    assert not (tmp_path / "cache").exists(), "no download when a file is given"
    (tmp_path / "junk.pth").write_text("junk")
    with pytest.raises(WeightsError, match="not a readable"):
        weights.load_backbone_state(tmp_path / "junk.pth")


# --- the command line -------------------------------------------------------------------


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from skinfood_cli import cli\n"
        "for args in (['--help'], ['train', '--help'], ['predict', '--help'], ['evaluate', '--help'],"
        " ['explain', '--help'], ['models', '--help'], ['diseases', '--help'], ['demo', '--help'],"
        " ['export', '--help'], ['serve', '--help']):\n"
        "    sys.argv = ['skinfood', *args]\n"
        "    try:\n"
        "        cli.main()\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (args, e.code)\n"
        "heavy = [m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    r = subprocess.run(
        [PY, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"}
    )
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stderr
    # The install lines survive rich's markup ("[export]" is not a style tag).
    assert 'pip install ".[export]"' in r.stdout and 'pip install ".[serve]"' in r.stdout


def test_python_dash_m_and_version():
    from skinfood_cli import __version__

    r = subprocess.run([PY, "-m", "skinfood_cli", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"skinfood {__version__}"


def test_exit_codes(cli, tmp_path, model_path):
    assert cli("predict", tmp_path / "x.jpg").exit_code == 2  # no model yet
    assert cli("predict", "--model", model_path, tmp_path / "missing.jpg").exit_code == 1
    assert cli("predict", "--model", model_path, "--top-k", "0", "x.jpg").exit_code == 2
    assert cli("predict", "--model", model_path, "--shard", "3/2", "x.jpg").exit_code == 2
    assert cli("train").exit_code == 2
    assert cli("nosuchcommand").exit_code == 2


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    env = {**os.environ, "SKINFOOD_HOME": str(tmp_path)}
    r = subprocess.run(
        [PY, "-m", "skinfood_cli", "train", "--data", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: data folder not found: {tmp_path / 'nope'}"]
    r = subprocess.run(
        [PY, "-m", "skinfood_cli", "--debug", "train", "--data", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode != 0 and "Traceback" in r.stderr


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    env = {**os.environ, "SKINFOOD_HOME": str(tmp_path / "home"), "COLUMNS": "160"}
    r = subprocess.run(
        [PY, "-m", "skinfood_cli", "demo", "--workdir", str(tmp_path / "demo"), "--epochs", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "SYNTHETIC" in r.stderr
    assert (tmp_path / "demo" / "data" / "train" / "acne").is_dir()
    assert list((tmp_path / "demo" / "explain").glob("*.png"))
    assert "confusion matrix" in r.stdout and "Not a diagnosis" in r.stdout
    runs = list((tmp_path / "home" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "best.pt").is_file()


@pytest.mark.slow
def test_the_wheel_carries_the_descriptions_and_the_page(tmp_path):
    """A regular (non-editable) install gets the YAML and the phone page, not just the code."""
    import zipfile

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w", str(tmp_path), str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "absent from the `packages` configuration" not in done.stdout + done.stderr
    wheel = next(tmp_path.glob("skinfood-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "skinfood_cli/descriptions/diseases.yaml",
        "skinfood_cli/serving/web/index.html",
        "skinfood_cli/serving/web/app.js",
        "skinfood_cli/serving/web/style.css",
        "skinfood_cli/backends/quantize.py",
        "skinfood_cli/cli/__init__.py",
        "skinfood_cli/cli/app.py",
        "skinfood_cli/cli/run.py",
    ):
        assert expected in names
    # Every subpackage in the source tree made it in (a new one must be listed in pyproject.toml).
    source = {p.parent.relative_to(root).as_posix() for p in (root / "skinfood_cli").rglob("*.py")}
    assert source <= {n.rsplit("/", 1)[0] for n in names}

    # And what the wheel installs runs: --help, and the page's files found where the server looks.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import skinfood_cli, skinfood_cli.serving.server as s\n"
        "from skinfood_cli.descriptions import load_descriptions\n"
        f"assert skinfood_cli.__file__.startswith({str(site)!r}); assert (s.WEB_DIR / 'index.html').is_file()\n"
        "load_descriptions(None); print('OK')"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr
    done = subprocess.run(
        [PY, "-m", "skinfood_cli", "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )
    assert done.returncode == 0 and "predict" in done.stdout, done.stderr
