"""The portable model folder, `--model DIR`, `--model hf://...` and `skinfood push` — all offline.

The download tests run huggingface_hub's real client against `FakeHub` (tests/fakehub.py), a small
HTTP server on 127.0.0.1 that answers the routes the client calls
(`/api/models/{repo}/revision/{rev}`, HEAD and GET `/{repo}/resolve/{rev}/{file}`)
with the headers the real Hub sends (X-Repo-Commit, ETag, X-Linked-Etag,
X-Linked-Size). HF_ENDPOINT points at it and HF_HOME at the test's folder;
huggingface_hub reads both when its `constants` module loads, so the `hub` fixture
reloads it after setting them, as a fresh `skinfood` process would. No request
leaves the machine: the real Hub was not reachable from the machines these were
written on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import parse_json
from fakehub import COMMIT, FakeHub, folder_files, free_port, set_hub_env
from fakehub import reload_hub_constants as _reload_hub_constants

CLASSES = ["acne", "psoriasis", "vitiligo"]


# --- fixtures: a model, its folder, photos ------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A valid skinfood checkpoint with random ResNet50 weights at 64 px (no training needed)."""
    import torch

    from skinfood_cli.archs import DEFAULT_ARCH as ARCH
    from skinfood_cli.checkpoint import FORMAT, save_checkpoint
    from skinfood_cli.model import build_model

    torch.manual_seed(0)
    model = build_model(len(CLASSES))
    for name, buf in model.named_buffers():  # BatchNorm statistics that are not all 0 and 1
        if name.endswith("running_mean"):
            buf.normal_(0, 0.1)
    run = tmp_path_factory.mktemp("run")
    ckpt = {
        "format": FORMAT,
        "format_version": 1,
        "arch": ARCH,
        "state_dict": model.state_dict(),
        "classes": CLASSES,
        "image_size": 64,
        "mean": [0.5, 0.45, 0.4],
        "std": [0.25, 0.2, 0.2],
        "temperature": 1.7,
        "threshold": 0.45,
        "run_name": "tiny",
        "skinfood_version": "test",
        "data": {
            "root": "/home/someone/clinic-photos",
            "layout": "dermnet",
            "val_source": "split",
            "val_files": ["acne/patient-0042.jpg"],
            "num_train": 120,
            "num_val": 20,
        },
        "config": {"data": "/home/someone/clinic-photos", "weights": None, "epochs": 3},
        "metrics": {"epoch": 3, "val_acc": 0.5, "val_macro_f1": float("nan")},
    }
    return save_checkpoint(ckpt, run / "best.pt")


@pytest.fixture(scope="module")
def folder(checkpoint, tmp_path_factory) -> Path:
    from skinfood_cli.hub.folder import write_hub_folder

    return write_hub_folder(checkpoint, tmp_path_factory.mktemp("hub") / "tiny").path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    import random

    from skinfood_cli.data.synthetic import make_image

    root = tmp_path_factory.mktemp("photos")
    rng = random.Random(1)
    paths = []
    for i, kind in enumerate(["acne", "psoriasis", "vitiligo", "eczema"]):
        image, _ = make_image(kind, (96, 80), rng)
        paths.append(root / f"{i}.jpg")
        image.save(paths[-1])
    return paths


def probabilities(cli, model, photos) -> dict[str, list[float]]:
    r = cli(
        "predict",
        *photos,
        "--model",
        model,
        "--format",
        "json",
        "--top-k",
        "3",
        "--device",
        "cpu",
        "--precision",
        "fp32",
    )
    assert r.exit_code == 0, r.stderr
    return {rec["path"]: {t["label"]: t["probability"] for t in rec["top_k"]} for rec in parse_json(r.stdout)}


