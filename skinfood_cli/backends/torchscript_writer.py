"""Writing `.torchscript` files: trace and freeze the fp32 network, or its x86 int8 version."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable

import torch

from skinfood_cli.backends.base import LoadedModel
from skinfood_cli.backends.graph import example_input, export_module
from skinfood_cli.backends.metadata import TORCHSCRIPT_FORMAT
from skinfood_cli.backends.metadata import TORCHSCRIPT_METADATA_FILE as METADATA_FILE
from skinfood_cli.jsonio import dumps


def torchscript_metadata(loaded: LoadedModel, meta: dict, *, int8: bool) -> dict:
    """`meta` as a TorchScript file records it: its format and precision and, for int8, the
    kernels `write_torchscript` quantises for and the activation bits (its loader selects the same)."""
    out = {**meta, "format": TORCHSCRIPT_FORMAT, "precision": "int8" if int8 else "fp32"}
    if int8:
        from skinfood_cli.backends.quantize import activation_bits

        out.update(quantized_engine=loaded.arch.torchscript_int8_engine, activation_bits=activation_bits())
    return out


def write_torchscript(
    loaded: LoadedModel, path: Path, meta: dict, calibration: Iterable[torch.Tensor] | None = None
) -> None:
    """Trace and freeze the fp32 network, or its int8 version calibrated on `calibration` batches."""
    module = export_module(loaded, False)
    if calibration is not None:
        from skinfood_cli.backends.quantize import quantize_module

        module = quantize_module(
            module,
            calibration,
            example_input(loaded, False, None),
            engine=loaded.arch.torchscript_int8_engine,
            fp32_leading_convs=loaded.arch.int8_fp32_leading_convs,
        )
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice: docs/export.md says it
        traced = torch.jit.trace(module, example_input(loaded, False, None))
        traced = torch.jit.freeze(traced.eval())
    extra = {METADATA_FILE: dumps(meta)}
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.save is deprecated": said in docs/export.md
        torch.jit.save(traced, str(tmp), _extra_files=extra)
    os.replace(tmp, path)
