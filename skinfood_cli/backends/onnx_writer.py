"""Writing `.onnx` files: torch.onnx (dynamo) export, skinfood's metadata, ONNX Runtime int8 (QDQ).

Needs the `[export]` extra (onnx, onnxscript, onnxruntime); `export.export_model`
checks for it before calling here.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterator

import torch

from skinfood_cli import __version__
from skinfood_cli.backends.base import LoadedModel, Runner
from skinfood_cli.backends.graph import example_input, export_module
from skinfood_cli.errors import EXIT_SOME_FAILED, SkinfoodError
from skinfood_cli.jsonio import dumps

Batches = Callable[[Callable], Iterator[torch.Tensor]]  # transform -> preprocessed calibration batches


def write_onnx(
    loaded: LoadedModel, path: Path, meta: dict, *, opset: int, batch: int | None, with_preprocessing: bool
) -> None:
    """Export the fp32 network to `path` with `meta` in its metadata_props."""
    module = export_module(loaded, with_preprocessing)
    example = example_input(loaded, with_preprocessing, batch)
    arg = "pixels" if with_preprocessing else "x"
    dynamic = None if batch is not None else {arg: {0: torch.export.Dim("batch", min=1, max=4096)}}
    # The exporter narrates on stdout and warns on stderr; the CLI's stdout is
    # for data, so both are kept and shown only if the export fails.
    chatter = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=True,
                external_data=False,
                opset_version=opset,
                input_names=["pixels" if with_preprocessing else "input"],
                output_names=[
                    "probabilities" if with_preprocessing else "logits",
                    *(["scope_score"] if "trust" in meta else []),
                ],
                dynamic_shapes=dynamic,
                optimize=True,
            )
    except Exception as exc:
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise SkinfoodError(
            f"torch.onnx.export failed: {last[:300]} (run with --debug for details)", exit_code=EXIT_SOME_FAILED
        ) from exc
    if path.with_name(path.name + ".data").exists():  # should not happen with external_data=False
        raise SkinfoodError(
            f"the exporter wrote external data beside {path}; expected one file", exit_code=EXIT_SOME_FAILED
        )
    set_metadata(path, meta)


def set_metadata(path: Path, meta: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, dumps(value)
    model.producer_name, model.producer_version = "skinfood", __version__
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))


class _CalibrationReader:
    """Feeds ONNX Runtime's calibrator the exact arrays the fp32 file's engine feeds its session."""

    def __init__(self, runner: Runner, batches: Batches):
        self.runner, self.batches = runner, batches
        self.input_name = runner.module.input_name
        self.rewind()

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: self.runner.module.input_array(batch)}

    def rewind(self):
        self._batches = self.batches(self.runner.transform)


def quantize_onnx(fp32_path: Path, output: Path, runner: Runner, batches: Batches, meta: dict) -> None:
    """Quantise the fp32 file to int8 QDQ at `output`, calibrated on `batches` of typical photos.

    `runner` is the fp32 file placed on the CPU: its transform and input layout are what the
    calibrator must be fed, exactly as the engine feeds the session.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Beside the output, not in /tmp: a rename from a tmpfs /tmp into the home folder fails (EXDEV).
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Shape inference + graph optimisation first, as ORT's docs advise:
            # quantising after BN folding and fusion gives better int8 kernels.
            # The scope check's ops (TopK, ...) defeat the symbolic shape inference; ONNX's own suffices.
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=runner.has_scope)
            reader = _CalibrationReader(runner, batches)
            quantize_static(
                str(prepared),
                str(Path(tmp) / "int8.onnx"),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                # Convolutions, the head and residual adds: where the time is. The
                # input normalisation and softmax stay fp32. Relu and Clip (ReLU6) are
                # listed so the quantiser drops them into the convolution's output range
                # ([0, 6] for ReLU6) instead of quantising the wide pre-activation values:
                # that alone took a fine-tuned EfficientNet-Lite0 from 73% to 98% top-1
                # agreement with fp32.
                op_types_to_quantize=["Conv", "Gemm", "MatMul", "Add", "MaxPool", "GlobalAveragePool", "Relu", "Clip"],
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
                # The scope score stays fp32: int8 distances to the training photos are too coarse;
                # so do the leading convolutions the arch's registry entry names.
                nodes_to_exclude=_scope_only_nodes(prepared) + _leading_convs(prepared, meta),
            )
        os.replace(Path(tmp) / "int8.onnx", output)
    set_metadata(output, meta)


def _leading_convs(path: Path, meta: dict) -> list[str]:
    """The first `int8_fp32_leading_convs` Conv nodes of the arch in `meta`, in graph order."""
    import onnx

    from skinfood_cli.archs import get_arch

    n = get_arch(meta.get("arch")).int8_fp32_leading_convs
    if not n:
        return []
    return [node.name for node in onnx.load(str(path)).graph.node if node.op_type == "Conv"][:n]


def _scope_only_nodes(path: Path) -> list[str]:
    """Names of the nodes that feed the `scope_score` output and not the first (logits) output."""
    import onnx

    graph = onnx.load(str(path)).graph
    outputs = [o.name for o in graph.output]
    if "scope_score" not in outputs:
        return []
    producer = {out: node for node in graph.node for out in node.output}

    def ancestors(name: str) -> set[str]:
        seen: set[str] = set()
        stack = [name]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            stack.extend(node.input)
        return seen

    return sorted(ancestors("scope_score") - ancestors(outputs[0]))
