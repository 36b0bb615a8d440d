"""The streaming inference engine shared by predict, evaluate, explain and serve.

    paths -> DataLoader (workers decode ahead) -> batches (B, 3, S, S)
          -> the backend's Runner (a checkpoint under autocast, an ONNX session, ...) -> logits (B, K)

The engine knows no file format: `backends` loads the model and places it on a
device, and the engine streams batches through whatever it placed.

Only a few batches are in flight at a time, so memory stays flat however many
photos a folder holds. A photo that fails to load becomes an error result in its
place; the rest of its batch goes on. Results come out in input order.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from skinfood_cli.backends import DEFAULT_THRESHOLD, LoadedModel, load_model
from skinfood_cli.data.images import load_image, load_image_file
from skinfood_cli.errors import ImageError
from skinfood_cli.metrics import softmax
from skinfood_cli.model import resolve_device

__all__ = ["DEFAULT_THRESHOLD", "Engine", "LoadedModel", "Result", "load_model", "softmax"]


@dataclass
class Result:
    """One input's outcome: logits (K,) as a numpy array, or an error message."""

    index: int
    path: str
    logits: object | None = None
    error: str | None = None
    scope: float | None = None  # the scope score (>= 0: in scope); None without a scope check
    quality: list[str] | None = None  # photo-quality hints (data/quality.py); None when not asked for


class _PathDataset:
    """Loads and preprocesses one photo per index; errors travel as strings.

    With `quality`, the photo's quality hints are measured on the decoded image
    (about a millisecond) and travel beside its tensor.
    """

    def __init__(self, paths: list[str], transform, image_size: int, quality: bool = False):
        self.paths = paths
        self.transform = transform
        self.image_size = image_size
        self.quality = quality

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            if not self.quality:
                return index, self.transform(load_image_for_model(self.paths[index], self.image_size)), None, None
            from skinfood_cli.data.quality import photo_quality

            loaded = load_image_file(self.paths[index], draft_size=self.image_size)
            return index, self.transform(loaded.image), None, photo_quality(loaded)
        except ImageError as exc:
            return index, None, str(exc), None


def load_image_for_model(path: str, image_size: int):
    return load_image(path, draft_size=image_size)


def _collate(items):
    indices = [i for i, t, _, _ in items if t is not None]
    tensors = [t for _, t, _, _ in items if t is not None]
    quality = [q for _, t, _, q in items if t is not None]
    errors = [(i, e) for i, t, e, _ in items if t is None]
    batch = torch.stack(tensors) if tensors else None
    return indices, batch, errors, quality


def ignore_sigint(_worker_id: int) -> None:
    # Ctrl-C is the main process's to handle; a worker dying of it mid-batch
    # would turn a clean interruption into a "worker exited unexpectedly" error.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers(device_type: str, *, processes: int = 1, num_items: int | None = None, batch_size: int = 1) -> int:
    """Decoding worker processes for a DataLoader feeding `device_type`: the one rule, for
    inference here and for training (settle_recipe).

    None for a handful of photos (forking costs more than it saves). On a CPU the
    convolutions need every core and decoding is ~3% of the work (a 640x480 JPEG: ~1 ms
    against ~30 ms of ResNet50 at 224 px), so a decoder process pays only with cores to
    spare: on 2 cores predict ran at 36.6 img/s decoding in-process against 31.1 with one
    worker, and training at 9.6 img/s against 7.5. A GPU waits on decoding: one worker
    per core, up to 8. The machine's cores are shared by its `processes` (torchrun's
    LOCAL_WORLD_SIZE).
    """
    if num_items is not None and num_items <= batch_size:
        return 0
    cores = max(1, (os.cpu_count() or 2) // max(1, processes))
    return min(8, cores) if device_type == "cuda" else min(4, cores // 4)


class Engine:
    """Runs a `LoadedModel` on paths or PIL images, in batches, on one device."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: str | None = None,
        precision: str | None = None,
        batch_size: int = 32,
        workers: int | None = None,
    ):
        self.model = model
        self.batch_size = max(1, int(batch_size))
        self.workers = workers
        backend = model.backend
        if backend is None:
            raise ValueError("a LoadedModel must come from a backend (backends.load_model)")
        self.runner = backend.place(model, resolve_device(device), device, precision)
        self.device, self.precision, self.transform = self.runner.device, self.runner.precision, self.runner.transform
        self.module = self.runner.module

    @property
    def supports_gradients(self) -> bool:
        return self.model.supports_gradients

    @property
    def has_scope_check(self) -> bool:
        """Whether this model flags photos out of scope (False: trained or exported before the check)."""
        return self.runner.has_scope

    def example_input(self, n: int):
        """A batch of n zero images in the runner's input layout."""
        return self.runner.example_input(n, self.model.image_size)

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def forward(self, batch):
        """Logits (B, K) as float32 on the CPU for a preprocessed batch (B, 3, S, S)."""
        return self.runner.forward(batch)

    def forward_scoped(self, batch):
        """(logits (B, K), scope score (B,) or None) as float32 on the CPU for a preprocessed batch."""
        assert self.runner.forward_scoped is not None  # Runner sets it
        return self.runner.forward_scoped(batch)

    def run_paths(self, paths: Iterable[str], *, quality: bool = False) -> Iterator[Result]:
        """Stream results for `paths`, in order; with `quality`, each carries its photo-quality hints."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        workers = self.workers
        if workers is None:
            workers = default_workers(self.device.type, num_items=len(paths), batch_size=self.batch_size)
        # _PathDataset is map-style without torch's Dataset base class, which DataLoader's stubs want.
        loader: torch.utils.data.DataLoader = torch.utils.data.DataLoader(
            _PathDataset(paths, self.transform, self.model.image_size, quality),  # type: ignore[arg-type]
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=ignore_sigint if workers else None,
            prefetch_factor=2 if workers else None,
            persistent_workers=False,
        )
        for indices, batch, errors, hints in loader:
            logits, scope = self.forward_scoped(batch) if batch is not None else ([], None)
            logits = logits.numpy() if batch is not None else []
            scope = [None] * len(indices) if scope is None else [float(v) for v in scope]
            out = {
                i: Result(i, paths[i], logits=row, scope=sc, quality=q)
                for i, row, sc, q in zip(indices, logits, scope, hints)
            }
            out.update({i: Result(i, paths[i], error=e) for i, e in errors})
            for i in sorted(out):
                yield out[i]

    def run_images(self, images: list) -> np.ndarray:
        """Logits (N, K) numpy for already-loaded RGB PIL images (serve, explain)."""
        batch = torch.stack([self.transform(img) for img in images])
        return self.forward(batch).numpy()

    def run_images_scoped(self, images: list):
        """(logits (N, K) numpy, scope scores (N,) numpy or None) for loaded RGB PIL images."""
        logits, scope = self.forward_scoped(torch.stack([self.transform(img) for img in images]))
        return logits.numpy(), None if scope is None else scope.numpy()

    def probabilities(self, logits):
        """Calibrated probabilities: softmax(logits / T) along the last axis."""
        return softmax(logits, self.model.temperature)
