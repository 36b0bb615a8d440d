"""`skinfood train`: options in, `training.train` called, its progress and result printed."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from skinfood_cli.archs import ARCHS
from skinfood_cli.cli.app import (
    DeviceOpt,
    Precision,
    PrecisionOpt,
    TrainFormat,
    command,
)
from skinfood_cli.cli.output import print_json
from skinfood_cli.errors import EXIT_INTERRUPTED
from skinfood_cli.training.config import AUGMENTS, DEFAULTS, FIELDS, TrainConfig, load_config_file, option_help

if TYPE_CHECKING:
    from skinfood_cli.training.result import TrainResult

# --- train -------------------------------------------------------------------------

# The settings with a fixed set of values, as choices the parser checks and --help lists;
# the values come from where training defines them (TrainConfig.check refuses the rest).
Arch = Enum("Arch", {name: name for name in ARCHS}, type=str)
Augment = Enum("Augment", {name: name for name in AUGMENTS}, type=str)
Select = Enum("Select", {name: name for name in ("last", "best")}, type=str)
Leaks = Enum("Leaks", {name: name for name in ("drop", "keep")}, type=str)


def _opt(name: str, *flags: str, **kw):
    """A Typer option whose default and help come from TrainConfig, the one source of both."""
    return typer.Option(kw.pop("default", DEFAULTS.get(name)), *flags, help=option_help(name), **kw)


@command()
def train(
    ctx: typer.Context,
    data: Optional[Path] = typer.Option(None, "--data", "-d", help=option_help("data")),
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        help="A YAML file of settings (a run's own config.yaml works); flags given on the command line override it.",
    ),
    name: Optional[str] = _opt("name", "--name"),
    arch: Arch = _opt("arch", "--arch", case_sensitive=False),
    epochs: Optional[int] = _opt("epochs", "--epochs", show_default=False),
    minutes: Optional[float] = _opt("minutes", "--minutes", show_default=False),
    batch_size: int = _opt("batch_size", "--batch-size"),
    lr: float = _opt("lr", "--lr"),
    backbone_lr_ratio: Optional[float] = _opt("backbone_lr_ratio", "--backbone-lr-ratio", show_default=False),
    weight_decay: float = _opt("weight_decay", "--weight-decay"),
    label_smoothing: float = _opt("label_smoothing", "--label-smoothing"),
    image_size: Optional[int] = _opt("image_size", "--image-size", show_default=False),
    predict_size: Optional[int] = _opt("predict_size", "--predict-size", show_default=False),
    augment: Augment = _opt("augment", "--augment"),
    freeze_epochs: Optional[int] = _opt("freeze_epochs", "--freeze-epochs"),
    freeze_at: int = _opt("freeze_at", "--freeze-at"),
    freeze_backbone: bool = _opt("freeze_backbone", "--freeze-backbone"),
    balance: bool = _opt("balance", "--balance"),
    patience: int = _opt("patience", "--patience"),
    val_fraction: float = _opt("val_fraction", "--val-fraction"),
    seed: int = _opt("seed", "--seed"),
    classes: Optional[str] = _opt("classes", "--classes"),
    pretrained: bool = _opt("pretrained", "--pretrained/--no-pretrained"),
    weights: Optional[Path] = _opt("weights", "--weights"),
    precision: Precision = PrecisionOpt,
    device: Optional[str] = DeviceOpt,
    workers: Optional[int] = _opt("workers", "--workers"),
    strict: bool = _opt("strict", "--strict"),
    sync_bn: bool = _opt("sync_bn", "--sync-bn"),
    coverage: float = _opt("coverage", "--coverage"),
    progressive: Optional[bool] = _opt("progressive", "--progressive/--no-progressive", show_default=False),
    select: Select = _opt("select", "--select"),
    leaks: Leaks = _opt("leaks", "--leaks"),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue the run NAME from its last.pt."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final summary."),
    fmt: TrainFormat = typer.Option(
        TrainFormat.human,
        "--format",
        "-f",
        help="human, or json: one JSON object on stdout at the end (progress stays on stderr).",
    ),
):
    """Fine-tune an ImageNet backbone (ResNet50 by default) on a folder of labelled photos.

    Examples:

        skinfood train --data dermnet/

        skinfood train --data dermnet/ --arch efficientnet-lite0 --minutes 15

        skinfood train --data dermnet/ --classes "Eczema Photos,Psoriasis pictures Lichen Planus and related diseases"

        skinfood train --config "$(skinfood home)/runs/NAME/config.yaml" --seed 1

        skinfood train --resume 20261125-101500

    On several GPUs or machines, the same command under torchrun (see docs/distributed.md):

        torchrun --nproc-per-node 4 -m skinfood_cli train --data dermnet/
    """
    from skinfood_cli.cli.reporting import RichTrainReporter
    from skinfood_cli.errors import UsageError
    from skinfood_cli.training import distributed
    from skinfood_cli.training import resume as resume_run
    from skinfood_cli.training import train as train_run

    given = {k: v for k, v in ctx.params.items() if k in FIELDS}
    given.update(
        {key: value.value for key, value in given.items() if isinstance(value, Enum)},
        precision=precision.value,
        data=str(data) if data else None,
        weights=str(weights) if weights else None,
        classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
    )
    reporter = RichTrainReporter(quiet=quiet)
    # Under torchrun the job stays joined until rank 0 has printed (a no-op alone).
    with distributed.session(exiting=True):
        try:
            if resume:
                result = resume_run(resume, epochs=epochs, minutes=minutes, reporter=reporter)
            else:
                settings = _merge_settings(ctx, given, config)
                if settings.get("data") is None:
                    raise UsageError("--data DIR is required (or --resume NAME to continue a run)")
                result = train_run(TrainConfig(**settings), reporter)
        finally:
            reporter.close()
        if distributed.is_main():
            if fmt is TrainFormat.json:
                print_json(result.to_dict())
            else:
                _print_train_result(result, torchrun=distributed.launched())
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _merge_settings(ctx: typer.Context, given: dict, config: Optional[Path]) -> dict:
    """TrainConfig's defaults, then --config FILE, then the flags the user typed."""
    settings = dict(DEFAULTS)
    if config is not None:
        settings.update(load_config_file(config))
    for key, value in given.items():
        source = ctx.get_parameter_source(key) if key in ctx.params else None
        # By name: Typer may carry its own copy of click, whose enum is not click.core's.
        typed = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
        if typed or key not in settings or (config is None and value is not None):
            settings[key] = value
    return settings


