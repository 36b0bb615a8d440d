"""`skinfood export --format torchscript [--int8]`: PyTorch's own x86 int8 path, and running its files.

No ONNX needed: TorchScript export, FX int8 quantisation and the files' use
as `--model` all live in core torch.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import parse_json

# torch.jit.* announce their deprecation; the README says it, the tests need not.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]


@pytest.fixture(scope="module")
def int8_file(trained, tmp_path_factory):
    """best.pt -> m.int8.torchscript, calibrated on the run's training photos, via the real command."""
    from typer.testing import CliRunner

    from skinfood_cli.cli import app

    out = tmp_path_factory.mktemp("ts") / "m.int8.torchscript"
    result = CliRunner().invoke(
        app,
        ["export", "--model", str(trained.best_path), "--format", "torchscript", "--int8", "--output", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return {"path": out, "model": trained.best_path, "stdout": result.stdout, "stderr": result.stderr}


def _records(cli, model, inputs, *extra):
    result = cli("predict", *inputs, "--model", model, "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return parse_json(result.stdout)


def _metadata(path):
    import torch

    extra = {"skinfood.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra["skinfood.json"])


def test_int8_export_is_verified_quarter_size_and_says_how_it_was_made(int8_file, model_path):
    assert "verified" in int8_file["stdout"] and "int8" in int8_file["stdout"]
    assert "calibration photos" in " ".join(int8_file["stderr"].split())  # rich may wrap it
    assert int8_file["path"].stat().st_size < 0.35 * model_path.stat().st_size
    meta = _metadata(int8_file["path"])
    assert meta["precision"] == "int8" and meta["quantized_engine"] == "x86"
    assert meta["activation_bits"] in (7, 8)
    assert meta["classes"] == ["acne", "psoriasis", "vitiligo"] and meta["image_size"] == 96


def test_predict_and_evaluate_run_the_int8_file_and_agree_with_fp32(int8_file, dataset, cli):
    inputs = [str(dataset / "test")]
    reference = _records(cli, int8_file["model"], inputs, "--precision", "fp32")
    int8 = _records(cli, int8_file["path"], inputs)
    assert len(int8) == len(reference) == 24
    assert [r["path"] for r in int8] == [r["path"] for r in reference]
    agree = sum(a["label"] == b["label"] for a, b in zip(reference, int8)) / len(reference)
    assert agree >= 0.95
    assert all(r["disease_name"] and r["description"] for r in int8)
    result = cli("evaluate", "--model", int8_file["path"], "--data", dataset, "--format", "json")
    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout)["accuracy"] >= 0.9


def test_fp32_torchscript_as_model_matches_the_checkpoint(model_path, tmp_path, dataset, cli, monkeypatch):
    for name in ("onnx", "onnxruntime", "onnxscript"):
        monkeypatch.setitem(sys.modules, name, None)  # TorchScript needs only torch: no [export] extra
    out = tmp_path / "m.torchscript"
    result = cli("export", "--model", model_path, "--format", "torchscript", "--output", out)
    assert result.exit_code == 0, result.output
    inputs = [str(dataset / "test")]
    reference = _records(cli, model_path, inputs, "--precision", "fp32")
    scripted = _records(cli, out, inputs)
    for a, b in zip(reference, scripted):
        assert a["label"] == b["label"]
        pa = {t["label"]: t["probability"] for t in a["top_k"]}
        pb = {t["label"]: t["probability"] for t in b["top_k"]}
        assert max(abs(pa[k] - pb[k]) for k in pa) <= 1e-4


def test_a_fresh_process_prints_nothing_but_the_answer(int8_file, dataset):
    """torch's C++ side announces quantized tensors' deprecation on load; the user sees none of it."""
    photo = sorted((dataset / "test" / "acne").glob("*.jpg"))[0]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "skinfood_cli",
            "predict",
            str(photo),
            "--model",
            str(int8_file["path"]),
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "" and done.stdout.startswith("path,label")


def test_bad_torchscript_files_exit_2_with_one_line(tmp_path, cli, dataset):
    import torch

    photo = str(sorted((dataset / "test" / "acne").glob("*.jpg"))[0])
    broken = tmp_path / "broken.torchscript"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    result = cli("predict", photo, "--model", broken)
    assert result.exit_code == 2 and "not a loadable TorchScript file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr

    foreign = tmp_path / "foreign.torchscript"
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 3, 1)), str(foreign))
    result = cli("predict", photo, "--model", foreign)
    assert result.exit_code == 2 and "without skinfood's metadata" in result.stderr


def test_exported_files_are_refused_where_a_checkpoint_is_needed(int8_file, cli, dataset):
    photo = str(sorted((dataset / "test" / "acne").glob("*.jpg"))[0])
    result = cli("explain", photo, "--model", int8_file["path"])
    assert result.exit_code == 2 and "needs the PyTorch checkpoint" in result.stderr
    result = cli("export", "--model", int8_file["path"])
    assert result.exit_code == 2 and "from a PyTorch checkpoint" in result.stderr


def test_int8_file_asked_onto_a_gpu_is_a_usage_error(int8_file, monkeypatch):
    import torch

    from skinfood_cli.engine import Engine, load_model
    from skinfood_cli.errors import UsageError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(UsageError, match="int8 for x86 CPUs"):
        Engine(load_model(int8_file["path"]), device="cuda")
    monkeypatch.setenv("SKINFOOD_DEVICE", "auto")  # auto: the CPU, silently
    assert Engine(load_model(int8_file["path"])).device.type == "cpu"


def test_without_fx_quantisation_int8_names_the_onnx_route(monkeypatch, cli, model_path):
    monkeypatch.setitem(sys.modules, "torch.ao.quantization.quantize_fx", None)
    result = cli("export", "--model", model_path, "--format", "torchscript", "--int8")
    assert result.exit_code == 2 and "--format onnx --int8" in result.stderr
