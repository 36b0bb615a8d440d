"""ImageNet weights for the backbone: download once, check the hash, reuse.

torchvision publishes its weights at a URL whose file name ends in the first 8
hex digits of the file's SHA-256 (`resnet50-11ad3fa6.pth`); that prefix is the
published hash we check, as `torch.hub` does. A cached file is re-hashed before
use, so a partial or corrupt download is fetched again, never loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from skinfood_cli.errors import WeightsError
from skinfood_cli.paths import open_mode

# torchvision's ResNet50_Weights.IMAGENET1K_V2 (80.9% ImageNet top-1).
RESNET50_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
OFFLINE_HINT = (
    "pass --weights FILE (a torchvision ResNet50 state dict you downloaded) or --no-pretrained to train from scratch"
)

Progress = Callable[[int, "int | None"], None]


def expected_hash_prefix(url: str) -> str:
    """The hash prefix torchvision puts in the file name: `name-<sha256[:8+]>.pth`."""
    stem = url.rsplit("/", 1)[-1].split(".")[0]
    return stem.rsplit("-", 1)[-1]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_weights(
    cache_dir: Path,
    url: str = RESNET50_URL,
    *,
    opener: Callable = urllib.request.urlopen,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> Path:
    """The path of the verified weights file, downloading it if needed.

    Args:
        cache_dir: where downloaded weights are kept (`<home>/weights`).
        url: the file to fetch; its name carries the expected hash prefix.
        opener: `urllib.request.urlopen` or a stand-in (tests pass a fake).
        progress: called with (bytes so far, total bytes or None).

    Raises:
        WeightsError: no network, a server error, or a hash that doesn't match.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / url.rsplit("/", 1)[-1]
    prefix = expected_hash_prefix(url)
    if target.is_file():
        if sha256_of(target).startswith(prefix):
            return target
        target.unlink()  # partial or corrupt: fetch again rather than use it
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=cache_dir)
    try:
        open_mode(fd)
        with os.fdopen(fd, "wb") as out:
            _download(url, out, opener, progress, timeout)
        actual = sha256_of(Path(tmp))
        if not actual.startswith(prefix):
            raise WeightsError(
                f"downloaded weights from {url} fail their hash check "
                f"(sha256 {actual[:12]}..., expected {prefix}...): try again, or {OFFLINE_HINT}"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _download(url, out, opener, progress, timeout) -> None:
    try:
        with opener(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            total = int(length) if length and str(length).isdigit() else None
            done = 0
            while True:
                block = response.read(1 << 16)
                if not block:
                    break
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if total is not None and done != total:
            raise WeightsError(f"download of {url} stopped early ({done} of {total} bytes): try again")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(f"could not download ImageNet weights ({reason}): {OFFLINE_HINT}") from None


def load_backbone_state(path: str | os.PathLike) -> dict:
    """Read a torchvision ResNet50 state dict safely (weights_only)."""
    import torch

    from skinfood_cli.checkpoint import clean_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise WeightsError(f"{path} is not a readable PyTorch state dict") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "conv1.weight" not in clean_state_dict(state):
        raise WeightsError(f"{path} is not a torchvision ResNet50 state dict")
    return clean_state_dict(state)


def resolve_backbone(
    *,
    pretrained: bool,
    weights_file: str | os.PathLike | None,
    cache_dir: Path,
    opener: Callable = urllib.request.urlopen,
    progress: Progress | None = None,
) -> tuple[dict | None, str]:
    """The backbone state to start from, and a short description of its source."""
    if weights_file:
        return load_backbone_state(weights_file), str(weights_file)
    if not pretrained:
        return None, "none (trained from scratch)"
    path = fetch_weights(cache_dir, opener=opener, progress=progress)
    return load_backbone_state(path), f"ImageNet ({path.name})"
