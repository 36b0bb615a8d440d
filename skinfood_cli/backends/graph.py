"""The fp32 network as exporters trace it: optionally with preprocessing and softmax built in."""

from __future__ import annotations

import torch

from skinfood_cli.backends.base import LoadedModel


def export_module(loaded: LoadedModel, with_preprocessing: bool) -> torch.nn.Module:
    """The fp32 network, optionally wrapped to take uint8 pixels and return probabilities."""
    net = loaded.module.eval().float()
    if loaded.trust and "score" in loaded.trust:
        from skinfood_cli.trust import ScopedClassifier

        # (logits, scope_score): the scope check runs inside the exported graph.
        net = ScopedClassifier(net, loaded.trust).eval()
    if not with_preprocessing:
        return net

    class WithPreprocessing(torch.nn.Module):
        # (B, S, S, 3) uint8 RGB -> (B, K) probabilities: ToTensor, Normalize and
        # the calibrated softmax(logits / T), so an app needs no maths of its own.
        def __init__(self):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(loaded.mean).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(loaded.std).view(1, 3, 1, 1) * 255.0)
            self.temperature = float(loaded.temperature)

        def forward(self, pixels):
            x = pixels.permute(0, 3, 1, 2).float()
            x = (x - self.mean) / self.std
            out = self.net(x)
            if isinstance(out, tuple):  # (logits, scope_score)
                return torch.softmax(out[0] / self.temperature, dim=-1), out[1]
            return torch.softmax(out / self.temperature, dim=-1)

    return WithPreprocessing().eval()


def example_input(loaded: LoadedModel, with_preprocessing: bool, batch: int | None) -> torch.Tensor:
    """A batch the exporter traces with."""
    n, s = batch or 2, loaded.image_size  # dynamic export traces with >= 2 so batch isn't baked in as 1
    if with_preprocessing:
        return torch.randint(0, 256, (n, s, s, 3), dtype=torch.uint8)
    return torch.randn(n, 3, s, s)
