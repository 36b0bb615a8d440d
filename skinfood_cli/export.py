"""`skinfood export`: a checkpoint -> one ONNX (or TorchScript) file, verified.

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
import io
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from skinfood_cli import __version__
from skinfood_cli.errors import EXIT_SOME_FAILED, MissingExtraError, SkinfoodError, UsageError
from skinfood_cli.backends.onnx import EXPORT_INSTALL, FLOAT_NCHW, ONNX_FORMAT, UINT8_NHWC
from skinfood_cli.backends.torchscript import METADATA_FILE, TORCHSCRIPT_FORMAT

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 18  # loads in ONNX Runtime >= 1.14 and onnxruntime-web
FP32_TOLERANCE = 1e-4  # max |p_export - p_torch| over all classes and photos
INT8_AGREEMENT = 0.99  # top-1 agreement of an int8 export with PyTorch fp32
SCOPE_TOLERANCE = 1e-4  # fp32: max |s_export - s_torch| / max(1, |s_torch|) of the scope score
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
    agreement: float  # top-1
    passed: bool
    criterion: str
    # The scope score output (None: the model has no scope check).
    scope_max_rel_diff: float | None = None
    scope_agreement: float | None = None


@dataclass
class ExportResult:
    path: Path
    format: str
    precision: str
    size_bytes: int
    sha256: str
    sidecar: Path | None
    verification: Verification
    fp32: "ExportResult | None" = None  # the fp32 file an int8 export was quantised from
    seconds: float = 0.0


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
    from skinfood_cli.engine import load_model

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}: choose {' or '.join(FORMATS)}")
    if fmt == "torchscript" and with_preprocessing:
        raise UsageError("--with-preprocessing is for ONNX; drop it or use --format onnx")
    if batch is not None and batch < 1:
        raise UsageError("--batch must be at least 1")
    suffix = Path(model_path).suffix.lower()
    if suffix in (".onnx", ".torchscript"):
        raise UsageError(f"export starts from a PyTorch checkpoint (.pt), not a {suffix} file")
    if fmt == "onnx":
        require_export_extra()
    elif int8:
        from skinfood_cli.backends.quantize import require_quantization

        require_quantization()
    started = time.perf_counter()
    loaded = load_model(model_path)
    meta = build_metadata(loaded, book, with_preprocessing=with_preprocessing, batch=batch)
    output = Path(output) if output else default_output(loaded.path, fmt, int8)
    output.parent.mkdir(parents=True, exist_ok=True)
    photos = verification_photos(loaded, verify_images)

    if fmt == "torchscript":
        meta = {**meta, "format": TORCHSCRIPT_FORMAT, "precision": "int8" if int8 else "fp32"}
        cal = None
        if int8:
            from skinfood_cli.backends.quantize import ENGINE, activation_bits

            cal = calibration_photos(loaded, calibration, calibration_images)
            meta.update(quantized_engine=ENGINE, activation_bits=activation_bits())
            log(f"quantising to int8 (PyTorch FX, {ENGINE} kernels, per-channel) on {len(cal)} calibration photos")
        log(f"tracing to TorchScript: {output}")
        _export_torchscript(loaded, output, meta, cal)
        log(f"verifying against PyTorch fp32 on {photos.count} {photos.source}")
        result = _finish(output, meta["precision"], meta, verify(loaded, output, photos, int8=int8), None)
    else:
        target = fp32_companion(output) if int8 else output
        log(f"exporting with torch.onnx (dynamo), opset {opset}: {target}")
        _export_onnx(loaded, target, meta, opset=opset, batch=batch, with_preprocessing=with_preprocessing)
        log(f"verifying against PyTorch fp32 on {photos.count} {photos.source}")
        fp32 = _finish(target, "fp32", meta, verify(loaded, target, photos, int8=False), None)
        result = fp32
        if int8 and fp32.verification.passed:
            cal = calibration_photos(loaded, calibration, calibration_images)
            log(f"quantising to int8 (QDQ, per-channel) on {len(cal)} calibration photos: {output}")
            _quantize(target, output, loaded, cal, {**meta, "precision": "int8"})
            log(f"verifying int8 against PyTorch fp32 on {photos.count} {photos.source}")
            result = _finish(output, "int8", {**meta, "precision": "int8"},
                             verify(loaded, output, photos, int8=True), fp32)
    result.seconds = time.perf_counter() - started
    return result


def check_passed(result: ExportResult) -> None:
    """Raise (exit 1) when an export, or the fp32 file under an int8 one, failed verification."""
    for r in (result.fp32, result):
        if r is not None and not r.verification.passed:
            v = r.verification
            raise SkinfoodError(
                f"verification failed: {r.path.name} ({r.precision}) does not match PyTorch: {v.criterion} "
                f"not met (max |Δp| {v.max_abs_diff:.2e}, top-1 agreement {v.agreement:.1%} on {v.images} "
                f"{v.source}); the file is kept for inspection, do not ship it",
                exit_code=EXIT_SOME_FAILED,
            )


# --- names and metadata ------------------------------------------------------------


def default_output(checkpoint: Path, fmt: str, int8: bool) -> Path:
    """best.pt -> best[.int8].onnx or best[.int8].torchscript, beside the checkpoint."""
    suffix = (".int8." if int8 else ".") + fmt
    return checkpoint.with_name(checkpoint.stem + suffix)


def fp32_companion(int8_path: Path) -> Path:
    """Where the fp32 file an int8 export is quantised from goes: x.int8.onnx -> x.onnx."""
    name = int8_path.name
    if name.endswith(".int8.onnx"):
        return int8_path.with_name(name[: -len(".int8.onnx")] + ".onnx")
    return int8_path.with_name(int8_path.stem + ".fp32.onnx")


def build_metadata(loaded, book, *, with_preprocessing: bool, batch: int | None) -> dict:
    """Everything a consumer needs to feed the file and read its answer."""
    display = {}
    for lang in ("en", "ko"):
        names = []
        for c in loaded.classes:
            entry = book.get(c, lang) if book is not None else None
            names.append(entry.name if entry else c)
        display[lang] = names
    data = loaded.meta.get("data") or {}
    return {
        "format": ONNX_FORMAT,
        "format_version": 1,
        "classes": list(loaded.classes),
        "display_names": display,
        "image_size": loaded.image_size,
        "resize": f"squash to {loaded.image_size}x{loaded.image_size}, bilinear (aspect ratio not kept)",
        "channel_order": "RGB",
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
        "run": loaded.run_name,
        "metrics": loaded.meta.get("metrics") or {},
        "data": {k: data.get(k) for k in ("root", "layout", "val_source") if k in data},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **_trust_metadata(loaded),
    }


def _trust_metadata(loaded) -> dict:
    """The scope check's cut and the conformal quantile; the graph computes the score itself."""
    trust = loaded.trust or {}
    if "score" not in trust:
        return {}
    return {"trust": {"output": "scope_score", "in_scope": "scope_score >= 0",
                      **{k: trust[k] for k in ("version", "method", "threshold", "scale", "keep") if k in trust},
                      "conformal": trust.get("conformal") or {}}}


