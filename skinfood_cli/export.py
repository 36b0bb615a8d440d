"""A checkpoint -> one ONNX (or TorchScript) file, verified (`skinfood export` goes through exporting.py).

    best.pt -> fp32 module -> torch.onnx.export(dynamo=True) -> best.onnx
            [-> ONNX Runtime static quantisation (QDQ, per-channel) -> best.int8.onnx]
    best.pt -> fp32 module [-> FX int8, x86 kernels] -> trace, freeze -> best[.int8].torchscript
            -> run the export and PyTorch fp32 on the same photos -> pass / fail

Every export is checked against the PyTorch model it came from, because an
exporter can write a graph that loads and runs but computes something else.
fp32 must match the probabilities to 1e-4; int8 must agree on the top class for
99% of the photos. The file carries its own preprocessing recipe and class names
in `metadata_props`; a JSON sidecar repeats them with the file's sha256 for
runtimes that can't read custom metadata (onnxruntime-web).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from skinfood_cli.backends import LoadedModel, is_exported, load_model
from skinfood_cli.backends.metadata import export_metadata
from skinfood_cli.backends.onnx import EXPORT_INSTALL, ONNX_FORMAT
from skinfood_cli.backends.registry import writer_for
from skinfood_cli.data.images import load_image
from skinfood_cli.errors import (
    EXIT_SOME_FAILED,
    MissingExtraError,
    SkinfoodError,
    UsageError,
)
from skinfood_cli.jsonio import dumps
from skinfood_cli.weights import sha256_of

if TYPE_CHECKING:
    from skinfood_cli.hub.publish import HubExport

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 18  # loads in ONNX Runtime >= 1.14 and onnxruntime-web
FP32_TOLERANCE = 1e-4  # max |p_export - p_torch| over all classes and photos
INT8_AGREEMENT = 0.99  # top-1 agreement of an int8 export with PyTorch fp32, near-ties aside:
# a photo whose two likeliest conditions are within TIE_BAND in fp32 changes top-1 with any
# change of arithmetic (bf16 or int8 alike); counting it would measure the model's indecision,
# not the file's fidelity. Such photos are reported, as the scope check's near-cut ones are.
TIE_BAND = 0.05
SCOPE_TOLERANCE = 1e-4  # fp32: max |s_export - s_torch| / max(1, |s_torch|) of the scope score
# (with the 1 at least 1/scale: a validation spread of a few photos can be tiny, and float32 noise
# in the raw score, divided by it, must not fail an export that computes the same thing)
SCOPE_AGREEMENT = 0.99  # int8: share of photos whose in/out-of-scope decision agrees with PyTorch fp32
# int8 rounding moves the scope score by a few hundredths of a validation spread; a photo
# closer than this to the cut can fall either side in either file, so it is not counted as
# a disagreement (the score scale is one validation spread, trust/scope.py).
SCOPE_BAND = 0.1
VERIFY_IMAGES = 200
CALIBRATION_IMAGES = 300


@dataclass
class Verification:
    """How an export compared with the PyTorch fp32 model on the same photos."""

    images: int
    source: str  # "validation split" or "generated images"
    max_abs_diff: float  # of calibrated probabilities
    agreement: float  # top-1, every photo
    passed: bool
    criterion: str
    # The scope score output (None: the model has no scope check).
    scope_max_rel_diff: float | None = None
    scope_agreement: float | None = None
    # int8: top-1 agreement on the photos whose fp32 top two are TIE_BAND or more apart.
    decisive_agreement: float | None = None
    near_ties: int = 0  # photos set aside from it

    def agreement_text(self) -> str:
        """'97.8%', or with near-ties set aside '97.8%, 100.0% with 2 near-tie(s) aside'."""
        if self.decisive_agreement is None or not self.near_ties:
            return f"{self.agreement:.1%}"
        return f"{self.agreement:.1%}, {self.decisive_agreement:.1%} with {self.near_ties} near-tie(s) aside"


@dataclass
class ExportResult:
    path: Path
    format: str
    precision: str
    size_bytes: int
    sha256: str
    sidecar: Path | None
    verification: Verification
    fp32: ExportResult | None = None  # the fp32 file an int8 export was quantised from
    seconds: float = 0.0
    card: Path | None = None  # the run's MODEL_CARD.md, copied beside the file (exporting.export)

    @property
    def passed(self) -> bool:
        """The file, and the fp32 file under an int8 one, match PyTorch."""
        return all(r.verification.passed for r in (self.fp32, self) if r is not None)


def require_export_extra() -> None:
    missing = []
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MissingExtraError(f"export needs {', '.join(missing)}: {EXPORT_INSTALL}")


def export_model(
    model_path: str | os.PathLike,
    *,
    fmt: str = "onnx",
    output: str | os.PathLike | None = None,
    int8: bool = False,
    calibration: str | os.PathLike | None = None,
    calibration_images: int = CALIBRATION_IMAGES,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    with_preprocessing: bool = False,
    verify_images: int = VERIFY_IMAGES,
    book=None,
    log: Callable[[str], None] = lambda _msg: None,
) -> ExportResult:
    """Export the checkpoint at `model_path` and verify the result.

    Args:
        batch: a fixed batch size; None gives a dynamic batch axis.
        book: descriptions, for the display names written into the metadata.
        log: receives one line per stage, for the CLI to show.

    Raises:
        UsageError: options that don't fit (preprocessing in TorchScript, an exported file as input).
        SkinfoodError (exit 1): the export does not match PyTorch.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}: choose {' or '.join(FORMATS)}")
    if fmt == "torchscript" and with_preprocessing:
        raise UsageError("--with-preprocessing is for ONNX; drop it or use --format onnx")
    if batch is not None and batch < 1:
        raise UsageError("--batch must be at least 1")
    if is_exported(model_path):
        suffix = Path(model_path).suffix.lower()
        raise UsageError(f"export starts from a PyTorch checkpoint (.pt), not a {suffix} file")
    if fmt == "onnx":
        require_export_extra()
    elif int8:
        from skinfood_cli.backends.quantize import require_quantization

        require_quantization()
    started = time.perf_counter()
    loaded = load_model(model_path)
    meta = export_metadata(loaded, book, file_format=ONNX_FORMAT, with_preprocessing=with_preprocessing, batch=batch)
    output = Path(output) if output else default_output(loaded.path, fmt, int8)
    output.parent.mkdir(parents=True, exist_ok=True)
    # int8's calibration photos first: the check then runs on photos the calibration didn't see.
    cal = calibration_photos(loaded, calibration, calibration_images) if int8 else []
    photos = verification_photos(loaded, verify_images, calibrated_on=cal)

    if fmt == "torchscript":
        from skinfood_cli.backends.torchscript_writer import torchscript_metadata

        meta = torchscript_metadata(loaded, meta, int8=int8)
        if int8:
            kernels = meta["quantized_engine"]
            log(f"quantising to int8 (PyTorch FX, {kernels} kernels, per-channel) on {len(cal)} calibration photos")
        log(f"tracing to TorchScript: {output}")
        writer_for("torchscript").write(
            loaded, output, meta, calibration=_calibration_batches(loaded, cal) if int8 else None
        )
        log(f"verifying against PyTorch fp32 on {photos.count} {photos.source}")
        result = _finish(output, meta["precision"], meta, verify(loaded, output, photos, int8=int8), None)
    else:
        target = fp32_companion(output) if int8 else output
        log(f"exporting with torch.onnx (dynamo), opset {opset}: {target}")
        writer = writer_for("onnx")
        writer.write(loaded, target, meta, opset=opset, batch=batch, with_preprocessing=with_preprocessing)
        log(f"verifying against PyTorch fp32 on {photos.count} {photos.source}")
        fp32 = _finish(target, "fp32", meta, verify(loaded, target, photos, int8=False), None)
        result = fp32
        if int8 and fp32.verification.passed:
            log(f"quantising to int8 (QDQ, per-channel) on {len(cal)} calibration photos: {output}")
            writer.quantise(
                target,
                output,
                lambda transform: _photo_batches(transform, cal, loaded.image_size),
                {**meta, "precision": "int8"},
            )
            log(f"verifying int8 against PyTorch fp32 on {photos.count} {photos.source}")
            result = _finish(
                output, "int8", {**meta, "precision": "int8"}, verify(loaded, output, photos, int8=True), fp32
            )
    result.seconds = time.perf_counter() - started
    return result


