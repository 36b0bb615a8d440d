"""The epoch loop: train, validate, keep best.pt and last.pt, stop cleanly; then calibrate."""

from __future__ import annotations

import math
import shutil
import time

from skinfood_cli.checkpoint import load_checkpoint, save_checkpoint
from skinfood_cli.model import head
from skinfood_cli.model_card import write_model_card
from skinfood_cli.training import distributed
from skinfood_cli.training.card_figures import card_fields
from skinfood_cli.training.checkpointing import build_payload, save_last, write_metrics
from skinfood_cli.training.pictures import save_run_pictures
from skinfood_cli.training.result import BestEpoch, TrainResult, TrustSummary
from skinfood_cli.training.stopping import StopFlag
from skinfood_cli.training.trainer import Trainer, best_row
from skinfood_cli.training.trust_fit import fit_run_trust


def fit(trainer: Trainer) -> TrainResult:
    """Run epochs until done, early-stopped, or interrupted; then calibrate best.pt.

    Under torchrun every rank runs this loop; only rank 0 writes files.
    """
    cfg, st = trainer.cfg, trainer.state
    run_dir = trainer.run_dir
    writer = distributed.is_main()
    if writer:
        _warn_if_short_of_room(trainer)
    trainer.start_clock()
    with StopFlag() as stop:
        while _more_epochs(trainer, stop):
            t0 = time.perf_counter()
            train_metrics = trainer.train_one_epoch(stop)
            t_val = time.perf_counter()
            val = trainer.validate(stop) if train_metrics is not None else None
            if train_metrics is None or val is None:
                if writer:
                    with stop.saving():
                        st.seconds = trainer.elapsed()
                        save_last(trainer)
                return TrainResult(
                    run_dir,
                    run_dir / "best.pt",
                    run_dir / "last.pt",
                    st.history,
                    BestEpoch.from_row(best_row(st)),
                    interrupted=True,
                    arch=trainer.arch.name,
                )
            val_seconds = time.perf_counter() - t_val
            if trainer.schedule.timed and not st.out_of_time:  # decided before saving, so last.pt knows
                st.out_of_time = trainer.schedule.done(st.step, distributed.max_ranks(trainer.elapsed()))
            steps = trainer.batches.steps()
            st.epochs_done = st.epoch + (min(st.batch, steps) / steps if st.out_of_time else 1.0)
            row = {
                "epoch": st.epoch + 1,
                "phase": "head" if trainer.frozen(st.epoch) else "full",
                "lr": trainer.optimizer.param_groups[-1]["lr"],
                "steps": st.batch,
                "image_size": trainer.train_set.image_size,
                **train_metrics,
                **val,
                "seconds": time.perf_counter() - t0,
            }
            st.history.append(row)
            score = val["val_macro_f1"] if not math.isnan(val["val_macro_f1"]) else train_metrics["train_acc"]
            best_so_far = score > st.best_score
            if best_so_far:
                st.best_score, st.stale_epochs = score, 0
            else:
                st.stale_epochs += 1
            # best.pt is the run's model: the newest weights (--select last: the end of the
            # schedule), or those of the best validation macro-F1 so far (--select best).
            keep = cfg.select == "last" or best_so_far
            if keep:
                st.best_epoch = st.epoch
            st.epoch += 1
            st.batch = 0
            st.partial = {}
            st.seconds = trainer.elapsed()
            if writer:
                with stop.saving():
                    if keep:
                        save_checkpoint(build_payload(trainer, resumable=False), run_dir / "best.pt")
                    save_last(trainer)
                    write_metrics(run_dir, st.history)
            # Under --minutes the last epoch's validation and saving, then calibration, must fit too.
            trainer.reserve_time_for_finish(time.perf_counter() - t_val, len(trainer.ds.val), val_seconds)
            trainer.reporter.epoch_end({**row, "best": best_so_far})
            if cfg.patience and st.stale_epochs >= cfg.patience:
                trainer.reporter.message(f"early stop: validation macro-F1 has not improved for {cfg.patience} epochs")
                break
    return _finish(trainer)


