"""Each backbone's size and speed on this CPU, every memory format and precision side by side.

    python benchmarks/archs.py [--quick] [--archs resnet50,efficientnet-lite0]

For every architecture in skinfood's registry, at its native input size, batch 32, in one
run (so the rows compare): parameters; training img/s (one AdamW step: forward, backward,
update) in NCHW and channels_last, fp32 and, where the CPU computes it natively, bf16;
prediction img/s the way `skinfood predict` runs it (eval mode, BatchNorm folded,
channels_last, `--precision auto`) and through its int8 TorchScript export. The fastest training setting is what
`skinfood train` should pick on such a CPU: the table says whether it does.

On any machine `ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2` makes it behave like a CPU
without AVX-512 (most laptops): run it both ways to compare. Saves results/archs.json (or
archs-avx2.json under that setting) and regenerates the README's table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from report import provenance, save  # noqa: E402

BATCH = 32


def _time(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def train_rate(arch: str, layout: str, precision: str, reps: int) -> float:
    """Images per second of one training step (the best of `reps`)."""
    import torch

    from skinfood_cli.archs import get_arch
    from skinfood_cli.model import build_model

    size = get_arch(arch).image_size
    torch.manual_seed(0)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = build_model(8, arch=arch).train().to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(BATCH, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 8, (BATCH,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return BATCH / _time(step, 2, reps)


def _loaded(arch: str):
    """A checkpoint of the arch (fresh 8-way head, ImageNet-free weights), as `load_model` returns it."""
    from skinfood_cli.archs import get_arch
    from skinfood_cli.backends.pytorch import TorchBackend
    from skinfood_cli.checkpoint import FORMAT
    from skinfood_cli.model import build_model

    spec = get_arch(arch)
    ckpt = {
        "format": FORMAT,
        "arch": arch,
        "state_dict": build_model(8, arch=arch).state_dict(),
        "classes": [str(i) for i in range(8)],
        "image_size": spec.image_size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "temperature": 1.0,
    }
    return TorchBackend().from_checkpoint(Path(f"{arch}.pt"), ckpt)


def predict_rate(arch: str, reps: int) -> tuple[float, str]:
    """Images per second through skinfood's own inference path, and the precision auto picked."""
    from skinfood_cli.engine import Engine

    engine = Engine(_loaded(arch), device="cpu", precision="auto", batch_size=BATCH)
    return _engine_rate(engine, reps), engine.precision.name


def _engine_rate(engine, reps: int) -> float:
    """Images per second of `engine` on a batch of BATCH, after two warm-up passes."""
    x = engine.example_input(BATCH)
    return BATCH / _time(lambda: engine.forward(x), 2, reps)


def int8_torchscript_rate(arch: str, reps: int) -> float:
    """Images per second through the file `skinfood export --format torchscript --int8` writes
    (calibrated on random batches: the speed of int8 kernels does not depend on the values)."""
    import tempfile

    import torch

    from skinfood_cli.backends import load_model
    from skinfood_cli.backends.metadata import export_metadata
    from skinfood_cli.backends.torchscript import TORCHSCRIPT_FORMAT
    from skinfood_cli.backends.torchscript_writer import torchscript_metadata, write_torchscript
    from skinfood_cli.engine import Engine

    loaded = _loaded(arch)
    meta = export_metadata(loaded, None, file_format=TORCHSCRIPT_FORMAT, with_preprocessing=False, batch=None)
    meta = torchscript_metadata(loaded, meta, int8=True)  # what `skinfood export` records: its kernels load
    size = loaded.image_size
    calibration = [torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{arch}.int8.torchscript"
        write_torchscript(loaded, path, meta, calibration)
        return _engine_rate(Engine(load_model(path), device="cpu", batch_size=BATCH), reps)


def measure(arch: str, reps: int) -> dict:
    from skinfood_cli.archs import get_arch
    from skinfood_cli.model import build_model, cpu_has_native_bf16

    spec = get_arch(arch)
    params = sum(p.numel() for p in build_model(8, arch=arch).parameters())
    precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]
    train = {}
    for layout in ("nchw", "channels_last"):
        for precision in precisions:
            rate = train_rate(arch, layout, precision, reps)
            train[f"{layout} {precision}"] = round(rate, 1)
            print(f"  {arch} train {layout} {precision}: {rate:.1f} img/s", flush=True)
    predict, picked = predict_rate(arch, reps)
    print(f"  {arch} predict ({picked}): {predict:.1f} img/s", flush=True)
    int8 = int8_torchscript_rate(arch, reps)
    print(f"  {arch} predict (int8 TorchScript): {int8:.1f} img/s", flush=True)
    return {
        "arch": arch,
        "params_m": round(params / 1e6, 2),
        "image_size": spec.image_size,
        "imagenet_top1": spec.imagenet_top1,
        "train_images_per_s": train,
        "fastest_train": max(train, key=train.get),
        "predict_images_per_s": round(predict, 1),
        "predict_precision": picked,
        "int8_torchscript_images_per_s": round(int8, 1),
    }


def main() -> int:
    import torch

    from skinfood_cli.archs import ARCHS
    from skinfood_cli.model import cpu_has_native_bf16

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--quick", action="store_true", help="2 timed repetitions instead of 4")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args()
    reps = 2 if args.quick else 4
    avx2 = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}")
    rows = [measure(a.strip(), reps) for a in args.archs.split(",") if a.strip()]
    results = {
        "run": provenance("archs", sys.argv[1:]),
        "isa_limit": "AVX2" if avx2 else None,
        "native_bf16": cpu_has_native_bf16(),
        "batch": BATCH,
        "archs": rows,
    }
    if not args.no_save:
        print("saved", save("archs-avx2" if avx2 else "archs", results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
