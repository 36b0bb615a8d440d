"""The one model core: building the network, choosing device and precision.

Every command builds its network through `build_model` (timm, from the registry
entry in archs.py) and runs it under `autocast(device, dtype)`, so training,
prediction and explanation see exactly the same architecture and numerics. The
rest of skinfood reads a network only through timm's common interface:
`forward_features` (B, 3, S, S) -> (B, C, h, w), `forward_head(pre_logits=True)`
-> pooled (B, D), and the classifier `head(model)`: (B, D) -> (B, K).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from skinfood_cli.archs import DEFAULT_ARCH, IMAGENET_MEAN, IMAGENET_STD, get_arch
from skinfood_cli.errors import UsageError, WeightsError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "build_model",
    "head",
    "head_prefix",
    "pooled_features",
    "scope_stage",
    "set_trainable",
    "staged_features",
]

DEVICE_ENV = "SKINFOOD_DEVICE"
DEVICES = "auto, cpu, cuda, cuda:N or mps"  # what --device and $SKINFOOD_DEVICE take


class PrecisionChoice(str, Enum):
    """What --precision takes (the CLI's choices): `resolve_precision` maps it to a dtype per device."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def build_model(num_classes: int, backbone_state: dict | None = None, arch: str = DEFAULT_ARCH, training: bool = False):
    """The `arch` network (timm) with a fresh `num_classes`-way head.

    Args:
        num_classes: outputs of the new linear head (D -> num_classes).
        backbone_state: ImageNet weights in timm's parameter names (weights.py maps
            them); their 1000-way head is dropped since the head is new.
        arch: a name from archs.ARCHS.
        training: add the arch's training regularisation (`Arch.training_kwargs`:
            dropout, stochastic depth). Inert in eval mode; no parameters of its own.

    Raises:
        WeightsError: `backbone_state` does not fit the architecture.
    """
    import timm

    spec = get_arch(arch)
    # exportable: timm picks layers that ONNX and TorchScript can trace (TF "same"
    # padding included). From scratch, zeroing the last BatchNorm of each residual
    # block starts it as the identity, which trains markedly faster (Goyal et al.,
    # 2017); pretrained weights overwrite it anyway.
    kwargs: dict[str, Any] = dict(spec.create_kwargs) | (dict(spec.training_kwargs) if training else {})
    if spec.zero_init_last:
        kwargs["zero_init_last"] = backbone_state is None
    model: Any = timm.create_model(spec.timm_name, pretrained=False, exportable=True, **kwargs)
    # A fresh head with PyTorch's default Linear init (+-1/sqrt(D)), as torchvision's and
    # timm's fine-tuning do: timm's EfficientNet init scales by 1/sqrt(K), sized for
    # 1000 classes, which for K = 3..23 starts with logits of +-20 and a loss of 15.
    model.reset_classifier(num_classes)
    if backbone_state is not None:
        prefix = head_prefix(model)
        state = {k: v for k, v in backbone_state.items() if not k.startswith(prefix)}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise WeightsError(f"the weights do not fit {spec.name}: {str(exc).strip().splitlines()[0]}") from None
        missing = [k for k in missing if not k.startswith(prefix)]
        if missing or unexpected:
            raise WeightsError(
                f"the weights file is not a {spec.name} state dict "
                f"({len(missing)} missing, {len(unexpected)} unexpected keys)"
            )
    return model


def head(model):
    """The network's classifier: pooled features (B, D) -> logits (B, K)."""
    return model.get_classifier()


def head_prefix(model) -> str:
    """The parameter-name prefix of the classifier ("fc." for ResNet, "classifier." for EfficientNet)."""
    return model.pretrained_cfg["classifier"] + "."


def set_trainable(model, *, head_only: bool, kept: tuple[str, ...] = ()) -> None:
    """Put `model` in training mode with only what should learn left learning.

    `head_only`: the classifier alone; else all but the modules named by `kept`
    (prefixes: the first layers `--freeze-at` keeps at their ImageNet weights).
    Frozen means frozen: frozen BatchNorm layers keep their statistics too (eval
    mode). With nothing before them trainable, the kept layers also drop out of
    the backward pass, which is where --freeze-at saves its time.
    """

    def under(name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in kept)

    prefix, classifier = head_prefix(model), head(model)
    for name, p in model.named_parameters():
        p.requires_grad_((not head_only or name.startswith(prefix)) and not under(name))
    model.train()
    for name, module in model.named_modules():
        if module is not model and module is not classifier and (head_only or under(name)):
            module.eval()


def pooled_features(model, x):
    """(features (B, D), logits (B, K)): one forward that keeps the pooled pre-logit features."""
    features = model.forward_head(model.forward_features(x), pre_logits=True)
    return features, head(model)(features)


def scope_stage(model) -> int:
    """The feature stage whose statistics the scope check reads: the one before the last.

    An index into timm's `feature_info` (and `forward_intermediates`): the stride-16
    stage of every backbone here (ResNet50's layer3, EfficientNet-Lite's blocks.4).
    """
    return len(model.feature_info) - 2


def staged_features(model, x, stage: int):
    """(features (B, D), logits (B, K), stage (B, C, h, w)): `pooled_features` that also keeps
    feature stage `stage`'s output, in the same single forward (timm's `forward_intermediates`)."""
    final, (kept,) = model.forward_intermediates(x, indices=[stage])
    features = model.forward_head(final, pre_logits=True)
    return features, head(model)(features), kept


def fold_batchnorm(model, which: Callable[[Any], bool] | None = None):
    """Fold every BatchNorm into the convolution that feeds it, in place, for inference.

    In eval mode BN is an affine map, so conv -> BN equals one conv with scaled
    weights and a bias: one pass over each activation instead of two (~10%
    faster on a CPU), and the form int8 needs (quantising a conv's output before
    a BN that rescales its channels by up to 100x throws most of them away).

    The pairs are found by data flow, not by names (`conv_consumers`), so every
    backbone folds the same way: ResNet's conv{i}/bn{i}, EfficientNet's
    conv_pw/bn1, TF "same"-padding convs. A BN that also applies an activation
    (timm's BatchNormAct2d) leaves that activation in its place. The module
    tree keeps its names (Grad-CAM's layer stays hookable). `which(bn)` picks
    the BNs to fold (default: all). Only for eval: a folded model can't be trained.
    """
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    pairs = conv_consumers(model, (torch.nn.BatchNorm2d,))
    names = {module: name for name, module in model.named_modules()}
    for conv, bn in pairs:
        if not bn.track_running_stats or (which is not None and not which(bn)):
            continue
        replace_module(model, names[conv], fuse_conv_bn_eval(conv, bn))
        rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
        replace_module(model, names[bn], torch.nn.Sequential(*rest) if rest else torch.nn.Identity())
    return model


def conv_consumers(model, kinds: tuple, image_size: int = 64) -> list[tuple]:
    """[(conv, consumer)] for each module of the `kinds` whose input is exactly a Conv2d's
    output, from one forward of a blank image.

    Identity modules pass the tensor itself on, so a consumer behind them still counts.
    """
    import torch

    made: dict[int, torch.nn.Module] = {}  # id(output tensor) -> the conv that made it
    pairs: list[tuple] = []

    def after_conv(conv, _inputs, output):
        made[id(output)] = conv

    def before_consumer(consumer, inputs):
        conv = made.get(id(inputs[0]))
        if conv is not None:
            pairs.append((conv, consumer))

    hooks = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            hooks.append(module.register_forward_hook(after_conv))
        elif isinstance(module, kinds):
            hooks.append(module.register_forward_pre_hook(before_consumer))
    blank_forward(model, hooks, image_size)
    return pairs


def blank_forward(model, hooks: list, image_size: int) -> None:
    """One forward of a blank (1, 3, S, S) image to let the forward `hooks` (handles) see the
    network run; the hooks are removed afterwards, whatever happens."""
    import torch

    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()


def replace_module(model, name: str, module) -> None:
    """Put `module` where the submodule called `name` ("blocks.1.0.conv_dw") is."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def resolve_device(spec: str | None = None):
    """Pick the torch device: CUDA, then Apple MPS, then CPU.

    `spec` (from `--device`) wins over `$SKINFOOD_DEVICE`; both take `DEVICES`. Asking
    for an accelerator that isn't there is an error rather than a silent fall back to a
    CPU that is 50x slower. Under torchrun, `training.distributed.rank_device` then
    gives each process its own GPU.
    """
    import torch

    spec = (spec or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"unknown device {spec!r}: use {DEVICES}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda asked for, but no CUDA GPU is available: use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"no GPU {device.index}: this machine has {torch.cuda.device_count()}")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError("--device mps asked for, but Apple MPS is not available: use --device cpu")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {spec!r}: use {DEVICES}")
    return device


# oneDNN's ISA caps below the first with native bf16 (AVX512_CORE_BF16): a CPU told to
# behave like one of these computes bf16 the slow, emulated way.
_NO_BF16_ISAS = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), within oneDNN's ISA cap if set."""
    import torch

    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() in _NO_BF16_ISAS:
        return False

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


@dataclass(frozen=True)
class Precision:
    """What autocast does on a device: `dtype` None means plain fp32."""

    name: str
    dtype: object | None

    def autocast(self, device):
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)


def resolve_precision(spec: str | None, device) -> Precision:
    """Map `--precision auto|fp32|bf16|fp16` to an autocast dtype for `device`.

    auto: bf16 on GPUs that support it (else fp16), bf16 on CPUs with native
    bf16 (about 3x faster than fp32 for ResNet50 with channels_last; on CPUs
    without it bf16 is emulated and slower, so fp32), fp32 on MPS.
    """
    import torch

    spec = (spec or "auto").lower()
    choices = [c.value for c in PrecisionChoice]
    if spec not in choices:
        raise UsageError(f"unknown precision {spec!r}: choose one of {', '.join(choices)}")
    if spec == "auto":
        if device.type == "cuda":
            spec = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu" and cpu_has_native_bf16():
            spec = "bf16"
        else:
            spec = "fp32"
    if spec == "fp16" and device.type == "cpu":
        raise UsageError("fp16 is for GPUs; on the CPU use --precision bf16 or fp32")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[spec]
    return Precision(spec, dtype)
