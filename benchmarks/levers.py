"""Which training levers help, measured on a validation fold of train/ (never on test/).

Each variant is benchmarks/plain_script.py's loop with one more lever switched on, trained
for the same wall-clock budget on the same fold; a variant's score is the fold's
accuracy / macro-F1 / balanced accuracy. Results append to --out as JSON lines, so a
long sweep can be stopped and continued.

    python benchmarks/levers.py --data d6/ --minutes 7 --seeds 0 --out levers.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plain_script import Levers, decode, list_split, predict, scores, train

VARIANTS = {
    "plain": Levers(),
    "trivial": Levers(aug="trivial"),
    "progressive": Levers(progressive=True),
    "ema": Levers(ema=0.05),
    "mix": Levers(mix=0.5),
    "balanced": Levers(balanced=True),
    "trivial+ema": Levers(aug="trivial", ema=0.05),
    # on top of progressive resizing, the lever skinfood adopted
    "progressive+ema": Levers(progressive=True, ema=0.05),
    "progressive+balanced": Levers(progressive=True, balanced=True),
    "progressive+mix": Levers(progressive=True, mix=0.5),
}


def fold(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified (train, validation) indices."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == c]
        rng.shuffle(idx)
        n = max(1, round(len(idx) * fraction))
        va += idx[:n]
        tr += idx[n:]
    return sorted(tr), sorted(va)


def save_results(args) -> None:
    from report import provenance, save

    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]
    run = {**provenance("levers", sys.argv[1:]), **({"note": args.note} if args.note else {})}
    print("saved", save("levers", {"run": run, "data": args.data, "levers": rows}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--minutes", type=float, default=7)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--seeds", default="0")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--fold-fraction", type=float, default=0.25)
    p.add_argument("--out", required=True, help="JSON lines, appended to")
    p.add_argument(
        "--save",
        action="store_true",
        help="write results/levers.json (and the README's table) from every row in --out, without training",
    )
    p.add_argument("--note", default=None, help="with --save: a sentence kept beside the figures")
    args = p.parse_args()
    if args.save:
        save_results(args)
        return
    items, names = list_split(Path(args.data) / "train")
    x, y = decode(items, args.image_size)
    for seed in [int(s) for s in args.seeds.split(",")]:
        tr, va = fold(y.tolist(), args.fold_fraction, seed)
        for name in args.variants.split(","):
            levers = VARIANTS[name]
            print(f"{name} seed {seed}: {len(tr)} train / {len(va)} validation", flush=True)
            model, facts = train(x[tr], y[tr], len(names), args.image_size, args.minutes, seed, levers)
            row = {
                "variant": name,
                "seed": seed,
                "minutes": args.minutes,
                **asdict(levers),
                **facts,
                **scores(y[va].numpy(), predict(model, x[va], args.image_size), len(names)),
            }
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
