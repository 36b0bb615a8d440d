"""Fine-tuning ResNet50 on a folder of photos, as small named steps.

    prepare_data      discover, pre-scan, split            (data.py)
    build_trainer     model, optimizer, loss, loaders
    get_lr            warmup + cosine, restarted when the backbone unfreezes
    train_one_epoch   resumable mid-epoch (sampling.py), stops cleanly on Ctrl-C (stopping.py)
    validate          loss, accuracy, macro-F1 on the validation split
    calibrate         temperature + uncertainty threshold, fitted on validation

Under torchrun the same steps run on every process, DDP averaging the
gradients; distributed.py holds the plumbing and says which rank does what.

The recipe is fastai's `fine_tune`, the study's "additional training" round
made systematic: the new head trains alone for `freeze_epochs`, then the whole
network trains with a 10x lower learning rate for the backbone than the head.
best.pt is the epoch with the best validation macro-F1 (never test).
"""

from __future__ import annotations

import csv
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skinfood_cli import __version__
from skinfood_cli.training import distributed
from skinfood_cli.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint, save_checkpoint
from skinfood_cli.data.dataset import relative_key
from skinfood_cli.errors import DataError, SkinfoodError, UsageError
from skinfood_cli.model import ARCH, IMAGENET_MEAN, IMAGENET_STD
from skinfood_cli.training.sampling import EpochAwareDataset, EpochBatches
from skinfood_cli.training.stopping import StopFlag

# The backbone learns 10x slower than the head once unfrozen: its ImageNet
# features are already good, the head starts from random.
BACKBONE_LR_RATIO = 0.1
MIN_LR_RATIO = 0.01  # cosine decays to 1% of the peak, not to zero


@dataclass
class TrainConfig:
    """Every setting of a run; stored in config.yaml and in the checkpoint."""

    data: str
    name: str | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    freeze_epochs: int | None = None  # None: 1 with pretrained weights, 0 from scratch
    freeze_backbone: bool = False
    balance: bool = False
    patience: int = 0  # 0: no early stopping
    image_size: int = 224
    val_fraction: float = 0.15
    seed: int = 0
    classes: list[str] | None = None
    pretrained: bool = True
    weights: str | None = None
    precision: str = "auto"
    device: str | None = None
    workers: int | None = None
    strict: bool = False
    sync_bn: bool = False  # torchrun on GPUs: BatchNorm statistics over the global batch
    coverage: float = 0.9  # conformal prediction sets: share of photos whose set holds the true class

    def check(self) -> None:
        if self.epochs < 1:
            raise UsageError("--epochs must be at least 1")
        if self.batch_size < 2:
            raise UsageError("--batch-size must be at least 2 (BatchNorm needs two images)")
        if not 0 < self.lr < 1:
            raise UsageError("--lr must be between 0 and 1")
        if not 0 <= self.val_fraction < 1:
            raise UsageError("--val-fraction must be in [0, 1)")
        if self.image_size < 32:
            raise UsageError("--image-size must be at least 32")
        if not 0 < self.coverage < 1:
            raise UsageError("--coverage must be between 0 and 1, like 0.9")
        if self.freeze_epochs is not None and self.freeze_epochs < 0:
            raise UsageError("--freeze-epochs must be 0 or more")


class Reporter:
    """What training tells the person at the terminal; the CLI draws it with Rich."""

    def message(self, text: str) -> None: ...
    def scan(self, done: int, total: int) -> None: ...
    def skipped(self, items: list[tuple[str, str]]) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, steps: int, phase: str) -> None: ...
    def step(self, step: int, steps: int, loss: float, acc: float, images_per_s: float) -> None: ...
    def epoch_end(self, row: dict) -> None: ...
    def warning(self, text: str) -> None: ...


@dataclass
class TrainResult:
    run_dir: Path
    best_path: Path
    last_path: Path
    history: list[dict]
    best: dict | None
    interrupted: bool = False
    temperature: float = 1.0
    threshold: float = 0.5
    skipped: list[tuple[str, str]] = field(default_factory=list)
    trust: dict | None = None  # the scope check and conformal sets stored in best.pt (trust/scope.py)


# --- data ------------------------------------------------------------------------


