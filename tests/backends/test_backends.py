"""Each backend loads its kind of file and places it as a Runner the engine can call, on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skinfood_cli.backends import BACKENDS, backend_for, is_exported, load_model
from skinfood_cli.backends.metadata import FLOAT_NCHW, UINT8_NHWC
from skinfood_cli.engine import Engine
from skinfood_cli.errors import ModelError

CLASSES = ["acne", "psoriasis", "vitiligo"]
META = {
    "classes": CLASSES,
    "image_size": 8,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "temperature": 2.0,
    "threshold": 0.7,
    "precision": "fp32",
    "run_name": "tiny",
}


class Tiny(torch.nn.Module):
    """(B, 3, 8, 8) -> (B, 3): a linear map of the channel means, so outputs are easy to predict."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(3))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x.float().mean(dim=(2, 3)))


def test_the_file_kind_picks_the_backend():
    assert backend_for("m.onnx").name == "onnx" and backend_for("M.ONNX").name == "onnx"
    assert backend_for("m.torchscript").name == "torchscript"
    assert backend_for("best.pt").name == backend_for("weights.pth").name == "torch"
    assert backend_for("no-suffix").name == "torch"  # the checkpoint loader says what is wrong with it
    assert is_exported("m.onnx") and not is_exported("best.pt")
    assert [b.supports_gradients for b in BACKENDS] == [b.name == "torch" for b in BACKENDS]


def test_only_the_exported_kinds_are_written_and_a_checkpoint_backend_says_it_writes_nothing(tmp_path):
    from skinfood_cli.backends.registry import WRITERS

    assert sorted(WRITERS) == ["onnx", "torchscript"]
    assert all(b.exported for b in WRITERS.values())
    with pytest.raises(NotImplementedError, match="does not write torch files"):
        backend_for("best.pt").write(None, tmp_path / "x.pt", {})
    with pytest.raises(NotImplementedError, match="does not quantise torchscript"):
        WRITERS["torchscript"].quantise(tmp_path / "a", tmp_path / "b", lambda t: iter(()), {})


def test_a_torchscript_file_loads_with_its_metadata_and_runs_through_the_engine(tmp_path):
    from skinfood_cli.backends.torchscript import METADATA_FILE, TORCHSCRIPT_FORMAT

    path = tmp_path / "tiny.torchscript"
    traced = torch.jit.trace(Tiny().eval(), torch.zeros(1, 3, 8, 8))
    torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps({**META, "format": TORCHSCRIPT_FORMAT})})
    loaded = load_model(path)
    assert (loaded.kind, loaded.classes, loaded.temperature, loaded.run_name) == ("torchscript", CLASSES, 2.0, "tiny")
    assert not loaded.supports_gradients
    engine = Engine(loaded, device="cpu")
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(engine.forward(x), x.mean(dim=(2, 3)), atol=1e-6)
    assert engine.example_input(3).dtype == torch.float32


def test_an_onnx_file_takes_pixels_or_tensors_as_its_metadata_says(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from skinfood_cli.backends.onnx import ONNX_FORMAT

    path = tmp_path / "tiny.onnx"
    torch.onnx.export(
        Tiny().eval(),
        (torch.zeros(2, 3, 8, 8),),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}},
    )
    model = onnx.load(str(path))
    for key, value in {**META, "format": ONNX_FORMAT, "input": FLOAT_NCHW, "run": "old-key"}.items():
        model.metadata_props.add(key=key, value=json.dumps(value))
    model.metadata_props.remove(next(p for p in model.metadata_props if p.key == "run_name"))
    onnx.save(model, str(path))

    loaded = load_model(path)
    assert loaded.kind == "onnx" and loaded.run_name == "old-key"  # files written before run_name still read
    engine = Engine(loaded, device="cpu")
    x = torch.rand(4, 3, 8, 8)
    assert np.allclose(engine.forward(x).numpy(), x.mean(dim=(2, 3)).numpy(), atol=1e-5)

    # The same graph declared as taking uint8 NHWC pixels: the runner feeds it pixels, and says so.
    model.metadata_props.remove(next(p for p in model.metadata_props if p.key == "input"))
    model.metadata_props.add(key="input", value=json.dumps(UINT8_NHWC))
    onnx.save(model, str(path))
    engine = Engine(load_model(path), device="cpu")
    assert engine.example_input(2).dtype == torch.uint8


def test_a_file_without_skinfoods_metadata_is_refused_in_one_line(tmp_path):
    path = tmp_path / "foreign.torchscript"
    torch.jit.save(torch.jit.trace(Tiny().eval(), torch.zeros(1, 3, 8, 8)), str(path))
    with pytest.raises(ModelError, match="without skinfood's metadata"):
        load_model(path)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing.torchscript")


@pytest.mark.slow
def test_a_checkpoint_runs_with_gradients_available_and_the_chosen_precision(model_path):
    loaded = load_model(model_path)
    assert loaded.kind == "torch" and loaded.supports_gradients
    engine = Engine(loaded, device="cpu", precision="fp32")
    logits = engine.forward(engine.example_input(2))
    assert logits.shape == (2, len(loaded.classes)) and logits.dtype == torch.float32
    assert engine.precision.name == "fp32" and engine.device.type == "cpu"


def test_a_nested_dict_of_tensors_splits_into_json_and_safetensors_keys_and_back():
    from skinfood_cli.backends.tensor_tree import PREFIX, join_tensors, split_tensors

    trust = {
        "method": "knn",
        "threshold": -0.5,
        "score": {"features": torch.rand(4, 3), "k": 10},
        "conformal": {"qhat": 0.9, "sizes": [torch.ones(2), 3]},
    }
    plain, tensors = split_tensors(trust, "trust")
    assert json.loads(json.dumps(plain))["score"]["features"] == {"tensor": PREFIX + "trust.score.features"}
    assert set(tensors) == {PREFIX + "trust.score.features", PREFIX + "trust.conformal.sizes.0"}
    back = join_tensors(json.loads(json.dumps(plain)), tensors)
    assert torch.equal(back["score"]["features"], trust["score"]["features"]) and back["score"]["k"] == 10
    assert back["conformal"]["qhat"] == 0.9 and torch.equal(back["conformal"]["sizes"][0], torch.ones(2))
    with pytest.raises(KeyError):
        join_tensors(plain, {})
