"""Out-of-scope scores and conformal sets, measured on real photos (run by hand, not a test).

    python benchmarks/trust.py \\
        --model "$(skinfood home)/runs/trust6/best.pt" --data d6/ \\
        --near trust-near/ --far trust-far/ --out benchmarks/results/trust.json

--data is the dataset the model was trained on (its train/val split and the
training copies it left out are rebuilt from the checkpoint); --near holds photos
of skin conditions the model was not trained on, --far pictures that are not skin
(benchmarks/non_skin.py writes one). Every method is fitted on the training
photos' pooled features (or, for the rows saying so, skinfood's scope inputs: the
pooled features beside an earlier stage's statistics), its cut set so 95% of the
validation photos stay in scope, and then scored on test, near and far. AUROC is
in-scope test photos against each out-of-scope set.

--refit OUT.pt writes a copy of the model whose scope check and sets are fitted
again by today's rule, so `skinfood evaluate --ood` can compare the rules on the
same weights.

--calibration-sizes 45,60,90 asks how much the validation split's size matters: the
validation and test photos (both unseen in training) are pooled, and 1,000 times a
random n of them calibrate the sets and the scope cut (the default score) while the
rest measure coverage, set size and the share flagged, the non-skin share with the
same cut. The spread over draws is what a split of n photos costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skinfood_cli.checkpoint import load_checkpoint, model_from_checkpoint
from skinfood_cli.data.dataset import (
    discover_dataset,
    eval_transform,
    gather,
    list_class_folders,
)
from skinfood_cli.data.images import is_image_path, load_image
from skinfood_cli.data.leaks import left_out
from skinfood_cli.metrics import softmax
from skinfood_cli.model import scope_stage
from skinfood_cli.trust import (
    DEFAULT_METHOD,
    KEEP,
    auroc,
    calibrate,
    fit_score,
    fit_trust,
    in_scope_threshold,
    prediction_sets,
    scope_inputs,
    set_metrics,
    staged_features,
)

# (method, options, inputs): "f" the pooled features, "s" skinfood's scope inputs (the default).
CANDIDATES = [
    ("max_softmax", {}, "f"),
    ("energy", {}, "f"),
    ("mahalanobis", {}, "f"),
    ("knn", {"k": 1}, "f"),
    ("knn", {"k": 5}, "f"),
    ("knn", {"k": 10}, "f"),
    ("knn", {"k": 20}, "f"),
    ("mahalanobis", {}, "s"),
    ("knn", {"k": 5}, "s"),
    ("knn", {"k": 10}, "s"),
    ("knn", {"k": 20}, "s"),
]


def extract(model, paths: list[str], image_size: int, mean, std, batch: int = 32):
    """(pooled features (N, D), logits (N, K), scope inputs (N, D + 2C)) for `paths`, fp32, eval mode."""
    transform = eval_transform(image_size, mean, std)
    stage = scope_stage(model)
    feats, logits, inputs = [], [], []
    with torch.inference_mode():
        for i in range(0, len(paths), batch):
            x = torch.stack([transform(load_image(p, draft_size=image_size)) for p in paths[i : i + batch]])
            f, z, kept = staged_features(model, x, stage)
            feats.append(f.float())
            logits.append(z.float())
            inputs.append(scope_inputs(f, kept))
    return torch.cat(feats).numpy(), torch.cat(logits).numpy(), torch.cat(inputs).numpy()


def images_in(folder: str) -> list[str]:
    return sorted(str(p) for p in Path(folder).rglob("*") if p.is_file() and is_image_path(p))


def load_splits(args, ckpt, model) -> dict:
    cache = Path(args.cache) if args.cache else None
    if cache and cache.is_file():
        return dict(np.load(cache, allow_pickle=False))
    ds = discover_dataset(
        args.data,
        classes=list(ckpt["classes"]),
        val_fraction=ckpt["config"]["val_fraction"],
        seed=ckpt["config"]["seed"],
        val_files=ckpt["data"].get("val_files"),
    )
    dropped = left_out(ckpt["data"].get("leaks"), args.data)
    train = [(p, y) for p, y in ds.train if Path(p).resolve() not in dropped]  # as training fitted it
    test_root = Path(args.data) / "test"
    test = gather(test_root, list(ckpt["classes"])) if test_root.is_dir() else []
    assert list_class_folders(test_root) == list(ckpt["classes"]) or not test
    size, mean, std = int(ckpt["image_size"]), ckpt["mean"], ckpt["std"]
    out = {}
    for name, samples in (("train", train), ("val", ds.val), ("test", test)):
        t0 = time.perf_counter()
        out[f"{name}_f"], out[f"{name}_z"], out[f"{name}_s"] = extract(model, [p for p, _ in samples], size, mean, std)
        out[f"{name}_y"] = np.array([y for _, y in samples], np.int64)
        print(f"{name}: {len(samples)} photos in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    for name, folder in (("near", args.near), ("far", args.far)):
        paths = images_in(folder)
        out[f"{name}_f"], out[f"{name}_z"], out[f"{name}_s"] = extract(model, paths, size, mean, std)
        print(f"{name}: {len(paths)} pictures", file=sys.stderr)
    if cache:
        np.savez(cache, **out)
    return out


def measure(method: str, kw: dict, inputs: str, d: dict, temperature: float) -> dict:
    t = torch.as_tensor
    score = fit_score(method, t(d[f"train_{inputs}"]), t(d["train_z"]), t(d["train_y"]), temperature=temperature, **kw)
    with torch.no_grad():
        s = {k: score(t(d[f"{k}_{inputs}"]), t(d[f"{k}_z"])).double().numpy() for k in ("val", "test", "near", "far")}
    cut = in_scope_threshold(s["val"], KEEP)
    return {
        "method": method + (f" k={kw['k']}" if "k" in kw else "") + (" +stage" if inputs == "s" else ""),
        "auroc_far": auroc(s["test"], s["far"]),
        "auroc_near": auroc(s["test"], s["near"]),
        "flagged_far": float(np.mean(s["far"] < cut)),
        "flagged_near": float(np.mean(s["near"] < cut)),
        "flagged_test": float(np.mean(s["test"] < cut)),
        "flagged_val": float(np.mean(s["val"] < cut)),
    }


def refit(ckpt: dict, model, d: dict, temperature: float, out: Path) -> None:
    """Save `ckpt` with `trust` fitted as `skinfood train` fits it today (scope inputs, DEFAULT_METHOD, 95% kept)."""
    from skinfood_cli.checkpoint import save_checkpoint

    t = torch.as_tensor
    stage = scope_stage(model)
    trust = fit_trust(
        t(d["train_s"]), t(d["train_z"]), t(d["train_y"]), t(d["val_s"]), t(d["val_z"]), d["val_y"],
        temperature=temperature, coverage=float(ckpt["config"].get("coverage", 0.9)),
        method=DEFAULT_METHOD, stage=stage,
    )  # fmt: skip
    save_checkpoint({**ckpt, "trust": trust}, out)
    print(f"wrote {out}: scope check on {trust['num_train']} training photos, stage {stage}", file=sys.stderr)


def calibration_noise(d: dict, temperature: float, coverage: float, sizes: list[int], draws: int = 1000) -> list[dict]:
    """Coverage, set size and flagged shares when n pooled held-out photos calibrate (see the docstring)."""
    t = torch.as_tensor
    score = fit_score(DEFAULT_METHOD, t(d["train_s"]), t(d["train_z"]), t(d["train_y"]), temperature=temperature)
    with torch.no_grad():
        s = {k: score(t(d[f"{k}_s"]), t(d[f"{k}_z"])).double().numpy() for k in ("val", "test", "far")}
    pooled = np.concatenate([s["val"], s["test"]])
    probs = softmax(np.concatenate([d["val_z"], d["test_z"]]), temperature)
    labels = np.concatenate([d["val_y"], d["test_y"]])
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        got: dict[str, list[float]] = {"coverage": [], "size": [], "flagged": [], "flagged_far": []}
        for _ in range(draws):
            order = rng.permutation(len(labels))
            cal, rest = order[:n], order[n:]
            sets = calibrate(probs[cal], labels[cal], coverage)
            cov, size = set_metrics(probs[rest], labels[rest], sets.qhat, sets.rule)
            cut = in_scope_threshold(pooled[cal], KEEP)
            got["coverage"].append(cov)
            got["size"].append(size)
            got["flagged"].append(float(np.mean(pooled[rest] < cut)))
            got["flagged_far"].append(float(np.mean(s["far"] < cut)))
        a = {k: np.array(v) for k, v in got.items()}
        rows.append(
            {
                "n": n,
                "draws": draws,
                **{f"{k}_mean": float(v.mean()) for k, v in a.items()},
                **{f"{k}_sd": float(v.std()) for k, v in a.items()},
                "p_coverage_outside_85_95": float(np.mean((a["coverage"] < 0.85) | (a["coverage"] > 0.95))),
                "p_size_over_2_5": float(np.mean(a["size"] > 2.5)),
                "p_flagged_over_10": float(np.mean(a["flagged"] > 0.10)),
                "p_flagged_far_under_90": float(np.mean(a["flagged_far"] < 0.90)),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--near", required=True)
    parser.add_argument("--far", required=True)
    parser.add_argument("--coverage", type=float, default=0.9)
    parser.add_argument("--cache", help="an .npz to keep the extracted features in between runs")
    parser.add_argument("--out")
    parser.add_argument("--refit", help="write a copy of --model with its scope check and sets fitted by today's rule")
    parser.add_argument(
        "--calibration-sizes", help="comma-separated validation sizes n to calibrate on, from pooled held-out photos"
    )
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    ckpt = load_checkpoint(args.model)
    model = model_from_checkpoint(ckpt).eval()
    d = load_splits(args, ckpt, model)
    temperature = float(ckpt.get("temperature", 1.0))
    rows = [measure(m, kw, inputs, d, temperature) for m, kw, inputs in CANDIDATES]
    if args.refit:
        refit(ckpt, model, d, temperature, Path(args.refit))
    val_p, test_p = softmax(d["val_z"], temperature), softmax(d["test_z"], temperature)
    cal = calibrate(val_p, d["val_y"], args.coverage)  # skinfood's rule (LAC)
    coverage, size = set_metrics(test_p, d["test_y"], cal.qhat, cal.rule)
    aps = calibrate(val_p, d["val_y"], args.coverage, rule="aps")  # the rule before it, for comparison
    aps_coverage, aps_size = set_metrics(test_p, d["test_y"], aps.qhat, "aps")
    result = {
        "model": Path(args.model).name,
        "classes": list(ckpt["classes"]),
        "temperature": temperature,
        "epochs_trained": ckpt.get("epoch"),
        "image_size": int(ckpt["image_size"]),
        "val_macro_f1": ckpt.get("metrics", {}).get("val_macro_f1"),
        "test_accuracy": float(np.mean(d["test_z"].argmax(1) == d["test_y"])),
        "counts": {k: len(d[f"{k}_z"]) for k in ("train", "val", "test", "near", "far")},
        "keep_on_validation": KEEP,
        "methods": rows,
        "conformal": {
            **cal.state(),
            "test_coverage": coverage,
            "test_mean_set_size": size,
            "test_singletons": float(np.mean([len(s) == 1 for s in prediction_sets(test_p, cal.qhat, cal.rule)])),
        },
        "conformal_aps": {**aps.state(), "test_coverage": aps_coverage, "test_mean_set_size": aps_size},
    }
    print(
        f"{'method':<20} {'AUROC far':>9} {'AUROC near':>10} {'flag far':>8} {'flag near':>9} "
        f"{'flag test':>9} {'flag val':>8}"
    )
    for r in rows:
        print(
            f"{r['method']:<20} {r['auroc_far']:9.3f} {r['auroc_near']:10.3f} {r['flagged_far']:8.1%} "
            f"{r['flagged_near']:9.1%} {r['flagged_test']:9.1%} {r['flagged_val']:8.1%}"
        )
    c = result["conformal"]
    print(
        f"conformal {c['rule'].upper()} at {args.coverage:.0%}: qhat {c['qhat']:.3f} "
        f"on {c['calibration_size']} val photos "
        f"(val coverage {c['validation_coverage']:.3f}); test coverage {coverage:.3f}, mean set size {size:.2f}, "
        f"singletons {c['test_singletons']:.1%}; test accuracy {result['test_accuracy']:.3f}"
    )
    print(f"  (APS, the rule before: test coverage {aps_coverage:.3f}, mean set size {aps_size:.2f})")
    if args.calibration_sizes:
        sizes = [int(n) for n in args.calibration_sizes.split(",")]
        result["calibration_sizes"] = calibration_noise(d, temperature, args.coverage, sizes)
        for r in result["calibration_sizes"]:
            print(
                f"calibrated on {r['n']:>3} photos: coverage {r['coverage_mean']:.3f} ± {r['coverage_sd']:.3f} "
                f"(outside 0.85-0.95: {r['p_coverage_outside_85_95']:.0%}), set size {r['size_mean']:.2f}, "
                f"flagged {r['flagged_mean']:.1%} (over 10%: {r['p_flagged_over_10']:.0%}), "
                f"non-skin flagged {r['flagged_far_mean']:.1%} (under 90%: {r['p_flagged_far_under_90']:.0%})"
            )
    import report  # benchmarks/report.py: provenance, and the generated benchmarks/README.md

    result["run"] = report.provenance("trust", sys.argv[1:])
    if args.out:
        out = Path(args.out)
        if out.parent.resolve() == report.RESULTS.resolve():
            report.save(out.stem, result)  # beside the other runs: the README is regenerated
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