def prepare_data(cfg: TrainConfig, reporter: Reporter, val_files: list[str] | None = None):
    """Discover the dataset and pre-scan train+val; unreadable files are left out."""
    from skinfood_cli.data.dataset import class_counts, discover_dataset, prescan

    ds = discover_dataset(cfg.data, classes=cfg.classes, val_fraction=cfg.val_fraction,
                          seed=cfg.seed, val_files=val_files)
    everything = ds.train + ds.val
    if not everything:
        raise DataError(f"no image files found under {ds.root}")
    good, skipped = prescan(everything, cfg.workers, progress=reporter.scan)
    if skipped:
        reporter.skipped(skipped)
        if cfg.strict:
            raise DataError(f"{len(skipped)} unreadable file(s) and --strict: first is {skipped[0][0]} ({skipped[0][1]})")
    bad = {p for p, _ in skipped}
    ds.train = [s for s in ds.train if s[0] not in bad]
    ds.val = [s for s in ds.val if s[0] not in bad]
    ds.skipped = skipped
    counts = class_counts(ds.train + ds.val, len(ds.classes))
    empty = [c for c, n in zip(ds.classes, counts) if n == 0]
    if empty:
        raise DataError(f"class folder(s) with no usable image: {', '.join(empty)}")
    if not ds.train:
        raise DataError("no training images left after the pre-scan")
    return ds


# --- learning-rate schedule --------------------------------------------------------


