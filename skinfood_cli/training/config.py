"""A run's settings, what they settle to, and what training tells the person: no torch at import.

`TrainConfig` is the one source of training defaults and their help text: the CLI
builds its options from these fields (`option_help`, `DEFAULTS`), `config.yaml` and
the checkpoint store them, and `skinfood train --config FILE` reads them back.
`settle_recipe` is the one place their `auto` and unset values are decided (the
device question imports torch, when it is asked); the Trainer reads its `Recipe`.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from skinfood_cli.data import DEFAULT_VAL_FRACTION
from skinfood_cli.errors import UsageError
from skinfood_cli.model import DEVICES

DEFAULT_EPOCHS = 10  # when neither --epochs nor --minutes is given

# Settings whose default is None, with the type a --config file must give them.
OPTIONAL_KINDS: dict[str, type] = {
    "epochs": int,
    "minutes": float,
    "freeze_epochs": int,
    "workers": int,
    "image_size": int,
    "predict_size": int,
    "backbone_lr_ratio": float,
}
AUGMENTS = ("auto", "light", "strong")
# What the help says of a setting whose default `settle_recipe` decides, rather than restate its rule.
SETTLED = "default: chosen for each run, see docs/recipe.md"


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every setting of a run; stored in config.yaml and in the checkpoint."""

    data: str = field(
        metadata={
            "help": "Dataset folder: DIR/train + DIR/test (DermNet), DIR/train + DIR/val, or DIR/<class>/ folders."
        }
    )
    name: str | None = _opt(None, "Run name (default: a timestamp).")
    arch: str = _opt(
        "resnet50",
        "Backbone: resnet50 (ImageNet weights downloaded once), efficientnet-lite0 (weights installed with "
        "skinfood: no network needed), efficientnet-lite1 or efficientnet-lite2 (with the `lite` extra).",
    )
    epochs: int | None = _opt(None, f"Total epochs (default: {DEFAULT_EPOCHS}, or as many as --minutes allows).")
    minutes: float | None = _opt(
        None,
        "Train to a wall-clock budget: the schedule is laid out over N minutes and ends on time "
        "(with --epochs too, whichever ends first).",
    )
    batch_size: int = _opt(32, "Images per step and process: under torchrun the global batch is N processes x this.")
    lr: float = _opt(
        1e-3,
        "Peak learning rate of the head (the backbone's follows --backbone-lr-ratio). "
        "Not scaled with the number of processes.",
    )
    backbone_lr_ratio: float | None = _opt(
        None,
        f"The backbone's learning rate as a share of --lr once it trains ({SETTLED}); "
        "lower keeps more of the ImageNet features.",
    )
    weight_decay: float = _opt(0.05, "AdamW weight decay.")
    label_smoothing: float = _opt(0.1, "Label smoothing of the cross-entropy loss.")
    freeze_epochs: int | None = _opt(None, f"Epochs training the new head alone first ({SETTLED}).")
    freeze_at: int = _opt(
        0,
        "Layers kept at their ImageNet weights throughout, counted from the input: 0 none, 1 the stem, "
        "2 the stem and the first stage, and so on. Faster epochs (the first layers drop out of the "
        "backward pass), but on DermNet no better in the same time: docs/recipe.md.",
    )
    freeze_backbone: bool = _opt(False, "Train the head only, on backbone features computed once (fast).")
    balance: bool = _opt(False, "Weight the loss by inverse class frequency.")
    patience: int = _opt(0, "Stop after N epochs without a better validation macro-F1 (0: never).")
    image_size: int | None = _opt(
        None, "Side of the square training images, in pixels (default: the backbone's native size, 224 to 260)."
    )
    predict_size: int | None = _opt(
        None,
        "Side of the square the trained model reads whole photos at (evaluate, predict, explain, serve, "
        f"export), in pixels ({SETTLED}: a seventh above --image-size after training on random crops).",
    )
    augment: str = _opt(
        "auto",
        "Training augmentation: light (flips, small turns and shifts), strong (random crops, flips and "
        f"TrivialAugment's colour and shape changes), or auto ({SETTLED}).",
    )
    val_fraction: float = _opt(
        DEFAULT_VAL_FRACTION, "Share of train held out for validation when there is no val/ folder."
    )
    seed: int = _opt(0, "Seed for the split, initialisation and shuffling.")
    classes: list[str] | None = _opt(None, "Comma-separated class folders to use.")
    pretrained: bool = _opt(True, "Start from the backbone's ImageNet weights.")
    weights: str | None = _opt(
        None, "A local ImageNet state dict for --arch to start from (for resnet50: torchvision's file)."
    )
    precision: str = _opt("auto", "Numeric precision.")
    device: str | None = _opt(None, f"Device: {DEVICES}.")
    workers: int | None = _opt(None, f"Image-decoding processes ({SETTLED}).")
    strict: bool = _opt(False, "Stop on unreadable images instead of skipping them.")
    # torchrun on GPUs: BatchNorm statistics over the global batch
    sync_bn: bool = _opt(
        False, "Under torchrun on GPUs: BatchNorm statistics over the global batch (for small per-GPU batches)."
    )
    coverage: float = _opt(
        0.9,
        "Prediction sets hold the true condition for this share of photos like the "
        "training ones (calibrated on validation).",
    )
    progressive: bool | None = _opt(
        None,
        "Progressive resizing: smaller images early in the schedule, --image-size at its end, for more "
        f"epochs in the same time ({SETTLED}).",
    )
    select: str = _opt(
        "last",
        "Which weights become best.pt: last (the end of the schedule) or best (the epoch with the best "
        "validation macro-F1: noisy on a small validation split).",
    )
    leaks: str = _opt(
        "drop",
        "Training photos with a copy in val/test: drop them from training, or keep them (skinfood check lists them).",
    )

    def __post_init__(self) -> None:
        from skinfood_cli.archs import get_arch

        if self.epochs is None and not self.minutes:
            self.epochs = DEFAULT_EPOCHS
        spec = get_arch(self.arch)  # an unknown name is a usage error here, before any work
        self.arch = spec.name
        if self.image_size is None:
            self.image_size = spec.image_size

    def check(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise UsageError("--epochs must be at least 1")
        if self.minutes is not None and not self.minutes > 0:
            raise UsageError("--minutes must be more than 0, like 15")
        if self.select not in ("last", "best"):
            raise UsageError("--select must be last or best")
        if self.batch_size < 2:
            raise UsageError("--batch-size must be at least 2 (BatchNorm needs two images)")
        if not 0 < self.lr < 1:
            raise UsageError("--lr must be between 0 and 1")
        if not 0 <= self.val_fraction < 1:
            raise UsageError("--val-fraction must be in [0, 1)")
        if self.image_size is not None and self.image_size < 32:
            raise UsageError("--image-size must be at least 32")
        if self.predict_size is not None and self.predict_size < 32:
            raise UsageError("--predict-size must be at least 32")
        if self.freeze_epochs is not None and self.freeze_epochs < 0:
            raise UsageError("--freeze-epochs must be 0 or more")
        if self.freeze_at:
            from skinfood_cli.archs import get_arch

            groups = len(get_arch(self.arch).stages)
            if not 0 <= self.freeze_at <= groups:
                raise UsageError(f"--freeze-at must be between 0 and {groups} for {self.arch}")
            if not (self.pretrained or self.weights):
                raise UsageError("--freeze-at keeps ImageNet weights: without them (--no-pretrained) use 0")
        if not 0 < self.coverage < 1:
            raise UsageError("--coverage must be between 0 and 1, like 0.9")
        if self.augment not in AUGMENTS:
            raise UsageError(f"--augment must be one of {', '.join(AUGMENTS)}")
        if self.backbone_lr_ratio is not None and not 0 <= self.backbone_lr_ratio <= 10:
            raise UsageError("--backbone-lr-ratio must be between 0 and 10, like 0.1")
        if self.leaks not in ("drop", "keep"):
            raise UsageError("--leaks must be drop or keep")

    def to_dict(self) -> dict:
        return asdict(self)


FIELDS = {f.name: f for f in fields(TrainConfig)}
DEFAULTS: dict[str, Any] = {name: f.default for name, f in FIELDS.items() if f.default is not MISSING}


def option_help(name: str) -> str:
    """The help text of setting `name` (the CLI shows the default beside it)."""
    return str(FIELDS[name].metadata["help"])


def load_config_file(path: str | Path) -> dict:
    """Settings from a YAML file (a run's own config.yaml works): known keys only.

    Keys a run writes beside its settings (versions, counts) are ignored; a key that is
    neither is refused, so a typo doesn't pass silently.

    Raises:
        UsageError: unreadable file, not a mapping, unknown keys or wrong types.
    """
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"could not read --config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UsageError(f"--config {path} must be a mapping of settings (like a run's config.yaml)")
    unknown = sorted(k for k in raw if k not in FIELDS and k not in RUN_RECORD_KEYS)
    if unknown:
        raise UsageError(
            f"--config {path}: unknown setting(s) {', '.join(map(str, unknown))}; known: {', '.join(FIELDS)}"
        )
    settings = {k: v for k, v in raw.items() if k in FIELDS}
    for key, value in settings.items():
        default = FIELDS[key].default
        kind = type(default) if default not in (MISSING, None) else OPTIONAL_KINDS.get(key)
        if value is not None and kind is not None and not _fits(value, kind):
            raise UsageError(f"--config {path}: {key} should be {kind.__name__}, not {value!r}")
    if isinstance(settings.get("classes"), str):
        settings["classes"] = [c.strip() for c in settings["classes"].split(",") if c.strip()]
    return settings


def _fits(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


# What `_write_run_files` adds to config.yaml beside the settings.
RUN_RECORD_KEYS = {
    "recipe",
    "weights_source",
    "skinfood_version",
    "torch_version",
    "layout",
    "num_train",
    "num_val",
    "world_size",
    "global_batch_size",
    "leak_screen",
}


# Once the head has had its epoch alone, the whole network trains at one rate. A tenth for
# the backbone (fastai's habit) kept EfficientNet-Lite0 next to its frozen ImageNet
# features: 0.53 validation accuracy after 15 minutes on eight DermNet NZ conditions,
# where the full rate was at 0.54 by epoch 3 and, on six, reached 0.744 (frozen: 0.600).
PRETRAINED_BACKBONE_LR_RATIO = 1.0

# Strong augmentation's random crops (35-100% of the photo's area, 82% of its side on
# average) show lesions larger than the whole photo does at the same size, so a model
# trained on them reads whole photos best a seventh larger (FixRes, Touvron et al., 2019):
# 224 -> 256. EfficientNet-Lite0 fine-tuned on DermNet, read at 224 to 288 px: 256 was the
# best or tied best on both validation parts (+0.010, +0.035 accuracy against 224), docs/recipe.md.
CROP_ZOOM = 8 / 7


def predict_size_for(image_size: int, augment: str, head_only: bool) -> int:
    """The side a trained model reads whole photos at: a seventh above its training crops'
    (a multiple of 8) after random-crop training, else the training size itself."""
    if augment != "strong" or head_only:
        return image_size
    return 8 * round(image_size * CROP_ZOOM / 8)


@dataclass(frozen=True)
class Recipe:
    """What a run's `auto` and unset settings came to: settled once, by `settle_recipe`.

    Stored as `recipe` in config.yaml and the checkpoints; the Trainer reads these,
    never the TrainConfig fields they were settled from.
    """

    pretrained: bool  # starts from ImageNet weights (downloaded, packaged or --weights)
    freeze_epochs: int  # epochs training the new head alone first
    backbone_lr_ratio: float  # the backbone's peak rate as a share of the head's
    progressive: bool  # train smaller images first
    augment: str  # "light" or "strong"
    device: str  # "cpu", "cuda", "cuda:N" or "mps"; under torchrun each process takes its own GPU
    precision: str  # "fp32", "bf16" or "fp16"
    workers: int  # image-decoding processes per training process
    predict_size: int  # the side whole photos are read at once trained (validation, calibration, every command)


def settle_recipe(cfg: TrainConfig) -> Recipe:
    """What `auto` and unset settings mean for `cfg` on this machine.

    Pretrained: one epoch on the head alone (so a random head does not wreck the
    features), then the whole network at one rate (docs/recipe.md has the runs),
    full-size images throughout (the features were learned at full size), strong
    augmentation. From scratch: no head phase, progressive resizing (more epochs in
    the same time), the study's light augmentation. --freeze-backbone trains the head
    alone for the whole run, at one size. After strong augmentation's random crops the
    trained model reads whole photos a seventh larger (`predict_size_for`).

    The machine's part: the device (`model.resolve_device`: CUDA, then Apple MPS, then
    the CPU), the fastest precision it computes natively (`model.resolve_precision`),
    and the decoding workers (`engine.default_workers`, the cores shared among
    torchrun's processes on the machine). A resumed run settles these anew, for the
    machine it continues on.

    Raises:
        UsageError: a device or precision this machine can't give.
    """
    from skinfood_cli.engine import default_workers
    from skinfood_cli.model import resolve_device, resolve_precision
    from skinfood_cli.training.distributed import local_world_size

    pretrained = cfg.pretrained or cfg.weights is not None
    freeze = cfg.freeze_epochs if cfg.freeze_epochs is not None else int(pretrained)
    if cfg.freeze_backbone:
        freeze = cfg.epochs if cfg.epochs is not None else 2**31
    ratio = cfg.backbone_lr_ratio
    if ratio is None:
        ratio = PRETRAINED_BACKBONE_LR_RATIO
    progressive = (cfg.progressive if cfg.progressive is not None else not pretrained) and not cfg.freeze_backbone
    augment = cfg.augment if cfg.augment != "auto" else ("strong" if pretrained else "light")
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device).name
    workers = cfg.workers
    if workers is None:
        workers = default_workers(device.type, processes=local_world_size())
    size = cfg.image_size or 224  # set by TrainConfig; the fallback tells mypy
    predict_size = cfg.predict_size or predict_size_for(size, augment, cfg.freeze_backbone)
    return Recipe(pretrained, freeze, ratio, progressive, augment, str(device), precision, workers, predict_size)


class Reporter:
    """What training tells the person at the terminal; the CLI draws it with Rich."""

    def message(self, text: str) -> None: ...
    def scan(self, done: int, total: int) -> None: ...
    def skipped(self, items: list[tuple[str, str]]) -> None: ...
    def epoch_start(self, epoch: int, epochs: int | None, steps: int, phase: str) -> None: ...
    def step(self, step: int, steps: int, loss: float, acc: float, images_per_s: float) -> None: ...
    def epoch_end(self, row: dict) -> None: ...
    def warning(self, text: str) -> None: ...
