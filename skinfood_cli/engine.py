"""The streaming inference engine shared by predict, evaluate, explain and serve.

    paths -> DataLoader (workers decode ahead) -> batches (B, 3, S, S)
          -> model under inference_mode + autocast, channels_last -> logits (B, K)

Only a few batches are in flight at a time, so memory stays flat however many
photos a folder holds. A photo that fails to load becomes an error result in its
place; the rest of its batch goes on. Results come out in input order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from skinfood_cli.errors import ImageError

DEFAULT_THRESHOLD = 0.5


@dataclass
class LoadedModel:
    """A checkpoint made ready to run: the network plus its preprocessing recipe."""

    path: Path
    module: object  # torch.nn.Module, on the CPU in eval mode
    classes: list[str]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    temperature: float = 1.0
    threshold: float = DEFAULT_THRESHOLD
    meta: dict = field(default_factory=dict)
    # "torch" (a checkpoint), "onnx" (module is an `onnx_model.OnnxRunner`) or
    # "torchscript" (a frozen ScriptModule, fp32 or x86 int8): exported files fix
    # their own arithmetic and carry no gradients.
    backend: str = "torch"
    # The scope check and conformal sets (trust/scope.py): a checkpoint's `trust`
    # dict, or an export's metadata copy of it (its graph computes the score).
    # None: a model from before skinfood had them.
    trust: dict | None = None

    @property
    def run_name(self) -> str:
        return self.meta.get("run_name") or self.path.parent.name

    @property
    def qhat(self) -> float | None:
        """The conformal quantile of the prediction sets, or None without calibrated sets."""
        conformal = (self.trust or {}).get("conformal") or {}
        return float(conformal["qhat"]) if "qhat" in conformal else None


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Load a validated checkpoint (see `checkpoint.load_checkpoint`), or an exported file."""
    from skinfood_cli.checkpoint import load_checkpoint, metadata, model_from_checkpoint

    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from skinfood_cli.backends.onnx import load_onnx_model

        return load_onnx_model(path)
    if path.suffix.lower() == ".torchscript":
        from skinfood_cli.backends.torchscript import load_torchscript_model

        return load_torchscript_model(path)
    ckpt = load_checkpoint(path)
    module = model_from_checkpoint(ckpt)
    meta = metadata(ckpt)
    return LoadedModel(
        path=path,
        module=module,
        classes=list(ckpt["classes"]),
        image_size=int(ckpt["image_size"]),
        mean=tuple(ckpt["mean"]),
        std=tuple(ckpt["std"]),
        temperature=float(ckpt.get("temperature", 1.0)),
        threshold=float(ckpt.get("threshold", DEFAULT_THRESHOLD)),
        meta=meta,
        trust=ckpt.get("trust"),
    )


def loaded_from_metadata(path: Path, module, meta: dict, *, backend: str,
                         probabilities_out: bool = False) -> LoadedModel:
    """An exported file's module and metadata -> `LoadedModel`, or a ModelError saying what's missing."""
    from skinfood_cli.errors import ModelError

    try:
        classes = [str(c) for c in meta["classes"]]
        image_size = int(meta["image_size"])
        mean, std = tuple(float(v) for v in meta["mean"]), tuple(float(v) for v in meta["std"])
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{path}: its metadata lacks valid classes/image_size/mean/std") from None
    return LoadedModel(
        path=path,
        module=module,
        classes=classes,
        image_size=image_size,
        mean=mean,
        std=std,
        # A graph with the tempered softmax built in needs no second temperature.
        temperature=1.0 if probabilities_out else float(meta.get("temperature", 1.0)),
        threshold=float(meta.get("threshold", DEFAULT_THRESHOLD)),
        meta={**meta, "run_name": meta.get("run"), "backend": backend},
        backend=backend,
        trust=meta.get("trust") if isinstance(meta.get("trust"), dict) else None,
    )


@dataclass
class Result:
    """One input's outcome: logits (K,) as a numpy array, or an error message."""

    index: int
    path: str
    logits: object | None = None
    error: str | None = None
    scope: float | None = None  # the scope score (>= 0: in scope); None without a scope check


