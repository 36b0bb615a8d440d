"""More out-of-scope scores for *other skin conditions*, on trust.py's cached features (run by hand).

    python benchmarks/near_ood.py trust6.npz  # trust.py --cache's file

benchmarks/trust.py compares the four scores skinfood ships; none reaches the issue's
AUROC >= 0.70 on photos of conditions the model was not trained on. This tries the
scores the literature proposes for that "near" case on the same features, so the
question "would another score have done it?" has a measured answer. Prints AUROC of
in-scope test photos against the near and the far (not skin) sets, on the pooled
features and (for caches that hold them) on skinfood's scope inputs; nothing is saved.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skinfood_cli.trust import auroc
from skinfood_cli.trust.scores import ledoit_wolf


def precision(centred: np.ndarray) -> np.ndarray:
    return np.linalg.inv(ledoit_wolf(torch.from_numpy(centred)).numpy())


def sq_dist(x: np.ndarray, mean: np.ndarray, prec: np.ndarray) -> np.ndarray:
    d = x - mean
    return np.einsum("ij,jk,ik->i", d, prec, d)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def scores(train: np.ndarray, labels: np.ndarray) -> dict:
    """name -> score(features) (higher = more typical), each fitted on the training features."""
    classes = range(int(labels.max()) + 1)
    means = np.stack([train[labels == c].mean(0) for c in classes])
    shared = precision(train - means[labels])
    centre = train.mean(0)
    whole = precision(train - centre)
    _, _, vt = np.linalg.svd(train - centre, full_matrices=False)

    def class_dists(x):
        return np.stack([sq_dist(x, m, shared) for m in means], 1)

    def knn(x, bank, k):
        return np.sort(unit(x) @ unit(bank).T, 1)[:, -k]

    out = {
        "Mahalanobis (shipped)": lambda x: -class_dists(x).min(1),
        # Ren et al. 2021: each class's distance minus the distance to one Gaussian of all photos
        "relative Mahalanobis": lambda x: -(class_dists(x) - sq_dist(x, centre, whole)[:, None]).min(1),
        "kNN k=10 (shipped)": lambda x: knn(x, train, 10),
        "kNN k=10 on centred features": lambda x: knn(x - centre, train - centre, 10),
        "feature norm": lambda x: np.linalg.norm(x, axis=1),
    }
    for dims in (16, 64, 256):  # ViM's residual (Wang et al. 2022): distance off the principal subspace
        out[f"residual off {dims} principal dims"] = lambda x, v=vt[dims:]: -np.linalg.norm((x - centre) @ v.T, axis=1)
    return out


def main() -> None:
    if len(sys.argv) != 2:
        print("usage: python benchmarks/near_ood.py CACHE.npz (from trust.py --cache)", file=sys.stderr)
        sys.exit(2)
    cache = np.load(sys.argv[1])
    for kind, label in (("f", "pooled features"), ("s", "scope inputs (pooled + stage statistics)")):
        if f"train_{kind}" not in cache:
            continue  # a cache written before the scope inputs
        train, test, near, far = (cache[f"{s}_{kind}"].astype(np.float64) for s in ("train", "test", "near", "far"))
        print(f"{'score, on ' + label:58} {'AUROC other conditions':>24} {'AUROC not skin':>16}")
        for name, score in scores(train, cache["train_y"]).items():
            s = score(test)
            print(f"{name:58} {auroc(s, score(near)):>24.3f} {auroc(s, score(far)):>16.3f}")


if __name__ == "__main__":
    main()
