"""Out-of-scope scores: how typical a photo's features look next to the training photos'.

Each score is a small `torch.nn.Module` fitted once on the training photos'
scope inputs (N, D: the pooled features and an earlier stage's statistics,
scope.scope_inputs) and logits (N, K); `forward(features, logits)`
returns (B,) with HIGHER = MORE TYPICAL. Its fitted state is plain tensors,
floats and a name (`state()`, weights_only-safe), and it runs inside the
exported graphs, so ONNX and TorchScript compute the same number as PyTorch.

    max_softmax   max_k softmax(z / T)_k                    (Hendrycks & Gimpel 2017)
    energy        T * logsumexp(z / T), minus the energy     (Liu et al. 2020)
    mahalanobis   -min_c (f - mu_c)^T S^-1 (f - mu_c), shared S  (Lee et al. 2018)
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
    """Distance to the nearest class mean, measured in the training photos' shared, shrunk covariance.

    Stored in the covariance's eigenbasis. Ledoit-Wolf's Sigma = (1 - s) S + s mu I keeps the
    sample covariance S's r <= min(n, D) directions, each with its own variance, and gives every
    direction S doesn't span one variance, `floor` = s mu. So, exactly,

        d^2(f, m) = |scale * V^T (f - m)|^2 + |(I - V V^T)(f - m)|^2 / floor,    V: (D, r)

    in D x r numbers instead of D x D (500 photos of 1504-number scope inputs: 3 MB instead of
    9 MB; of ResNet50's 4096: 8 MB instead of 67 MB). Differences are taken as (B, K, D) rows
    before projecting, which keeps fp32 accurate where an expanded quadratic form would cancel.
    `floor` 0 means S spans every direction (more photos than numbers): no residual term.
    """

    name = "mahalanobis"
    floats = ("floor",)

    def __init__(self, means: torch.Tensor, basis: torch.Tensor, scale: torch.Tensor, floor: float):
        super().__init__()
        self.register_buffer("means", means.float())  # (K, D)
        self.register_buffer("basis", basis.float())  # (D, r), orthonormal columns
        self.register_buffer("scale", scale.float())  # (r,): 1 / sqrt(variance) along each
        self.floor = float(floor)

    @classmethod
    def fit(cls, features, labels, num_classes: int) -> Mahalanobis:
        x = torch.as_tensor(features, dtype=torch.float64)
        y = torch.as_tensor(labels, dtype=torch.long)
        means = torch.stack([x[y == c].mean(0) if (y == c).any() else x.mean(0) for c in range(num_classes)])
        centred = x - means[y]
        n, d = centred.shape
        shrinkage, mu = ledoit_wolf_shrinkage(centred)
        variances, basis = _sample_eigen(centred)
        keep = variances > variances.max().clamp_min(1e-300) * 1e-10  # the directions S spans
        basis, variances = basis[:, keep], variances[keep]
        shrunk = ((1 - shrinkage) * variances + shrinkage * mu).clamp_min(1e-12)
        # Directions S doesn't span get the shrunk floor (tiny without shrinkage, as inverting would).
        floor = 0.0 if basis.shape[1] == d else max(shrinkage * mu, 1e-12)
        return cls(means, basis, shrunk.rsqrt(), floor)

    def forward(self, features, logits):
        diff = features.float().unsqueeze(1) - self.means.unsqueeze(0)  # (B, K, D)
        proj = diff @ self.basis  # (B, K, r)
        d2 = (proj * self.scale).pow(2).sum(-1)
        if self.floor > 0:
            d2 = d2 + (diff - proj @ self.basis.T).pow(2).sum(-1) / self.floor
        return -d2.amin(dim=1)


class WhitenedMahalanobis(Score):
    """The Mahalanobis state skinfood stored before the eigenbasis form: a (D, D) whitening
    matrix and whitened means. Kept so those checkpoints and their exports score as before."""

    name = "mahalanobis"

    def __init__(self, whiten: torch.Tensor, means: torch.Tensor):
        super().__init__()
        self.register_buffer("whiten", whiten.float())  # (D, D)
        self.register_buffer("means", means.float())  # (K, D), already whitened

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


def _sample_eigen(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (r,) and eigenvectors (D, r) of S = X^T X / n, from the smaller of the n x n
    and D x D Gram matrices: a few hundred photos of 4096 numbers, or 20,000 photos, stay cheap."""
    n, d = x.shape
    if n >= d:
        return torch.linalg.eigh(x.T @ x / n)
    values, u = torch.linalg.eigh(x @ x.T / n)  # X X^T / n = U diag(values) U^T
    vectors = x.T @ u / (values.clamp_min(1e-300) * n).sqrt()  # v = X^T u / sqrt(n lambda)
    return values, vectors


def ledoit_wolf_shrinkage(centred: torch.Tensor) -> tuple[float, float]:
    """Ledoit-Wolf (2004)'s optimal shrinkage s and target scale mu for centred rows (n, D).

    The shrunk covariance is (1 - s) S + s mu I, with S = X^T X / n and mu = tr(S) / D. Computed
    from the smaller of the n x n and D x D Gram matrices.
    """
    x = centred.double()
    n, d = x.shape
    norms2 = (x * x).sum(1)  # |x_i|^2
    trace = float(norms2.sum()) / n
    mu = trace / d
    gram = x @ x.T if n <= d else x.T @ x  # the smaller one: |X X^T|_F = |X^T X|_F
    s_frob2 = float((gram**2).sum()) / n**2  # |S|_F^2
    delta = s_frob2 - 2 * mu * trace + d * mu**2  # |S - mu I|_F^2
    beta = float((norms2**2).sum()) / n**2 - s_frob2 / n
    shrinkage = min(max(beta, 0.0), delta) / delta if delta > 0 else 1.0
    return shrinkage, mu


def ledoit_wolf(centred: torch.Tensor) -> torch.Tensor:
    """Ledoit-Wolf shrunk covariance of centred rows (n, D), towards a scaled identity.

    With a few hundred photos and D = 2048 the sample covariance is singular
    (rank < n); shrinking it towards mu * I by the Ledoit-Wolf (2004) optimal
    amount makes it invertible and minimises the expected squared error.
    """
    x = centred.double()
    n, d = x.shape
    shrinkage, mu = ledoit_wolf_shrinkage(x)
    return (1 - shrinkage) * (x.T @ x / n) + shrinkage * mu * torch.eye(d, dtype=x.dtype)


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
    if method == "mahalanobis" and "whiten" in state:  # stored before the eigenbasis form
        return WhitenedMahalanobis(state["whiten"], state["means"])
    if method == "mahalanobis":
        return Mahalanobis(state["means"], state["basis"], state["scale"], state["floor"])
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
