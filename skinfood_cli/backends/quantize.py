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


def quantize_module(module, batches: Iterable, example, *, engine: str = ENGINE, fp32_leading_convs: int = 0):
    """An int8 copy of the fp32 `module` (eval mode), calibrated on `batches` of (B, 3, S, S).

    Activation ranges come from histograms of the calibration batches (chosen to
    minimise the quantisation error, not just min/max), so they should be photos
    like the ones the model will see (the run's training split). `engine` is the
    kernels the file will run on (`Arch.torchscript_int8_engine`), and the first
    `fp32_leading_convs` convolutions to run stay fp32 (`Arch.int8_fp32_leading_convs`).

    Before FX sees it, the network is put in the form int8 needs:
    - BatchNorms FX can't fuse itself (timm's BatchNormAct2d, which hides its
      activation inside) are folded into their convolutions;
    - TF "same" padding, which FX can't trace, becomes a fixed ZeroPad2d at the
      example's size (the file is traced at that size anyway);
    - a convolution that feeds ReLU6 is calibrated on its output clamped to
      [0, 6]: FX fuses conv + ReLU but not ReLU6, and a range taken before the
      clamp (-80..90 behind a folded BN) leaves 13 levels for [0, 6]. The int8
      conv then saturates at 0 and 6, which is ReLU6 (TFLite does the same).
    """
    import copy

    import torch

    from skinfood_cli.model import conv_consumers, fold_batchnorm

    get_mapping, prepare_fx, convert_fx = require_quantization()
    torch.backends.quantized.engine = engine
    # Both recipes: histogram-calibrated uint8 activations, per-channel int8
    # weights; "onednn"'s keeps all 8 activation bits, "x86"'s keeps 7.
    recipe = "onednn" if activation_bits() == 8 else ENGINE
    net = fold_batchnorm(copy.deepcopy(module).eval().float(), which=lambda bn: type(bn) is not torch.nn.BatchNorm2d)
    net = _static_same_padding(net, example.shape[-1])
    relu6_convs = conv_consumers(net, (torch.nn.ReLU6,))
    names = {m: name for name, m in net.named_modules()}
    with _quiet():
        from torch.ao.quantization.fx.custom_config import PrepareCustomConfig

        custom = PrepareCustomConfig().set_non_traceable_module_classes(_shape_dependent_layers())
        mapping = get_mapping(recipe)
        for kind in _fp32_modules():
            mapping.set_object_type(kind, None)
        for name in _leading_region(net, fp32_leading_convs, example.shape[-1]):
            mapping.set_module_name(name, None)
        prepared = prepare_fx(net, mapping, example_inputs=(example,), prepare_custom_config=custom)
        _clamp_observers(prepared, {names[conv] for conv, _ in relu6_convs}, 0.0, 6.0)
        seen = 0
        with torch.inference_mode():
            for batch in batches:
                prepared(batch.float())
                seen += len(batch)
        if not seen:
            raise UsageError("int8 needs calibration photos, and none of them could be read")
        return convert_fx(prepared).eval()


def _leading_region(net, n: int, image_size: int) -> list[str]:
    """Names of the largest modules that run entirely up to the `n`th convolution: the
    first `n` convolutions with the layers and residual adds between them, so that
    region stays fp32 as one piece (one conversion to int8 at its end, not one per layer)."""
    import torch

    from skinfood_cli.model import blank_forward

    if n <= 0:
        return []
    ran: list = []  # leaf modules in the order they run
    leaves = [m for m in net.modules() if not list(m.children())]
    blank_forward(net, [m.register_forward_hook(lambda m, _i, _o: ran.append(m)) for m in leaves], image_size)
    convs = [i for i, m in enumerate(ran) if isinstance(m, torch.nn.Conv2d)]
    early = set(ran[: convs[n - 1] + 1] if n <= len(convs) else ran)
    names: list[str] = []
    for name, module in net.named_modules():
        if not name or any(name.startswith(f"{done_name}.") for done_name in names):
            continue
        inside = [m for m in module.modules() if not list(m.children())]
        if inside and all(m in early for m in inside):
            names.append(name)
    return names


