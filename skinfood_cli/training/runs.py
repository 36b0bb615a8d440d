"""Runs: start one (`train`), continue one (`resume`), and the checks and files around them."""

from __future__ import annotations

import urllib.request
from dataclasses import asdict
from pathlib import Path

import torch
import yaml

from skinfood_cli import __version__
from skinfood_cli.checkpoint import load_checkpoint
from skinfood_cli.errors import DataError, ModelError, SkinfoodError, UsageError
from skinfood_cli.paths import find_run, new_run_dir, weights_dir
from skinfood_cli.training import distributed
from skinfood_cli.training.checkpointing import restore
from skinfood_cli.training.config import Recipe, Reporter, TrainConfig, settle_recipe
from skinfood_cli.training.loop import fit
from skinfood_cli.training.prepare import prepare_data
from skinfood_cli.training.result import TrainResult
from skinfood_cli.training.trainer import Trainer
from skinfood_cli.weights import resolve_backbone


def train(cfg: TrainConfig, reporter: Reporter | None = None, *, opener=None) -> TrainResult:
    """Train a new run from `cfg`. See the module docstring for the recipe.

    Under torchrun every process calls this; `reporter` is used on rank 0 only.
    """
    reporter = (reporter if distributed.is_main() else None) or Reporter()
    with distributed.session():
        backbone = {}

        def start_run():  # rank 0 alone; the others get what it returns
            cfg.check()
            recipe = settle_recipe(cfg)  # every auto and unset setting, once, for the whole job
            _check_world(cfg, recipe)
            ds = prepare_data(cfg, reporter)
            _check_world(cfg, recipe, len(ds.train))
            # The ImageNet weights stay here: wrapping the model in DDP copies rank 0's
            # parameters to every rank, so they needn't travel twice.
            backbone["state"], source = resolve_backbone(
                pretrained=cfg.pretrained,
                weights_file=cfg.weights,
                arch=cfg.arch,
                cache_dir=weights_dir(),
                opener=opener or urllib.request.urlopen,
                progress=getattr(reporter, "download", None),
            )
            run_dir = new_run_dir(cfg.name)
            _write_run_files(run_dir, cfg, recipe, ds, source)
            return recipe, ds, source, run_dir

        recipe, ds, source, run_dir = distributed.share(start_run)
        trainer = Trainer(cfg, recipe, ds, run_dir, reporter, backbone.get("state"), source)
        reporter.message(
            f"{len(ds.train)} training and {len(ds.val)} validation photos, {len(ds.classes)} classes; "
            f"{trainer.device.type} {trainer.precision.name}{_world_note(cfg)}; run folder {run_dir}"
        )
        return fit(trainer)


def resume(
    name: str, epochs: int | None = None, reporter: Reporter | None = None, minutes: float | None = None
) -> TrainResult:
    """Continue run `name` from its last.pt (model, optimizer, schedule, RNG, epoch).

    Under torchrun rank 0 reads last.pt and sends it to the others, so only its
    machine needs the run folder; the number of processes may differ from the
    run's (an interrupted epoch then starts again from its first batch).
    """
    reporter = (reporter if distributed.is_main() else None) or Reporter()
    with distributed.session():
        cfg, recipe, ds, run_dir, ckpt = distributed.share(_open_run, name, epochs, minutes, reporter)
        trainer = Trainer(cfg, recipe, ds, run_dir, reporter, None, ckpt.get("weights_source", ""))
        restore(trainer, ckpt)
        del ckpt  # the optimizer state alone is ~200 MB for ResNet50
        reporter.message(
            f"resuming {name} at epoch {trainer.state.epoch + 1}, batch {trainer.state.batch + 1}"
            f"{_budget_note(cfg, trainer.state.seconds)}{_world_note(cfg)}"
        )
        return fit(trainer)


