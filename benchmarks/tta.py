"""Would mirrored photos at prediction time help? A model's answers with and without (run by hand).

    python benchmarks/tta.py --model RUN --data PART [--model RUN2 --data PART2 ...]

For each model, the photos `skinfood evaluate --data DIR` would score (DIR/test/, or
DIR/<condition>/... when that is all there is) go through the network
twice, as `skinfood evaluate` preprocesses them and mirrored left to right; the plain
logits and the mean of both are scored side by side (accuracy, macro-F1, loss at the
model's temperature), so the comparison is paired photo by photo. Nothing is saved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paired import add_model_options, each_model, photo_batches


def logits_both_ways(engine, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) logits of the photos as evaluation sees them, and of their mirror images."""
    import torch

    plain, mirrored = [], []
    for x in photo_batches(engine, files):
        plain.append(engine.forward(x).numpy())
        mirrored.append(engine.forward(torch.flip(x, dims=[3])).numpy())
    return np.concatenate(plain), np.concatenate(mirrored)


def main() -> int:
    from skinfood_cli.metrics import accuracy, cross_entropy, macro_f1, softmax

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(p)
    args = p.parse_args()
    print(f"{'model':24} {'photos':>6}  {'accuracy':>17}  {'macro-F1':>17}  {'loss':>17}   (plain -> mirrored too)")
    for label, engine, y, files in each_model(p, args):
        plain, mirrored = logits_both_ways(engine, files)
        row = []
        for logits in (plain, (plain + mirrored) / 2):
            pred = logits.argmax(1)
            row.append(
                (
                    accuracy(y, pred),
                    macro_f1(y, pred, len(engine.classes)),
                    cross_entropy(y, softmax(logits, engine.model.temperature)),
                )
            )
        cells = "  ".join(f"{a:.3f} -> {b:.3f} ({b - a:+.3f})" for a, b in zip(*row))
        print(f"{label:24} {len(y):>6}  {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