def _set_metadata(path: Path, meta: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, json.dumps(value, ensure_ascii=False)
    model.producer_name, model.producer_version = "skinfood", __version__
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))


def _finish(path: Path, precision: str, meta: dict, verification: Verification, fp32) -> ExportResult:
    from skinfood_cli.weights import sha256_of

    sha = sha256_of(path)
    sidecar = None
    if path.suffix == ".onnx":
        sidecar = path.with_name(path.name + ".json")
        record = {**meta, "file": path.name, "sha256": sha, "size_bytes": path.stat().st_size,
                  "verification": asdict(verification)}
        sidecar.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return ExportResult(path=path, format=path.suffix.lstrip("."), precision=precision,
                        size_bytes=path.stat().st_size, sha256=sha, sidecar=sidecar,
                        verification=verification, fp32=fp32)


# --- the exporters ------------------------------------------------------------------


def _export_module(loaded, with_preprocessing: bool):
    """The fp32 network, optionally wrapped to take uint8 pixels and return probabilities."""
    import torch

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


def _example_input(loaded, with_preprocessing: bool, batch: int | None):
    import torch

    n, s = batch or 2, loaded.image_size  # dynamic export traces with >= 2 so batch isn't baked in as 1
    if with_preprocessing:
        return torch.randint(0, 256, (n, s, s, 3), dtype=torch.uint8)
    return torch.randn(n, 3, s, s)


