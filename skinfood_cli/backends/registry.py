"""From a model file to the backend that reads it (timm's reader_factory, for model files)."""

from __future__ import annotations

import os
from pathlib import Path

from skinfood_cli.backends.base import Backend, LoadedModel
from skinfood_cli.backends.onnx import OnnxBackend
from skinfood_cli.backends.pytorch import TorchBackend
from skinfood_cli.backends.torchscript import TorchScriptBackend

# Suffix -> backend; anything else is read as a checkpoint (which says so if it isn't one).
BACKENDS: tuple[Backend, ...] = (OnnxBackend(), TorchScriptBackend(), TorchBackend())
_BY_SUFFIX = {suffix: backend for backend in BACKENDS for suffix in backend.suffixes}
DEFAULT = BACKENDS[-1]


def backend_for(path: str | os.PathLike) -> Backend:
    """The backend that reads `path`, chosen by its suffix."""
    return _BY_SUFFIX.get(Path(path).suffix.lower(), DEFAULT)


def is_exported(path: str | os.PathLike) -> bool:
    """Whether `path` is an exported file (not a checkpoint that can be exported again)."""
    return backend_for(path) is not DEFAULT


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Load a validated checkpoint (see `checkpoint.load_checkpoint`), or an exported file."""
    path = Path(path)
    return backend_for(path).load(path)
