"""Checkpoints (`.pt`): the network PyTorch trained, run with autocast on any device.

Placing folds BatchNorm into the convolutions (where the architecture's registry
entry says how) and switches to channels_last, which
lets oneDNN / cuDNN pick their fastest convolution kernels; the precision follows
`--precision` (bf16 on CPUs that have it). The only backend with gradients, so the
only one Grad-CAM runs on.
"""

from __future__ import annotations

from pathlib import Path

import torch

from skinfood_cli.backends.base import DEFAULT_THRESHOLD, Backend, LoadedModel, Runner
from skinfood_cli.checkpoint import load_checkpoint, metadata, model_from_checkpoint
from skinfood_cli.data.dataset import eval_transform
from skinfood_cli.model import fold_batchnorm, resolve_precision


class TorchBackend(Backend):
    name = "torch"
    suffixes: tuple[str, ...] = (".pt", ".pth")
    supports_gradients = True
    exported = False

    def load(self, path: Path) -> LoadedModel:
        return self.from_checkpoint(path, load_checkpoint(path))

    def from_checkpoint(self, path: Path, ckpt: dict) -> LoadedModel:
        """A validated checkpoint dict (from a .pt file or a model folder) -> `LoadedModel`."""
        return LoadedModel(
            path=path,
            module=model_from_checkpoint(ckpt),
            classes=list(ckpt["classes"]),
            image_size=int(ckpt["image_size"]),
            mean=tuple(ckpt["mean"]),
            std=tuple(ckpt["std"]),
            temperature=float(ckpt.get("temperature", 1.0)),
            threshold=float(ckpt.get("threshold", DEFAULT_THRESHOLD)),
            meta=metadata(ckpt),
            backend=self,
            trust=ckpt.get("trust"),
        )

    def place(self, model: LoadedModel, device: torch.device, device_spec: str | None, precision: str | None) -> Runner:
        resolved = resolve_precision(precision, device)
        module = fold_batchnorm(model.module.eval())
        module = module.to(device, memory_format=torch.channels_last)

        def forward(batch: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), resolved.autocast(device):
                batch = batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                return module(batch).float().cpu()

        scoped = None
        if model.trust and "score" in model.trust:
            from skinfood_cli.trust import ScopedClassifier

            scoped = ScopedClassifier(module, model.trust).to(device).eval()

            def forward_scoped(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
                # The network runs under autocast; the scope score is computed from its outputs
                # in fp32 (a bf16 distance in 1280 or 2048 dimensions is too coarse).
                with torch.inference_mode():
                    with resolved.autocast(device):
                        x = batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                        features, logits, stage = scoped.network(x)
                    scope = scoped.scope_from(features, logits, stage)
                return logits.float().cpu(), scope.float().cpu()

        return Runner(
            device=device,
            precision=resolved,
            module=module,
            forward=forward,
            transform=eval_transform(model.image_size, model.mean, model.std),
            forward_scoped=forward_scoped if scoped is not None else None,
            has_scope=scoped is not None,
        )


class FolderBackend(TorchBackend):
    """A portable model folder (config.json + model.safetensors, `skinfood export --format hub`, hf://).

    The weights are PyTorch's, so it runs exactly as a checkpoint does (gradients included);
    only loading differs: safetensors and JSON, never a pickle.
    """

    suffixes: tuple[str, ...] = ()

    def load(self, path: Path) -> LoadedModel:
        from skinfood_cli.hub.folder import load_hub_folder

        return self.from_checkpoint(path, load_hub_folder(path))
