"""The one backend interface, and what every backend hands the engine.

A *backend* knows one kind of model file (a checkpoint, an ONNX file, a TorchScript
file, ...): how to `load` it into a `LoadedModel`, and how to `place` that model on a
device as a `Runner` the engine calls on preprocessed batches. Everything that
differs between kinds (arithmetic, input layout, whether gradients exist, where int8
may run) lives behind these two calls, so the engine, the server and explain ask
the backend instead of comparing names.

Exporting is the other direction: `Writer`s (in the backends that can be written)
turn a checkpoint's `LoadedModel` into a file of their kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from skinfood_cli.archs import Arch, get_arch
from skinfood_cli.checkpoint import DEFAULT_THRESHOLD
from skinfood_cli.model import Precision


@dataclass
class LoadedModel:
    """A model file made ready to run: the network plus its preprocessing recipe."""

    path: Path
    module: Any  # torch.nn.Module on the CPU in eval mode, or a backend's own runner
    classes: list[str]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    temperature: float = 1.0
    threshold: float = DEFAULT_THRESHOLD
    meta: dict = field(default_factory=dict)
    backend: Backend | None = None  # set by the backend that loaded it
    # The scope check and conformal sets (trust/scope.py): a checkpoint's `trust` dict, or
    # an export's metadata copy of it (its graph computes the score). None: a model from
    # before skinfood had them.
    trust: dict | None = None

    @property
    def run_name(self) -> str:
        return self.meta.get("run_name") or self.path.parent.name

    @property
    def arch(self) -> Arch:
        """The backbone's registry entry (models from before skinfood had several are ResNet50s)."""
        return get_arch(self.meta.get("arch"))

    @property
    def qhat(self) -> float | None:
        """The conformal quantile of the prediction sets, or None without calibrated sets.

        A quantile too few validation photos could calibrate is +inf (every set is the
        full list); JSON files (hub folders, export metadata) hold it as null.
        """
        conformal = (self.trust or {}).get("conformal") or {}
        if "qhat" not in conformal:
            return None
        qhat = conformal["qhat"]
        return math.inf if qhat is None else float(qhat)

    @property
    def set_rule(self) -> str:
        """How prediction sets are built from `qhat`: "lac", or "aps" for models that record no rule."""
        return ((self.trust or {}).get("conformal") or {}).get("rule") or "aps"

    @property
    def kind(self) -> str:
        """The backend's name ("torch", "onnx", "torchscript"), for people and /v1/model."""
        return self.backend.name if self.backend is not None else "torch"

    @property
    def supports_gradients(self) -> bool:
        """Whether Grad-CAM can run: exported files fix their arithmetic and carry no gradients."""
        return self.backend is not None and self.backend.supports_gradients


@dataclass
class Runner:
    """A model placed on a device: preprocessed batch (B, 3, S, S) in, float32 CPU logits (B, K) out."""

    device: torch.device
    precision: Precision
    transform: Callable  # PIL image -> the (3, S, S) tensor this runner's `forward` takes
    forward: Callable[[torch.Tensor], torch.Tensor]
    module: Any = None  # what runs: an nn.Module, a ScriptModule or an ONNX session wrapper
    input_dtype: torch.dtype = torch.float32  # uint8 for graphs that take raw pixels
    # (logits (B, K), scope scores (B,) or None): None when the model has no scope check.
    forward_scoped: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]] | None = None
    has_scope: bool = False

    def __post_init__(self) -> None:
        if self.forward_scoped is None:
            forward = self.forward
            self.forward_scoped = lambda batch: (forward(batch), None)

    def example_input(self, n: int, image_size: int) -> torch.Tensor:
        """A batch of zeros in this runner's input layout (for warming kernels up)."""
        return torch.zeros(n, 3, image_size, image_size, dtype=self.input_dtype)


class Backend:
    """One kind of model file. Subclasses set the class attributes and implement `load`/`place`."""

    name: str = ""
    suffixes: tuple[str, ...] = ()  # a subclass may read none by suffix (folders)
    supports_gradients: bool = False
    exported: bool = True  # a file `skinfood export` wrote (not something to export from)

    def load(self, path: Path) -> LoadedModel:
        raise NotImplementedError

    def place(self, model: LoadedModel, device: torch.device, device_spec: str | None, precision: str | None) -> Runner:
        """Put `model` on `device` (already resolved from `device_spec`) with the backend's arithmetic."""
        raise NotImplementedError

    # -- writing (the kinds skinfood exports to) ------------------------------------------

    def write(self, loaded: LoadedModel, path: Path, meta: dict, **options: Any) -> None:
        """Write a checkpoint's `loaded` model to `path` as a file of this kind, with `meta` inside."""
        raise NotImplementedError(f"skinfood does not write {self.name} files")

    def quantise(self, source: Path, output: Path, batches: Callable, meta: dict) -> None:
        """Write an int8 version of the fp32 file `source` to `output`, calibrated on `batches(transform)`."""
        raise NotImplementedError(f"skinfood does not quantise {self.name} files")
