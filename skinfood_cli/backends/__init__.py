"""Backends: one interface over the kinds of model file skinfood runs.

base.py          Backend (load, place), LoadedModel, Runner (forward, transform, input layout)
metadata.py      the one metadata schema of checkpoints and exports
registry.py      file -> backend (by suffix), load_model
pytorch.py       checkpoints (.pt): autocast, channels_last, gradients for Grad-CAM
onnx.py          .onnx through ONNX Runtime;   onnx_writer.py: export + int8 (QDQ)
torchscript.py   .torchscript (fp32, x86 int8); torchscript_writer.py, quantize.py: writing them
graph.py         the network as exporters trace it
"""

from skinfood_cli.backends.base import DEFAULT_THRESHOLD, Backend, LoadedModel, Runner
from skinfood_cli.backends.registry import (
    BACKENDS,
    backend_for,
    is_exported,
    load_model,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_THRESHOLD",
    "Backend",
    "LoadedModel",
    "Runner",
    "backend_for",
    "is_exported",
    "load_model",
]
