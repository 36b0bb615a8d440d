"""Running an exported `.onnx` file through ONNX Runtime, inside the one engine.

`skinfood export` writes everything a consumer needs into the file's
`metadata_props` (JSON strings: classes, image size, resize rule, mean/std,
temperature, ...). `OnnxBackend.load` reads them back, so `predict`, `evaluate`
and `serve --model file.onnx` preprocess exactly as the checkpoint did and
produce the same records. Only the network runs elsewhere: `OnnxRunner.forward`
takes the engine's batch tensor and returns logits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from skinfood_cli.backends.base import Backend, LoadedModel, Runner
from skinfood_cli.backends.metadata import FLOAT_NCHW, UINT8_NHWC, loaded_from_metadata
from skinfood_cli.data.dataset import eval_transform, pixel_transform
from skinfood_cli.errors import MissingExtraError, ModelError, first_line
from skinfood_cli.model import Precision

ONNX_FORMAT = "skinfood-onnx"
EXPORT_INSTALL = 'pip install ".[export]" in the skinfood checkout'


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError(f"running .onnx files needs ONNX Runtime: {EXPORT_INSTALL}") from None
    return onnxruntime


def read_metadata(props: dict[str, str]) -> dict:
    """metadata_props (str -> JSON str) -> plain values; non-JSON values stay strings."""
    out = {}
    for key, text in props.items():
        try:
            out[key] = json.loads(text)
        except (TypeError, ValueError):
            out[key] = text
    return out


def create_session(path: str | os.PathLike, device=None):
    """An ONNX Runtime session on the CPU, or CUDA when asked for and available."""
    ort = require_onnxruntime()
    providers: list = ["CPUExecutionProvider"]  # names, or (name, options) pairs
    if device is not None and device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise ModelError(f"{path}: not a loadable ONNX model ({first_line(exc)})") from None


class OnnxRunner:
    """Callable network: (B, 3, S, S) float or (B, 3, S, S) uint8 tensor -> logits tensor (B, K)."""

    def __init__(self, session, input_kind: str, outputs_probabilities: bool):
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.input_kind = input_kind
        self.outputs_probabilities = outputs_probabilities
        names = [o.name for o in session.get_outputs()]
        # Exported with a scope check: a second output, `scope_score` (B,). Older files have one output.
        self.scope_index = names.index("scope_score") if "scope_score" in names else None
        dim = session.get_inputs()[0].shape[0]
        self.fixed_batch = dim if isinstance(dim, int) and dim > 0 else None  # `export --batch N`

    def input_array(self, batch):
        """The engine's (B, 3, S, S) tensor as the array the graph takes."""
        x = batch.cpu()
        if self.input_kind == UINT8_NHWC:
            x = x.permute(0, 2, 3, 1)  # (B, 3, S, S) -> (B, S, S, 3)
        return np.ascontiguousarray(x.numpy())

    @property
    def has_scope(self) -> bool:
        return self.scope_index is not None

    def forward(self, batch):
        return self.forward_scoped(batch)[0]

    def forward_scoped(self, batch):
        """(logits (B, K) tensor, scope scores (B,) tensor or None for a file without a scope check)."""
        outs = self._run(self.input_array(batch))
        out = outs[0].astype(np.float32)
        if self.outputs_probabilities:
            # The graph already applied softmax(logits / T): its log is a logit vector
            # whose plain softmax gives the same probabilities back.
            out = np.log(np.clip(out, 1e-30, None))
        scope = None if self.scope_index is None else torch.from_numpy(outs[self.scope_index].astype(np.float32))
        return torch.from_numpy(out), scope

    def _run(self, x):
        """Run `x`; a fixed-batch graph gets it in chunks of its size, the last one zero-padded."""
        n = self.fixed_batch
        if n is None or len(x) == n:
            return self.session.run(None, {self.input_name: x})
        outs = []
        for start in range(0, len(x), n):
            chunk = x[start : start + n]
            pad = n - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), dtype=chunk.dtype)])
            outs.append([o[: n - pad] for o in self.session.run(None, {self.input_name: chunk})])
        return [np.concatenate(parts) for parts in zip(*outs)]


class OnnxBackend(Backend):
    """`.onnx` files from `skinfood export`, run by ONNX Runtime (CPU, or CUDA when installed)."""

    name = "onnx"
    suffixes = (".onnx",)

    def load(self, path: Path) -> LoadedModel:
        """An exported file -> `LoadedModel` whose module is an `OnnxRunner`.

        Raises:
            ModelError: not ONNX, damaged, or an ONNX file without skinfood's metadata.
            MissingExtraError: onnxruntime is not installed.
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        session = create_session(path)
        meta = read_metadata(session.get_modelmeta().custom_metadata_map)
        if meta.get("format") != ONNX_FORMAT or not isinstance(meta.get("classes"), list):
            raise ModelError(
                f"{path}: an ONNX file without skinfood's metadata (class names, image size); "
                "export it with `skinfood export`"
            )
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"{path}: expected one image-batch input, found {[i.shape for i in inputs]}")
        input_kind = meta.get("input", FLOAT_NCHW)
        probs_out = meta.get("output") == "probabilities"
        return loaded_from_metadata(
            path, OnnxRunner(session, input_kind, probs_out), meta, backend=self, probabilities_out=probs_out
        )

    def write(self, loaded: LoadedModel, path: Path, meta: dict, **options) -> None:
        """torch.onnx (dynamo) export with `opset`, `batch` and `with_preprocessing` (onnx_writer.py)."""
        from skinfood_cli.backends.onnx_writer import write_onnx

        write_onnx(loaded, path, meta, **options)

    def quantise(self, source: Path, output: Path, batches, meta: dict) -> None:
        """ONNX Runtime static int8 (QDQ, per-channel weights), the scope score kept fp32 (onnx_writer.py)."""
        from skinfood_cli.backends.onnx_writer import quantize_onnx

        runner = self.place(self.load(source), torch.device("cpu"), "cpu", None)
        quantize_onnx(source, output, runner, batches, meta)

    def place(self, model: LoadedModel, device: torch.device, device_spec: str | None, precision: str | None) -> Runner:
        runner: OnnxRunner = model.module
        if device.type == "cuda":
            runner.session = create_session(model.path, device)
        if runner.session.get_providers()[0] != "CUDAExecutionProvider":
            # The CPU build of onnxruntime (or MPS asked for): it runs on the CPU.
            device = torch.device("cpu")
        pixels = runner.input_kind == UINT8_NHWC
        return Runner(
            device=device,
            # The file fixes its own arithmetic (fp32, or int8 when quantised).
            precision=Precision(model.meta.get("precision", "fp32"), None),
            transform=(
                pixel_transform(model.image_size) if pixels else eval_transform(model.image_size, model.mean, model.std)
            ),
            forward=runner.forward,
            module=runner,
            input_dtype=torch.uint8 if pixels else torch.float32,
            forward_scoped=runner.forward_scoped,
            has_scope=runner.has_scope,
        )
