"""`skinfood export` and running its files: ONNX (fp32, int8, with preprocessing), TorchScript.

One int8 export (which also writes its fp32 companion) is shared by the module;
each export of the 96 px session model takes a few seconds.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import parse_json
from PIL import Image

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """best.pt -> m.onnx (fp32) + m.int8.onnx, via the real command."""
    from typer.testing import CliRunner

    from skinfood_cli.cli import app

    out = tmp_path_factory.mktemp("export") / "m.int8.onnx"
    real_replace = os.replace

    def replace_within_the_output_folder(src, dst):
        # Where /tmp is a tmpfs, renaming a file from it into the home folder fails with EXDEV:
        # every file the export moves into place must come from beside its destination.
        if Path(dst).resolve().parent not in Path(src).resolve().parents:
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
        return real_replace(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", replace_within_the_output_folder)
        result = CliRunner().invoke(
            app, ["export", "--model", str(trained.best_path), "--int8", "--output", str(out)], catch_exceptions=False
        )
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == [], "temp files left behind"
    return {"int8": out, "fp32": out.with_name("m.onnx"), "stdout": result.stdout, "ckpt": trained.best_path}


def _records(cli, model, inputs, *extra):
    result = cli("predict", *inputs, "--model", model, "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return parse_json(result.stdout)


def _probs(record):
    return {a["label"]: a["probability"] for a in record["top_k"]}


def test_fp32_file_is_valid_self_contained_and_carries_its_metadata(exported, trained):
    path = exported["fp32"]
    onnx.checker.check_model(str(path))
    assert not list(path.parent.glob("*.data")), "weights must be inside the one file"
    model = onnx.load(str(path))
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["classes"] == ["acne", "psoriasis", "vitiligo"]
    assert meta["display_names"]["ko"][0] == "여드름"
    assert meta["image_size"] == 96 and meta["channel_order"] == "RGB"
    assert len(meta["mean"]) == 3 and len(meta["std"]) == 3
    assert meta["temperature"] == pytest.approx(trained.temperature)
    assert meta["run_name"] == trained.run_dir.name and "val_macro_f1" in str(meta["metrics"])
    assert meta["precision"] == "fp32" and meta["input"] == "float_nchw"
    sidecar = json.loads(path.with_name("m.onnx.json").read_text())
    from skinfood_cli.weights import sha256_of

    assert sidecar["sha256"] == sha256_of(path)
    assert sidecar["classes"] == meta["classes"] and sidecar["verification"]["passed"] is True
    assert "verified" in exported["stdout"] and "max |Δp|" in exported["stdout"]


def test_dynamic_batch_runs_at_1_and_7_and_matches_pytorch(exported, model_path, dataset):
    import torch

    from skinfood_cli.engine import Engine, load_model

    reference = Engine(load_model(model_path), device="cpu", precision="fp32")
    photos = sorted((dataset / "test").rglob("*.jpg"))[:7]
    images = [Image.open(p).convert("RGB") for p in photos]
    batch = torch.stack([reference.transform(im) for im in images]).numpy()
    session = ort.InferenceSession(str(exported["fp32"]), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str), "batch axis should be symbolic"
    expected = reference.run_images(images)
    for n in (1, 7):
        logits = session.run(None, {"input": batch[:n]})[0]
        assert logits.shape == (n, 3)
        assert np.abs(logits - expected[:n]).max() < 1e-3


def test_predict_through_onnx_gives_the_checkpoints_records(exported, dataset, cli):
    inputs = [str(dataset / "test")]
    torch_records = _records(cli, exported["ckpt"], inputs, "--precision", "fp32")
    onnx_records = _records(cli, exported["fp32"], inputs)
    assert len(onnx_records) == len(torch_records) == 24
    for a, b in zip(torch_records, onnx_records):
        assert a.keys() == b.keys()
        assert (a["path"], a["label"], a["disease_name"], a["description"], a["uncertain"]) == (
            b["path"],
            b["label"],
            b["disease_name"],
            b["description"],
            b["uncertain"],
        )
        pa, pb = _probs(a), _probs(b)
        assert pa.keys() == pb.keys()
        assert max(abs(pa[k] - pb[k]) for k in pa) <= 1e-4


def test_int8_file_is_smaller_and_agrees_on_the_test_photos(exported, dataset, cli):
    assert exported["int8"].stat().st_size < 0.35 * exported["fp32"].stat().st_size
    meta = json.loads(exported["int8"].with_name("m.int8.onnx.json").read_text())
    assert meta["precision"] == "int8" and meta["verification"]["agreement"] >= 0.99
    inputs = [str(dataset / "test")]
    reference = _records(cli, exported["ckpt"], inputs, "--precision", "fp32")
    int8 = _records(cli, exported["int8"], inputs)
    agree = sum(a["label"] == b["label"] for a, b in zip(reference, int8)) / len(reference)
    assert agree >= 0.99
    assert "int8" in exported["stdout"] and "smaller" in exported["stdout"]


def test_evaluate_runs_an_exported_model(exported, cli, dataset):
    result = cli("evaluate", "--model", exported["int8"], "--data", dataset, "--format", "json")
    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout)["accuracy"] >= 0.9


def test_with_preprocessing_takes_uint8_pixels_and_returns_probabilities(model_path, tmp_path, cli, dataset):
    out = tmp_path / "pixels.onnx"
    result = cli("export", "--model", model_path, "--with-preprocessing", "--output", out)
    assert result.exit_code == 0, result.output
    photo = sorted((dataset / "test" / "vitiligo").glob("*.jpg"))[0]
    # The README's "Python, no torch" recipe: resize (squash, bilinear), uint8 NHWC, run, read.
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    size = meta["image_size"]
    pixels = np.asarray(Image.open(photo).convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)
    probs = session.run(None, {"pixels": pixels[None]})[0][0]
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    [record] = _records(cli, model_path, [str(photo)], "--precision", "fp32")
    assert meta["classes"][int(probs.argmax())] == record["label"] == "vitiligo"
    assert float(probs.max()) == pytest.approx(record["confidence"], abs=1e-4)
    # And skinfood itself runs the file, reading the uint8 layout from its metadata.
    [again] = _records(cli, out, [str(photo)])
    assert again["label"] == record["label"]
    assert again["confidence"] == pytest.approx(record["confidence"], abs=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_is_verified_and_carries_metadata(model_path, tmp_path, cli):
    import torch

    out = tmp_path / "m.torchscript"
    result = cli("export", "--model", model_path, "--format", "torchscript", "--output", out)
    assert result.exit_code == 0, result.output
    assert "verified" in result.stdout
    extra = {"skinfood.json": ""}
    module = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["skinfood.json"])["classes"] == ["acne", "psoriasis", "vitiligo"]
    logits, scope = module(torch.zeros(3, 3, 96, 96))  # a model with a scope check: two outputs
    assert logits.shape == (3, 3) and scope.shape == (3,)


def test_fixed_batch_export(model_path, tmp_path, cli):
    out = tmp_path / "b4.onnx"
    result = cli("export", "--model", model_path, "--batch", "4", "--output", out, "--verify-images", "8")
    assert result.exit_code == 0, result.output
    assert ort.InferenceSession(str(out)).get_inputs()[0].shape[0] == 4


def test_an_export_that_does_not_match_pytorch_fails(model_path, tmp_path, cli, monkeypatch):
    """Simulate an exporter that writes a wrong graph: the check must catch it."""
    import torch

    from skinfood_cli.backends import onnx_writer

    real = onnx_writer.export_module

    def wrong_graph(loaded, with_preprocessing):
        import copy

        module = copy.deepcopy(real(loaded, with_preprocessing))
        net = getattr(module, "model", module)  # inside the scope wrapper when the model has a scope check
        with torch.no_grad():
            net.fc.bias += torch.tensor([0.0, 0.05, 0.0])
        return module

    monkeypatch.setattr(onnx_writer, "export_module", wrong_graph)
    out = tmp_path / "wrong.onnx"
    result = cli("export", "--model", model_path, "--output", out)
    assert result.exit_code == 1
    assert "verification failed" in result.stderr and "do not ship it" in result.stderr
    assert json.loads(out.with_name("wrong.onnx.json").read_text())["verification"]["passed"] is False


def test_the_export_call_returns_a_failed_file_for_the_caller_to_judge(model_path, tmp_path, monkeypatch):
    """exporting.export: the card beside the file, and a mismatch in the result rather than raised."""
    import torch

    from skinfood_cli.backends import onnx_writer
    from skinfood_cli.errors import EXIT_SOME_FAILED, SkinfoodError
    from skinfood_cli.export import ExportResult, check_passed
    from skinfood_cli.exporting import export

    out = tmp_path / "shipped" / "m.torchscript"
    good = export(model_path, fmt="torchscript", output=out, verify_images=8)
    assert isinstance(good, ExportResult) and good.passed and good.path == out and good.precision == "fp32"
    assert good.card == out.parent / "MODEL_CARD.md" and good.card.is_file()
    check_passed(good)

    real = onnx_writer.export_module

    def wrong_graph(loaded, with_preprocessing):
        import copy

        module = copy.deepcopy(real(loaded, with_preprocessing))
        net = getattr(module, "model", module)
        with torch.no_grad():
            net.fc.bias += torch.tensor([0.0, 0.05, 0.0])
        return module

    monkeypatch.setattr(onnx_writer, "export_module", wrong_graph)
    bad = export(model_path, output=tmp_path / "wrong.onnx", verify_images=8)
    assert not bad.passed and bad.verification is not None and not bad.verification.passed
    with pytest.raises(SkinfoodError, match=r"verification failed: wrong\.onnx") as caught:
        check_passed(bad)
    assert caught.value.exit_code == EXIT_SOME_FAILED


def test_bad_onnx_files_as_model_exit_2_with_one_line(tmp_path, cli, dataset):
    from onnx import TensorProto, helper

    photo = str(sorted((dataset / "test" / "acne").glob("*.jpg"))[0])
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage that is not a protobuf")
    result = cli("predict", photo, "--model", broken)
    assert result.exit_code == 2 and "not a loadable ONNX model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr

    # A valid ONNX file that skinfood didn't export: no class names, no preprocessing.
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(foreign))
    result = cli("predict", photo, "--model", foreign)
    assert result.exit_code == 2 and "without skinfood's metadata" in result.stderr

    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(foreign.read_bytes()[:40])
    result = cli("predict", photo, "--model", truncated)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_explain_refuses_an_exported_model(exported, cli, dataset):
    photo = str(sorted((dataset / "test" / "acne").glob("*.jpg"))[0])
    result = cli("explain", photo, "--model", exported["fp32"])
    assert result.exit_code == 2 and "needs the PyTorch checkpoint" in result.stderr


def test_option_conflicts_are_usage_errors(model_path, cli, exported):
    assert cli("export", "--model", model_path, "--batch", "2", "--dynamic").exit_code == 2
    assert cli("export", "--model", model_path, "--format", "torchscript", "--with-preprocessing").exit_code == 2
    result = cli("export", "--model", exported["fp32"])
    assert result.exit_code == 2 and "from a PyTorch checkpoint" in result.stderr


def test_without_the_extra_export_and_onnx_models_name_the_install_line(
    monkeypatch, cli, model_path, exported, dataset
):
    for name in ("onnx", "onnxruntime", "onnxscript"):
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError
    result = cli("export", "--model", model_path)
    assert result.exit_code == 2 and 'pip install ".[export]"' in result.stderr
    photo = str(sorted((dataset / "test" / "acne").glob("*.jpg"))[0])
    result = cli("predict", photo, "--model", exported["fp32"])
    assert result.exit_code == 2 and 'pip install ".[export]"' in result.stderr