def check_passed(result: ExportResult | HubExport) -> None:
    """Raise (exit 1) when an export failed verification: the file, the fp32 file under an int8 one,
    or the ONNX file in a hub folder."""
    file = result if isinstance(result, ExportResult) else result.onnx  # a hub folder: its ONNX file, if any
    for r in () if file is None else (file.fp32, file):
        if r is not None and not r.verification.passed:
            v = r.verification
            raise SkinfoodError(
                f"verification failed: {r.path.name} ({r.precision}) does not match PyTorch: {v.criterion} "
                f"not met (max |Δp| {v.max_abs_diff:.2e}, top-1 agreement {v.agreement_text()} on {v.images} "
                f"{v.source}); the file is kept for inspection, do not ship it",
                exit_code=EXIT_SOME_FAILED,
            )


# --- names and metadata ------------------------------------------------------------


def default_output(checkpoint: Path, fmt: str, int8: bool) -> Path:
    """best.pt -> best[.int8].onnx or best[.int8].torchscript, beside the checkpoint."""
    if checkpoint.is_dir():  # a model folder (or a Hub download) as --model
        from skinfood_cli.hub.folder import default_export_path

        return default_export_path(checkpoint, fmt, int8)
    suffix = (".int8." if int8 else ".") + fmt
    return checkpoint.with_name(checkpoint.stem + suffix)