def _more_epochs(trainer: Trainer, stop: StopFlag) -> bool:
    """Whether another epoch starts: --epochs not reached, and --minutes not spent."""
    cfg, st = trainer.cfg, trainer.state
    if st.out_of_time or (cfg.epochs is not None and st.epoch >= cfg.epochs):
        return False
    if trainer.schedule.timed and trainer.schedule.done(st.step, distributed.max_ranks(trainer.elapsed())):
        st.out_of_time = True
        # The budget ran out after last.pt was saved (while saving, or as time was set aside
        # for calibration): last.pt must say so, or a resume would train past the budget.
        if st.epoch and distributed.is_main():
            with stop.saving():
                save_last(trainer)
    return not st.out_of_time


def _finish(trainer: Trainer) -> TrainResult:
    """Fit the temperature and threshold on validation for best.pt's weights.

    Under torchrun rank 0 does it alone, on the whole validation split (one
    pass, no collective); the other ranks return and wait for it at the end of
    the session.
    """
    run_dir, st = trainer.run_dir, trainer.state
    if not distributed.is_main():
        return TrainResult(
            run_dir,
            run_dir / "best.pt",
            run_dir / "last.pt",
            st.history,
            BestEpoch.from_row(best_row(st)),
            skipped=trainer.ds.skipped,
            arch=trainer.arch.name,
        )
    best = load_checkpoint(run_dir / "best.pt")
    trainer.model.load_state_dict(best["state_dict"])
    calibration = trainer.calibrate()
    best["temperature"], best["threshold"] = calibration.temperature, calibration.threshold
    # The scope check and the conformal sets, on best.pt's weights, beside the temperature.
    best["trust"] = fit_run_trust(trainer, calibration.temperature)
    best.update(card_fields(trainer.ds, calibration.validation, calibration.temperature))
    save_checkpoint(best, run_dir / "best.pt")
    write_model_card(run_dir, best)
    # curves.png, confusion.png; a failure is a warning
    save_run_pictures(
        run_dir,
        st.history,
        validation=calibration.validation,
        classes=list(trainer.ds.classes),
        budget_end=st.epochs_done if st.out_of_time else None,
        warn=trainer.reporter.warning,
    )
    return TrainResult(
        run_dir,
        run_dir / "best.pt",
        run_dir / "last.pt",
        st.history,
        BestEpoch.from_row(best_row(st)),
        temperature=calibration.temperature,
        threshold=calibration.threshold,
        skipped=trainer.ds.skipped,
        arch=trainer.arch.name,
        trust=TrustSummary.from_state(best["trust"]),
        epochs_done=st.epochs_done,
        minutes=trainer.elapsed() / 60,
        select=trainer.cfg.select,
    )


def checkpoint_bytes(model, head_only: bool = False) -> int:
    """The most a run's checkpoints take at once: best.pt (the weights), last.pt (the weights and
    AdamW's two moments of what it trains: the head alone with --freeze-backbone) and a second
    last.pt while its next version is written atomically."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    trained = head(model).parameters() if head_only else model.parameters()
    last = weights + 2 * sum(p.numel() * p.element_size() for p in trained)
    return weights + 2 * last


def _warn_if_short_of_room(trainer: Trainer) -> None:
    """Say before the first epoch, not after it, that the checkpoints won't fit on the disk."""
    run_dir = trainer.run_dir
    have = sum(p.stat().st_size for p in run_dir.glob("*.pt"))  # a resumed run replaces its own files
    need = checkpoint_bytes(trainer.model, head_only=trainer.cfg.freeze_backbone) - have
    free = shutil.disk_usage(run_dir).free
    if free < need:
        trainer.reporter.warning(
            f"{free / 1e6:.0f} MB free on the disk of {run_dir}, and this run's checkpoints need about "
            f"{need / 1e6:.0f} MB: saving will fail with 'No space left on device' (delete old runs, "
            "see `skinfood models`, or set SKINFOOD_HOME to a bigger disk)"
        )
