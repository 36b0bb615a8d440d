"""Fine-tuning ResNet50 on a folder of photos, as small named steps.

    prepare_data      discover, pre-scan, split            (data.py)
    build_trainer     model, optimizer, loss, loaders
    get_lr            warmup + cosine, restarted when the backbone unfreezes
    train_one_epoch   resumable mid-epoch, stops cleanly on Ctrl-C
    validate          loss, accuracy, macro-F1 on the validation split
    calibrate         temperature + uncertainty threshold, fitted on validation

The recipe is fastai's `fine_tune`, the study's "additional training" round
made systematic: the new head trains alone for `freeze_epochs`, then the whole
network trains with a 10x lower learning rate for the backbone than the head.
best.pt is the epoch with the best validation macro-F1 (never test).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skinfood_cli import __version__
from skinfood_cli.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint, save_checkpoint
from skinfood_cli.data import relative_key
from skinfood_cli.errors import DataError, SkinfoodError, UsageError
from skinfood_cli.model import ARCH, IMAGENET_MEAN, IMAGENET_STD

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


# --- data ------------------------------------------------------------------------


def prepare_data(cfg: TrainConfig, reporter: Reporter, val_files: list[str] | None = None):
    """Discover the dataset and pre-scan train+val; unreadable files are left out."""
    from skinfood_cli.data import class_counts, discover_dataset, prescan

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


class _EpochBatches:
    """Batches of (index, epoch) for one epoch, shuffled by (seed, epoch).

    Starting at `start` skips the batches already trained before an
    interruption, so a resumed epoch sees exactly the batches it had left.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.start = 0, 0

    def steps(self) -> int:
        # Full batches only (drop_last): a last batch of one image breaks BatchNorm.
        return max(1, self.n // self.batch_size)

    def __len__(self) -> int:
        return self.steps() - self.start

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        size = min(self.batch_size, self.n)
        for b in range(self.start, self.steps()):
            yield [(i, self.epoch) for i in order[b * size:(b + 1) * size]]


class _EpochAwareDataset:
    """Passes the epoch from the sampler to the dataset, so persistent workers stay correct."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, key):
        index, epoch = key
        self.inner.epoch = epoch
        return self.inner[index]


class _StopFlag:
    """Ctrl-C sets a flag; training stops at the next step boundary and saves.

    A second Ctrl-C raises KeyboardInterrupt at once. Stopping between steps,
    never inside optimizer.step(), is what makes the saved state consistent.
    """

    def __init__(self):
        self.set = False
        self._previous = None
        self._saving = False
        self._pending = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if not self.set:
            self.set = True
        elif self._saving:
            self._pending = True  # never tear a checkpoint in half: stop right after it
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def saving(self):
        """A section a second Ctrl-C waits for (writing checkpoints and metrics)."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False
        if self._pending:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


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
    # so an epoch resumed mid-way still reports figures for the whole epoch.
    partial: dict = field(default_factory=dict)


class Trainer:
    """Holds the model, data and optimizer of one run and steps through it."""

    def __init__(self, cfg: TrainConfig, ds, run_dir: Path, reporter: Reporter, backbone_state=None,
                 weights_source: str = ""):
        import torch

        from skinfood_cli.data import ImageDataset, class_counts, eval_transform, train_transform
        from skinfood_cli.model import build_model, resolve_device, resolve_precision

        self.cfg, self.ds, self.run_dir, self.reporter = cfg, ds, run_dir, reporter
        self.weights_source = weights_source
        self.device = resolve_device(cfg.device)
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
        self.model = build_model(len(ds.classes), backbone_state).to(
            self.device, memory_format=torch.channels_last)
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
        self.batches = _EpochBatches(len(ds.train), cfg.batch_size, cfg.seed)
        self.workers = cfg.workers if cfg.workers is not None else _default_workers(self.device)
        self.state = _State()
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
            _EpochAwareDataset(self.train_set), batch_sampler=self.batches,
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

    def train_one_epoch(self, stop: _StopFlag) -> dict | None:
        """Train the rest of the current epoch; None if Ctrl-C stopped it."""
        import torch

        st = self.state
        frozen = st.epoch < self.freeze_epochs
        self._set_trainable(frozen)
        self.batches.epoch, self.batches.start = st.epoch, st.batch
        batches = ((x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last),
                    y.to(self.device, non_blocking=True)) for x, y in self._train_loader())
        return self.run_steps(batches, self.model, self.batches.steps(), "head only" if frozen else "full", stop)

    def run_steps(self, batches, forward, steps: int, phase: str, stop: _StopFlag) -> dict | None:
        """One epoch's optimizer steps over (x, y) batches; `forward(x)` gives logits (B, K).

        Shared by full training and the head-on-cached-features mode, so both get
        the same schedule, mixed precision, bookkeeping and Ctrl-C handling.
        Returns the epoch's training metrics, or None if Ctrl-C stopped it.
        """
        st = self.state
        self.reporter.epoch_start(st.epoch, self.cfg.epochs, steps, phase)
        done = st.partial if st.batch else {}
        seen, correct = done.get("seen", 0), done.get("correct", 0)
        loss_sum, before = done.get("loss_sum", 0.0), done.get("seconds", 0.0)
        t0 = time.perf_counter() - before
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
            self.reporter.step(st.batch, steps, loss_sum / seen, correct / seen,
                               seen / max(time.perf_counter() - t0, 1e-9))
            st.partial = {"seen": seen, "correct": correct, "loss_sum": loss_sum,
                          "seconds": time.perf_counter() - t0}
            if stop.set:
                return None
        return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
                "images_per_s": seen / max(time.perf_counter() - t0, 1e-9)}

    def predict_logits(self, dataset, stop: _StopFlag | None = None):
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

    def validate(self, stop: _StopFlag) -> dict | None:
        """Validation metrics; in --freeze-backbone mode from the cached features."""
        from skinfood_cli.engine import softmax
        from skinfood_cli.metrics import accuracy, cross_entropy, macro_f1

        if self.cfg.freeze_backbone:
            from skinfood_cli.feature_cache import head_logits_on_cached_val

            logits, labels = head_logits_on_cached_val(self)
        else:
            logits, labels = self.predict_logits(self.val_set, stop)
        if logits is None:
            return None
        if not len(labels):
            return {"val_loss": float("nan"), "val_acc": float("nan"), "val_macro_f1": float("nan")}
        pred = logits.argmax(1)
        return {"val_loss": cross_entropy(labels, softmax(logits)), "val_acc": accuracy(labels, pred),
                "val_macro_f1": macro_f1(labels, pred, len(self.ds.classes))}

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
    cores = os.cpu_count() or 2
    # On a CPU the model needs the cores: decoding is ~5% of a 224 px step, so a
    # separate decoder process only pays once there are cores to spare. Measured
    # on 2 cores: 9.6 img/s decoding in-process vs 7.5 with one worker.
    return min(8, cores) if device.type == "cuda" else min(4, cores // 4)


# --- the loop ------------------------------------------------------------------


def fit(trainer: Trainer) -> TrainResult:
    """Run epochs until done, early-stopped, or interrupted; then calibrate best.pt."""
    from skinfood_cli.feature_cache import train_head_on_features

    cfg, st = trainer.cfg, trainer.state
    run_dir = trainer.run_dir
    with _StopFlag() as stop:
        while st.epoch < cfg.epochs:
            t0 = time.perf_counter()
            train_metrics = (
                train_head_on_features(trainer, stop) if cfg.freeze_backbone
                else trainer.train_one_epoch(stop))
            val = trainer.validate(stop) if train_metrics is not None else None
            if train_metrics is None or val is None:
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
    """Fit the temperature and threshold on validation for best.pt's weights."""
    run_dir = trainer.run_dir
    best = load_checkpoint(run_dir / "best.pt")
    trainer.model.load_state_dict(best["state_dict"])
    temperature, threshold = trainer.calibrate()
    best["temperature"], best["threshold"] = temperature, threshold
    save_checkpoint(best, run_dir / "best.pt")
    return TrainResult(run_dir, run_dir / "best.pt", run_dir / "last.pt", trainer.state.history,
                       _best_row(trainer.state), temperature=temperature, threshold=threshold,
                       skipped=trainer.ds.skipped)


def _best_row(st: _State) -> dict | None:
    return next((h for h in st.history if h["epoch"] == st.best_epoch + 1), None)


# --- entry points ------------------------------------------------------------------


def train(cfg: TrainConfig, reporter: Reporter | None = None, *, opener=None) -> TrainResult:
    """Train a new run from `cfg`. See the module docstring for the recipe."""
    import urllib.request

    from skinfood_cli.paths import new_run_dir, weights_dir
    from skinfood_cli.weights import resolve_backbone

    reporter = reporter or Reporter()
    cfg.check()
    ds = prepare_data(cfg, reporter)
    backbone, source = resolve_backbone(
        pretrained=cfg.pretrained, weights_file=cfg.weights, cache_dir=weights_dir(),
        opener=opener or urllib.request.urlopen, progress=getattr(reporter, "download", None))
    run_dir = new_run_dir(cfg.name)
    _write_run_files(run_dir, cfg, ds, source)
    trainer = Trainer(cfg, ds, run_dir, reporter, backbone, source)
    reporter.message(
        f"{len(ds.train)} training and {len(ds.val)} validation photos, {len(ds.classes)} classes; "
        f"{trainer.device.type} {trainer.precision.name}; run folder {run_dir}")
    return fit(trainer)


def resume(name: str, epochs: int | None = None, reporter: Reporter | None = None) -> TrainResult:
    """Continue run `name` from its last.pt (model, optimizer, schedule, RNG, epoch)."""
    from skinfood_cli.errors import ModelError
    from skinfood_cli.paths import find_run

    reporter = reporter or Reporter()
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
    ds = prepare_data(cfg, reporter, val_files=ckpt["data"].get("val_files"))
    if list(ds.classes) != list(ckpt["classes"]):
        raise DataError(f"the classes in {cfg.data} changed since run {name!r} started")
    trainer = Trainer(cfg, ds, run_dir, reporter, None, ckpt.get("weights_source", ""))
    trainer.restore(ckpt)
    if trainer.state.epoch >= cfg.epochs:
        raise UsageError(f"run {name!r} already finished {trainer.state.epoch} epochs: "
                         f"pass a larger --epochs to train further")
    reporter.message(f"resuming {name} at epoch {trainer.state.epoch + 1}, batch {trainer.state.batch + 1}")
    _write_run_files(run_dir, cfg, ds, trainer.weights_source)
    return fit(trainer)


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
              "layout": ds.layout, "num_train": len(ds.train), "num_val": len(ds.val)}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    if ds.skipped:
        (run_dir / "skipped.txt").write_text("".join(f"{p}\t{r}\n" for p, r in ds.skipped))