def _print_train_result(result: TrainResult, torchrun: bool = False) -> None:
    from skinfood_cli.cli.output import console

    err = console(stderr=True)
    name = result.run_dir.name
    if result.interrupted:
        err.print(f"[yellow]interrupted:[/yellow] progress saved in {result.last_path}")
        if torchrun:
            err.print(f"continue with: torchrun <the same torchrun options> -m skinfood_cli train --resume {name}")
        else:
            err.print(f"continue with: skinfood train --resume {name}")
        return
    _print_history(result.history)
    if result.history:
        err.print(f"trained {result.epochs_done:.1f} epochs in {result.minutes:.1f} minutes")
    best = result.best
    if best:
        which = "best epoch" if result.select == "best" else "model from epoch"
        err.print(
            f"{which} {best.epoch}: validation accuracy {best.val_acc:.3f}, macro-F1 "
            f"{best.val_macro_f1:.3f}; calibrated temperature {result.temperature:.2f}"
        )
    trust = result.trust
    sets = trust.conformal if trust else None
    if trust and sets:
        if sets.reason:
            err.print(f"[yellow]warning:[/yellow] {sets.reason}")
        else:
            err.print(
                f"scope check: {trust.method}, 95% of validation photos in scope; prediction sets at "
                f"{sets.coverage:.0%} coverage held the true condition for "
                f"{sets.validation_coverage:.0%} of {sets.calibration_size} validation photos "
                f"(mean size {sets.validation_mean_set_size:.2f})"
            )
    if result.skipped:
        err.print(f"{len(result.skipped)} file(s) skipped: listed in {result.run_dir / 'skipped.txt'}")
    err.print(f"model saved to {result.best_path}")
    err.print(f"use it: skinfood evaluate --model {name}   |   skinfood predict --model {name} photo.jpg")


def _print_history(history) -> None:
    from rich.table import Table

    from skinfood_cli.cli.output import console

    if not history:
        return
    table = Table(title="training", show_edge=False, header_style="bold")
    for col in ("epoch", "phase", "px", "train loss", "train acc", "val loss", "val acc", "val macro-F1", "img/s"):
        table.add_column(col, justify="right")
    for h in history:
        table.add_row(
            str(h["epoch"]),
            h["phase"],
            str(h.get("image_size", "")),
            f"{h['train_loss']:.3f}",
            f"{h['train_acc']:.3f}",
            f"{h['val_loss']:.3f}",
            f"{h['val_acc']:.3f}",
            f"{h['val_macro_f1']:.3f}",
            f"{h['images_per_s']:.1f}",
        )
    console(stderr=True).print(table)
