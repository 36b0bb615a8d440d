"""A plain modern training script, the yardstick skinfood's recipe must beat (issue #18).

Deliberately what a competent person writes in 100 lines: AdamW 1e-3, weight decay 0.05,
5% warmup + cosine laid out over a wall-clock budget, label smoothing 0.1, bf16 +
channels_last, the study's augmentation (flip, rotate 15, translate 10%, pad-crop), every
training photo, the last epoch's weights. Photos are decoded once into memory.

The `levers` let benchmarks/levers.py switch on one idea at a time on this same loop
(stronger augmentation, EMA of the weights, mixup/CutMix, class-balanced sampling), so a
lever is measured against the plain script and nothing else.

    python benchmarks/plain_script.py --data ../shared/dermnet-dev --minutes 15

With `--arch NAME` it fine-tunes that backbone's real ImageNet weights instead (timm, the
weights skinfood installs or downloads), normalised as they were trained, with the strong
augmentation (random resized crop, both flips, TrivialAugment): the plain pretrained
recipe of the issue that asked for pretrained figures (AdamW 1e-3 on every parameter,
wd 0.05, cosine, label smoothing 0.1, bf16 where native). `--read-at N` also scores the
same weights on test photos read at N px (`read_at` in its JSON line), as skinfood reads
whole photos a seventh above its training crops.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass
class Levers:
    aug: str = "study"  # study | trivial (TrivialAugmentWide + random resized crop)
    ema: float = 0.0  # EMA horizon as a share of the run (0: off; 0.05 = the last ~5% of the budget)
    mix: float = 0.0  # probability of mixup/CutMix on a batch (0: off)
    balanced: bool = False  # class-balanced sampling
    progressive: bool = False  # train at 75%, then 87.5% of the size, the last quarter at full size
    weight_decay: float = 0.05


def native_bf16() -> bool:
    from skinfood_cli.model import cpu_has_native_bf16

    return cpu_has_native_bf16()


def list_split(folder: Path, classes: list[str] | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    names = classes or sorted(p.name for p in folder.iterdir() if p.is_dir())
    items = [
        (p, i) for i, name in enumerate(names) for p in sorted((folder / name).iterdir()) if p.suffix.lower() in EXTS
    ]
    return items, names


def decode(items, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, size', size') images and (N,) labels; `size'` leaves room for cropping."""
    side = int(size * 1.15)
    xs = []
    for path, _ in items:
        with Image.open(path) as im:
            im.draft("RGB", (side, side))
            xs.append(torch.from_numpy(np.asarray(im.convert("RGB").resize((side, side), Image.BILINEAR)).copy()))
    return torch.stack(xs).permute(0, 3, 1, 2).contiguous(), torch.tensor([y for _, y in items])


