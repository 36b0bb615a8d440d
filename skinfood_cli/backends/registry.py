"""From a model file or folder to the backend that reads it (timm's reader_factory, for model files)."""

from __future__ import annotations

import os
from pathlib import Path

from skinfood_cli.backends.base import Backend, LoadedModel
from skinfood_cli.backends.onnx import OnnxBackend
from skinfood_cli.backends.pytorch import FolderBackend, TorchBackend
from skinfood_cli.backends.torchscript import TorchScriptBackend

# Suffix -> backend; anything else is read as a checkpoint (which says so if it isn't one).
# A folder is a portable model folder; anything else that isn't .onnx/.torchscript is read
# as a checkpoint (which says so if it isn't one).
FOLDER = FolderBackend()
BACKENDS: tuple[Backend, ...] = (OnnxBackend(), TorchScriptBackend(), FOLDER, TorchBackend())
_BY_SUFFIX = {suffix: backend for backend in BACKENDS for suffix in backend.suffixes}
DEFAULT = BACKENDS[-1]


def backend_for(path: str | os.PathLike) -> Backend:
    """The backend that reads `path`: a folder is a model folder, a file is chosen by its suffix."""
    path = Path(path)
    if path.is_dir():
        return FOLDER
    return _BY_SUFFIX.get(path.suffix.lower(), DEFAULT)


def is_exported(path: str | os.PathLike) -> bool:
    """Whether `path` is an exported file (not a checkpoint or model folder that can be exported)."""
    return backend_for(path).exported


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Load a validated checkpoint (see `checkpoint.load_checkpoint`), or an exported file."""
    path = Path(path)
    return backend_for(path).load(path)


# `skinfood export --format NAME` -> the backend that writes that kind of file.
WRITERS: dict[str, Backend] = {"onnx": BACKENDS[0], "torchscript": BACKENDS[1]}


def writer_for(fmt: str) -> Backend:
    return WRITERS[fmt]