def error_line(result) -> str:
    """The one line a failing command printed (and that it printed only one)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def tampered(folder: Path, tmp_path: Path, edit) -> Path:
    """A copy of `folder` (weights linked, not copied) whose config.json went through `edit`."""
    copy = tmp_path / "tampered"
    copy.mkdir()
    (copy / "model.safetensors").symlink_to(folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    text = edit(config)
    (copy / "config.json").write_text(text if isinstance(text, str) else json.dumps(config))
    return copy


# --- the folder ----------------------------------------------------------------------------


def test_folder_holds_weights_config_and_card_and_no_local_paths(folder):
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["library"] == "skinfood" and config["skinfood_config_version"] == 1
    assert config["classes"] == CLASSES and config["image_size"] == 64 and config["arch"] == "resnet50"
    assert config["temperature"] == 1.7 and config["threshold"] == 0.45 and config["mean"] == [0.5, 0.45, 0.4]
    assert config["display_names"]["en"] == ["Acne", "Psoriasis", "Vitiligo"]
    assert config["metrics"]["val_macro_f1"] is None  # NaN is not JSON the Hub accepts
    assert config["weights"]["sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    text = (folder / "config.json").read_text()
    assert "/home/someone" not in text and "patient-0042" not in text
    assert "optimizer" not in config and "state_dict" not in config
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: skinfood")
    for section in ("## Intended use", "## Data", "## Metrics", "## Limitations", "## Not a medical device"):
        assert section in card


def test_folder_loads_without_unpickling(folder, monkeypatch):
    import pickle

    import torch

    from skinfood_cli.engine import load_model

    def refuse(*_a, **_k):
        raise AssertionError("a model folder must load without pickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    model = load_model(folder)
    assert model.classes == CLASSES and model.temperature == 1.7 and model.threshold == 0.45
    assert model.run_name == "tiny" and model.image_size == 64


def test_folder_round_trip_gives_the_checkpoints_probabilities(cli, installed_run, tmp_path, photos):
    out = tmp_path / "shared"
    r = cli("export", "--format", "hub", "--output", out)
    assert r.exit_code == 0, r.stderr
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    from_checkpoint = probabilities(cli, installed_run / "best.pt", photos)
    from_folder = probabilities(cli, out, photos)
    assert from_checkpoint.keys() == from_folder.keys()
    for path, probs in from_checkpoint.items():
        for label, p in probs.items():
            assert abs(p - from_folder[path][label]) <= 1e-6, (path, label)


def test_export_hub_writes_beside_the_run_by_default(cli, checkpoint, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / "best.pt")
    (run / "MODEL_CARD.md").write_text("# My card\n\nWritten by hand.\n")
    r = cli("export", "--format", "hub", "--model", run / "best.pt")
    assert r.exit_code == 0, r.stderr
    card = (run / "hub" / "README.md").read_text()
    assert "Written by hand." in card and card.startswith("---\n")  # the run's card, with Hub front matter


def test_folder_works_in_explain_evaluate_and_serve(cli, folder, photos, dataset, tmp_path, checkpoint):
    out = tmp_path / "cam.png"
    r = cli("explain", photos[0], "--model", folder, "--output", out, "--device", "cpu")
    assert r.exit_code == 0, r.stderr
    assert out.stat().st_size > 0  # Grad-CAM: the folder's model has gradients, unlike an export
    r = cli("evaluate", "--model", folder, "--data", dataset, "--format", "json", "--device", "cpu")
    assert r.exit_code == 0, r.stderr
    assert parse_json(r.stdout)["num_images"] > 0
    r = cli("evaluate", "--model", folder)  # its validation split stayed on the trainer's machine
    assert r.exit_code == 2 and "--data" in error_line(r)

    from skinfood_cli.serving.server import ServeConfig, State
    from skinfood_cli.sources import resolve_model

    state = State(ServeConfig(model=str(resolve_model(str(folder))), device="cpu"))  # as `serve --model DIR`
    try:
        state.load()
        assert state.ready and state.engine.model.classes == CLASSES and state.engine.model.run_name == "tiny"
    finally:
        state.stop()


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda c: c.pop("classes"), "'classes' is missing"),
        (lambda c: c.update(image_size="96"), "'image_size' is missing or not a int"),
        (lambda c: c.update(library="transformers"), "not a skinfood model"),
        (lambda c: c.update(skinfood_config_version=2), "config version 2"),
        (lambda c: c["mean"].pop(), "three numbers"),
        (lambda c: "{not json", "not valid JSON"),
    ],
)
def test_tampered_config_exits_2_with_one_line(cli, folder, tmp_path, photos, edit, says):
    r = cli("predict", photos[0], "--model", tampered(folder, tmp_path, edit))
    assert r.exit_code == 2
    assert says in error_line(r)


def test_truncated_weights_exit_2_with_one_line(cli, folder, tmp_path, photos):
    copy = tmp_path / "cut"
    copy.mkdir()
    shutil.copy(folder / "config.json", copy / "config.json")
    data = (folder / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    r = cli("predict", photos[0], "--model", copy)
    assert r.exit_code == 2
    assert "model.safetensors does not match the sha256" in error_line(r)


def test_truncated_weights_fail_in_safetensors_too(folder, tmp_path):
    from skinfood_cli.errors import ModelError
    from skinfood_cli.hub.folder import load_weights

    cut = tmp_path / "model.safetensors"
    cut.write_bytes((folder / "model.safetensors").read_bytes()[:5000])
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        load_weights(cut, None)


def test_the_export_call_says_what_the_folder_holds(checkpoint, tmp_path):
    from skinfood_cli.exporting import export
    from skinfood_cli.hub.publish import HubExport

    out = tmp_path / "shared"
    result = export(checkpoint, fmt="hub", output=out)
    assert isinstance(result, HubExport)
    assert (result.path, result.format, result.precision) == (out, "hub", "fp32")
    assert result.passed and result.onnx is None and result.verification is None
    assert result.card == out / "README.md" and result.card.read_text().startswith("---\n")
    assert result.folder.files == ["README.md", "config.json", "model.safetensors"]


@pytest.mark.parametrize(
    "options",
    [
        {"fmt": "onnx", "with_onnx": True},
        {"fmt": "hub", "int8": True},
        {"fmt": "hub", "batch": 2},
        {"fmt": "hub", "with_preprocessing": True},
    ],
)
def test_the_export_call_refuses_what_a_folder_cannot_carry(checkpoint, tmp_path, options):
    from skinfood_cli.errors import UsageError
    from skinfood_cli.exporting import export

    with pytest.raises(UsageError, match="--with-onnx goes with --format hub; --int8, --batch and"):
        export(checkpoint, output=tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_export_with_onnx_but_not_hub_exits_2_with_one_line(cli, checkpoint, tmp_path):
    r = cli("export", "--model", checkpoint, "--with-onnx", "--output", tmp_path / "out")
    assert r.exit_code == 2 and r.stdout == ""
    assert "--with-onnx goes with --format hub" in error_line(r)
    assert not (tmp_path / "out").exists()


# --- a stand-in for the Hub (tests/fakehub.py) ----------------------------------------------


@pytest.fixture
def fake_hub():
    hub = FakeHub()
    yield hub
    hub.stop()


@pytest.fixture
def hub(fake_hub, tmp_path, monkeypatch):
    """huggingface_hub pointed at `fake_hub` (HF_ENDPOINT) with its cache in tmp_path (HF_HOME)."""
    pytest.importorskip("huggingface_hub")
    with monkeypatch.context() as m:
        set_hub_env(m, fake_hub.url, tmp_path / "hf")
        _reload_hub_constants()
        yield fake_hub
    _reload_hub_constants()


# --- using a model by name -----------------------------------------------------------------


def test_hf_model_downloads_once_then_runs_offline_from_the_cache(cli, hub, folder, photos, monkeypatch, tmp_path):
    hub.add("skin-lab/tiny", folder_files(folder))
    local = probabilities(cli, folder, photos)
    assert probabilities(cli, "hf://skin-lab/tiny", photos) == local
    assert ("GET", "/api/models/skin-lab/tiny/revision/main") in hub.requests
    assert ("GET", "/skin-lab/tiny/resolve/main/model.safetensors") in hub.requests
    snapshot = tmp_path / "hf" / "hub" / "models--skin-lab--tiny" / "snapshots" / COMMIT
    assert (snapshot / "model.safetensors").is_file() and (snapshot / "config.json").is_file()

    r = cli("models", "--format", "json")
    assert r.exit_code == 0, r.stderr
    listed = {row["name"]: row for row in parse_json(r.stdout)}
    assert listed["hf://skin-lab/tiny"]["source"] == "hub"
    assert listed["hf://skin-lab/tiny"]["classes"] == CLASSES

    downloads = [q for q in hub.requests if q == ("GET", "/skin-lab/tiny/resolve/main/model.safetensors")]
    assert probabilities(cli, "hf://skin-lab/tiny@main", photos) == local  # online again: no second download
    assert len([q for q in hub.requests if q == downloads[0]]) == 1

    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _reload_hub_constants()
    assert probabilities(cli, "hf://skin-lab/tiny", photos) == local
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    _reload_hub_constants()
    assert probabilities(cli, "hf://skin-lab/tiny", photos) == local  # server gone, not offline: the cache


def _foreign(folder):
    files = folder_files(folder)
    files["config.json"] = json.dumps({"library": "transformers", "model_type": "vit"}).encode()
    return files


def _newer(folder):
    files = folder_files(folder)
    config = json.loads(files["config.json"])
    config["skinfood_config_version"] = 2
    files["config.json"] = json.dumps(config).encode()
    return files


def _no_config(folder):
    files = folder_files(folder)
    del files["config.json"]
    return files


@pytest.mark.parametrize(
    "spec, files, says",
    [
        ("hf://skin-lab/missing", None, "repository not found, or private"),
        ("hf://skin-lab/tiny@no-such-branch", folder_files, "no such branch, tag or commit"),
        ("hf://skin-lab/tiny", _foreign, "not a skinfood model (library 'transformers')"),
        ("hf://skin-lab/tiny", _no_config, "not a skinfood model: the repository has no config.json"),
        ("hf://skin-lab/tiny", _newer, "config version 2; this skinfood reads version 1: upgrade skinfood"),
    ],
)
def test_hub_errors_exit_2_with_one_line(cli, hub, folder, photos, spec, files, says):
    if files is not None:
        hub.add("skin-lab/tiny", files(folder))
    r = cli("predict", photos[0], "--model", spec)
    assert r.exit_code == 2
    assert says in error_line(r)
    assert ("GET", "/skin-lab/tiny/resolve/main/model.safetensors") not in hub.requests  # weights not fetched


def test_corrupted_download_exits_2_and_leaves_nothing_in_the_cache(cli, hub, folder, photos, tmp_path):
    files = folder_files(folder)
    hub.add("skin-lab/tiny", files)
    bad = bytearray(files["model.safetensors"])
    bad[-100] ^= 0xFF  # same size, one byte flipped: only a hash notices
    hub.corrupt[("skin-lab/tiny", "model.safetensors")] = bytes(bad)
    r = cli("predict", photos[0], "--model", "hf://skin-lab/tiny")
    assert r.exit_code == 2
    assert "does not match the Hub's sha256" in error_line(r)
    blobs = tmp_path / "hf" / "hub" / "models--skin-lab--tiny" / "blobs"
    assert hashlib.sha256(bytes(bad)).hexdigest() not in {p.name for p in blobs.iterdir()}
    assert not (blobs.parent / "snapshots" / COMMIT / "model.safetensors").exists()

    del hub.corrupt[("skin-lab/tiny", "model.safetensors")]  # fixed upstream: the next run downloads again
    assert cli("predict", photos[0], "--model", "hf://skin-lab/tiny").exit_code == 0


def test_no_network_and_nothing_cached_exits_2(cli, monkeypatch, tmp_path, photos):
    pytest.importorskip("huggingface_hub")
    with monkeypatch.context() as m:
        set_hub_env(m, f"http://127.0.0.1:{free_port()}", tmp_path / "hf")
        _reload_hub_constants()
        try:
            r = cli("predict", photos[0], "--model", "hf://skin-lab/tiny")
            assert r.exit_code == 2
            line = error_line(r)
            assert "not in the Hugging Face cache" in line and "no network" in line
            m.setenv("HF_HUB_OFFLINE", "1")
            _reload_hub_constants()
            r = cli("predict", photos[0], "--model", "hf://skin-lab/tiny")
            assert r.exit_code == 2 and "HF_HUB_OFFLINE is set" in error_line(r)
        finally:
            m.undo()
            _reload_hub_constants()


@pytest.mark.parametrize("spec", ["hf://justaname", "hf://a/b/c", "hf://org/name@", "hf://org/na me"])
def test_malformed_hub_names_exit_2(cli, photos, spec):
    r = cli("predict", photos[0], "--model", spec)
    assert r.exit_code == 2
    assert "hf://" in error_line(r) or "ORG/NAME" in error_line(r)


# --- publishing ------------------------------------------------------------------------------


class RecordingApi:
    """Stands in for huggingface_hub.HfApi: records what would be sent, sends nothing."""

    calls: ClassVar[list] = []
    sent: ClassVar[dict] = {}

    def __init__(self, *args, **kwargs):
        pass

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kw):
        self.calls.append(("create_branch", repo_id, kw))

    def upload_folder(self, *, repo_id, folder_path, **kw):
        self.calls.append(("upload_folder", repo_id, kw))
        self.sent.update(
            {p.name: p.read_bytes() for p in Path(folder_path).iterdir() if p.name in kw["allow_patterns"]}
        )
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/{COMMIT}"})()


def test_push_sends_the_folder_to_the_named_repository(cli, checkpoint, monkeypatch, tmp_path):
    import huggingface_hub

    run = tmp_path / "home" / "runs" / "tiny"
    run.mkdir(parents=True)
    shutil.copy(checkpoint, run / "best.pt")
    (run / "photo.jpg").write_bytes(b"\xff\xd8 not for upload")
    RecordingApi.calls, RecordingApi.sent = [], {}
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    r = cli("push", "tiny", "skin-lab/tiny")
    assert r.exit_code == 2 and "HF_HUB_OFFLINE is set" in error_line(r)  # the tests' default

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # a real request could only fail
    _reload_hub_constants()
    r = cli("push", "tiny", "skin-lab/tiny", "--private", "--revision", "v1")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == "https://huggingface.co/skin-lab/tiny/tree/v1"
    names = [c[0] for c in RecordingApi.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    assert RecordingApi.calls[0][1:] == ("skin-lab/tiny", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert RecordingApi.calls[1][2]["branch"] == "v1" and RecordingApi.calls[2][2]["revision"] == "v1"
    assert sorted(RecordingApi.sent) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads(RecordingApi.sent["config.json"])
    assert config["library"] == "skinfood" and "/home/someone" not in RecordingApi.sent["config.json"].decode()
    assert "hf://skin-lab/tiny" in RecordingApi.sent["README.md"].decode()


def test_push_without_the_extra_says_how_to_install_it(cli, checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import now raises ImportError
    r = cli("push", checkpoint, "skin-lab/tiny")
    assert r.exit_code == 2
    assert 'pip install ".[hub]"' in error_line(r)


def test_push_rejects_a_malformed_repository_name(cli, checkpoint):
    r = cli("push", checkpoint, "not-a-repo")
    assert r.exit_code == 2
    assert "ORG/NAME" in error_line(r)


# --- slow: the real CLI in a subprocess, ONNX in the folder ----------------------------------


@pytest.mark.slow
def test_real_cli_reads_hf_env_in_a_fresh_process(fake_hub, folder, photos, tmp_path):
    """No constants reloading: HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE as a user sets them."""
    pytest.importorskip("huggingface_hub")
    fake_hub.add("skin-lab/tiny", folder_files(folder))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=fake_hub.url,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    cmd = [
        sys.executable,
        "-m",
        "skinfood_cli",
        "predict",
        str(photos[0]),
        "--model",
        "hf://skin-lab/tiny",
        "--format",
        "json",
        "--device",
        "cpu",
        "--precision",
        "fp32",
    ]
    first = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "hf" / "hub" / "models--skin-lab--tiny").is_dir()
    fake_hub.stop()
    second = subprocess.run(
        cmd, check=False, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout)


@pytest.mark.slow
def test_export_hub_with_onnx_adds_the_verified_file(cli, checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "shared"
    r = cli("export", "--format", "hub", "--with-onnx", "--model", checkpoint, "--output", out, "--verify-images", "8")
    assert r.exit_code == 0, r.stderr
    sidecar = json.loads((out / "model.onnx.json").read_text())
    assert sidecar["verification"]["passed"] is True
    assert sidecar["sha256"] == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.onnx",
        "model.onnx.json",
        "model.safetensors",
    ]


@pytest.mark.slow
def test_a_folder_whose_onnx_file_fails_verification_exits_1_and_prints_nothing(cli, checkpoint, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import torch

    from skinfood_cli.backends import onnx_writer

    real = onnx_writer.export_module

    def wrong_graph(loaded, with_preprocessing):
        import copy

        module = copy.deepcopy(real(loaded, with_preprocessing))
        net = getattr(module, "model", module)
        with torch.no_grad():
            net.fc.bias += torch.tensor([0.0, 0.5, 0.0])
        return module

    monkeypatch.setattr(onnx_writer, "export_module", wrong_graph)
    out = tmp_path / "shared"
    r = cli("export", "--format", "hub", "--with-onnx", "--model", checkpoint, "--output", out, "--verify-images", "8")
    assert r.exit_code == 1 and r.stdout == ""
    assert "verification failed: model.onnx (fp32)" in r.stderr and "do not ship it" in r.stderr

    from skinfood_cli.exporting import export

    result = export(checkpoint, fmt="hub", with_onnx=True, output=out, verify_images=8)  # the core does not raise
    assert not result.passed and result.verification is not None and not result.verification.passed
    assert result.onnx is not None and result.onnx.path == out / "model.onnx"