def train_transform(size: int, aug: str, mean=MEAN, std=STD):
    from torchvision.transforms import v2

    if aug == "trivial":
        steps = [
            v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.TrivialAugmentWide(),
        ]
    else:
        steps = [
            v2.Resize((size, size), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomAffine(degrees=15, translate=(0.1, 0.1)),
            v2.RandomCrop(size, padding=10),
        ]
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def eval_batches(images: torch.Tensor, size: int, batch: int = 64, mean=MEAN, std=STD):
    from torchvision.transforms import v2

    t = v2.Compose(
        [v2.Resize((size, size), antialias=True), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    )
    for i in range(0, len(images), batch):
        yield t(images[i : i + batch]).contiguous(memory_format=torch.channels_last)


def scores(y: np.ndarray, pred: np.ndarray, k: int) -> dict:
    """Test scores, computed by the same code as `skinfood evaluate`'s, so both sides of recipe.py match."""
    from skinfood_cli import metrics

    return {
        "accuracy": metrics.accuracy(y, pred),
        "macro_f1": metrics.macro_f1(y, pred, k),
        "balanced_accuracy": metrics.balanced_accuracy(y, pred, k),
    }


def predict(model, images: torch.Tensor, size: int, mean=MEAN, std=STD) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=native_bf16()):
        for x in eval_batches(images, size, mean=mean, std=std):
            out.append(model(x).float().argmax(1))
    return torch.cat(out).numpy()


def pretrained_model(arch: str, num_classes: int) -> torch.nn.Module:
    """`arch`'s ImageNet weights (skinfood's resolver: packaged or downloaded, hash-checked) and a new head."""
    from skinfood_cli.model import build_model
    from skinfood_cli.paths import weights_dir
    from skinfood_cli.weights import resolve_backbone

    state, _ = resolve_backbone(pretrained=True, weights_file=None, cache_dir=weights_dir(), arch=arch)
    return build_model(num_classes, state, arch)


def train(
    train_x,
    train_y,
    num_classes: int,
    size: int,
    minutes: float,
    seed: int,
    levers: Levers,
    log=print,
    arch: str | None = None,
    mean=MEAN,
    std=STD,
    epochs: float | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Train a ResNet50 from scratch (or fine-tune `arch`'s ImageNet weights) for `minutes`.

    With `epochs`, the schedule is laid over that many epochs instead of the clock: the
    same recipe, measured on a machine too busy for a fair time budget.

    Returns (model, run facts). The model is the last step's weights, or their EMA with `levers.ema`.
    """
    import torchvision
    from torchvision.transforms import v2

    torch.manual_seed(seed)
    np.random.seed(seed)
    if arch:
        model = pretrained_model(arch, num_classes).to(memory_format=torch.channels_last)
    else:
        model = torchvision.models.resnet50(num_classes=num_classes).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=levers.weight_decay)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    ema = None
    if levers.ema:
        import copy

        ema = copy.deepcopy(model)
    # bf16 only where the CPU has it natively: emulated, it is ~15x slower than fp32.
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=native_bf16())
    transforms = {}

    def transform_for(progress: float):
        side = size
        if levers.progressive:  # skinfood's own rule, so the lever measured is the one it runs
            from skinfood_cli.training.schedule import progressive_size

            side = progressive_size(size, progress)
        if side not in transforms:
            transforms[side] = train_transform(side, levers.aug, mean, std)
        return transforms[side]

    mixer = v2.RandomChoice([v2.MixUp(num_classes=num_classes), v2.CutMix(num_classes=num_classes)])
    weights = None
    if levers.balanced:
        counts = torch.bincount(train_y, minlength=num_classes).float()
        weights = (1.0 / counts)[train_y]
    budget, batch = minutes * 60, 32
    total_steps = int(epochs * (len(train_y) // batch)) if epochs else None
    gen = torch.Generator().manual_seed(seed)
    start, steps, seen, epochs = time.perf_counter(), 0, 0, 0
    done = False
    while not done:
        order = (
            torch.multinomial(weights, len(train_y), replacement=True, generator=gen)
            if weights is not None
            else torch.randperm(len(train_y), generator=gen)
        )
        model.train()
        for i in range(0, len(order) - batch + 1, batch):
            progress = steps / total_steps if total_steps else (time.perf_counter() - start) / budget
            if progress >= 1:
                done = True
                break
            warm = progress / 0.05
            lr = 1e-3 * (warm if warm < 1 else 0.5 * (1 + math.cos(math.pi * (progress - 0.05) / 0.95)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[i : i + batch]
            transform = transform_for(progress)
            x = torch.stack([transform(img) for img in train_x[idx]]).contiguous(memory_format=torch.channels_last)
            y = train_y[idx]
            if levers.mix and torch.rand(1, generator=gen).item() < levers.mix:
                x, y = mixer(x, y)
            with autocast:
                loss = criterion(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                # EMA with a horizon in time, not steps: each step weighs its share of the budget.
                now = (time.perf_counter() - start) / budget
                alpha = min(1.0, (now - progress) / levers.ema)
                with torch.no_grad():
                    e, m = ema.state_dict(), model.state_dict()
                    for k, v in e.items():
                        if v.is_floating_point():
                            v.lerp_(m[k], alpha)
                        else:
                            v.copy_(m[k])
            steps += 1
            seen += len(idx)
        epochs += 1
    seconds = time.perf_counter() - start
    log(f"  {steps} steps, {seen / len(train_y):.1f} epochs, {seen / seconds:.1f} img/s")
    facts = {"steps": steps, "epochs": round(seen / len(train_y), 2), "images_per_s": round(seen / seconds, 1)}
    return (ema if ema is not None else model), facts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--classes", default=None, help="comma-separated class folders (default: all)")
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--epochs", type=float, default=None, help="lay the schedule over epochs instead of minutes")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", default=None, help="fine-tune this backbone's ImageNet weights (default: from scratch)")
    p.add_argument(
        "--read-at",
        type=int,
        default=None,
        help="also score the same weights on test photos read at this side (skinfood reads whole photos "
        "a seventh above its crops): reported as read_at, the main scores stay at --image-size",
    )
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    classes = args.classes.split(",") if args.classes else None
    train_items, names = list_split(Path(args.data) / "train", classes)
    test_items, _ = list_split(Path(args.data) / "test", names)
    tx, ty = decode(train_items, args.image_size)
    vx, vy = decode(test_items, args.image_size)
    mean, std, levers = MEAN, STD, Levers()
    if args.arch:
        from skinfood_cli.archs import get_arch

        spec = get_arch(args.arch)
        mean, std, levers = spec.mean, spec.std, Levers(aug="trivial")
    model, facts = train(
        tx,
        ty,
        len(names),
        args.image_size,
        args.minutes,
        args.seed,
        levers,
        arch=args.arch,
        mean=mean,
        std=std,
        epochs=args.epochs,
    )
    pred = predict(model, vx, args.image_size, mean, std)
    result = {**facts, **scores(vy.numpy(), pred, len(names))}
    if args.read_at:
        larger = predict(model, decode(test_items, args.read_at)[0], args.read_at, mean, std)
        result["read_at"] = {"size": args.read_at, **scores(vy.numpy(), larger, len(names))}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