def get_lr_multiplier(step: int, phases: list[tuple[int, int]]) -> float:
    """Multiplier of the peak learning rate at optimizer step `step`.

    `phases` are (first_step, num_steps): the frozen-head phase and the full
    fine-tuning phase each get their own schedule, as fastai's fine_tune does.
    Within a phase:
      1) linear warmup over its first 10% of steps (at least 1),
      2) cosine decay from 1 to MIN_LR_RATIO over the rest.
    """
    for first, length in reversed(phases):
        if step >= first and length > 0:
            local = step - first
            warmup = max(1, length // 10)
            if local < warmup:
                return (local + 1) / warmup
            progress = min(1.0, (local - warmup) / max(1, length - warmup))
            return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


# --- the trainer -----------------------------------------------------------------


@dataclass
class _State:
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


class Trainer:
    """Holds the model, data and optimizer of one run and steps through it."""

    def __init__(self, cfg: TrainConfig, ds, run_dir: Path, reporter: Reporter, backbone_state=None,
                 weights_source: str = ""):
        import torch

        from skinfood_cli.data.dataset import ImageDataset, class_counts, eval_transform, train_transform
        from skinfood_cli.model import build_model, resolve_precision

        self.cfg, self.ds, self.run_dir, self.reporter = cfg, ds, run_dir, reporter
        self.weights_source = weights_source
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.device = distributed.resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.freeze_epochs = cfg.freeze_epochs if cfg.freeze_epochs is not None else (
            1 if (cfg.pretrained or cfg.weights) else 0)
        if cfg.freeze_backbone:
            self.freeze_epochs = cfg.epochs
        # Discriminative rates only make sense for features worth preserving: a
        # backbone trained from scratch learns at the head's rate.
        self.backbone_lr = cfg.lr * (BACKBONE_LR_RATIO if (cfg.pretrained or cfg.weights) else 1.0)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.model = build_model(len(ds.classes), backbone_state)
        if cfg.sync_bn and self.world > 1:
            # Batch statistics over the global batch, at the price of one all-reduce
            # per BatchNorm layer (53 in ResNet50) per step: worth it when a GPU
            # holds few photos. Off by default, as in torchvision's reference scripts.
            self.model = distributed.convert_sync_batchnorm(self.model)
        self.model = self.model.to(self.device, memory_format=torch.channels_last)
        self._ddp, self._ddp_frozen = None, None
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

        weight = None
        if cfg.balance:
            counts = class_counts(ds.train, len(ds.classes))
            total = sum(counts)
            weight = torch.tensor([total / (len(counts) * max(c, 1)) for c in counts], dtype=torch.float32)
        self.criterion = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing).to(self.device)

        backbone = [p for n, p in self.model.named_parameters() if not n.startswith("fc.")]
        self.optimizer = torch.optim.AdamW(
            [{"params": backbone, "lr": self.backbone_lr, "peak": self.backbone_lr},
             {"params": self.model.fc.parameters(), "lr": cfg.lr, "peak": cfg.lr}],
            weight_decay=cfg.weight_decay,
        )
        # GradScaler only matters for fp16 (bf16 has fp32's exponent range).
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.name == "fp16")

        self.train_set = ImageDataset(ds.train, train_transform(cfg.image_size, self.mean, self.std),
                                      cfg.image_size, cfg.seed)
        self.val_set = ImageDataset(ds.val, eval_transform(cfg.image_size, self.mean, self.std),
                                    cfg.image_size, cfg.seed)
        self.batches = EpochBatches(len(ds.train), cfg.batch_size, cfg.seed, self.rank, self.world)
        self.workers = cfg.workers if cfg.workers is not None else _default_workers(self.device)
        self.state = _State(world_size=self.world)
        self.phases = self._phases()

    # -- schedule ----------------------------------------------------------------

    def _phases(self) -> list[tuple[int, int]]:
        steps = self.batches.steps()
        frozen = min(self.freeze_epochs, self.cfg.epochs)
        return [(0, frozen * steps), (frozen * steps, (self.cfg.epochs - frozen) * steps)]

    def get_lr(self, step: int) -> list[float]:
        mult = get_lr_multiplier(step, self.phases)
        return [group["peak"] * mult for group in self.optimizer.param_groups]

    def _set_trainable(self, frozen: bool) -> None:
        for name, p in self.model.named_parameters():
            p.requires_grad_(not frozen or name.startswith("fc."))
        self.model.train()
        if frozen:
            # Frozen means frozen: keep the backbone's BatchNorm statistics too.
            for name, module in self.model.named_modules():
                if name and not name.startswith("fc"):
                    module.eval()

    # -- loaders -----------------------------------------------------------------

    def _train_loader(self):
        import torch

        from skinfood_cli.engine import _ignore_sigint

        return torch.utils.data.DataLoader(
            EpochAwareDataset(self.train_set), batch_sampler=self.batches,
            num_workers=self.workers, pin_memory=self.device.type == "cuda",
            worker_init_fn=_ignore_sigint if self.workers else None,
            persistent_workers=False,
        )

    def _val_loader(self, dataset=None):
        import torch

        from skinfood_cli.engine import _ignore_sigint

        return torch.utils.data.DataLoader(
            dataset or self.val_set, batch_size=max(self.cfg.batch_size, 32), shuffle=False,
            num_workers=self.workers, pin_memory=self.device.type == "cuda",
            worker_init_fn=_ignore_sigint if self.workers else None,
        )

    # -- steps -------------------------------------------------------------------

    def train_one_epoch(self, stop: StopFlag) -> dict | None:
        """Train the rest of the current epoch; None if Ctrl-C stopped it."""
        import torch

        st = self.state
        frozen = st.epoch < self.freeze_epochs
        self._set_trainable(frozen)
        self.batches.epoch, self.batches.start = st.epoch, st.batch
        batches = ((x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last),
                    y.to(self.device, non_blocking=True)) for x, y in self._train_loader())
        return self.run_steps(batches, self._forward(frozen), self.batches.steps(),
                              "head only" if frozen else "full", stop)

    def _forward(self, frozen: bool):
        """The module to train through: the model itself, or its DDP wrapper under torchrun."""
        if self.world == 1:
            return self.model
        if self._ddp is None or self._ddp_frozen != frozen:
            self._ddp = None  # the old wrapper's gradient hooks must go before new ones come
            self._ddp = distributed.wrap(self.model, self.device)
            self._ddp_frozen = frozen
        return self._ddp

    def run_steps(self, batches, forward, steps: int, phase: str, stop: StopFlag) -> dict | None:
        """One epoch's optimizer steps over (x, y) batches; `forward(x)` gives logits (B, K).

        Shared by full training and the head-on-cached-features mode, so both get
        the same schedule, mixed precision, bookkeeping and Ctrl-C handling.
        Returns the epoch's training metrics (summed over the ranks), or None if
        Ctrl-C stopped it.
        """
        st = self.state
        self.reporter.epoch_start(st.epoch, self.cfg.epochs, steps, phase)
        done = st.partial if st.batch else {}
        # Totals of the batches trained before a resume are the whole job's: only
        # rank 0 starts from them, so summing over the ranks counts them once.
        base = done if self.rank == 0 else {}
        seen, correct, loss_sum = base.get("seen", 0), base.get("correct", 0), base.get("loss_sum", 0.0)
        t0 = time.perf_counter() - done.get("seconds", 0.0)
        for x, y in batches:
            for group, lr in zip(self.optimizer.param_groups, self.get_lr(st.step)):
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
            self.reporter.step(st.batch, steps, loss_sum / seen, correct / seen,
                               images / max(time.perf_counter() - t0, 1e-9))
            # One tiny all-reduce per step: a Ctrl-C seen by any rank stops all of
            # them after the same step, so none is left waiting in DDP's next one.
            if distributed.any_rank(stop.set):
                st.partial = self._epoch_totals(seen, correct, loss_sum, t0)
                return None
        st.partial = self._epoch_totals(seen, correct, loss_sum, t0)
        total = st.partial
        return {"train_loss": total["loss_sum"] / max(total["seen"], 1),
                "train_acc": total["correct"] / max(total["seen"], 1),
                "images_per_s": total["seen"] / max(total["seconds"], 1e-9)}

    def _epoch_totals(self, seen: int, correct: int, loss_sum: float, t0: float) -> dict:
        """The epoch's running totals summed over the ranks (as they are, on one process)."""
        if self.world > 1:
            seen, correct, loss_sum = distributed.sum_ranks([seen, correct, loss_sum])
            seen, correct = round(seen), round(correct)
        return {"seen": seen, "correct": correct, "loss_sum": loss_sum, "seconds": time.perf_counter() - t0}

    def predict_logits(self, dataset, stop: StopFlag | None = None):
        """(N, K) float32 logits and (N,) labels for a dataset, in eval mode."""
        import numpy as np
        import torch

        self.model.eval()
        outs, labels = [], []
        with torch.inference_mode(), self.precision.autocast(self.device):
            for x, y in self._val_loader(dataset):
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
        from skinfood_cli.engine import softmax
        from skinfood_cli.metrics import accuracy, cross_entropy, macro_f1

        if self.cfg.freeze_backbone:
            from skinfood_cli.training.feature_cache import head_logits_on_cached_val

            logits, labels = head_logits_on_cached_val(self)
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
        return {"val_loss": cross_entropy(labels, softmax(logits)), "val_acc": accuracy(labels, pred),
                "val_macro_f1": macro_f1(labels, pred, len(self.ds.classes))}

    def _gathered_val_logits(self):
        """Validation logits (N, K) and labels (N,) in the split's order, each rank predicting a slice.

        Every rank then computes the same metrics from the same arrays, so they
        agree on the best epoch and on early stopping without another message.
        """
        import torch

        part = torch.utils.data.Subset(self.val_set, distributed.shard_indices(len(self.val_set)))
        logits, labels = self.predict_logits(part)  # the bare model: no DDP collective in eval
        pieces = distributed.gather((logits, labels))
        n = len(self.val_set)
        return distributed.interleave([p[0] for p in pieces], n), distributed.interleave([p[1] for p in pieces], n)

    def calibrate(self) -> tuple[float, float]:
        """Temperature and uncertainty threshold for the current weights, on validation."""
        from skinfood_cli.engine import softmax
        from skinfood_cli.metrics import confidence_threshold, fit_temperature

        logits, labels = self.predict_logits(self.val_set)
        if len(labels) < 2:
            return 1.0, 0.5
        temperature = fit_temperature(logits, labels)
        return temperature, confidence_threshold(softmax(logits, temperature), labels)

    # -- checkpoints -------------------------------------------------------------

    def payload(self, *, resumable: bool, temperature: float = 1.0, threshold: float = 0.5) -> dict:
        import torch

        from skinfood_cli.checkpoint import clean_state_dict

        st = self.state
        best = next((h for h in st.history if h["epoch"] == st.best_epoch + 1), None)
        payload = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "arch": ARCH,
            "state_dict": clean_state_dict({k: v.detach().cpu() for k, v in self.model.state_dict().items()}),
            "classes": list(self.ds.classes), "image_size": self.cfg.image_size,
            "mean": list(self.mean), "std": list(self.std), "resize": "squash",
            "temperature": float(temperature), "threshold": float(threshold),
            "skinfood_version": __version__, "torch_version": str(torch.__version__),
            "run_name": self.run_dir.name, "config": asdict(self.cfg),
            "weights_source": self.weights_source,
            "data": {"root": str(Path(self.ds.root).resolve()), "layout": self.ds.layout,
                     "val_source": self.ds.val_source,
                     "val_files": ([relative_key(p, self.ds.root) for p, _ in self.ds.val]
                                   if self.ds.val_source == "split" else None),
                     "num_train": len(self.ds.train), "num_val": len(self.ds.val)},
            "metrics": best or {}, "epoch": st.epoch, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if resumable:
            payload["optimizer"] = self.optimizer.state_dict()
            payload["scaler"] = self.scaler.state_dict()
            payload["train_state"] = {k: v for k, v in asdict(st).items()}
            payload["rng"] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                              "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}
        return payload

    def restore(self, ckpt: dict) -> None:
        """Load model, optimizer and progress from a resumable last.pt."""
        import torch

        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for group, peak in zip(self.optimizer.param_groups, (self.backbone_lr, self.cfg.lr)):
            group["peak"] = peak
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = _State(**ckpt["train_state"])
        rng = ckpt.get("rng") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "python" in rng:
            random.setstate((rng["python_version"], tuple(rng["python"]), rng["python_gauss"]))
        if self.state.world_size != self.world:
            self._adopt_world_size()

    def _adopt_world_size(self) -> None:
        """Continue a run saved by a different number of processes.

        An epoch has a different number of (global) batches now, so the position
        inside an interrupted epoch means nothing: that epoch starts again from
        its first batch, and the schedule's step count is recomputed to match.
        """
        st, before = self.state, self.state.world_size
        if st.batch:
            self.reporter.message(f"the run was saved by {before} process(es), this is {self.world}: "
                                  f"epoch {st.epoch + 1} starts again from its first batch")
        st.batch, st.partial = 0, {}
        st.step = st.epoch * self.batches.steps()
        st.world_size = self.world

    def save_last(self) -> Path:
        return save_checkpoint(self.payload(resumable=True), self.run_dir / "last.pt")

    def write_metrics(self) -> None:
        try:
            self._write_metrics()
        except OSError as exc:
            raise SkinfoodError(f"could not write {self.run_dir / 'metrics.csv'}: {exc.strerror or exc}") from None

    def _write_metrics(self) -> None:
        columns = ["epoch", "phase", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                   "val_macro_f1", "images_per_s", "seconds"]
        tmp = self.run_dir / ".metrics.csv.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.state.history)
        os.replace(tmp, self.run_dir / "metrics.csv")