def _static_same_padding(net, image_size: int):
    """timm's Conv2dSame (TF "same" padding computed from the input's size) -> ZeroPad2d + Conv2d
    with the padding it computes at `image_size`, which FX can trace and quantise."""
    import torch

    from skinfood_cli.model import blank_forward, replace_module

    try:
        from timm.layers.conv2d_same import Conv2dSame
        from timm.layers.padding import pad_same_arg
    except ImportError:
        return net
    sizes: dict = {}
    hooks = [
        m.register_forward_pre_hook(lambda conv, inputs: sizes.__setitem__(conv, list(inputs[0].shape[-2:])))
        for m in net.modules()
        if isinstance(m, Conv2dSame)
    ]
    blank_forward(net, hooks, image_size)
    names = {m: name for name, m in net.named_modules()}
    for conv, size in sizes.items():
        plain = torch.nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            0,
            conv.dilation,
            conv.groups,
            bias=conv.bias is not None,
        )
        plain.load_state_dict(conv.state_dict())
        left, right, top, bottom = pad_same_arg(size, list(conv.kernel_size), list(conv.stride), list(conv.dilation))
        replace_module(net, names[conv], torch.nn.Sequential(torch.nn.ZeroPad2d((left, right, top, bottom)), plain))
    return net


def _clamp_observers(prepared, modules: set[str], low: float, high: float) -> None:
    """Make the output observers of the `modules` (names in `prepared`) record their input clamped."""
    from torch.ao.quantization.observer import HistogramObserver

    clamped_histogram = _clamped_histogram()
    for node in prepared.graph.nodes:
        if node.op != "call_module" or node.target not in modules:
            continue
        for user in node.users:
            observer = prepared.get_submodule(user.target) if user.op == "call_module" else None
            # Only an output that goes nowhere but the activation: a second reader would see clipped values.
            if isinstance(observer, HistogramObserver) and len(user.users) == 1:
                clamped = clamped_histogram(
                    low,
                    high,
                    dtype=observer.dtype,
                    qscheme=observer.qscheme,
                    reduce_range=observer.reduce_range,
                    quant_min=observer.quant_min,
                    quant_max=observer.quant_max,
                )
                setattr(prepared, user.target, clamped)


def _clamped_histogram():
    from torch.ao.quantization.observer import HistogramObserver

    class ClampedHistogram(HistogramObserver):
        """A histogram of the tensor after an activation clamps it to [low, high]."""

        def __init__(self, low: float, high: float, **kwargs):
            super().__init__(**kwargs)
            self.low, self.high = low, high

        def forward(self, x):
            super().forward(x.clamp(self.low, self.high))
            return x

    return ClampedHistogram


def _fp32_modules() -> list:
    """The scope check's modules stay fp32, as in the ONNX int8 file: its inputs are unit-length
    vectors compared by distance, which int8 rounding of a few hundred numbers would blur."""
    from skinfood_cli.trust import ScopeInputs, Score

    return [ScopeInputs, *Score.__subclasses__()]


def _shape_dependent_layers() -> list:
    """timm's TF "same" layers that pad by the input's size, which FX can't trace: those
    `_static_same_padding` leaves (pooling, the export variant) stay fp32 between int8 ones."""
    try:
        from timm.layers.conv2d_same import Conv2dSame, Conv2dSameExport
        from timm.layers.pool2d_same import AvgPool2dSame, MaxPool2dSame
    except ImportError:
        return []
    return [Conv2dSame, Conv2dSameExport, AvgPool2dSame, MaxPool2dSame]


def use_engine(engine: str = ENGINE) -> None:
    """Select the int8 kernels a quantised file was built for (its `quantized_engine`), before running it."""
    import torch

    if engine not in torch.backends.quantized.supported_engines:
        raise UsageError(f"this torch ({torch.__version__}) can't run {engine} int8 files: use the .pt checkpoint")
    torch.backends.quantized.engine = engine


@contextlib.contextmanager
def _quiet():
    # torch.ao.quantization announces its deprecation (and reduce_range's) on
    # every call; the module docstring and docs/export.md say it once.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