def _export_onnx(loaded, path: Path, meta: dict, *, opset: int, batch: int | None, with_preprocessing: bool) -> None:
    import torch

    module = _export_module(loaded, with_preprocessing)
    example = _example_input(loaded, with_preprocessing, batch)
    arg = "pixels" if with_preprocessing else "x"
    dynamic = None if batch is not None else {arg: {0: torch.export.Dim("batch", min=1, max=4096)}}
    # The exporter narrates on stdout and warns on stderr; the CLI's stdout is
    # for data, so both are kept and shown only if the export fails.
    chatter = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (example,), str(path), dynamo=True, external_data=False, opset_version=opset,
                input_names=["pixels" if with_preprocessing else "input"],
                output_names=["probabilities" if with_preprocessing else "logits",
                              *(["scope_score"] if "trust" in meta else [])],
                dynamic_shapes=dynamic, optimize=True,
            )
    except Exception as exc:
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise SkinfoodError(f"torch.onnx.export failed: {last[:300]} (run with --debug for details)",
                            exit_code=EXIT_SOME_FAILED) from exc
    if path.with_name(path.name + ".data").exists():  # should not happen with external_data=False
        raise SkinfoodError(f"the exporter wrote external data beside {path}; expected one file",
                            exit_code=EXIT_SOME_FAILED)
    _set_metadata(path, meta)


def _export_torchscript(loaded, path: Path, meta: dict, calibration: list[str] | None = None) -> None:
    """Trace and freeze the fp32 network, or its int8 version calibrated on `calibration` photos."""
    import torch

    module = _export_module(loaded, False)
    if calibration is not None:
        from skinfood_cli.data.dataset import eval_transform
        from skinfood_cli.backends.quantize import quantize_module

        transform = eval_transform(loaded.image_size, loaded.mean, loaded.std)
        module = quantize_module(module, _calibration_batches(transform, calibration, loaded.image_size),
                                 _example_input(loaded, False, None))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice: the README says it
        traced = torch.jit.trace(module, _example_input(loaded, False, None))
        traced = torch.jit.freeze(traced.eval())
    extra = {METADATA_FILE: json.dumps(meta, ensure_ascii=False)}
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.save is deprecated": said in the README
        torch.jit.save(traced, str(tmp), _extra_files=extra)
    os.replace(tmp, path)


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
            raise UsageError("int8 needs calibration photos and the run's training data is not on disk: "
                             "pass --calibration DIR (a few hundred typical photos)") from None
    return _spread(paths, limit)


def _spread(items: list, limit: int) -> list:
    if limit <= 0 or len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


class _CalibrationReader:
    """Feeds ONNX Runtime's calibrator the exact arrays the fp32 file's engine feeds its session."""

    def __init__(self, engine, paths: list[str], input_name: str):
        self.engine, self.paths, self.input_name = engine, paths, input_name
        self.rewind()

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: self.engine.module.input_array(batch)}

    def rewind(self):
        self._batches = _calibration_batches(self.engine.transform, self.paths, self.engine.model.image_size)


def _calibration_batches(transform, paths: list[str], image_size: int):
    """Batches of the calibration photos, preprocessed by `transform` as predict does."""
    import torch

    for images in _readable_chunks(paths, image_size):
        yield torch.stack([transform(img) for img in images])


def _readable_chunks(paths: list[str], image_size: int, size: int = 16):
    """The photos among `paths` that load, as predict loads them, in chunks of up to `size` PIL images.

    Unreadable photos are left out; a chunk with none left is skipped.
    """
    from skinfood_cli.data.images import load_image

    for i in range(0, len(paths), size):
        images = []
        for p in paths[i: i + size]:
            with contextlib.suppress(SkinfoodError):
                images.append(load_image(p, draft_size=image_size))
        if images:
            yield images


def _quantize(fp32_path: Path, output: Path, loaded, photos: list[str], meta: dict) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from skinfood_cli.engine import Engine, load_model

    engine = Engine(load_model(fp32_path), device="cpu")
    # Beside the output, not in /tmp: a rename from a tmpfs /tmp into the home folder fails (EXDEV).
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Shape inference + graph optimisation first, as ORT's docs advise:
            # quantising after BN folding and fusion gives better int8 kernels.
            # The scope check's ops (TopK, ...) defeat the symbolic shape inference; ONNX's own suffices.
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=engine.module.has_scope)
            reader = _CalibrationReader(engine, photos, engine.module.input_name)
            quantize_static(
                str(prepared), str(Path(tmp) / "int8.onnx"), reader,
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                # Convolutions, the head and residual adds: where the time is. The
                # input normalisation and softmax stay fp32.
                op_types_to_quantize=["Conv", "Gemm", "MatMul", "Add", "MaxPool", "GlobalAveragePool"],
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
                # The scope score stays fp32: int8 distances to the training photos are too coarse.
                nodes_to_exclude=_scope_only_nodes(prepared),
            )
        os.replace(Path(tmp) / "int8.onnx", output)
    _set_metadata(output, meta)