def _default_workers(device) -> int:
    # Under torchrun the machine's cores are shared by its processes.
    cores = max(1, (os.cpu_count() or 2) // distributed.local_world_size())
    # On a CPU the model needs the cores: decoding is ~5% of a 224 px step, so a
    # separate decoder process only pays once there are cores to spare. Measured
    # on 2 cores: 9.6 img/s decoding in-process vs 7.5 with one worker.
    return min(8, cores) if device.type == "cuda" else min(4, cores // 4)


# --- the loop ------------------------------------------------------------------


def fit(trainer: Trainer) -> TrainResult:
    """Run epochs until done, early-stopped, or interrupted; then calibrate best.pt.

    Under torchrun every rank runs this loop; only rank 0 writes files.
    """
    from skinfood_cli.training.feature_cache import train_head_on_features

    cfg, st = trainer.cfg, trainer.state
    run_dir = trainer.run_dir
    writer = distributed.is_main()
    if writer:
        _warn_if_short_of_room(trainer)
    with StopFlag() as stop:
        while st.epoch < cfg.epochs:
            t0 = time.perf_counter()
            train_metrics = (
                train_head_on_features(trainer, stop) if cfg.freeze_backbone
                else trainer.train_one_epoch(stop))
            val = trainer.validate(stop) if train_metrics is not None else None
            if train_metrics is None or val is None:
                if writer:
                    with stop.saving():
                        trainer.save_last()
                return TrainResult(run_dir, run_dir / "best.pt", run_dir / "last.pt", st.history,
                                   _best_row(st), interrupted=True)
            row = {"epoch": st.epoch + 1, "phase": "head" if st.epoch < trainer.freeze_epochs else "full",
                   "lr": trainer.optimizer.param_groups[-1]["lr"], **train_metrics, **val,
                   "seconds": time.perf_counter() - t0}
            st.history.append(row)
            score = val["val_macro_f1"] if not math.isnan(val["val_macro_f1"]) else train_metrics["train_acc"]
            improved = score > st.best_score
            if improved:
                st.best_score, st.best_epoch, st.stale_epochs = score, st.epoch, 0
            else:
                st.stale_epochs += 1
            st.epoch += 1
            st.batch = 0
            st.partial = {}
            if writer:
                with stop.saving():
                    if improved:
                        save_checkpoint(trainer.payload(resumable=False), run_dir / "best.pt")
                    trainer.save_last()
                    trainer.write_metrics()
            trainer.reporter.epoch_end({**row, "best": improved})
            if cfg.patience and st.stale_epochs >= cfg.patience:
                trainer.reporter.message(
                    f"early stop: validation macro-F1 has not improved for {cfg.patience} epochs")
                break
    return _finish(trainer)


def _finish(trainer: Trainer) -> TrainResult:
    """Fit the temperature and threshold on validation for best.pt's weights.

    Under torchrun rank 0 does it alone, on the whole validation split (one
    pass, no collective); the other ranks return and wait for it at the end of
    the session.
    """
    run_dir = trainer.run_dir
    if not distributed.is_main():
        return TrainResult(run_dir, run_dir / "best.pt", run_dir / "last.pt", trainer.state.history,
                           _best_row(trainer.state), skipped=trainer.ds.skipped)
    best = load_checkpoint(run_dir / "best.pt")
    trainer.model.load_state_dict(best["state_dict"])
    temperature, threshold = trainer.calibrate()
    best["temperature"], best["threshold"] = temperature, threshold
    from skinfood_cli.training.trust_fit import fit_run_trust

    best["trust"] = fit_run_trust(trainer, temperature)
    save_checkpoint(best, run_dir / "best.pt")
    return TrainResult(run_dir, run_dir / "best.pt", run_dir / "last.pt", trainer.state.history,
                       _best_row(trainer.state), temperature=temperature, threshold=threshold,
                       skipped=trainer.ds.skipped, trust=best["trust"])


def checkpoint_bytes(model, head_only: bool = False) -> int:
    """The most a run's checkpoints take at once: best.pt (the weights), last.pt (the weights and
    AdamW's two moments of what it trains: the head alone with --freeze-backbone) and a second
    last.pt while its next version is written atomically."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    trained = model.fc.parameters() if head_only else model.parameters()
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
            "see `skinfood models`, or set SKINFOOD_HOME to a bigger disk)")


def _best_row(st: _State) -> dict | None:
    return next((h for h in st.history if h["epoch"] == st.best_epoch + 1), None)


# --- entry points ------------------------------------------------------------------


def train(cfg: TrainConfig, reporter: Reporter | None = None, *, opener=None) -> TrainResult:
    """Train a new run from `cfg`. See the module docstring for the recipe.

    Under torchrun every process calls this; `reporter` is used on rank 0 only.
    """
    reporter = (reporter if distributed.is_main() else None) or Reporter()
    with distributed.session():
        backbone = {}

        def start_run():  # rank 0 alone; the others get what it returns
            import urllib.request

            from skinfood_cli.paths import new_run_dir, weights_dir
            from skinfood_cli.weights import resolve_backbone

            cfg.check()
            _check_world(cfg)
            ds = prepare_data(cfg, reporter)
            _check_world(cfg, len(ds.train))
            # The ImageNet weights stay here: wrapping the model in DDP copies rank 0's
            # parameters to every rank, so they needn't travel twice.
            backbone["state"], source = resolve_backbone(
                pretrained=cfg.pretrained, weights_file=cfg.weights, cache_dir=weights_dir(),
                opener=opener or urllib.request.urlopen, progress=getattr(reporter, "download", None))
            run_dir = new_run_dir(cfg.name)
            _write_run_files(run_dir, cfg, ds, source)
            return ds, source, run_dir

        ds, source, run_dir = distributed.share(start_run)
        trainer = Trainer(cfg, ds, run_dir, reporter, backbone.get("state"), source)
        reporter.message(
            f"{len(ds.train)} training and {len(ds.val)} validation photos, {len(ds.classes)} classes; "
            f"{trainer.device.type} {trainer.precision.name}{_world_note(cfg)}; run folder {run_dir}")
        return fit(trainer)


def resume(name: str, epochs: int | None = None, reporter: Reporter | None = None) -> TrainResult:
    """Continue run `name` from its last.pt (model, optimizer, schedule, RNG, epoch).

    Under torchrun rank 0 reads last.pt and sends it to the others, so only its
    machine needs the run folder; the number of processes may differ from the
    run's (an interrupted epoch then starts again from its first batch).
    """
    reporter = (reporter if distributed.is_main() else None) or Reporter()
    with distributed.session():
        cfg, ds, run_dir, ckpt = distributed.share(_open_run, name, epochs, reporter)
        trainer = Trainer(cfg, ds, run_dir, reporter, None, ckpt.get("weights_source", ""))
        trainer.restore(ckpt)
        del ckpt  # the optimizer state alone is ~200 MB for ResNet50
        reporter.message(f"resuming {name} at epoch {trainer.state.epoch + 1}, batch {trainer.state.batch + 1}"
                         f"{_world_note(cfg)}")
        return fit(trainer)


def _open_run(name: str, epochs: int | None, reporter: Reporter):
    """Read run `name`'s last.pt and dataset for a resume: (config, dataset, run folder, checkpoint)."""
    from skinfood_cli.errors import ModelError
    from skinfood_cli.paths import find_run

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
    cfg = TrainConfig(**ckpt["config"])
    if epochs is not None:
        cfg.epochs = epochs
    cfg.check()
    _check_world(cfg)
    ds = prepare_data(cfg, reporter, val_files=ckpt["data"].get("val_files"))
    if list(ds.classes) != list(ckpt["classes"]):
        raise DataError(f"the classes in {cfg.data} changed since run {name!r} started")
    _check_world(cfg, len(ds.train))
    done = ckpt["train_state"]["epoch"]
    if done >= cfg.epochs:
        raise UsageError(f"run {name!r} already finished {done} epochs: pass a larger --epochs to train further")
    _write_run_files(run_dir, cfg, ds, ckpt.get("weights_source", ""))
    return cfg, ds, run_dir, ckpt


def _check_world(cfg: TrainConfig, num_train: int | None = None) -> None:
    """Refuse, once and on rank 0, what can't run on several processes."""
    world = distributed.world_size()
    if world == 1:
        return
    if cfg.freeze_backbone:
        raise UsageError("--freeze-backbone trains the head on features cached in one process and does not "
                         "run under torchrun: start it as a plain `skinfood train` (it takes minutes on a CPU)")
    device = distributed.resolve_device(cfg.device)  # its errors here once, not from every rank later
    if cfg.sync_bn and device.type != "cuda":
        raise UsageError("--sync-bn needs CUDA GPUs (SyncBatchNorm does not run on the CPU): leave it out")
    if num_train is not None and num_train < 2 * world:
        raise DataError(f"{num_train} training photo(s) can't give each of {world} processes a batch of 2")


def _world_note(cfg: TrainConfig) -> str:
    world = distributed.world_size()
    if world == 1:
        return ""
    return f"; {world} processes x batch {cfg.batch_size} = global batch {world * cfg.batch_size}"


def _write_run_files(run_dir: Path, cfg: TrainConfig, ds, source: str) -> None:
    try:
        _write_config_and_skips(run_dir, cfg, ds, source)
    except OSError as exc:
        raise SkinfoodError(f"could not write to the run folder {run_dir}: {exc.strerror or exc}") from None


def _write_config_and_skips(run_dir: Path, cfg: TrainConfig, ds, source: str) -> None:
    import torch
    import yaml

    config = {**asdict(cfg), "weights_source": source, "skinfood_version": __version__,
              "torch_version": str(torch.__version__), "classes": list(ds.classes),
              "layout": ds.layout, "num_train": len(ds.train), "num_val": len(ds.val),
              "world_size": distributed.world_size(),
              "global_batch_size": distributed.world_size() * cfg.batch_size}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    if ds.skipped:
        (run_dir / "skipped.txt").write_text("".join(f"{p}\t{r}\n" for p, r in ds.skipped))
