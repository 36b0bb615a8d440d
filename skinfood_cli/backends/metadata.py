"""The one metadata schema shared by checkpoints and exported files.

A checkpoint stores its recipe as top-level keys (`checkpoint.metadata`); an export
writes `export_metadata(...)` into the file (ONNX `metadata_props`, TorchScript's
`skinfood.json`, the ONNX sidecar). Both use the same key names, and
`loaded_from_metadata` reads either back into a `LoadedModel`. Files written before
the keys were unified called the run `run`: it is still read.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from skinfood_cli import __version__
from skinfood_cli.backends.base import DEFAULT_THRESHOLD, Backend, LoadedModel
from skinfood_cli.descriptions import LANGUAGES, NOT_A_DIAGNOSIS, display_names
from skinfood_cli.errors import ModelError

# Inputs an exported graph can take (metadata key "input"):
#   float_nchw: (B, 3, S, S) float32, resized and normalised (the checkpoint's own input)
#   uint8_nhwc: (B, S, S, 3) uint8 RGB pixels, resized only (`--with-preprocessing`)
FLOAT_NCHW = "float_nchw"
TORCHSCRIPT_FORMAT = "skinfood-torchscript"  # a .torchscript file's "format"
TORCHSCRIPT_METADATA_FILE = "skinfood.json"  # the extra file a .torchscript carries its metadata in
UINT8_NHWC = "uint8_nhwc"


def export_metadata(
    loaded: LoadedModel, book: Any, *, file_format: str, with_preprocessing: bool = False, batch: int | None = None
) -> dict:
    """Everything a consumer needs to feed an exported file and read its answer."""
    display = {lang: display_names(loaded.classes, book, lang) for lang in LANGUAGES}
    data = loaded.meta.get("data") or {}
    return {
        "format": file_format,
        "format_version": 1,
        "classes": list(loaded.classes),
        "display_names": display,
        "image_size": loaded.image_size,
        "resize": f"squash to {loaded.image_size}x{loaded.image_size}, bilinear (aspect ratio not kept)",
        "channel_order": "RGB",
        "arch": loaded.arch.name,
        # What an app shows beside any answer from this file, in each language.
        "notice": {lang: NOT_A_DIAGNOSIS[lang] for lang in LANGUAGES},
        "input": UINT8_NHWC if with_preprocessing else FLOAT_NCHW,
        "input_layout": "NHWC uint8 0-255" if with_preprocessing else "NCHW float32, (x/255 - mean)/std",
        "mean": list(loaded.mean),
        "std": list(loaded.std),
        "output": "probabilities" if with_preprocessing else "logits",
        "temperature": loaded.temperature,
        "threshold": loaded.threshold,
        "batch": batch if batch is not None else "dynamic",
        "precision": "fp32",
        "skinfood_version": __version__,
        "run_name": loaded.run_name,
        "metrics": loaded.meta.get("metrics") or {},
        "data": {k: data.get(k) for k in ("root", "layout", "val_source") if k in data},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **_trust_metadata(loaded),
    }


def _trust_metadata(loaded: LoadedModel) -> dict:
    """The scope check's cut and the conformal quantile; the graph computes the score itself."""
    trust = loaded.trust or {}
    if "score" not in trust:
        return {}
    return {
        "trust": {
            "output": "scope_score",
            "in_scope": "scope_score >= 0",
            **{k: trust[k] for k in ("version", "method", "threshold", "scale", "keep") if k in trust},
            "conformal": trust.get("conformal") or {},
        }
    }


def loaded_from_metadata(
    path: Path, module: Any, meta: dict, *, backend: Backend, probabilities_out: bool = False
) -> LoadedModel:
    """An exported file's module and metadata -> `LoadedModel`, or a ModelError saying what's missing."""
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
        meta={**meta, "run_name": meta.get("run_name") or meta.get("run"), "backend": backend.name},
        backend=backend,
        trust=meta.get("trust") if isinstance(meta.get("trust"), dict) else None,
    )