def fp32_companion(int8_path: Path) -> Path:
    """Where the fp32 file an int8 export is quantised from goes: x.int8.onnx -> x.onnx."""
    name = int8_path.name
    if name.endswith(".int8.onnx"):
        return int8_path.with_name(name[: -len(".int8.onnx")] + ".onnx")
    return int8_path.with_name(int8_path.stem + ".fp32.onnx")


def _finish(path: Path, precision: str, meta: dict, verification: Verification, fp32) -> ExportResult:
    sha = sha256_of(path)
    sidecar = None
    if path.suffix == ".onnx":
        sidecar = path.with_name(path.name + ".json")
        record = {
            **meta,
            "file": path.name,
            "sha256": sha,
            "size_bytes": path.stat().st_size,
            "verification": asdict(verification),
        }
        sidecar.write_text(dumps(record, indent=2) + "\n", encoding="utf-8")
    return ExportResult(
        path=path,
        format=path.suffix.lstrip("."),
        precision=precision,
        size_bytes=path.stat().st_size,
        sha256=sha,
        sidecar=sidecar,
        verification=verification,
        fp32=fp32,
    )


# --- int8 --------------------------------------------------------------------------


def calibration_photos(loaded, folder, limit: int) -> list[str]:
    """Up to `limit` photos, evenly spread: from `folder`, else the run's training split."""
    from skinfood_cli.evaluation import resolve_eval_set
    from skinfood_cli.prediction import expand_inputs

    if folder is not None:
        paths = [i.path for i in expand_inputs([str(folder)]) if i.error is None]
        if not paths:
            raise UsageError(f"--calibration {folder}: no image files in it")
    else:
        try:
            paths = [p for p, _ in resolve_eval_set(loaded.meta, loaded.classes, None, "train").samples]
        except SkinfoodError:
            raise UsageError(
                "int8 needs calibration photos and the run's training data is not on disk: "
                "pass --calibration DIR (a few hundred typical photos)"
            ) from None
    return _spread(paths, limit)


def _spread(items: list, limit: int) -> list:
    if limit <= 0 or len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _calibration_batches(loaded: LoadedModel, paths: list[str]):
    """The calibration photos preprocessed as the checkpoint's own engine does."""
    from skinfood_cli.data.dataset import eval_transform

    return _photo_batches(eval_transform(loaded.image_size, loaded.mean, loaded.std), paths, loaded.image_size)


def _photo_batches(transform, paths: list[str], image_size: int):
    """Batches of the photos, preprocessed by `transform` as predict does."""
    for images in _readable_chunks(paths, image_size):
        yield torch.stack([transform(img) for img in images])


def _readable_chunks(paths: list[str], image_size: int, size: int = 16):
    """The photos among `paths` that load, as predict loads them, in chunks of up to `size` PIL images.

    Unreadable photos are left out; a chunk with none left is skipped.
    """
    for i in range(0, len(paths), size):
        images = []
        for p in paths[i : i + size]:
            with contextlib.suppress(SkinfoodError):
                images.append(load_image(p, draft_size=image_size))
        if images:
            yield images


# --- verification ------------------------------------------------------------------


