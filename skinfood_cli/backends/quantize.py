"""int8 through PyTorch's own x86 path: FX graph-mode static quantisation.

    fp32 module -> prepare_fx (conv+BN+ReLU fused, observers on activations)
                -> calibration batches -> convert_fx
                -> quantized::conv2d_relu, quantized::add_relu, ... (fbgemm / oneDNN int8 kernels)

Weights are int8 per output channel, activations uint8 per tensor. On a CPU
with AVX512-VNNI the result runs ResNet50 about twice as fast as bf16 autocast
(benchmarks/run.py: `torchscript_int8_ips`) in a quarter of the size.

Activations get the full 8 bits only where the CPU has VNNI. Without it the
kernels sum pairs of u8*s8 products in int16, which can saturate, so torch's
x86 recipe keeps activations to 7 bits there ("reduce_range"). That costs
accuracy: on the benchmark model the largest probability change went from 0.03
to 0.24 and one validation photo in 18 changed class. A file is verified on the
machine that made it; export it on the kind of CPU it will run on.

`torch.ao.quantization` is deprecated upstream in favour of torchao's PT2E
quantisers, but those fail on ResNet50 with torch 2.14 (torchao 0.18's
X86InductorQuantizer: "Input partition has more than one output node"), while
FX mode still ships in torch and works. A torch without it gets a clear
message pointing at the ONNX Runtime int8 path instead.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterable

from skinfood_cli.errors import UsageError

ENGINE = "x86"  # torch's x86 backend: fbgemm or oneDNN kernels, chosen per op


def require_quantization():
    """The FX quantisation API of this torch, or a UsageError naming the alternative."""
    import torch

    if ENGINE not in torch.backends.quantized.supported_engines:
        raise UsageError(
            f"this torch ({torch.__version__}) has no {ENGINE} int8 kernels: "
            "use --format onnx --int8 (ONNX Runtime) instead"
        )
    try:
        with _quiet():
            from torch.ao.quantization import get_default_qconfig_mapping
            from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    except ImportError:
        raise UsageError(
            f"this torch ({torch.__version__}) no longer has torch.ao.quantization: "
            "use --format onnx --int8 (ONNX Runtime) instead"
        ) from None
    return get_default_qconfig_mapping, prepare_fx, convert_fx


def activation_bits() -> int:
    """8 on CPUs with VNNI (no int16 saturation in the kernels), else 7."""
    import torch

    has_vnni = getattr(torch.cpu, "_is_vnni_supported", lambda: False)()
    return 8 if has_vnni else 7


def quantize_module(module, batches: Iterable, example):
    """An int8 copy of the fp32 `module` (eval mode), calibrated on `batches` of (B, 3, S, S).

    Activation ranges come from histograms of the calibration batches (chosen to
    minimise the quantisation error, not just min/max), so they should be photos
    like the ones the model will see (the run's training split).
    """
    import copy

    import torch

    get_mapping, prepare_fx, convert_fx = require_quantization()
    torch.backends.quantized.engine = ENGINE
    # Both recipes: histogram-calibrated uint8 activations, per-channel int8
    # weights; "onednn"'s keeps all 8 activation bits, "x86"'s keeps 7.
    recipe = "onednn" if activation_bits() == 8 else ENGINE
    with _quiet():
        from torch.ao.quantization.fx.custom_config import PrepareCustomConfig

        custom = PrepareCustomConfig().set_non_traceable_module_classes(_shape_dependent_layers())
        mapping = get_mapping(recipe)
        for kind in _fp32_modules():
            mapping.set_object_type(kind, None)
        prepared = prepare_fx(
            copy.deepcopy(module).eval().float(),
            mapping,
            example_inputs=(example,),
            prepare_custom_config=custom,
        )
        seen = 0
        with torch.inference_mode():
            for batch in batches:
                prepared(batch.float())
                seen += len(batch)
        if not seen:
            raise UsageError("int8 needs calibration photos, and none of them could be read")
        return convert_fx(prepared).eval()


def _fp32_modules() -> list:
    """The scope check's modules stay fp32, as in the ONNX int8 file: its inputs are unit-length
    vectors compared by distance, which int8 rounding of a few hundred numbers would blur."""
    from skinfood_cli.trust import ScopeInputs, Score

    return [ScopeInputs, *Score.__subclasses__()]


def _shape_dependent_layers() -> list:
    """timm's TensorFlow-style 'same' padding layers (EfficientNet-Lite's stem and strided convs) pad
    by the input's size, which FX can't trace: they stay fp32 modules between the int8 ones."""
    try:
        from timm.layers.conv2d_same import Conv2dSame, Conv2dSameExport
        from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
    except ImportError:
        return []
    return [Conv2dSame, Conv2dSameExport, AvgPool2dSame, MaxPool2dSame]


def use_engine() -> None:
    """Select the int8 kernels a quantised file was built for, before running it."""
    import torch

    if ENGINE not in torch.backends.quantized.supported_engines:
        raise UsageError(f"this torch ({torch.__version__}) can't run x86 int8 files: use the .pt checkpoint")
    torch.backends.quantized.engine = ENGINE


@contextlib.contextmanager
def _quiet():
    # torch.ao.quantization announces its deprecation (and reduce_range's) on
    # every call; the module docstring and docs/export.md say it once.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