def _open_run(name: str, epochs: int | None, minutes: float | None, reporter: Reporter):
    """Read run `name`'s last.pt and dataset for a resume: (config, recipe, dataset, run folder, checkpoint).

    The recipe is settled again from the run's config, as when it began: its training rules
    come out the same, and the device, precision and workers fit the machine it continues on
    (a checkpoint from before they were recorded needs nothing more).
    """
    run_dir = find_run(name)
    last = run_dir / "last.pt"
    if not last.is_file():
        raise ModelError(f"run {name!r} has no last.pt to resume from")
    ckpt = load_checkpoint(last)
    # Half-written checkpoints from a killed run (never loaded, ~100 MB each).
    for stale in run_dir.glob(".*.pt.*.tmp"):
        stale.unlink(missing_ok=True)
    if "train_state" not in ckpt:
        raise ModelError(f"{last} was not saved by a training run that can be resumed")
    # Runs from before --leaks trained on every photo; from before --select kept the best validation
    # epoch; from before --progressive trained at one size; from before --augment with the study's
    # light augmentation. A resume goes on as the run began.
    old = {"leaks": "keep", "select": "best", "progressive": False, "augment": "light"}
    if ckpt["config"].get("pretrained") or ckpt["config"].get("weights"):
        old["backbone_lr_ratio"] = 0.1  # from before --backbone-lr-ratio: pretrained backbones at a tenth
    cfg = TrainConfig(**{**old, **ckpt["config"]})
    if epochs is not None:
        cfg.epochs = epochs
    if minutes is not None:
        cfg.minutes = minutes
    cfg.check()
    recipe = settle_recipe(cfg)
    _check_world(cfg, recipe)
    ds = prepare_data(cfg, reporter, val_files=ckpt["data"].get("val_files"))
    if list(ds.classes) != list(ckpt["classes"]):
        raise DataError(f"the classes in {cfg.data} changed since run {name!r} started")
    _check_world(cfg, recipe, len(ds.train))
    state = ckpt["train_state"]
    done = state["epoch"]
    if cfg.epochs is not None and done >= cfg.epochs:
        raise UsageError(f"run {name!r} already finished {done} epochs: pass a larger --epochs to train further")
    if cfg.minutes and _budget_spent(state, ckpt.get("schedule") or {}, cfg.minutes, extended=minutes is not None):
        raise UsageError(
            f"run {name!r} already used its {cfg.minutes:g} minutes ({state.get('seconds', 0.0) / 60:.1f} trained): "
            "pass a larger --minutes to train further"
        )
    _write_run_files(run_dir, cfg, recipe, ds, ckpt.get("weights_source", ""))
    return cfg, recipe, ds, run_dir, ckpt


def _check_world(cfg: TrainConfig, recipe: Recipe, num_train: int | None = None) -> None:
    """Refuse, once and on rank 0, what can't run on several processes."""
    world = distributed.world_size()
    if world == 1:
        return
    if cfg.freeze_backbone:
        raise UsageError(
            "--freeze-backbone trains the head on features cached in one process and does not "
            "run under torchrun: start it as a plain `skinfood train` (it takes minutes on a CPU)"
        )
    device = distributed.rank_device(recipe.device)  # its errors here once, not from every rank later
    if cfg.sync_bn and device.type != "cuda":
        raise UsageError("--sync-bn needs CUDA GPUs (SyncBatchNorm does not run on the CPU): leave it out")
    if num_train is not None and num_train < 2 * world:
        raise DataError(f"{num_train} training photo(s) can't give each of {world} processes a batch of 2")


def _budget_spent(state: dict, schedule: dict, minutes: float, extended: bool) -> bool:
    """Whether a run has no --minutes left. Its schedule ended a little before the budget
    (leaving time to calibrate), and that end counts, unless a new --minutes was given."""
    used = state.get("seconds", 0.0)
    if extended:
        return used >= minutes * 60
    return bool(state.get("out_of_time")) or used >= (schedule.get("seconds") or minutes * 60)


def _budget_note(cfg: TrainConfig, seconds: float) -> str:
    if not cfg.minutes:
        return ""
    return f", {max(0.0, cfg.minutes - seconds / 60):.1f} of {cfg.minutes:g} minutes left"


def _world_note(cfg: TrainConfig) -> str:
    world = distributed.world_size()
    if world == 1:
        return ""
    return f"; {world} processes x batch {cfg.batch_size} = global batch {world * cfg.batch_size}"


def _write_run_files(run_dir: Path, cfg: TrainConfig, recipe: Recipe, ds, source: str) -> None:
    try:
        _write_config_and_skips(run_dir, cfg, recipe, ds, source)
    except OSError as exc:
        raise SkinfoodError(f"could not write to the run folder {run_dir}: {exc.strerror or exc}") from None


def _write_config_and_skips(run_dir: Path, cfg: TrainConfig, recipe: Recipe, ds, source: str) -> None:
    config = {
        **asdict(cfg),
        "recipe": asdict(recipe),
        "weights_source": source,
        "skinfood_version": __version__,
        "torch_version": str(torch.__version__),
        "classes": list(ds.classes),
        "layout": ds.layout,
        "num_train": len(ds.train),
        "num_val": len(ds.val),
        "world_size": distributed.world_size(),
        "global_batch_size": distributed.world_size() * cfg.batch_size,
        "leak_screen": ds.leaks.record() if ds.leaks else None,
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    if ds.skipped:
        (run_dir / "skipped.txt").write_text("".join(f"{p}\t{r}\n" for p, r in ds.skipped))
