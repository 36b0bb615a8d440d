"""`skinfood train`: options in, `training.train` called, its progress and result printed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from skinfood_cli.cli.app import (
    DeviceOpt,
    Precision,
    PrecisionOpt,
    command,
)
from skinfood_cli.errors import EXIT_INTERRUPTED


# --- train -------------------------------------------------------------------------


@command()
def train(
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset folder: DIR/train + DIR/test "
                                        "(DermNet), DIR/train + DIR/val, or DIR/<class>/ folders."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: a timestamp)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Total epochs (default: 10)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per step and process: under torchrun "
                                   "the global batch is N processes x this."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate of the head; the backbone gets a tenth. "
                             "Not scaled with the number of processes."),
    image_size: int = typer.Option(224, "--image-size", help="Side of the square model input, in pixels."),
    freeze_epochs: Optional[int] = typer.Option(None, "--freeze-epochs", help="Epochs training the new "
                                                "head alone first (default: 1, or 0 with --no-pretrained)."),
    freeze_backbone: bool = typer.Option(False, "--freeze-backbone", help="Train the head only, on backbone "
                                         "features computed once (fast)."),
    balance: bool = typer.Option(False, "--balance", help="Weight the loss by inverse class frequency."),
    patience: int = typer.Option(0, "--patience", help="Stop after N epochs without a better validation "
                                 "macro-F1 (0: never)."),
    val_fraction: float = typer.Option(0.15, "--val-fraction", help="Share of train held out for validation "
                                       "when there is no val/ folder."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, initialisation and shuffling."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated class folders to use."),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="Start from ImageNet weights "
                                    "(downloaded once)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="A local torchvision ResNet50 state dict "
                                           "to start from."),
    precision: Precision = PrecisionOpt,
    device: Optional[str] = DeviceOpt,
    workers: Optional[int] = typer.Option(None, "--workers", help="Image-decoding processes (default: sized "
                                          "to the machine)."),
    strict: bool = typer.Option(False, "--strict", help="Stop on unreadable images instead of skipping them."),
    sync_bn: bool = typer.Option(False, "--sync-bn", help="Under torchrun on GPUs: BatchNorm statistics over the "
                                 "global batch (for small per-GPU batches)."),
    coverage: float = typer.Option(0.9, "--coverage", help="Prediction sets hold the true condition for this "
                                   "share of photos like the training ones (calibrated on validation)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue the run NAME from its last.pt."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final summary."),
):
    """Fine-tune ResNet50 on a folder of labelled photos.

    Examples:

        skinfood train --data dermnet/

        skinfood train --data dermnet/ --classes "Eczema Photos,Psoriasis pictures Lichen Planus and related diseases"

        skinfood train --resume 20261125-101500

    On several GPUs or machines, the same command under torchrun (see the README):

        torchrun --nproc-per-node 4 -m skinfood_cli train --data dermnet/
    """
    from skinfood_cli.training import distributed
    from skinfood_cli.errors import UsageError
    from skinfood_cli.cli.reporting import RichTrainReporter
    from skinfood_cli.training.trainer import TrainConfig
    from skinfood_cli.training.trainer import resume as resume_run
    from skinfood_cli.training.trainer import train as train_run

    reporter = RichTrainReporter(quiet=quiet)
    # Under torchrun the job stays joined until rank 0 has printed (a no-op alone).
    with distributed.session(exiting=True):
        try:
            if resume:
                result = resume_run(resume, epochs=epochs, reporter=reporter)
            else:
                if data is None:
                    raise UsageError("--data DIR is required (or --resume NAME to continue a run)")
                cfg = TrainConfig(
                    data=str(data), name=name, epochs=10 if epochs is None else epochs, batch_size=batch_size,
                    lr=lr, image_size=image_size, freeze_epochs=freeze_epochs, freeze_backbone=freeze_backbone,
                    balance=balance, patience=patience, val_fraction=val_fraction, seed=seed,
                    classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
                    pretrained=pretrained, weights=str(weights) if weights else None,
                    precision=precision.value, device=device, workers=workers, strict=strict, sync_bn=sync_bn,
                    coverage=coverage)
                result = train_run(cfg, reporter)
        finally:
            reporter.close()
        if distributed.is_main():
            _print_train_result(result, torchrun=distributed.launched())
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _print_train_result(result, torchrun: bool = False) -> None:
    from skinfood_cli.output import console

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
    if result.best:
        b = result.best
        err.print(f"best epoch {b['epoch']}: validation accuracy {b['val_acc']:.3f}, macro-F1 "
                  f"{b['val_macro_f1']:.3f}; calibrated temperature {result.temperature:.2f}, "
                  f"uncertain below {result.threshold:.0%}")
    trust = result.trust or {}
    conformal = trust.get("conformal") or {}
    if conformal.get("reason"):
        err.print(f"[yellow]warning:[/yellow] {conformal['reason']}")
    elif conformal:
        err.print(f"scope check: {trust['method']}, 95% of validation photos in scope; prediction sets at "
                  f"{conformal['coverage']:.0%} coverage held the true condition for "
                  f"{conformal['validation_coverage']:.0%} of {conformal['calibration_size']} validation photos "
                  f"(mean size {conformal['validation_mean_set_size']:.2f})")
    if result.skipped:
        err.print(f"{len(result.skipped)} file(s) skipped: listed in {result.run_dir / 'skipped.txt'}")
    err.print(f"model saved to {result.best_path}")
    err.print(f"use it: skinfood evaluate --model {name}   |   skinfood predict --model {name} photo.jpg")


def _print_history(history) -> None:
    from rich.table import Table

    from skinfood_cli.output import console

    if not history:
        return
    table = Table(title="training", show_edge=False, header_style="bold")
    for col in ("epoch", "phase", "train loss", "train acc", "val loss", "val acc", "val macro-F1", "img/s"):
        table.add_column(col, justify="right")
    for h in history:
        table.add_row(str(h["epoch"]), h["phase"], f"{h['train_loss']:.3f}", f"{h['train_acc']:.3f}",
                      f"{h['val_loss']:.3f}", f"{h['val_acc']:.3f}", f"{h['val_macro_f1']:.3f}",
                      f"{h['images_per_s']:.1f}")
    console(stderr=True).print(table)
