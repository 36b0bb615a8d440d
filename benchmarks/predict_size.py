"""At which size should a trained model read whole photos? The same weights at several sizes (run by hand).

    python benchmarks/predict_size.py --model RUN --data PART [--model RUN2 --data PART2 ...] \\
        [--sizes 224,240,256,272,288]

For each model, the photos `skinfood evaluate --data DIR` would score (DIR/test/, or
DIR/<condition>/... when that is all there is) are read and squashed to each size, as
`skinfood evaluate` would at that size, and go through the same weights; accuracy,
macro-F1 and the loss at the temperature that fits each size best (on these photos: a
fair comparison of sizes, not a calibration) are printed side by side, so the comparison
is paired photo by photo; img/s is the network alone on a batch of 32 at each size
(the best of five passes, sizes interleaved). This chose `predict_size` (docs/recipe.md).
Nothing is saved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paired import BATCH, add_model_options, each_model, photo_batches

TEMPERATURES = np.arange(0.5, 3.001, 0.05)


def logits_at(engine, files: list[str], size: int) -> np.ndarray:
    """(N, K) logits of the photos read as `skinfood evaluate` reads them at `size` px."""
    return np.concatenate([engine.forward(x).float().numpy() for x in photo_batches(engine, files, size)])


def network_rates(engine, sizes: list[int], rounds: int = 5) -> dict[int, float]:
    """Images per second of the network on a batch of BATCH at each size: the best of `rounds`
    passes, the sizes taking turns so a busy moment on a shared machine hits them all."""
    import time

    import torch

    batches = {s: torch.randn(BATCH, 3, s, s) for s in sizes}
    best = dict.fromkeys(sizes, float("inf"))
    for s in sizes:  # warm-up: the first pass at a size plans its convolutions
        engine.forward(batches[s])
    for _ in range(rounds):
        for s in sizes:
            t0 = time.perf_counter()
            engine.forward(batches[s])
            best[s] = min(best[s], time.perf_counter() - t0)
    return {s: BATCH / best[s] for s in sizes}


def main() -> int:
    from skinfood_cli.metrics import accuracy, cross_entropy, macro_f1, softmax

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(p)
    p.add_argument("--sizes", default="224,240,256,272,288", help="comma-separated sides in pixels")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(
        f"{'model':24} {'photos':>6} {'px':>5} {'accuracy':>9} {'macro-F1':>9} {'loss':>7} {'img/s':>7}"
        "   (against the first size)"
    )
    for label, engine, y, files in each_model(p, args):
        first = None
        rates = network_rates(engine, sizes)
        for size in sizes:
            logits = logits_at(engine, files, size).astype(np.float64)
            pred = logits.argmax(1)
            row = (
                accuracy(y, pred),
                macro_f1(y, pred, len(engine.classes)),
                min(cross_entropy(y, softmax(logits, t)) for t in TEMPERATURES),
            )
            first = first or row
            diff = "  ".join(f"{a - b:+.3f}" for a, b in zip(row, first))
            cells = f"{row[0]:>9.3f} {row[1]:>9.3f} {row[2]:>7.3f} {rates[size]:>7.1f}"
            print(f"{label:24} {len(y):>6} {size:>5} {cells}   {diff}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
