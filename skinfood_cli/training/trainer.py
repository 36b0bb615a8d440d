"""The Trainer: one run's model, data, optimizer and schedule, stepped through as small named steps.

    train_one_epoch   resumable mid-epoch (sampling.py), stops cleanly on Ctrl-C (stopping.py)
    validate          loss, accuracy, macro-F1 on the validation split
    calibrate         temperature + uncertainty threshold, fitted on validation

The package's other modules do the rest: config.py settles the run's recipe (the
Trainer only reads it), prepare.py finds the data, schedule.py the learning rate,
strategies.py what an epoch trains on (augmented photos, or the head on cached
features), loop.py the epochs, checkpointing.py what is saved, runs.py the entry
points. Under torchrun the same steps run on every process, DDP averaging the
gradients; distributed.py holds the plumbing and says which rank does what.

The recipe is fastai's `fine_tune`, the study's "additional training" round
made systematic: the new head trains alone for `freeze_epochs`, then the whole
network trains, the backbone at `backbone_lr_ratio` of the head's rate. The
schedule runs over `--epochs` or a `--minutes` budget (schedule.py); with
progressive resizing, images start small and grow. best.pt is the weights at the
end of the schedule (`--select best`: the epoch with the best validation
macro-F1, never test).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from skinfood_cli.archs import get_arch
from skinfood_cli.checkpoint import DEFAULT_THRESHOLD
from skinfood_cli.data.dataset import ImageDataset, class_counts, eval_transform, train_transform
from skinfood_cli.engine import ignore_sigint
from skinfood_cli.metrics import accuracy, confidence_threshold, cross_entropy, fit_temperature, macro_f1, softmax
from skinfood_cli.model import build_model, head, head_prefix, resolve_precision, set_trainable
from skinfood_cli.training import distributed
from skinfood_cli.training.config import Recipe, Reporter, TrainConfig
from skinfood_cli.training.sampling import EpochAwareDataset, EpochBatches
from skinfood_cli.training.schedule import Schedule, progressive_size
from skinfood_cli.training.stopping import StopFlag
from skinfood_cli.training.strategies import CachedFeatureHead, Epoch, FullTraining


@dataclass
class TrainState:
    """Everything a resumed run needs, kept in last.pt."""

    epoch: int = 0  # the epoch in progress (0-based)
    batch: int = 0  # batches of it already trained
    step: int = 0  # optimizer steps so far
    best_score: float = -1.0
    best_epoch: int = -1
    stale_epochs: int = 0
    history: list = field(default_factory=list)
    # Running totals of the epoch in progress (seen, correct, loss_sum, seconds),
    # summed over the ranks, so an epoch resumed mid-way still reports figures
    # for the whole epoch.
    partial: dict = field(default_factory=dict)
    world_size: int = 1  # processes that trained it: `batch` counts global batches of that many
    seconds: float = 0.0  # the run's wall-clock seconds so far (the --minutes budget counts them)
    out_of_time: bool = False  # the --minutes budget ended the schedule
    epochs_done: float = 0.0  # epochs trained, the last one perhaps in part
    epoch_start_s: float = 0.0  # `seconds` when the epoch in progress began (its image size follows from it)


@dataclass(frozen=True)
class Calibration:
    """What `Trainer.calibrate` fitted on validation, and the logits it fitted them on."""

    temperature: float = 1.0
    threshold: float = DEFAULT_THRESHOLD
    # (N, K) raw logits and (N,) labels of the validation photos, for the model card and
    # confusion.png; None when there were too few photos to fit on.
    validation: tuple[np.ndarray, np.ndarray] | None = None


class Trainer:
    """Holds the model, data and optimizer of one run and steps through it.

    Args:
        cfg: the run's settings.
        recipe: what they settled to (`settle_recipe(cfg)`, once, before the Trainer).
        ds: the prepared dataset (prepare.py).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        recipe: Recipe,
        ds,
        run_dir: Path,
        reporter: Reporter,
        backbone_state=None,
        weights_source: str = "",
    ):
        self.cfg, self.recipe, self.ds, self.run_dir, self.reporter = cfg, recipe, ds, run_dir, reporter
        self.weights_source = weights_source
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.device = distributed.rank_device(recipe.device)
        self.precision = resolve_precision(recipe.precision, self.device)
        self.backbone_lr = cfg.lr * recipe.backbone_lr_ratio
        self.arch = get_arch(cfg.arch)
        self.image_size: int = cfg.image_size or self.arch.image_size  # TrainConfig settles it; this tells mypy
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.model = build_model(len(ds.classes), backbone_state, self.arch.name, training=True)
        if cfg.sync_bn and self.world > 1:
            # Batch statistics over the global batch, at the price of one all-reduce
            # per BatchNorm layer (53 in ResNet50) per step: worth it when a GPU
            # holds few photos. Off by default, as in torchvision's reference scripts.
            self.model = distributed.convert_sync_batchnorm(self.model)
        self.model = self.model.to(self.device, memory_format=torch.channels_last)
        self._ddp: torch.nn.Module | None = None
        self._ddp_frozen: bool | None = None
        self.mean, self.std = self.arch.mean, self.arch.std
        self._head = head_prefix(self.model)
        # The first layers, kept at their ImageNet weights and statistics throughout (--freeze-at).
        self._kept = self.arch.frozen_prefixes(cfg.freeze_at or 0)  # a --config file may say null

        weight = None
        if cfg.balance:
            counts = class_counts(ds.train, len(ds.classes))
            total = sum(counts)
            weight = torch.tensor([total / (len(counts) * max(c, 1)) for c in counts], dtype=torch.float32)
        self.criterion = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing).to(self.device)

        backbone = [p for n, p in self.model.named_parameters() if not n.startswith(self._head)]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": backbone, "lr": self.backbone_lr, "peak": self.backbone_lr},
                {"params": head(self.model).parameters(), "lr": cfg.lr, "peak": cfg.lr},
            ],
            weight_decay=cfg.weight_decay,
        )
        # GradScaler only matters for fp16 (bf16 has fp32's exponent range).
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.name == "fp16")

        # Whole photos (validation, calibration, and every command once trained) are read at
        # predict_size: larger than the training crops after random-crop training (FixRes).
        self.predict_size = recipe.predict_size
        self.train_set = ImageDataset(ds.train, self.train_transform(self.image_size), self.image_size, cfg.seed)
        self.val_set = ImageDataset(
            ds.val, eval_transform(self.predict_size, self.mean, self.std), self.predict_size, cfg.seed
        )
        self.batches = EpochBatches(len(ds.train), cfg.batch_size, cfg.seed, self.rank, self.world)
        self.state = TrainState(world_size=self.world)
        # --freeze-backbone: the head's training is the run's one phase.
        self.schedule = Schedule.for_epochs(
            cfg.epochs,
            0 if cfg.freeze_backbone else recipe.freeze_epochs,
            self.batches.steps(),
            seconds=cfg.minutes * 60 if cfg.minutes else None,
        )
        self._clock0 = time.perf_counter()  # set again by start_clock(), after a resume's restore
        # What an epoch trains on: augmented photos, or (--freeze-backbone) cached features.
        self.strategy: FullTraining | CachedFeatureHead
        if cfg.freeze_backbone:
            self.strategy = CachedFeatureHead(
                self.model,
                self.device,
                self.precision,
                train_set=self.plain_train_set(),
                val_set=self.val_set,
                eval_loader=self.eval_loader,
                batch_size=cfg.batch_size,
                seed=cfg.seed,
                steps=self.batches.steps(),
                message=reporter.message,
            )
        else:
            self.strategy = FullTraining(self.image_epoch)

    def train_transform(self, size: int):
        return train_transform(size, self.mean, self.std, strength=self.recipe.augment)

    def plain_train_set(self) -> ImageDataset:
        """The training photos as validation sees them: the eval transform, no augmentation."""
        transform = eval_transform(self.predict_size, self.mean, self.std)
        return ImageDataset(self.ds.train, transform, self.predict_size, self.cfg.seed)

    # -- schedule ----------------------------------------------------------------

    def get_lr(self, step: int, elapsed: float = 0.0) -> list[float]:
        mult = self.schedule.multiplier(step, elapsed)
        return [group["peak"] * mult for group in self.optimizer.param_groups]

    # -- the clock of --minutes ---------------------------------------------------

    def start_clock(self) -> None:
        """Count the run's seconds on from those a resumed run already used."""
        self._clock0 = time.perf_counter() - self.state.seconds

    def elapsed(self) -> float:
        """Seconds of this run so far: training, validation and saving, over every session."""
        return time.perf_counter() - self._clock0

    def reserve_time_for_finish(self, epoch_end_s: float, val_photos: int, val_seconds: float) -> None:
        """Under --minutes, end training early enough for the run to end on time.

        What follows the last step: that epoch's validation and saving (`epoch_end_s`, as
        just measured), then calibration and the scope check, which pass over the training
        photos once and the validation photos twice at the speed validation ran at, and
        save best.pt again. At most a quarter of the budget is set aside.
        """
        if not self.cfg.minutes:
            return
        budget = self.cfg.minutes * 60
        rate = val_seconds / val_photos if val_photos else 0.0
        # The ranks agree on it: the schedule's end sets every rank's learning rate.
        finish = distributed.max_ranks(2 * epoch_end_s + (len(self.ds.train) + 2 * len(self.ds.val)) * rate)
        self.schedule.seconds = max(budget * 0.75, budget - finish)

    def _set_trainable(self, frozen: bool) -> None:
        set_trainable(self.model, head_only=frozen, kept=self._kept)

    # -- loaders -----------------------------------------------------------------

    def _train_loader(self):
        return torch.utils.data.DataLoader(
            EpochAwareDataset(self.train_set),
            batch_sampler=self.batches,
            num_workers=self.recipe.workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=ignore_sigint if self.recipe.workers else None,
            persistent_workers=False,
        )

    def eval_loader(self, dataset=None):
        """Batches of `dataset` (default: validation) in order, for evaluation-mode passes."""
        return torch.utils.data.DataLoader(
            dataset or self.val_set,
            batch_size=max(self.cfg.batch_size, 32),
            shuffle=False,
            num_workers=self.recipe.workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=ignore_sigint if self.recipe.workers else None,
        )

    # -- steps -------------------------------------------------------------------

    def epoch_image_size(self) -> int:
        """The side of this epoch's training images (smaller early on with progressive resizing).

        Decided from where the schedule stood when the epoch began, so a run resumed
        mid-epoch trains the rest of it at the same size.
        """
        if not self.recipe.progressive:
            return self.image_size
        st = self.state
        progress = self.schedule.progress(st.step - st.batch, st.epoch_start_s)
        return progressive_size(self.image_size, max(0.0, progress))

    def train_one_epoch(self, stop: StopFlag) -> dict | None:
        """Train the rest of the current epoch, on what the strategy plans; None if Ctrl-C stopped it."""
        st = self.state
        plan = self.strategy.plan_epoch(st.epoch, st.batch, stop)
        return None if plan is None else self.run_steps(plan, stop)

    def frozen(self, epoch: int) -> bool:
        """Whether the backbone stays frozen in `epoch` (0-based): the head trains alone."""
        return epoch < self.recipe.freeze_epochs

    def image_epoch(self, epoch: int, start: int) -> Epoch:
        """Epoch `epoch`'s augmented photo batches from batch `start` on (FullTraining's source)."""
        frozen = self.frozen(epoch)
        self._set_trainable(frozen)
        if start == 0 and self.schedule.timed:  # one clock for all ranks, so they pick the same size
            self.state.epoch_start_s = distributed.max_ranks(self.elapsed())
        size = self.epoch_image_size()
        if size != self.train_set.image_size:
            self.train_set.transform = self.train_transform(size)
            self.train_set.image_size = size
        self.batches.epoch, self.batches.start = epoch, start
        batches = (
            (
                x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last),
                y.to(self.device, non_blocking=True),
            )
            for x, y in self._train_loader()
        )
        phase = ("head only" if frozen else "full") + (f", {size} px" if self.recipe.progressive else "")
        return Epoch(batches, self._forward(frozen), phase)

    def _forward(self, frozen: bool):
        """The module to train through: the model itself, or its DDP wrapper under torchrun."""
        if self.world == 1:
            return self.model
        if self._ddp is None or self._ddp_frozen != frozen:
            self._ddp = None  # the old wrapper's gradient hooks must go before new ones come
            self._ddp = distributed.wrap(self.model, self.device)
            self._ddp_frozen = frozen
        return self._ddp

    def run_steps(self, plan: Epoch, stop: StopFlag) -> dict | None:
        """One epoch's optimizer steps over the plan's (x, y) batches; `plan.forward(x)` gives logits (B, K).

        Shared by every strategy, so full training and the head on cached features get
        the same schedule, mixed precision, bookkeeping and Ctrl-C handling.
        Returns the epoch's training metrics (summed over the ranks), or None if
        Ctrl-C stopped it.
        """
        st = self.state
        steps, forward = self.batches.steps(), plan.forward
        self.reporter.epoch_start(st.epoch, self.cfg.epochs, steps, plan.phase)
        timed = self.schedule.timed
        done = st.partial if st.batch else {}
        # Totals of the batches trained before a resume are the whole job's: only
        # rank 0 starts from them, so summing over the ranks counts them once.
        base = done if self.rank == 0 else {}
        seen, correct, loss_sum = base.get("seen", 0), base.get("correct", 0), base.get("loss_sum", 0.0)
        t0 = time.perf_counter() - done.get("seconds", 0.0)
        for x, y in plan.batches:
            # --minutes: the schedule ends on time, part-way through an epoch if need be;
            # the ranks share one clock, so they set the same rate and stop after the same step.
            elapsed = distributed.max_ranks(self.elapsed()) if timed else 0.0
            if timed and self.schedule.done(st.step, elapsed):
                st.partial = self._epoch_totals(seen, correct, loss_sum, t0)
                st.out_of_time = True
                break
            self.schedule.start_timed_phase(st.step, elapsed)
            for group, lr in zip(self.optimizer.param_groups, self.get_lr(st.step, elapsed)):
                group["lr"] = lr
            with self.precision.autocast(self.device):
                logits = forward(x)  # (B, K)
                loss = self.criterion(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            st.step += 1
            st.batch += 1
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            # The bar shows this rank's loss and accuracy, and the whole job's speed
            # (every rank trains the same number of photos per step).
            images = base.get("seen", 0) + (seen - base.get("seen", 0)) * self.world
            self.reporter.step(
                st.batch, steps, loss_sum / seen, correct / seen, images / max(time.perf_counter() - t0, 1e-9)
            )
            # One tiny all-reduce per step: a Ctrl-C seen by any rank stops all of
            # them after the same step, so none is left waiting in DDP's next one.
            if distributed.any_rank(stop.set):
                st.partial = self._epoch_totals(seen, correct, loss_sum, t0)
                return None
        else:
            st.partial = self._epoch_totals(seen, correct, loss_sum, t0)
        total = st.partial
        return {
            "train_loss": total["loss_sum"] / max(total["seen"], 1),
            "train_acc": total["correct"] / max(total["seen"], 1),
            "images_per_s": total["seen"] / max(total["seconds"], 1e-9),
        }

    def _epoch_totals(self, seen: int, correct: int, loss_sum: float, t0: float) -> dict:
        """The epoch's running totals summed over the ranks (as they are, on one process)."""
        if self.world > 1:
            total_seen, total_correct, loss_sum = distributed.sum_ranks([seen, correct, loss_sum])
            seen, correct = round(total_seen), round(total_correct)
        return {"seen": seen, "correct": correct, "loss_sum": loss_sum, "seconds": time.perf_counter() - t0}

    def predict_logits(self, dataset, stop: StopFlag | None = None):
        """(N, K) float32 logits and (N,) labels for a dataset, in eval mode."""
        self.model.eval()
        outs, labels = [], []
        with torch.inference_mode(), self.precision.autocast(self.device):
            for x, y in self.eval_loader(dataset):
                if stop is not None and stop.set:
                    return None, None
                x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                outs.append(self.model(x).float().cpu().numpy())
                labels.append(y.numpy())
        if not outs:
            return np.zeros((0, len(self.ds.classes)), np.float32), np.zeros(0, np.int64)
        return np.concatenate(outs), np.concatenate(labels)

    def validate(self, stop: StopFlag) -> dict | None:
        """Validation metrics; in --freeze-backbone mode from the cached features."""
        cached = self.strategy.val_logits()
        if cached is not None:
            logits, labels = cached
        elif self.world > 1:
            distributed.broadcast_buffers(self.model)
            logits, labels = self._gathered_val_logits()
            if distributed.any_rank(stop.set):  # decided together, after the gather every rank joined
                return None
        else:
            logits, labels = self.predict_logits(self.val_set, stop)
        if logits is None:
            return None
        if not len(labels):
            return {"val_loss": float("nan"), "val_acc": float("nan"), "val_macro_f1": float("nan")}
        pred = logits.argmax(1)
        return {
            "val_loss": cross_entropy(labels, softmax(logits)),
            "val_acc": accuracy(labels, pred),
            "val_macro_f1": macro_f1(labels, pred, len(self.ds.classes)),
        }

    def _gathered_val_logits(self):
        """Validation logits (N, K) and labels (N,) in the split's order, each rank predicting a slice.

        Every rank then computes the same metrics from the same arrays, so they
        agree on the best epoch and on early stopping without another message.
        """
        part = torch.utils.data.Subset(self.val_set, distributed.shard_indices(len(self.val_set)))
        logits, labels = self.predict_logits(part)  # the bare model: no DDP collective in eval
        pieces = distributed.gather((logits, labels))
        n = len(self.val_set)
        return distributed.interleave([p[0] for p in pieces], n), distributed.interleave([p[1] for p in pieces], n)

    def calibrate(self) -> Calibration:
        """Temperature and uncertainty threshold for the current weights, fitted on validation,
        with the validation logits they came from (the model card and confusion.png use them)."""
        logits, labels = self.predict_logits(self.val_set)
        if len(labels) < 2:
            return Calibration()
        temperature = fit_temperature(logits, labels)
        threshold = confidence_threshold(softmax(logits, temperature), labels)
        return Calibration(temperature, threshold, (logits, labels))

    # -- resuming ----------------------------------------------------------------

    def adopt_world_size(self) -> None:
        """Continue a run saved by a different number of processes.

        An epoch has a different number of (global) batches now, so the position
        inside an interrupted epoch means nothing: that epoch starts again from
        its first batch, and the schedule's step count is recomputed to match.
        """
        st, before = self.state, self.state.world_size
        if st.batch:
            self.reporter.message(
                f"the run was saved by {before} process(es), this is {self.world}: "
                f"epoch {st.epoch + 1} starts again from its first batch"
            )
        st.batch, st.partial = 0, {}
        st.step = st.epoch * self.batches.steps()
        st.world_size = self.world


def best_row(st: TrainState) -> dict | None:
    return next((h for h in st.history if h["epoch"] == st.best_epoch + 1), None)
