"""Where a training step's time goes: skinfood's step against the study's, op by op.

    python benchmarks/profile_train.py [--batch 32] [--steps 2]

One ResNet50 training step at 224 px on random data (decoding is measured in
run.py; it is ~3 ms of a ~80 ms photo), profiled with torch.profiler after a
warm-up step. skinfood: channels_last + AdamW, with bf16 autocast where the CPU
has native bf16 (fp32 elsewhere, as `--precision auto` picks); the study: fp32,
NCHW, Adam. Ops are grouped into convolutions, BatchNorm, ReLU, optimizer and
the rest, with the convolutions' achieved GFLOP/s (ResNet50: ~4.1 GMACs per
image forward, twice that backward).
"""

from __future__ import annotations

import argparse
import time

GMACS = 4.1  # ResNet50 forward at 224 px, per image
GROUPS = {  # group: substrings of aten op names
    "convolution forward": ("mkldnn_convolution", "aten::_convolution", "aten::thnn_conv"),
    "convolution backward": ("convolution_backward",),
    "batchnorm": ("batch_norm",),
    "relu": ("threshold_backward", "relu", "clamp_min"),
    "optimizer": ("_foreach", "lerp", "addcdiv", "addcmul", "sqrt", "Optimizer"),
    "pooling, fc, loss": ("pool", "addmm", "mm", "log_softmax", "nll_loss"),
}


def profile_step(name: str, channels_last: bool, bf16: bool, optimizer: str, batch: int, steps: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torchvision.models import resnet50

    torch.manual_seed(0)
    x, y = torch.randn(batch, 3, 224, 224), torch.randint(0, 3, (batch,))
    model = resnet50(num_classes=3).train()
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = (torch.optim.AdamW if optimizer == "AdamW" else torch.optim.Adam)(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: oneDNN picks its kernels, the allocator fills
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - start) / steps
    groups = dict.fromkeys(GROUPS, 0.0)
    total = 0.0
    for event in prof.key_averages():
        if not event.key.startswith("aten::") and not event.key.startswith("Optimizer"):
            continue
        own = event.self_cpu_time_total / 1e6 / steps
        total += own
        group = next((g for g, keys in GROUPS.items() if any(k in event.key for k in keys)), "other")
        groups[group] = groups.get(group, 0.0) + own
    return {"name": name, "wall": wall, "groups": groups, "batch": batch}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    from skinfood_cli.model import resolve_precision

    # skinfood's step as it runs here: bf16 autocast only on CPUs with native bf16, else fp32.
    precision = resolve_precision("auto", torch.device("cpu")).name
    runs = [
        profile_step("study (fp32, NCHW, Adam)", False, False, "Adam", args.batch, args.steps),
        profile_step(
            f"skinfood ({precision}, channels_last, AdamW)", True, precision == "bf16", "AdamW", args.batch, args.steps
        ),
    ]
    conv_gflop = {"convolution forward": 2 * GMACS * args.batch, "convolution backward": 4 * GMACS * args.batch}
    print(f"one training step, batch {args.batch}, 224 px (seconds per step; share; conv GFLOP/s)")
    print(f"{'':24}" + "".join(f"{r['name']:>40}" for r in runs))
    for group in list(GROUPS) + ["other"]:
        cells = []
        for r in runs:
            t = r["groups"].get(group, 0.0)
            rate = f", {conv_gflop[group] / t:.0f} GFLOP/s" if group in conv_gflop and t else ""
            cells.append(f"{t:.2f} s ({t / r['wall']:.0%}{rate})")
        print(f"{group:24}" + "".join(f"{c:>40}" for c in cells))
    print(
        f"{'step (wall)':24}"
        + "".join(f"{r['wall']:.2f} s = {r['batch'] / r['wall']:.1f} img/s".rjust(40) for r in runs)
    )
    print(f"skinfood's step is {runs[0]['wall'] / runs[1]['wall']:.2f}x the study's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
