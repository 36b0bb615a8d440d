"""Running an exported `.torchscript` file (fp32 or x86 int8) inside the one engine.

`skinfood export --format torchscript [--int8]` writes a traced, frozen module
with skinfood's metadata (classes, image size, mean/std, temperature, precision)
in its `skinfood.json` extra file. `TorchScriptBackend.load` reads both back, so
predict, evaluate and serve preprocess exactly as the checkpoint did and give
the same records. The int8 file is the fastest way to run skinfood on a CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from skinfood_cli.backends.base import Backend, LoadedModel, Runner
from skinfood_cli.backends.metadata import TORCHSCRIPT_FORMAT, TORCHSCRIPT_METADATA_FILE, loaded_from_metadata
from skinfood_cli.data.dataset import eval_transform
from skinfood_cli.errors import ModelError, UsageError, first_line
from skinfood_cli.model import DEVICE_ENV, Precision

METADATA_FILE = TORCHSCRIPT_METADATA_FILE


def load_module(path: str | os.PathLike, device="cpu", extra: dict | None = None):
    """torch.jit.load, quietly (its deprecation is stated in the docs), or a ModelError."""
    try:
        with warnings.catch_warnings(), _native_stderr_silenced():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location=device, _extra_files=extra or {}).eval()
    except Exception as exc:  # RuntimeError from the zip reader or the deserialiser
        raise ModelError(f"{path}: not a loadable TorchScript file ({first_line(exc)})") from None


class TorchScriptBackend(Backend):
    """`.torchscript` files from `skinfood export --format torchscript [--int8]`."""

    name = "torchscript"
    suffixes = (".torchscript",)

    def load(self, path: Path) -> LoadedModel:
        """An exported file -> `LoadedModel`, on the CPU.

        Raises:
            ModelError: not TorchScript, damaged, or a TorchScript file skinfood didn't write.
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        extra = {METADATA_FILE: ""}
        module = load_module(path, "cpu", extra)
        try:
            meta = json.loads(extra[METADATA_FILE] or "{}")
        except ValueError:
            meta = {}
        if not isinstance(meta, dict) or meta.get("format") != TORCHSCRIPT_FORMAT:
            raise ModelError(
                f"{path}: a TorchScript file without skinfood's metadata (class names, image size); "
                "export it with `skinfood export --format torchscript`"
            )
        return loaded_from_metadata(path, module, meta, backend=self)

    def write(self, loaded: LoadedModel, path: Path, meta: dict, **options) -> None:
        """Trace and freeze; with `calibration` batches, PyTorch's x86 int8 first (torchscript_writer.py).

        int8 is decided before tracing (FX quantises the module), so `quantise` has nothing to add.
        """
        from skinfood_cli.backends.torchscript_writer import write_torchscript

        write_torchscript(loaded, path, meta, options.get("calibration"))

    def place(self, model: LoadedModel, device: torch.device, device_spec: str | None, precision: str | None) -> Runner:
        """The file's module on `device`: int8 runs on the CPU only."""
        fixed = Precision(model.meta.get("precision", "fp32"), None)
        if fixed.name == "int8":
            from skinfood_cli.backends.quantize import ENGINE, use_engine

            if device.type != "cpu":
                spec = (device_spec or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
                if spec != "auto":
                    raise UsageError(
                        f"{model.path.name} is int8 for x86 CPUs: run it with --device cpu, "
                        "or use the .pt checkpoint on the GPU"
                    )
                device = torch.device("cpu")
            use_engine(model.meta.get("quantized_engine", ENGINE))
            module = model.module
        elif device.type == "cpu":
            module = model.module
        else:
            # Freezing turned the weights into graph constants: only map_location moves them.
            module = load_module(model.path, device)

        def forward_scoped(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            with torch.inference_mode():
                out = module(batch.to(device, non_blocking=True))
            if isinstance(out, (tuple, list)):  # exported with a scope check: (logits, scope_score)
                return out[0].float().cpu(), out[1].float().cpu()
            return out.float().cpu(), None

        return Runner(
            device=device,
            precision=fixed,
            module=module,
            forward=lambda batch: forward_scoped(batch)[0],
            forward_scoped=forward_scoped,
            # the export writes `trust` into the metadata only with a scope output
            has_scope=bool(model.trust),
            transform=eval_transform(model.image_size, model.mean, model.std),
        )


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send whatever is written to fd 2 while this block runs (the load) nowhere.

    Loading an int8 file makes torch's C++ side print, once per process, that
    quantized tensors are deprecated upstream: true (docs/export.md says so) but
    not the user's concern at every predict, and stderr is for their messages.
    Python-level warnings can't filter it. A failed load still raises, and the
    caller says why.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