class _PathDataset:
    """Loads and preprocesses one photo per index; errors travel as strings."""

    def __init__(self, paths: list[str], transform, image_size: int):
        self.paths = paths
        self.transform = transform
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = load_image_for_model(self.paths[index], self.image_size)
            return index, self.transform(image), None
        except ImageError as exc:
            return index, None, str(exc)


def load_image_for_model(path: str, image_size: int):
    from skinfood_cli.data.images import load_image

    return load_image(path, draft_size=image_size)


def _collate(items):
    import torch

    indices = [i for i, t, _ in items if t is not None]
    tensors = [t for _, t, _ in items if t is not None]
    errors = [(i, e) for i, t, e in items if t is None]
    batch = torch.stack(tensors) if tensors else None
    return indices, batch, errors


def _ignore_sigint(_worker_id: int) -> None:
    # Ctrl-C is the main process's to handle; a worker dying of it mid-batch
    # would turn a clean interruption into a "worker exited unexpectedly" error.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers(num_items: int, batch_size: int, device_type: str = "cpu") -> int:
    """Decoding worker processes for `run_paths`.

    None for a handful of photos (forking costs more than it saves). On a CPU
    the convolutions need every core and decoding is ~3% of the work (a 640x480
    JPEG: ~1 ms against ~30 ms of ResNet50 at 224 px), so a decoder process pays
    only with cores to spare: on 2 cores predict ran at 36.6 img/s decoding
    in-process against 31.1 with one worker. A GPU waits on decoding: use more.
    """
    if num_items <= batch_size:
        return 0
    cores = os.cpu_count() or 2
    return min(4, cores // 2) if device_type == "cuda" else min(4, cores // 4)


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
        import torch

        from skinfood_cli.data.dataset import eval_transform, pixel_transform
        from skinfood_cli.model import Precision, resolve_device, resolve_precision

        self.model = model
        self.scoped = None  # trust.ScopedClassifier sharing self.module, for checkpoints with a scope check
        self.device = resolve_device(device)
        self.batch_size = max(1, int(batch_size))
        self.workers = workers
        if model.backend == "onnx":
            from skinfood_cli.backends.onnx import UINT8_NHWC, create_session

            if self.device.type == "cuda":
                model.module.session = create_session(model.path, self.device)
            if model.module.session.get_providers()[0] != "CUDAExecutionProvider":
                # The CPU build of onnxruntime (or MPS asked for): it runs on the CPU.
                self.device = torch.device("cpu")
            # The file fixes its own arithmetic (fp32, or int8 when quantised).
            self.precision = Precision(model.meta.get("precision", "fp32"), None)
            self.module = model.module
            self.transform = (pixel_transform(model.image_size) if model.module.input_kind == UINT8_NHWC
                              else eval_transform(model.image_size, model.mean, model.std))
            return
        self.transform = eval_transform(model.image_size, model.mean, model.std)
        if model.backend == "torchscript":
            self.precision = Precision(model.meta.get("precision", "fp32"), None)
            self.module = self._place_torchscript(device)
            return
        self.precision = resolve_precision(precision, self.device)
        # BN folded into the convolutions, and channels_last, which lets oneDNN /
        # cuDNN pick their fastest convolution kernels.
        from skinfood_cli.model import fold_batchnorm

        self.module = fold_batchnorm(model.module.eval()).to(self.device, memory_format=torch.channels_last)
        if model.trust and "score" in model.trust:
            from skinfood_cli.trust import ScopedClassifier

            self.scoped = ScopedClassifier(self.module, model.trust).to(self.device).eval()

    def _place_torchscript(self, device_spec: str | None):
        """The file's module on this engine's device: int8 runs on the CPU only."""
        import torch

        from skinfood_cli.errors import UsageError
        from skinfood_cli.model import DEVICE_ENV

        if self.precision.name == "int8":
            from skinfood_cli.backends.quantize import use_engine

            if self.device.type != "cpu":
                spec = (device_spec or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
                if spec != "auto":
                    raise UsageError(f"{self.model.path.name} is int8 for x86 CPUs: run it with --device cpu, "
                                     "or use the .pt checkpoint on the GPU")
                self.device = torch.device("cpu")
            use_engine()
            return self.model.module
        if self.device.type == "cpu":
            return self.model.module
        from skinfood_cli.backends.torchscript import load_module

        # Freezing turned the weights into graph constants: only map_location moves them.
        return load_module(self.model.path, self.device)

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    @property
    def has_scope_check(self) -> bool:
        """Whether this model flags photos out of scope (False: trained or exported before the check)."""
        if self.model.backend == "torch":
            return self.scoped is not None
        if self.model.backend == "onnx":
            return self.module.has_scope
        return bool(self.model.trust)  # torchscript: the export writes `trust` only with a scope output

    def forward(self, batch):
        """Logits (B, K) as float32 on the CPU for a preprocessed batch (B, 3, S, S)."""
        import torch

        if self.model.backend == "onnx":
            return self.module.forward(batch)
        if self.model.backend == "torchscript":
            with torch.inference_mode():
                out = self.module(batch.to(self.device, non_blocking=True))
            return (out[0] if isinstance(out, (tuple, list)) else out).float().cpu()
        with torch.inference_mode(), self.precision.autocast(self.device):
            batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            return self.module(batch).float().cpu()

    def forward_scoped(self, batch):
        """(logits (B, K), scope score (B,) or None) as float32 on the CPU for a preprocessed batch.

        The network runs under autocast; the scope score is computed from its
        pooled features in fp32 (a bf16 distance to 2048-d class means is too coarse).
        """
        import torch

        if self.model.backend == "onnx":
            return self.module.forward_scoped(batch)
        if self.model.backend == "torchscript":
            with torch.inference_mode():
                out = self.module(batch.to(self.device, non_blocking=True))
            if isinstance(out, (tuple, list)):  # exported with a scope check: (logits, scope_score)
                return out[0].float().cpu(), out[1].float().cpu()
            return out.float().cpu(), None
        if self.scoped is None:
            return self.forward(batch), None
        from skinfood_cli.trust import pooled_features

        with torch.inference_mode():
            with self.precision.autocast(self.device):
                batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                features, logits = pooled_features(self.module, batch)
            scope = self.scoped.scope_from(features.float(), logits.float())
        return logits.float().cpu(), scope.float().cpu()

    def run_paths(self, paths: Iterable[str]) -> Iterator[Result]:
        """Stream results for `paths`, in order."""
        import torch

        paths = [str(p) for p in paths]
        if not paths:
            return
        workers = (self.workers if self.workers is not None
                   else default_workers(len(paths), self.batch_size, self.device.type))
        loader = torch.utils.data.DataLoader(
            _PathDataset(paths, self.transform, self.model.image_size),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_ignore_sigint if workers else None,
            prefetch_factor=2 if workers else None,
            persistent_workers=False,
        )
        for indices, batch, errors in loader:
            logits, scope = self.forward_scoped(batch) if batch is not None else ([], None)
            logits = logits.numpy() if batch is not None else []
            scope = [None] * len(indices) if scope is None else [float(v) for v in scope]
            out = {i: Result(i, paths[i], logits=row, scope=sc) for i, row, sc in zip(indices, logits, scope)}
            out.update({i: Result(i, paths[i], error=e) for i, e in errors})
            for i in sorted(out):
                yield out[i]

    def run_images(self, images: list) -> "object":
        """Logits (N, K) numpy for already-loaded RGB PIL images (serve, explain)."""
        import torch

        batch = torch.stack([self.transform(img) for img in images])
        return self.forward(batch).numpy()

    def run_images_scoped(self, images: list):
        """(logits (N, K) numpy, scope scores (N,) numpy or None) for loaded RGB PIL images."""
        import torch

        logits, scope = self.forward_scoped(torch.stack([self.transform(img) for img in images]))
        return logits.numpy(), None if scope is None else scope.numpy()

    def probabilities(self, logits):
        """Calibrated probabilities: softmax(logits / T) along the last axis."""
        return softmax(logits, self.model.temperature)


def softmax(logits, temperature: float = 1.0):
    import numpy as np

    z = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-6)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
