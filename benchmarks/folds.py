"""skinfood's training options compared on validation folds of train/ (never test/).

    python benchmarks/folds.py --data d6/ --arch efficientnet-lite0 --minutes 15 \\
        --variant default= --variant progressive=--progressive --use 0,1 --rows folds.jsonl

DIR/train is cut into --folds parts, stratified by condition (--fold-seed shuffles each
condition's photos, then part k takes every k-th). For each part in --use, every variant
runs `skinfood train --data FOLD --arch A --minutes M --seed S OPTIONS` on the other parts,
with the part as its val/ folder (so it calibrates on it, and leaves out training copies of
its photos), then `skinfood evaluate` scores it on the part. Variants run one after the
other on the same part, so a part's rows compare like with like; the summary gives each
variant's mean and its difference from the first variant part by part. DIR/test is never
read: choose here, then report test/ with recipe.py. Takes parts x variants x minutes, and
more; rows append to --rows as JSON lines, so a sweep can be stopped and continued, and
`--use ""` only summarises them.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from recipe import run_skinfood  # noqa: E402
from report import provenance, save  # noqa: E402

SCORES = ("accuracy", "macro_f1", "loss")


def make_folds(train: Path, parts: int, seed: int, out: Path) -> list[Path]:
    """`parts` symlink trees FOLD/{train,val,test}/<condition>/, val (= test) one part of train/."""
    from skinfood_cli.data.dataset import list_files
    from skinfood_cli.data.images import is_image_path

    rng = random.Random(seed)
    roots = [out / f"fold{k}" for k in range(parts)]
    for condition in sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")):
        folder = train / condition
        photos = sorted(p.relative_to(folder) for p in list_files(folder) if is_image_path(p))
        rng.shuffle(photos)
        for k, root in enumerate(roots):
            held = set(photos[k::parts])
            for photo in photos:
                link = root / ("val" if photo in held else "train") / condition / photo
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to((folder / photo).resolve())
    for root in roots:
        if not (root / "test").exists():
            (root / "test").symlink_to("val", target_is_directory=True)
    return roots


def parse_variant(spec: str) -> tuple[str, list[str]]:
    name, _, options = spec.partition("=")
    if not name.strip():
        raise SystemExit(f"--variant takes NAME=OPTIONS (OPTIONS may be empty), not {spec!r}")
    return name.strip(), shlex.split(options)


def summarise(rows: list[dict]) -> dict:
    """Each variant's mean over its parts, and its difference from the first variant on shared parts."""
    names = list(dict.fromkeys(r["variant"] for r in rows))
    by = {(r["variant"], r["fold"]): r for r in rows}  # a part run twice: the later row counts
    out = {}
    for name in names:
        folds = sorted(f for v, f in by if v == name)
        mine = [by[name, f] for f in folds]
        entry: dict = {
            "options": mine[-1]["options"],
            "folds": folds,
            "epochs": statistics.mean(r["epochs"] for r in mine),
            "images_per_s": statistics.mean(r["images_per_s"] or 0 for r in mine),
            **{k: statistics.mean(r[k] for r in mine) for k in SCORES},
        }
        if name != names[0]:
            shared = [f for f in folds if (names[0], f) in by]
            entry["vs"] = names[0]
            entry["difference"] = {k: [by[name, f][k] - by[names[0], f][k] for f in shared] for k in SCORES}
            entry["shared_folds"] = shared
        out[name] = entry
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a folder with train/ (test/ is not read)")
    p.add_argument("--arch", default="efficientnet-lite0")
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--epochs", type=float, default=None, help="lay each run over this many epochs instead")
    p.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="NAME=OPTIONS",
        help="`skinfood train` options to compare, e.g. progressive=--progressive; the first is the "
        "baseline (default: default=, skinfood's defaults)",
    )
    p.add_argument("--folds", type=int, default=3, help="parts train/ is cut into")
    p.add_argument("--use", default="0,1,2", help="which parts to hold out, one run per variant each")
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="skinfood train --seed for every run")
    p.add_argument("--work", default=None, help="folder for the fold trees and runs (default: a temporary one)")
    p.add_argument("--rows", default=None, help="JSON-lines file each run is appended to; the summary covers all")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--name", default=None, help="results file to write (default: folds-ARCH)")
    p.add_argument("--note", default=None, help="a sentence kept beside the figures")
    args = p.parse_args()
    variants = [parse_variant(v) for v in args.variant or ["default="]]
    work = Path(args.work or tempfile.mkdtemp(prefix="skinfood-folds-"))
    rows: list[dict] = []
    kept = Path(args.rows) if args.rows else None
    if kept and kept.is_file():
        rows += [json.loads(line) for line in kept.read_text().splitlines() if line.strip()]
    use = [int(k) for k in args.use.split(",") if k.strip()]
    if any(not 0 <= k < args.folds for k in use):
        p.error(f"--use takes parts 0 to {args.folds - 1}")
    roots = make_folds(Path(args.data) / "train", args.folds, args.fold_seed, work / "folds") if use else []
    t0 = time.perf_counter()
    for k in use:
        for name, options in variants:
            scores = run_skinfood(
                str(roots[k]), args.minutes, 0, args.seed, work, options, args.arch, args.epochs, name=f"fold{k}-{name}"
            )
            row = {"variant": name, "options": " ".join(options), "fold": k, "seed": args.seed, **scores}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if kept:
                with open(kept, "a") as f:
                    f.write(json.dumps(row) + "\n")
    summary = summarise(rows) if rows else {}
    header = f"\n{'variant':14} {'parts':>6} {'epochs':>7} " + " ".join(f"{k:>10}" for k in SCORES)
    print(header + "  vs the first, by part")
    for name, v in summary.items():
        diff = "  ".join(f"{d:+.3f}" for d in v.get("difference", {}).get("accuracy", []))
        print(
            f"{name:14} {len(v['folds']):>6} {v['epochs']:>7.1f} "
            + " ".join(f"{v[k]:>10.3f}" for k in SCORES)
            + (f"  accuracy {diff}" if diff else "")
        )
    results = {
        "run": {**provenance("folds", sys.argv[1:]), **({"note": args.note} if args.note else {})},
        "data": args.data,
        "arch": args.arch,
        "minutes": None if args.epochs else args.minutes,
        "epochs": args.epochs,
        "folds": args.folds,
        "fold_seed": args.fold_seed,
        "variants": summary,
        "rows": rows,
    }
    if use:
        results["seconds"] = time.perf_counter() - t0
    if not args.no_save and rows:
        print("saved", save(args.name or f"folds-{args.arch}", results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
