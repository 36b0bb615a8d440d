"""Nested dicts that hold tensors (a checkpoint's `trust`) <-> JSON plus flat safetensors keys.

A model folder keeps every tensor in model.safetensors and every other value in
config.json. `split_tensors` swaps each tensor in a nested dict for a marker
`{"tensor": KEY}` and returns the tensors by KEY (prefixed, so they never collide with
the network's weights); `join_tensors` puts them back. Plain data on both sides, no pickle.
"""

from __future__ import annotations

from typing import Any

import torch

PREFIX = "skinfood."  # safetensors keys of tensors that are not the network's weights
MARKER = "tensor"


def split_tensors(value: Any, path: str) -> tuple[Any, dict[str, torch.Tensor]]:
    """(value with tensors replaced by markers, {safetensors key: tensor})."""
    if isinstance(value, torch.Tensor):
        key = PREFIX + path
        return {MARKER: key}, {key: value.detach().cpu().contiguous()}
    if isinstance(value, dict):
        out, tensors = {}, {}
        for k, v in value.items():
            out[k], found = split_tensors(v, f"{path}.{k}")
            tensors.update(found)
        return out, tensors
    if isinstance(value, (list, tuple)):
        items, tensors = [], {}
        for i, v in enumerate(value):
            item, found = split_tensors(v, f"{path}.{i}")
            items.append(item)
            tensors.update(found)
        return items, tensors
    return value, {}


def join_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `split_tensors`; a marker whose tensor is missing raises KeyError."""
    if isinstance(value, dict):
        if set(value) == {MARKER} and isinstance(value[MARKER], str):
            return tensors[value[MARKER]]
        return {k: join_tensors(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [join_tensors(v, tensors) for v in value]
    return value