@dataclass
class _Photos:
    paths: list[str] | None  # files on disk, or None for generated images
    count: int
    source: str
    image_size: int

    def batches(self, size: int = 16):
        """PIL images in chunks: the same pixels for the reference and the export."""
        import random

        from skinfood_cli.data.synthetic import make_image

        if self.paths is None:
            rng = random.Random(0)
            kinds = ("acne", "psoriasis", "vitiligo", "eczema")
            images = [
                make_image(kinds[i % 4], (self.image_size * 2, self.image_size * 3 // 2), rng)[0]
                for i in range(self.count)
            ]
            for i in range(0, len(images), size):
                yield images[i : i + size]
            return
        yield from _readable_chunks(self.paths, self.image_size, size)


def verification_photos(loaded, limit: int, calibrated_on: Sequence[str] = ()) -> _Photos:
    """Up to `limit` of the run's photos: its validation split, topped up from its training split
    (not int8's calibration photos); generated images when neither is on disk. A tenth of a few
    hundred photos is ~60, on which a 99% bar would let no photo change class."""
    from skinfood_cli.evaluation import resolve_eval_set

    def split(name: str) -> list[str]:
        with contextlib.suppress(SkinfoodError, OSError):
            return [p for p, _ in resolve_eval_set(loaded.meta, loaded.classes, None, name).samples]
        return []

    val = _spread(split("val"), limit)
    seen = set(calibrated_on)
    train = _spread([p for p in split("train") if p not in seen], limit - len(val)) if len(val) < limit else []
    if not val and not train:
        return _Photos(None, max(8, min(limit, 64)), "generated images", loaded.image_size)
    source = " and ".join(name for name, part in (("validation", val), ("training", train)) if part)
    return _Photos(val + train, len(val) + len(train), f"{source} photos", loaded.image_size)


def verify(loaded, path: Path, photos: _Photos, *, int8: bool) -> Verification:
    """Run the export and PyTorch fp32 on the same photos; compare probabilities."""
    import numpy as np

    from skinfood_cli.engine import Engine

    reference = Engine(loaded, device="cpu", precision="fp32")
    run = _file_runner(path)
    diffs, agree, total = [], 0, 0
    decisive, decisive_agree = 0, 0
    scope_diffs, scope_agree = [], 0
    unit = max(1.0, 1.0 / (float((loaded.trust or {}).get("scale", 1.0)) or 1.0))  # see SCOPE_TOLERANCE
    for images in photos.batches():
        logits, s_ref = reference.run_images_scoped(images)
        p_ref = reference.probabilities(logits)
        p_exp, s_exp = run(images)
        diffs.append(float(np.abs(p_ref - p_exp).max()))
        same = p_ref.argmax(1) == p_exp.argmax(1)
        top2 = np.sort(p_ref, axis=1)[:, -2:]  # every model has two classes or more
        clear = (top2[:, 1] - top2[:, 0]) >= TIE_BAND
        agree += int(same.sum())
        decisive += int(clear.sum())
        decisive_agree += int((same & clear).sum())
        total += len(images)
        if s_ref is not None:
            if s_exp is None:  # the export lost the scope output: fail loudly
                s_exp = np.full_like(s_ref, np.nan)
            scope_diffs.append(float(np.max(np.abs(s_ref - s_exp) / np.maximum(unit, np.abs(s_ref)))))
            scope_agree += int((((s_ref >= 0) == (s_exp >= 0)) | (np.abs(s_ref) < SCOPE_BAND)).sum())
    max_diff = max(diffs) if diffs else float("nan")
    agreement = agree / total if total else 0.0
    scoped = bool(scope_diffs)
    scope_diff = max(scope_diffs) if scoped else None
    scope_agreement = scope_agree / total if scoped and total else None
    # Every photo a near-tie (a barely trained model): nothing decisive to compare, so all count.
    decisive_agreement = decisive_agree / decisive if decisive else agreement
    if int8:
        passed = decisive_agreement >= INT8_AGREEMENT
        criterion = f"top-1 agreement >= {INT8_AGREEMENT:.0%} (near-ties, top two within {TIE_BAND:g}, aside)"
        if scoped:
            passed = passed and (scope_agreement or 0.0) >= SCOPE_AGREEMENT
            criterion += (
                f", in/out-of-scope agreement >= {SCOPE_AGREEMENT:.0%} (photos within {SCOPE_BAND:g} of the cut aside)"
            )
    else:
        passed, criterion = max_diff <= FP32_TOLERANCE, f"max |Δp| <= {FP32_TOLERANCE:g}"
        if scoped:
            passed = passed and scope_diff is not None and scope_diff <= SCOPE_TOLERANCE
            criterion += f", scope score within {SCOPE_TOLERANCE:g} relative"
    return Verification(
        images=total,
        source=photos.source,
        max_abs_diff=max_diff,
        agreement=agreement,
        passed=bool(passed and total > 0),
        criterion=criterion,
        scope_max_rel_diff=scope_diff,
        scope_agreement=scope_agreement,
        decisive_agreement=decisive_agreement if int8 else None,
        near_ties=total - decisive if int8 else 0,
    )


def _file_runner(path: Path):
    """Calibrated probabilities from an exported file, run by the same engine predict uses."""
    from skinfood_cli.engine import Engine

    engine = Engine(load_model(path), device="cpu")

    def run(images):
        logits, scope = engine.run_images_scoped(images)
        return engine.probabilities(logits), scope

    return run
