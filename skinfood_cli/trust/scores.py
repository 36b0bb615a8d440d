"""Out-of-scope scores: how typical a photo's features look next to the training photos'.

Each score is a small `torch.nn.Module` fitted once on the training photos'
pooled features (N, D=2048) and logits (N, K); `forward(features, logits)`
returns (B,) with HIGHER = MORE TYPICAL. Its fitted state is plain tensors,
floats and a name (`state()`, weights_only-safe), and it runs inside the
exported graphs, so ONNX and TorchScript compute the same number as PyTorch.

    max_softmax   max_k softmax(z / T)_k                    (Hendrycks & Gimpel 2017)
    energy        T * logsumexp(z / T), minus the energy     (Liu et al. 2020)
    mahalanobis   -min_c |W (f - mu_c)|^2, shared covariance  (Lee et al. 2018)
    knn           -(k-th smallest distance) between L2-normalised features (Sun et al. 2022)

The first two only see the logits: they rank how sure the model is among ITS
classes, which says little about a picture of none of them (a chessboard can
get 95%). The last two look at where the photo's features fall relative to the
training photos', which is the question actually asked.
"""

from __future__ import annotations

import math

import torch
from torch import nn

METHODS = ("max_softmax", "energy", "mahalanobis", "knn")
DEFAULT_K = 10


class Score(nn.Module):
    """Base: a fitted score; subclasses set `name` and fill buffers / floats."""

    name = "score"
    floats: tuple[str, ...] = ()

    def state(self) -> dict:
        """Fitted state as plain tensors, floats and the method name (weights_only-safe)."""
        out: dict = {"method": self.name}
        out.update({k: v.detach().cpu().clone() for k, v in self.named_buffers()})
        out.update({k: float(getattr(self, k)) for k in self.floats})
        return out


class MaxSoftmax(Score):
    name = "max_softmax"
    floats = ("temperature",)

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, features, logits):
        return torch.softmax(logits.float() / self.temperature, dim=1).amax(dim=1)


class Energy(Score):
    """Negative free energy T * logsumexp(z / T): large when some logit is large."""

    name = "energy"
    floats = ("temperature",)

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, features, logits):
        return self.temperature * torch.logsumexp(logits.float() / self.temperature, dim=1)


class Mahalanobis(Score):
    """Distance to the nearest class mean, measured in the training photos' shared covariance.

    Stored whitened: with Sigma^-1 = W W^T, |W^T (f - mu)|^2 is the squared
    Mahalanobis distance, computed as a difference of (B, D) and (K, D) rows,
    which keeps fp32 accurate where the expanded f P f - 2 f P mu + mu P mu
    would cancel.
    """

    name = "mahalanobis"

    def __init__(self, whiten: torch.Tensor, means: torch.Tensor):
        super().__init__()
        self.register_buffer("whiten", whiten.float())  # (D, D)
        self.register_buffer("means", means.float())  # (K, D), already whitened

    @classmethod
    def fit(cls, features, labels, num_classes: int) -> Mahalanobis:
        x = torch.as_tensor(features, dtype=torch.float64)
        y = torch.as_tensor(labels, dtype=torch.long)
        means = torch.stack([x[y == c].mean(0) if (y == c).any() else x.mean(0) for c in range(num_classes)])
        centred = x - means[y]
        cov = ledoit_wolf(centred)
        eigvals, eigvecs = torch.linalg.eigh(cov)
        whiten = eigvecs / eigvals.clamp_min(1e-12).sqrt()  # (D, D): columns scaled by 1/sqrt(lambda)
        return cls(whiten, means @ whiten)

    def forward(self, features, logits):
        z = features.float() @ self.whiten  # (B, D)
        d2 = (z.unsqueeze(1) - self.means.unsqueeze(0)).pow(2).sum(-1)  # (B, K)
        return -d2.amin(dim=1)


class KNN(Score):
    """Minus the distance to the k-th nearest training photo, on L2-normalised features."""

    name = "knn"
    floats = ("k",)

    def __init__(self, bank: torch.Tensor, k: int = DEFAULT_K):
        super().__init__()
        self.register_buffer("bank", nn.functional.normalize(bank.float(), dim=1))  # (N, D)
        self.k = int(max(1, min(k, len(bank))))

    @classmethod
    def fit(cls, features, k: int = DEFAULT_K) -> KNN:
        return cls(torch.as_tensor(features, dtype=torch.float32), k)

    def forward(self, features, logits):
        f = nn.functional.normalize(features.float(), dim=1)
        sim = f @ self.bank.T  # (B, N) cosine similarity
        kth = sim.topk(self.k, dim=1).values[:, -1]
        # |a - b| = sqrt(2 - 2 cos) for unit vectors
        return -(2 - 2 * kth).clamp_min(0).sqrt()


def ledoit_wolf(centred: torch.Tensor) -> torch.Tensor:
    """Ledoit-Wolf shrunk covariance of centred rows (n, D), towards a scaled identity.

    With a few hundred photos and D = 2048 the sample covariance is singular
    (rank < n); shrinking it towards mu * I by the Ledoit-Wolf (2004) optimal
    amount makes it invertible and minimises the expected squared error.
    """
    x = centred.double()
    n, d = x.shape
    cov = x.T @ x / n
    mu = torch.trace(cov) / d
    delta = ((cov - mu * torch.eye(d, dtype=x.dtype)) ** 2).sum()
    beta = ((x * x).sum(1) ** 2).sum() / n**2 - (cov**2).sum() / n
    shrinkage = float((beta.clamp(min=0).clamp(max=delta) / delta).item()) if delta > 0 else 1.0
    return (1 - shrinkage) * cov + shrinkage * mu * torch.eye(d, dtype=x.dtype)


def fit_score(method: str, features, logits, labels, *, temperature: float = 1.0, k: int = DEFAULT_K) -> Score:
    """Fit score `method` on the training photos' features (N, D), logits (N, K) and labels (N,)."""
    if method == "max_softmax":
        return MaxSoftmax(temperature)
    if method == "energy":
        return Energy(temperature)
    if method == "mahalanobis":
        return Mahalanobis.fit(features, labels, int(torch.as_tensor(logits).shape[1]))
    if method == "knn":
        return KNN.fit(features, k)
    raise ValueError(f"unknown out-of-scope method {method!r}: one of {', '.join(METHODS)}")


def score_from_state(state: dict) -> Score:
    """Rebuild a fitted score from `Score.state()`."""
    method = state["method"]
    if method == "max_softmax":
        return MaxSoftmax(state["temperature"])
    if method == "energy":
        return Energy(state["temperature"])
    if method == "mahalanobis":
        return Mahalanobis(state["whiten"], state["means"])
    if method == "knn":
        score = KNN(state["bank"], int(state["k"]))
        score.bank = state["bank"].float()  # stored normalised already
        return score
    raise ValueError(f"unknown out-of-scope method {method!r}")


def in_scope_threshold(val_scores, keep: float = 0.95) -> float:
    """The score above which `keep` of the validation photos lie (they stay in scope).

    Sorted ascending s_1..s_n with i = floor((1 - keep) n), the cut lies halfway
    between s_i and s_(i+1): at least `keep` of the photos score above it, and
    none sits exactly on it (where an int8 export's rounding would flip it).
    """
    s = torch.as_tensor(val_scores, dtype=torch.float64).flatten().sort().values
    if len(s) == 0:
        return -math.inf
    i = min(len(s) - 1, math.floor((1 - keep) * len(s) + 1e-9))
    return float((s[i - 1] + s[i]) / 2) if i > 0 else float(s[0] - 0.5 * (s[-1] - s[0]) / len(s))
