"""`export`: what `skinfood export` does, as one call for any caller (the CLI, Python, a server).

    --model -> the checkpoint or folder it names (a run, a file, a folder, hf://)
            -> onnx, torchscript: one verified file (export.py) + the run's MODEL_CARD.md beside it
            -> hub: the portable folder (hub/publish.py): model.safetensors, config.json,
                    README.md (the card) [+ model.onnx, verified]

A file that fails verification does not raise here: the result says so (`passed`),
and `export.check_passed` turns it into exit 1, so the CLI prints what was written
first. It sits above export.py and hub/publish.py because the folder's ONNX file is
an export.py export.
"""

from __future__ import annotations

import os
from typing import Callable

from skinfood_cli.errors import UsageError
from skinfood_cli.export import CALIBRATION_IMAGES, DEFAULT_OPSET, VERIFY_IMAGES, ExportResult, export_model
from skinfood_cli.hub.publish import HubExport, build_hub_folder, default_hub_output
from skinfood_cli.model_card import copy_model_card
from skinfood_cli.sources import resolve_model

HUB_FORMAT = "hub"


def export(
    source: str | os.PathLike | None,
    *,
    fmt: str = "onnx",
    output: str | os.PathLike | None = None,
    int8: bool = False,
    with_onnx: bool = False,
    calibration: str | os.PathLike | None = None,
    calibration_images: int = CALIBRATION_IMAGES,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    with_preprocessing: bool = False,
    verify_images: int = VERIFY_IMAGES,
    book=None,
    log: Callable[[str], None] = lambda _msg: None,
) -> ExportResult | HubExport:
    """Export the model `source` names to a file or a hub folder, verified, and say what was written.

    Args:
        source: a checkpoint, run folder, run name, model folder or hf://ORG/NAME[@REVISION];
            None: the most recently trained run.
        fmt: "onnx" or "torchscript" (one file), or "hub" (the portable folder).
        output: the file to write, or the folder for "hub"; None: beside the checkpoint
            (best[.int8].onnx, ...; hub/ in the run for "hub").
        with_onnx: "hub" only: add the verified model.onnx and its sidecar to the folder.
        calibration, calibration_images, opset, batch, with_preprocessing, verify_images, book, log:
            as `export.export_model` (for "hub", only verify_images, book and log apply).

    Returns:
        `export.ExportResult` for a file, with `card` the run's MODEL_CARD.md copied beside
        it (None when the run has none); `hub.publish.HubExport` for a folder, whose card is
        its README.md. Both have path, format, precision, verification, passed, card, seconds.

    Raises:
        UsageError: options that don't go together.
        ModelError, HubError: no model by that name, or one that does not load.
        MissingExtraError: the export (or hub) extra is needed and not installed.
        SkinfoodError (exit 1): a folder's model.safetensors does not read back as the weights.
    """
    path = resolve_model(source)
    fmt = fmt.lower()
    if fmt == HUB_FORMAT or with_onnx:  # the portable folder (docs/sharing.md)
        if fmt != HUB_FORMAT or int8 or batch is not None or with_preprocessing:
            raise UsageError(
                "--format hub writes fp32 weights (and --with-onnx a plain ONNX file): "
                "--with-onnx goes with --format hub; --int8, --batch and --with-preprocessing don't"
            )
        return build_hub_folder(
            path,
            output or default_hub_output(path),
            with_onnx=with_onnx,
            book=book,
            verify_images=verify_images,
            check=False,
            log=log,
        )
    result = export_model(
        path,
        fmt=fmt,
        output=output,
        int8=int8,
        calibration=calibration,
        calibration_images=calibration_images,
        opset=opset,
        batch=batch,
        with_preprocessing=with_preprocessing,
        verify_images=verify_images,
        book=book,
        log=log,
    )
    result.card = copy_model_card(path, result.path)
    return result