def _scope_only_nodes(path: Path) -> list[str]:
    """Names of the nodes that feed the `scope_score` output and not the first (logits) output."""
    import onnx

    graph = onnx.load(str(path)).graph
    outputs = [o.name for o in graph.output]
    if "scope_score" not in outputs:
        return []
    producer = {out: node for node in graph.node for out in node.output}

    def ancestors(name: str) -> set[str]:
        seen, stack = set(), [name]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            stack.extend(node.input)
        return seen

    return sorted(ancestors("scope_score") - ancestors(outputs[0]))


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
            images = [make_image(kinds[i % 4], (self.image_size * 2, self.image_size * 3 // 2), rng)[0]
                      for i in range(self.count)]
            for i in range(0, len(images), size):
                yield images[i: i + size]
            return
        yield from _readable_chunks(self.paths, self.image_size, size)


def verification_photos(loaded, limit: int) -> _Photos:
    """The run's validation split when it is on disk, else generated images."""
    from skinfood_cli.evaluation import resolve_eval_set

    with contextlib.suppress(SkinfoodError, OSError):
        paths = [p for p, _ in resolve_eval_set(loaded.meta, loaded.classes, None, "val").samples]
        if paths:
            paths = _spread(paths, limit)
            return _Photos(paths, len(paths), "validation photos", loaded.image_size)
    return _Photos(None, max(8, min(limit, 64)), "generated images", loaded.image_size)


def verify(loaded, path: Path, photos: _Photos, *, int8: bool) -> Verification:
    """Run the export and PyTorch fp32 on the same photos; compare probabilities."""
    import numpy as np

    from skinfood_cli.engine import Engine

    reference = Engine(loaded, device="cpu", precision="fp32")
    run = _file_runner(path)
    diffs, agree, total = [], 0, 0
    scope_diffs, scope_agree = [], 0
    for images in photos.batches():
        logits, s_ref = reference.run_images_scoped(images)
        p_ref = reference.probabilities(logits)
        p_exp, s_exp = run(images)
        diffs.append(float(np.abs(p_ref - p_exp).max()))
        agree += int((p_ref.argmax(1) == p_exp.argmax(1)).sum())
        total += len(images)
        if s_ref is not None:
            if s_exp is None:  # the export lost the scope output: fail loudly
                s_exp = np.full_like(s_ref, np.nan)
            scope_diffs.append(float(np.max(np.abs(s_ref - s_exp) / np.maximum(1.0, np.abs(s_ref)))))
            scope_agree += int((((s_ref >= 0) == (s_exp >= 0)) | (np.abs(s_ref) < SCOPE_BAND)).sum())
    max_diff = max(diffs) if diffs else float("nan")
    agreement = agree / total if total else 0.0
    scoped = bool(scope_diffs)
    scope_diff = max(scope_diffs) if scoped else None
    scope_agreement = scope_agree / total if scoped and total else None
    if int8:
        passed, criterion = agreement >= INT8_AGREEMENT, f"top-1 agreement >= {INT8_AGREEMENT:.0%}"
        if scoped:
            passed = passed and scope_agreement >= SCOPE_AGREEMENT
            criterion += (f", in/out-of-scope agreement >= {SCOPE_AGREEMENT:.0%} (photos within "
                          f"{SCOPE_BAND:g} of the cut aside)")
    else:
        passed, criterion = max_diff <= FP32_TOLERANCE, f"max |Δp| <= {FP32_TOLERANCE:g}"
        if scoped:
            passed = passed and scope_diff <= SCOPE_TOLERANCE
            criterion += f", scope score within {SCOPE_TOLERANCE:g} relative"
    return Verification(images=total, source=photos.source, max_abs_diff=max_diff, agreement=agreement,
                        passed=bool(passed and total > 0), criterion=criterion,
                        scope_max_rel_diff=scope_diff, scope_agreement=scope_agreement)


def _file_runner(path: Path):
    """Calibrated probabilities from an exported file, run by the same engine predict uses."""
    from skinfood_cli.engine import Engine, load_model

    engine = Engine(load_model(path), device="cpu")

    def run(images):
        logits, scope = engine.run_images_scoped(images)
        return engine.probabilities(logits), scope

    return run
